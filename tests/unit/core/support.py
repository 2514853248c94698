"""A simulated cluster and clock for driving `decide`: workloads follow each plan, the test moves time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import (
    Action,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
)
from sluice.core.plan import (
    ActionRequest,
    AnalysisReading,
    BlockedPods,
    EventRecord,
    MirrorSupport,
    Observations,
    ParentGateway,
    Plan,
    RouteReading,
    ShadowReading,
    ValidationReading,
    WorkloadPlan,
    WorkloadState,
)
from sluice.core.rollout import check_window, decide, next_check_at, validation_due
from sluice.core.rollout.revisions import revision_hash
from sluice.core.world import has_gateway, pods_due

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

HEALTHY = AnalysisReading(request_count=120, error_rate=0.001, latency_p99_seconds=0.08)
ERRORING = AnalysisReading(request_count=120, error_rate=0.31, latency_p99_seconds=0.08)
QUIET = AnalysisReading(request_count=4, error_rate=0.0, latency_p99_seconds=0.05)
UNREACHABLE = AnalysisReading(error="connection refused")
MIRRORING_GATEWAY = (ParentGateway("default/public", "envoy", MirrorSupport.LISTED),)
"""A parent Gateway whose class lists HTTPRouteRequestMirror."""


def make_spec(version: str = "1.0.0", **overrides: Any) -> ModelDeploymentSpec:
    """A spec from wire-format (camelCase) overrides, e.g. `rollout={"steps": [10, 50]}`."""
    wire: dict[str, Any] = {
        "model": {"version": version, "uri": f"s3://models/fraud/{version}/model.onnx", "format": "onnx"},
        "replicas": 2,
        "rollout": {"steps": [10, 25, 50], "interval": "1m", "progressDeadline": "10m"},
    }
    wire.update(overrides)
    return ModelDeploymentSpec.model_validate(wire)


def with_version(spec: ModelDeploymentSpec, version: str) -> ModelDeploymentSpec:
    model = spec.model.model_copy(update={"version": version, "uri": f"s3://models/fraud/{version}/model.onnx"})
    return spec.model_copy(update={"model": model})


def running(plan: WorkloadPlan | None, *, ready: bool, kept: int = 0) -> WorkloadState:
    """The workload a plan asks for, once the cluster has acted on it (ready or still starting). An autoscaled
    track keeps the `kept` replicas its HPA set, raised to the plan's floor, as the adapter applies it."""
    if plan is None:
        return WorkloadState()
    replicas = max(kept, plan.replicas) if plan.autoscaling is not None else plan.replicas
    return WorkloadState(
        exists=True,
        version=plan.model.version,
        revision=revision_hash(plan.model, plan.serving),
        replicas=replicas,
        pods=replicas,
        updated_replicas=replicas,
        ready_replicas=replicas if ready else 0,
        available=ready,
        experiment=plan.assignment.experiment_id if plan.assignment is not None else None,
    )


@dataclass
class Simulation:
    """One ModelDeployment: each `reconcile` observes the workloads, decides, and lets the workloads follow."""

    spec: ModelDeploymentSpec
    now: datetime = T0
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    stable: WorkloadState = field(default_factory=WorkloadState)
    canary: WorkloadState = field(default_factory=WorkloadState)
    canary_starts: bool = True
    """Whether the canary's pods become ready; False models a model that never loads."""
    generation: int = 1
    paused: bool = False
    plan: Plan | None = None
    events: list[EventRecord] = field(default_factory=list)
    validation: ValidationReading = field(default_factory=lambda: ValidationReading(score=0.95, samples=100))
    """What the validation gate's run gives when it is due (spec.validation)."""
    shadow: ShadowReading = field(default_factory=lambda: ShadowReading(comparisons=200, agreement=0.99))
    """The shadow comparisons read with each shadow check (spec.rollout.shadow)."""
    route: RouteReading | None = field(default_factory=lambda: RouteReading(parents=1, accepted=1, refused=0))
    """What the HTTPRoute's status says, read with a Gateway (spec.traffic.gateway)."""
    blocked_pods: BlockedPods | None = None
    """The pods that cannot start, listed while a track is not available."""
    gateways: tuple[ParentGateway, ...] | None = MIRRORING_GATEWAY
    """The route's parent Gateways and their RequestMirror support, as the adapter reads them."""
    _action_ids: int = 0

    def reconcile(self, reading: AnalysisReading | None = None, action: Action | None = None) -> Plan:
        """As the adapter does: pass the reading only when `check_window` says a check is due."""
        return self.follow(decide(self.spec, self.status, self.observe(reading, action), self.now))

    def follow(self, plan: Plan) -> Plan:
        """Record the plan's status and events; the workloads become what it asks for."""
        self.plan = plan
        self.status = plan.status
        self.events.extend(plan.events)
        self.stable = running(plan.stable, ready=True, kept=self.stable.replicas)
        self.canary = running(plan.canary, ready=self.canary_starts, kept=self.canary.replicas)
        return plan

    def observe(self, reading: AnalysisReading | None = None, action: Action | None = None) -> Observations:
        request = None
        if action is not None:
            self._action_ids += 1
            request = ActionRequest(action=action, request_id=f"request-{self._action_ids}")
        due = check_window(self.spec, self.status, self.now) is not None
        shadowing = due and self.status.phase is Phase.SHADOWING
        return Observations(
            generation=self.generation,
            stable=self.stable,
            canary=self.canary,
            analysis=reading if due else None,
            action=request,
            paused=self.paused,
            validation=self.validation if validation_due(self.spec, self.status, self.canary, self.now) else None,
            shadow=self.shadow if shadowing and reading is not None else None,
            blocked_pods=self.blocked_pods if pods_due(self.stable, self.canary) else None,
            route=self.route if has_gateway(self.spec) else None,
            gateways=self.gateways,
        )

    def wait(self, duration: str | timedelta) -> None:
        self.now += parse_duration(duration) if isinstance(duration, str) else duration

    def until_next_check(self) -> None:
        due = next_check_at(self.spec, self.status)
        assert due is not None, f"no check scheduled in phase {self.status.phase}"
        self.now = max(self.now, due)

    def check(self, reading: AnalysisReading) -> Plan:
        """Wait for the next check, then reconcile with `reading`."""
        self.until_next_check()
        return self.reconcile(reading)

    def set_version(self, version: str) -> None:
        self.spec = with_version(self.spec, version)
        self.generation += 1

    def set_serving(self, serving: dict[str, Any] | None) -> None:
        """Change spec.serving (wire format), as `kubectl apply` of an edited manifest does."""
        wire = self.spec.to_wire()
        wire["serving"] = serving
        self.spec = ModelDeploymentSpec.model_validate(wire)
        self.generation += 1

    def event_reasons(self) -> list[str]:
        return [event.reason for event in self.events]


def deployed(spec: ModelDeploymentSpec) -> Simulation:
    """A ModelDeployment whose first version is deployed and Stable."""
    simulation = Simulation(spec)
    simulation.reconcile()
    simulation.reconcile()
    assert simulation.status.phase is Phase.STABLE
    simulation.events.clear()
    return simulation


def at_first_step(spec: ModelDeploymentSpec, new_version: str = "2.0.0") -> Simulation:
    """Stable at spec's version, with `new_version`'s canary ready at the first step."""
    simulation = deployed(spec)
    simulation.set_version(new_version)
    simulation.reconcile()
    simulation.reconcile()
    assert simulation.status.current_step == 0
    simulation.events.clear()
    return simulation
