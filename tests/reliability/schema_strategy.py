"""Hypothesis strategies from the CRD's own OpenAPI v3 schema (the structural subset Kubernetes allows).

`hypothesis-jsonschema` would be the obvious tool, but its latest release (0.23.1) fails on current Hypothesis
(`AttributeError: 'many' object has no attribute 'more'`), so this converts the keywords the generated CRD uses:
type (object, array, string, integer, number, boolean), properties, required, additionalProperties (maps),
maxProperties, items, minItems, maxItems, minLength, maxLength, pattern, enum, minimum, maximum, anyOf (int-or-string).
CEL rules (`x-kubernetes-validations`) are not modelled: the API server applies them to what is generated, which is
the point. Sizes are capped (strings 40, lists 4, maps 3) to keep each manifest small; `caps` narrows named
integer fields further (e.g. replicas, so a thousand manifests do not ask for a thousand pods each).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

MAX_STRING = 40
MAX_ITEMS = 4
MAX_MAP = 3
CHARACTERS = st.characters(codec="utf-8")
"""Any Unicode character that survives JSON encoding (no lone surrogates)."""


def _bounded_text(node: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low = int(node.get("minLength", 0))
    high = min(int(node.get("maxLength", MAX_STRING)), max(low, MAX_STRING))
    pattern = node.get("pattern")
    if pattern:
        return st.from_regex(pattern, fullmatch=True, alphabet=CHARACTERS).filter(
            lambda text: low <= len(text) <= int(node.get("maxLength", 1 << 30))
        )
    return st.text(CHARACTERS, min_size=low, max_size=high)


def strategy(node: Mapping[str, Any], caps: Mapping[str, tuple[int, int]] | None = None) -> st.SearchStrategy[Any]:
    """Values valid for `node` by every structural keyword above."""
    caps = caps or {}
    if "enum" in node:
        return st.sampled_from(list(node["enum"]))
    if "anyOf" in node:
        shared = {key: value for key, value in node.items() if key not in {"anyOf", "type"}}
        return st.one_of([strategy({**shared, **choice}, caps) for choice in node["anyOf"]])
    kind = node.get("type")
    if kind == "object":
        properties: Mapping[str, Any] = node.get("properties") or {}
        if properties:
            required = set(node.get("required") or [])
            return st.fixed_dictionaries(
                {key: _property(key, value, caps) for key, value in properties.items() if key in required},
                optional={key: _property(key, value, caps) for key, value in properties.items() if key not in required},
            )
        values = node.get("additionalProperties")
        if isinstance(values, Mapping):
            keys = st.from_regex(r"^[a-z][a-z0-9.-]{0,14}$", fullmatch=True)
            return st.dictionaries(
                keys, strategy(values, caps), max_size=min(int(node.get("maxProperties", MAX_MAP)), MAX_MAP)
            )
        return st.fixed_dictionaries({})
    if kind == "array":
        low = int(node.get("minItems", 0))
        high = min(int(node.get("maxItems", MAX_ITEMS)), max(low, MAX_ITEMS))
        return st.lists(strategy(node.get("items") or {}, caps), min_size=low, max_size=high)
    if kind == "string":
        return _bounded_text(node)
    if kind == "integer":
        return st.integers(node.get("minimum"), node.get("maximum"))
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return st.none()


def _property(key: str, node: Mapping[str, Any], caps: Mapping[str, tuple[int, int]]) -> st.SearchStrategy[Any]:
    if key in caps and node.get("type") == "integer":
        low, high = caps[key]
        return st.integers(max(low, node.get("minimum", low)), min(high, node.get("maximum", high)))
    return strategy(node, caps)
