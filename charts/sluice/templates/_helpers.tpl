{{/* Names. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end }}

{{/* Labels that select the operator pods (never change them: Deployment selectors are immutable). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "sluice.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaced permissions the operator uses, in every namespace it watches. Reviewed list: docs/security.md and
tests/unit/chart/chart_support.py; change all three together.
*/}}
{{- define "sluice.namespacedRules" -}}
- apiGroups: ["sluice.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["sluice.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
- apiGroups: ["sluice.dev"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}

{{/* Cluster-wide permissions, needed in both modes: Kopf discovers the served resources by watching CRDs; before a
shadow phase mirrors, the operator reads the route's parent Gateways (often in a namespace it does not watch) and
their cluster-scoped GatewayClasses, by name, to see whether they implement RequestMirror. */}}
{{- define "sluice.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways", "gatewayclasses"]
  verbs: ["get"]
{{- end }}

{{/* With standby.enabled: the leader-election Lease, in the release namespace only. */}}
{{- define "sluice.leaseName" -}}
{{- printf "%s-leader" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sluice.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}

{{- define "sluice.notificationRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: [{{ .Values.notifications.secretName | quote }}]
  verbs: ["get"]
{{- end }}

{{/* Cross-field checks the JSON schema cannot phrase clearly. */}}
{{- define "sluice.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.standby.enabled) }}
{{- fail "replicaCount > 1 needs standby.enabled=true: without leader election every replica would reconcile the same ModelDeployments at once (see docs/install.md, \"Running a standby\")" }}
{{- end }}
{{- if and (not .Values.watch.clusterWide) (empty .Values.watch.namespaces) }}
{{- fail "watch.clusterWide=false needs at least one namespace in watch.namespaces" }}
{{- end }}
{{- if and (not (empty .Values.notifications.defaultReceivers)) (empty .Values.notifications.secretName) }}
{{- fail "notifications.defaultReceivers needs notifications.secretName: the receivers' URLs are keys of that Secret" }}
{{- end }}
{{- if and .Values.watch.clusterWide (not (empty .Values.watch.namespaces)) }}
{{- fail "watch.namespaces is only used with watch.clusterWide=false; set one or the other" }}
{{- end }}
{{- end }}
