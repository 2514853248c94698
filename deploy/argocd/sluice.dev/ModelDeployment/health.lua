-- Argo CD health check for sluice.dev/ModelDeployment (Lua 5.1, as gopher-lua runs it).
-- Install: resource.customizations.health.sluice.dev_ModelDeployment in argocd-cm (docs/observability.md).
--
-- Healthy      Ready=True and nothing in progress (also a stable version scaled to zero)
-- Progressing  the operator has not seen this generation yet, or Reconciling=True (a deploy or canary under way)
-- Suspended    a paused rollout (spec.paused or the sluice.dev/paused annotation)
-- Degraded     Stalled=True (invalid spec, a rolled-back version, a stable Deployment past its progress deadline),
--              or Ready=False for another reason
local hs = {}

local function condition(status, conditionType)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the sluice operator to reconcile the ModelDeployment"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the sluice operator to observe generation " .. generation
  return hs
end

local stalled = condition(status, "Stalled")
local reconciling = condition(status, "Reconciling")
local ready = condition(status, "Ready")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if status.phase == "Paused" then
  hs.status = "Suspended"
  local progressing = condition(status, "Progressing")
  hs.message = progressing and describe(progressing) or "Rollout paused"
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if ready ~= nil and ready.status == "False" and ready.reason == "ScaledToZero" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
-- An operator without the kstatus conditions: go by the phase.
if status.phase == "Stable" then
  hs.status = "Healthy"
elseif status.phase == "RolledBack" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = "Phase " .. tostring(status.phase)
return hs
