"""spec.autoscaling: one HorizontalPodAutoscaler (autoscaling/v2) per track, which sluice owns and sizes.

The metrics are HPA v2 MetricSpecs (Resource, ContainerResource, Pods, External), copied verbatim into both
HPAs; Object metrics are left out (they name another object of the namespace, which a model's own load does not
need).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from sluice.api.v1alpha1.meta import ApiModel, Quantity, cel
from sluice.api.v1alpha1.scheduling import LabelSelector

MAX_AUTOSCALING_METRICS = 8
MAX_AUTOSCALING_REPLICAS = 1000


class TargetType(StrEnum):
    UTILIZATION = "Utilization"
    VALUE = "Value"
    AVERAGE_VALUE = "AverageValue"


class MetricTarget(ApiModel):
    """The value a metric is held at, as autoscaling/v2 MetricTarget."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.type != 'Utilization' || has(self.averageUtilization)",
                    "type Utilization needs averageUtilization",
                ),
                cel("self.type != 'Value' || has(self.value)", "type Value needs value"),
                cel("self.type != 'AverageValue' || has(self.averageValue)", "type AverageValue needs averageValue"),
            ]
        }
    )

    type: TargetType = Field(description="Utilization (resources only), Value or AverageValue.")
    average_utilization: int | None = Field(
        default=None, ge=1, le=1000, description="Target percentage of the pods' request (type Utilization)."
    )
    average_value: Quantity | None = Field(default=None, description="Target value per pod (type AverageValue).")
    value: Quantity | None = Field(default=None, description="Target value of the metric (type Value).")


class MetricIdentifier(ApiModel):
    """A metric by name and optional label selector."""

    name: str = Field(min_length=1, max_length=253, description="Name of the metric.")
    selector: LabelSelector | None = Field(default=None, description="Labels of the metric's series.")


class ResourceMetric(ApiModel):
    """A resource (cpu, memory) of the serving pods, as their requests' percentage or an absolute value."""

    name: str = Field(min_length=1, max_length=253, description="The resource: cpu or memory.", examples=["cpu"])
    target: MetricTarget = Field(description="Its target.")


class ContainerResourceMetric(ResourceMetric):
    """A resource of one container of the serving pods (the model server's is `server`)."""

    container: str = Field(min_length=1, max_length=63, description="The container.", examples=["server"])


class PodsMetric(ApiModel):
    """A per-pod metric from the custom metrics API (requests per second, queue length), averaged over the pods."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.target.type == 'AverageValue'", "a Pods metric's target is an AverageValue", ".target")
            ]
        }
    )

    metric: MetricIdentifier = Field(description="The metric.")
    target: MetricTarget = Field(description="Its target (AverageValue only).")


class ExternalMetric(ApiModel):
    """A metric from outside the cluster's objects (the external metrics API), such as a queue's length."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.target.type != 'Utilization'",
                    "an External metric's target is a Value or an AverageValue",
                    ".target",
                )
            ]
        }
    )

    metric: MetricIdentifier = Field(description="The metric.")
    target: MetricTarget = Field(description="Its target (Value or AverageValue).")


class MetricType(StrEnum):
    RESOURCE = "Resource"
    CONTAINER_RESOURCE = "ContainerResource"
    PODS = "Pods"
    EXTERNAL = "External"


class MetricSpec(ApiModel):
    """One metric the HPAs scale on, as autoscaling/v2 MetricSpec (Object metrics aside): the member named by
    `type` is set."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.type == 'Resource' ? has(self.resource) : self.type == 'ContainerResource' ? "
                    "has(self.containerResource) : self.type == 'Pods' ? has(self.pods) : has(self.external)",
                    "the member named by type must be set (resource, containerResource, pods or external)",
                ),
                cel(
                    "[has(self.resource), has(self.containerResource), has(self.pods), has(self.external)]"
                    ".filter(x, x).size() == 1",
                    "exactly one of resource, containerResource, pods, external",
                ),
            ]
        }
    )

    type: MetricType = Field(description="Resource, ContainerResource, Pods or External.")
    resource: ResourceMetric | None = Field(default=None, description="With type Resource.")
    container_resource: ContainerResourceMetric | None = Field(default=None, description="With type ContainerResource.")
    pods: PodsMetric | None = Field(default=None, description="With type Pods.")
    external: ExternalMetric | None = Field(default=None, description="With type External.")

    @model_validator(mode="after")
    def _one_member(self) -> Self:
        members = {
            MetricType.RESOURCE: self.resource,
            MetricType.CONTAINER_RESOURCE: self.container_resource,
            MetricType.PODS: self.pods,
            MetricType.EXTERNAL: self.external,
        }
        if members[self.type] is None or sum(member is not None for member in members.values()) != 1:
            raise ValueError("exactly one of resource, containerResource, pods, external: the one type names")
        return self


class AutoscalingSpec(ApiModel):
    """Replicas set by HorizontalPodAutoscalers that sluice owns, one per track: `<name>-stable` and, while a
    canary runs, `<name>-canary`, whose bounds are the canary's share of these (docs/rollouts.md, Autoscaling).
    spec.replicas is then only the stable Deployment's first count."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas", ".minReplicas")
            ]
        }
    )

    min_replicas: int = Field(
        default=1, ge=1, le=MAX_AUTOSCALING_REPLICAS, description="Fewest stable replicas (1..1000).", examples=[2]
    )
    max_replicas: int = Field(
        ge=1, le=MAX_AUTOSCALING_REPLICAS, description="Most stable replicas (1..1000).", examples=[10]
    )
    metrics: list[MetricSpec] | None = Field(
        default=None,
        max_length=MAX_AUTOSCALING_METRICS,
        description="What the HPAs scale on (HPA v2 metrics); the HPA's default, 80% average CPU utilization, "
        "when left out.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self
