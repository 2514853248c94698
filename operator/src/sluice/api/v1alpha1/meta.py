"""Names of the API (group, kind, annotations), shared limits and patterns, and the base of every model."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "sluice.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["mdep"]
CATEGORIES = ["sluice"]

ACTION_ANNOTATION = f"{GROUP}/action"
"""One-shot manual request (`promote`, `promote-full`, `abort`, `retry`); see `Action`."""
ACTION_ID_ANNOTATION = f"{GROUP}/action-id"
"""Unique id of the request in `ACTION_ANNOTATION`; a request is handled once, when its id is new."""
PAUSED_ANNOTATION = f"{GROUP}/paused"
"""`"true"` pauses like `spec.paused` without editing the spec a GitOps tool owns."""

HISTORY_LIMIT = 20
REVISION_SPEC_LIMIT = 8192
"""Longest spec.serving (compact JSON) a history entry keeps for `kubectl sluice undo --to-revision`: 20 entries
of two each stay far below the object size limit."""
MAX_STEPS = 20
MAX_CUSTOM_METRICS = 10
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
MIN_INTERVAL = "1s"
MAX_INTERVAL = "24h"


def is_duration(field: str = "") -> str:
    """CEL: `self.<field>` (`self` without a field) is a well-formed duration. Rules that call duration() check it
    first, so a malformed value is reported once, by the field's own rule, not again as a CEL conversion error."""
    cel_pattern = DURATION_PATTERN.replace("\\.", "[.]")  # CEL string literals have no `\.` escape
    subject = f"self.{field}" if field else "self"
    return f"{subject}.matches('{cel_pattern}')"


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    validation: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        validation["fieldPath"] = field_path
    return validation


DURATION_MESSAGE = "must be a duration such as 500ms, 30s, 1m or 1h30m (units ms, s, m, h; no days, no spaces)"


def _check_duration(text: str) -> str:
    if re.match(DURATION_PATTERN, text) is None:
        raise ValueError(DURATION_MESSAGE)
    return text


Duration = Annotated[
    str,
    Field(
        max_length=32,
        description="A duration such as 500ms, 30s, 1m or 1h30m.",
        # a CEL rule with a sentence for people, not a pattern whose error message would be the raw regex
        json_schema_extra={"x-kubernetes-validations": [cel(is_duration(), DURATION_MESSAGE)]},
    ),
    AfterValidator(_check_duration),
]

Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]
"""A Kubernetes resource quantity such as 500m, 2 or 4Gi (the CRD marks it x-kubernetes-int-or-string)."""


class ApiModel(BaseModel):
    """Base for API objects: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
