"""Where serving pods may run: tolerations, affinity and topology spread, as in a Pod spec (bounded subsets)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from sluice.api.v1alpha1.meta import ApiModel

MAX_TERMS = 8
"""Bound on each list of scheduling terms (keeps the CRD's CEL cost estimate and the object small)."""

Key = Annotated[str, Field(min_length=1, max_length=317)]
"""A label or taint key (an optional DNS-subdomain prefix and '/', then a name)."""
ShortValue = Annotated[str, Field(max_length=63)]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


class Requirement(ApiModel):
    """A label (or node field) requirement: `key operator values`."""

    key: Key = Field(description="The label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists, DoesNotExist (Gt, Lt: nodes only).")
    values: list[ShortValue] | None = Field(default=None, max_length=32, description="The values compared.")


class LabelSelector(ApiModel):
    """A label selector, as metav1.LabelSelector."""

    match_labels: dict[str, ShortValue] | None = Field(default=None, max_length=16, description="Exact labels.")
    match_expressions: list[Requirement] | None = Field(default=None, max_length=MAX_TERMS, description="Rules.")


class NodeSelectorTerm(ApiModel):
    """Node requirements, all of which must hold."""

    match_expressions: list[Requirement] | None = Field(default=None, max_length=MAX_TERMS, description="By labels.")
    match_fields: list[Requirement] | None = Field(default=None, max_length=MAX_TERMS, description="By fields.")


class RequiredNodeAffinity(ApiModel):
    node_selector_terms: list[NodeSelectorTerm] = Field(
        min_length=1, max_length=MAX_TERMS, description="Terms, any of which must hold."
    )


class PreferredNodeTerm(ApiModel):
    weight: int = Field(ge=1, le=100, description="Weight 1..100.")
    preference: NodeSelectorTerm = Field(description="The preferred nodes.")


class NodeAffinity(ApiModel):
    required_during_scheduling_ignored_during_execution: RequiredNodeAffinity | None = Field(
        default=None, description="Nodes a pod must run on."
    )
    preferred_during_scheduling_ignored_during_execution: list[PreferredNodeTerm] | None = Field(
        default=None, max_length=MAX_TERMS, description="Nodes a pod prefers."
    )


class PodAffinityTerm(ApiModel):
    label_selector: LabelSelector | None = Field(default=None, description="The pods this term is about.")
    namespaces: list[ShortValue] | None = Field(default=None, max_length=16, description="Their namespaces.")
    namespace_selector: LabelSelector | None = Field(default=None, description="Their namespaces, by labels.")
    topology_key: Key = Field(description="The node label that defines co-location, e.g. kubernetes.io/hostname.")


class WeightedPodAffinityTerm(ApiModel):
    weight: int = Field(ge=1, le=100, description="Weight 1..100.")
    pod_affinity_term: PodAffinityTerm = Field(description="The term.")


class PodAffinity(ApiModel):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, max_length=MAX_TERMS, description="Terms that must hold."
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, max_length=MAX_TERMS, description="Terms preferred."
    )


class Affinity(ApiModel):
    """Node affinity, pod affinity and pod anti-affinity, as in a Pod spec."""

    node_affinity: NodeAffinity | None = Field(default=None, description="Nodes the pods run on.")
    pod_affinity: PodAffinity | None = Field(default=None, description="Pods to run near.")
    pod_anti_affinity: PodAffinity | None = Field(default=None, description="Pods to run apart from.")


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class Toleration(ApiModel):
    """A taint the pods tolerate (e.g. `nvidia.com/gpu` on GPU nodes)."""

    key: Key | None = Field(default=None, description="Taint key; all taints when left out with Exists.")
    operator: TolerationOperator | None = Field(default=None, description="Equal (default) or Exists.")
    value: ShortValue | None = Field(default=None, description="Taint value, with Equal.")
    effect: TaintEffect | None = Field(default=None, description="NoSchedule, PreferNoSchedule or NoExecute; all.")
    toleration_seconds: int | None = Field(
        default=None, ge=0, le=86400 * 30, description="With NoExecute: how long the pod stays after the taint."
    )


class UnsatisfiableAction(StrEnum):
    DO_NOT_SCHEDULE = "DoNotSchedule"
    SCHEDULE_ANYWAY = "ScheduleAnyway"


class TopologySpreadConstraint(ApiModel):
    """How pods spread over a topology (zones, nodes), as in a Pod spec."""

    max_skew: int = Field(ge=1, le=1000, description="Largest allowed difference in pod count between domains.")
    topology_key: Key = Field(description="The node label of the domains, e.g. topology.kubernetes.io/zone.")
    when_unsatisfiable: UnsatisfiableAction = Field(description="DoNotSchedule or ScheduleAnyway.")
    label_selector: LabelSelector | None = Field(default=None, description="The pods counted.")
    match_label_keys: list[Key] | None = Field(
        default=None,
        max_length=8,
        description="Pod label keys whose values narrow the pods counted (e.g. pod-template-hash).",
    )
    min_domains: int | None = Field(default=None, ge=1, le=1000, description="Least number of eligible domains.")
