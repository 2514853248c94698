"""spec.traffic and the whole ModelDeploymentSpec."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.analysis import AnalysisSpec
from sluice.api.v1alpha1.autoscaling import AutoscalingSpec
from sluice.api.v1alpha1.experiment import ExperimentSpec
from sluice.api.v1alpha1.meta import ApiModel, cel
from sluice.api.v1alpha1.notifications import NotificationsSpec
from sluice.api.v1alpha1.rollout import RolloutSpec
from sluice.api.v1alpha1.serving import ModelSpec, ServingSpec
from sluice.api.v1alpha1.validation import ValidationSpec

GATEWAY_GROUP = "gateway.networking.k8s.io"
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Gateway API hostname: lowercase DNS names, optionally one leading `*.` wildcard label; no IP addresses."""


class ParentReference(ApiModel):
    """A Gateway the HTTPRoute attaches to, as in Gateway API. Only Gateways: another parent (a Service, which
    makes a GAMMA mesh route) would let a ModelDeployment take over that Service's traffic."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!has(self.group) || self.group == '{GATEWAY_GROUP}'",
                    f"parentRefs may only name Gateways: group must be {GATEWAY_GROUP} (or left out)",
                    ".group",
                ),
                cel(
                    "!has(self.kind) || self.kind == 'Gateway'",
                    "parentRefs may only name Gateways: kind must be Gateway (or left out)",
                    ".kind",
                ),
            ]
        }
    )

    name: str = Field(min_length=1, max_length=253, description="Name of the parent.", examples=["public"])
    namespace: str | None = Field(
        default=None, max_length=63, description="Namespace of the parent; defaults to the ModelDeployment's."
    )
    section_name: str | None = Field(
        default=None, max_length=253, description="A listener of the Gateway.", examples=["https"]
    )
    group: str | None = Field(
        default=None, max_length=253, description=f"API group of the parent: {GATEWAY_GROUP} (the default) only."
    )
    kind: str | None = Field(default=None, max_length=63, description="Kind of the parent: Gateway (the default) only.")


class GatewayTraffic(ApiModel):
    """Traffic split by weights on an HTTPRoute attached to one or more Gateways. The route matches only this
    model's paths (`/v2/models/<name>...`, `/v1/models/<name>[:predict]`), so models can share a hostname."""

    parent_refs: list[ParentReference] = Field(
        min_length=1,
        max_length=32,
        description="Gateways the HTTPRoute attaches to; at least one. The operator may allow only some Gateways.",
    )
    hostnames: list[Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]] | None = Field(
        default=None,
        max_length=16,
        description="Hostnames the HTTPRoute matches (lowercase DNS names, optionally starting with `*.`); all of "
        "the Gateway's when left out. The operator may require them and limit them to some domains.",
        examples=[["fraud.example.com"]],
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class TrafficSpec(ApiModel):
    """How traffic is split; without `gateway`, by replica ratio behind one Service."""

    gateway: GatewayTraffic | None = Field(
        default=None, description="Split with a Gateway API HTTPRoute that the operator owns."
    )


class ModelDeploymentSpec(ApiModel):
    """The desired state: which model to serve and how new versions are rolled out."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.validation) || (has(self.traffic) && has(self.traffic.gateway))",
                    "validation needs traffic.gateway: only an HTTPRoute keeps a running canary at weight 0",
                    ".validation",
                ),
                cel(
                    "!has(self.rollout) || !has(self.rollout.shadow) "
                    "|| (has(self.traffic) && has(self.traffic.gateway))",
                    "rollout.shadow needs traffic.gateway: only an HTTPRoute can mirror requests",
                    ".rollout",
                ),
                cel(
                    "!has(self.rollout) || !has(self.rollout.keepPrevious) "
                    "|| (has(self.traffic) && has(self.traffic.gateway))",
                    "rollout.keepPrevious needs traffic.gateway: only an HTTPRoute keeps Ready pods at weight 0",
                    ".rollout",
                ),
                cel(
                    "!has(self.rollout) || !has(self.rollout.keepPrevious) || !has(self.autoscaling)",
                    "rollout.keepPrevious cannot be combined with autoscaling yet: while the previous revision is "
                    "kept, both tracks run spec.replicas, not the count the HPA reached",
                    ".rollout",
                ),
                cel(
                    "!has(self.rollout) || !has(self.rollout.match) "
                    "|| (has(self.traffic) && has(self.traffic.gateway))",
                    "rollout.match needs traffic.gateway: only an HTTPRoute can route requests by header",
                    ".rollout",
                ),
                cel(
                    "!has(self.experiment) || (has(self.traffic) && has(self.traffic.gateway))",
                    "experiment needs traffic.gateway: the route sends all requests to the stable Service, whose "
                    "server assigns the arms",
                    ".experiment",
                ),
                cel(
                    "!has(self.experiment) || !has(self.rollout) || (!has(self.rollout.match) "
                    "&& !has(self.rollout.shadow) && !has(self.rollout.keepPrevious))",
                    "experiment cannot be combined with rollout.match, rollout.shadow or rollout.keepPrevious",
                    ".experiment",
                ),
            ]
        }
    )

    model: ModelSpec = Field(description="The model artifact to serve.")
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Serving replicas of the stable version (0..1000). With autoscaling: only the stable "
        "Deployment's first count (within minReplicas..maxReplicas); the HPAs set the replicas from then on.",
        examples=[3],
    )
    serving: ServingSpec | None = Field(default=None, description="Image, resources and environment of the pods.")
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="Canary steps and their timing.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="Bounds every analysis check applies.")
    traffic: TrafficSpec | None = Field(
        default=None, description="Traffic splitting; by replica ratio behind one Service when left out."
    )
    validation: ValidationSpec | None = Field(
        default=None,
        description="Score a labelled dataset on the canary before any traffic; needs traffic.gateway. Off when "
        "left out.",
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None,
        description="HorizontalPodAutoscalers that sluice owns, one per track, sized by the canary's share; "
        "spec.replicas when left out. Use this rather than an HPA on the ModelDeployment or its Deployments.",
    )
    experiment: ExperimentSpec | None = Field(
        default=None,
        description="A sticky A/B experiment instead of the canary steps: each entity key always on the same "
        "version, a fixed split for a fixed time or sample count, then promote, keep or roll back by the metrics; "
        "needs traffic.gateway (docs/experiments.md). Off when left out.",
    )
    paused: bool = Field(default=False, description="Hold a rollout at its current step.")
    notifications: NotificationsSpec | None = Field(
        default=None,
        description="Webhook receivers told of rollout events (started, step passed, paused, promoted, rolled "
        "back); the operator's default receivers when left out (docs/notifications.md).",
    )
