"""Generate the reference sections of `docs/api.md` from the CRD schema that `sluice.codegen.crdgen` builds.

The prose in docs/api.md is written by hand; each block between `<!-- BEGIN GENERATED: <name> -->` and
`<!-- END GENERATED: <name> -->` is replaced by `make crds`, so the field reference cannot drift from the models.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from sluice.api import v1alpha1 as api
from sluice.api.v1alpha1 import meta
from sluice.codegen import crdgen

DOCS_PATH = Path("docs") / "api.md"
EXAMPLES_DIR = Path("examples")
_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)", re.S
)

Schema = dict[str, Any]


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return "`" + text.replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", path.lower().replace(" ", "-"))


def _type(node: Schema, path: str) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "quantity (integer or string)" if node.get("pattern") == api.QUANTITY_PATTERN else "integer or string"
    kind = node["type"]
    if kind == "string" and node.get("pattern") == api.DURATION_PATTERN:
        return "[duration](#durations)"
    if kind == "string" and node.get("format") == "date-time":
        return "timestamp"
    if kind == "object" and "properties" in node:
        return f"[object](#{_anchor(path)})"
    if kind == "object" and "additionalProperties" in node:
        return "map of " + _type(node["additionalProperties"], path + "[*]")
    if kind == "array":
        item_path = path + "[*]"
        return "list of " + _type(node["items"], item_path)
    return str(kind)


def _bounds(low: int | None, high: int | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low}..{high} {unit}"
    if high is not None:
        return f"at most {high} {unit}"
    return f"at least {low} {unit}" if low is not None else ""


def _validation(node: Schema, required: bool, rules: list[str]) -> str:
    parts = ["**required**"] if required else []
    if "enum" in node:
        parts.append("one of " + ", ".join(_code(value) for value in node["enum"]))
    if "minimum" in node or "maximum" in node:
        low, high = node.get("minimum"), node.get("maximum")
        if low is not None and high is not None:
            parts.append(f"{low}..{high}")
        else:
            parts.append(f">= {low}" if low is not None else f"<= {high}")
    pattern = node.get("pattern")
    if pattern not in (api.DURATION_PATTERN, api.QUANTITY_PATTERN):
        parts.append(_bounds(node.get("minLength"), node.get("maxLength"), "characters"))
        if pattern:
            parts.append("matches " + _code(pattern))
    parts.append(_bounds(node.get("minItems"), node.get("maxItems"), "items"))
    if "maxProperties" in node:
        parts.append(f"at most {node['maxProperties']} entries")
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        parts.append("no duplicates")
    elif list_type == "map":
        parts.append("unique " + ", ".join(_code(key) for key in node["x-kubernetes-list-map-keys"]))
    parts += [_cell(rule) for rule in rules]
    if "properties" not in node:  # an object's own rules are listed in its section
        parts += [_cell(rule["message"]) for rule in node.get("x-kubernetes-validations", [])]
    return "; ".join(part for part in parts if part) or "-"


def _description(node: Schema) -> str:
    text = _cell(node.get("description", ""))
    examples = node.get("examples") or []
    if examples:
        text += (" " if text else "") + "Example" + ("s" if len(examples) > 1 else "") + ": "
        text += ", ".join(_code(example) for example in examples) + "."
    return text


def _objects(node: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Every object with properties under `node` (itself first), depth first, with its field path."""
    if node.get("type") == "object" and "properties" in node:
        yield path, node
        for name, child in node["properties"].items():
            yield from _objects(child, f"{path}.{name}")
    elif node.get("type") == "array":
        yield from _objects(node["items"], path + "[*]")


def _default(node: Schema) -> str:
    if "default" not in node:
        return "-"
    if node["type"] == "object":
        return "all defaults"
    return _code(json.dumps(node["default"]) if node["default"] == "" else node["default"])


def _object_section(path: str, node: Schema, with_defaults: bool) -> str:
    lines = [f"### `{path}`", ""]
    if node.get("description"):
        lines += [node["description"], ""]
    field_rules: dict[str, list[str]] = {}
    object_rules = []
    for rule in node.get("x-kubernetes-validations", []):
        target = rule.get("fieldPath", "").lstrip(".")
        if target in node["properties"]:
            field_rules.setdefault(target, []).append(rule["message"])
        else:
            object_rules.append(rule["message"])
    if object_rules:
        lines += ["Rules: " + "; ".join(object_rules) + ".", ""]
    header = ["Field", "Type"] + (["Default"] if with_defaults else []) + ["Validation", "Description"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    required = set(node.get("required", []))
    for name, child in node["properties"].items():
        row = [f"`{name}`", _type(child, f"{path}.{name}")]
        if with_defaults:
            row.append(_default(child))
        row += [_validation(child, name in required, field_rules.get(name, [])), _description(child)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _fields(top: str) -> str:
    schema = crdgen.openapi_schema(keep_examples=True)
    with_defaults = top == "spec"
    sections = [_object_section(path, node, with_defaults) for path, node in _objects(schema["properties"][top], top)]
    return "\n".join(sections)


def _annotations() -> str:
    """The annotation constants of the API module with their attribute docstrings."""
    tree = ast.parse(inspect.getsource(meta))
    rows = []
    for statement, following in zip(tree.body, tree.body[1:], strict=False):
        if not (isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name)):
            continue
        name = statement.targets[0].id
        if not name.endswith("_ANNOTATION"):
            continue
        doc = ""
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            doc = str(following.value.value)
        rows.append(f"| `{getattr(api, name)}` | `{name}` | {_cell(doc)} |")
    actions = ", ".join(f"`{action.value}`" for action in api.Action)
    return "\n".join(
        [
            "| Annotation | Constant in `sluice.api.v1alpha1` | Meaning |",
            "| --- | --- | --- |",
            *rows,
            "",
            f"Values of `{api.ACTION_ANNOTATION}`: {actions}.",
            "",
        ]
    )


def _columns() -> str:
    rows = ["| Column | JSONPath | Shown |", "| --- | --- | --- |"]
    for column in crdgen.printer_columns():
        shown = "with `-o wide`" if column.get("priority", 0) > 0 else "always"
        rows.append(f"| {column['name'].upper()} | {_code(column['jsonPath'])} | {shown} |")
    return "\n".join(rows) + "\n"


def _examples(root: Path) -> str:
    parts = []
    for path in sorted((root / EXAMPLES_DIR).glob("*.yaml")):
        text = path.read_text()
        comments = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
        name = yaml.safe_load(text)["metadata"]["name"]
        parts += [f"### [`{EXAMPLES_DIR / path.name}`](../{EXAMPLES_DIR / path.name}): `{name}`", ""]
        if comments:
            parts += [" ".join(comments), ""]
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
        parts += ["```yaml", body, "```", ""]
    return "\n".join(parts)


def render(text: str, root: Path) -> str:
    """`text` (the current docs/api.md) with every generated block brought up to date."""
    generators: dict[str, Callable[[], str]] = {
        "spec": lambda: _fields("spec"),
        "status": lambda: _fields("status"),
        "annotations": _annotations,
        "columns": _columns,
        "examples": lambda: _examples(root),
    }
    found = {match.group("name") for match in _BLOCK.finditer(text)}
    missing = set(generators) - found
    if missing:
        raise ValueError(f"{DOCS_PATH} lacks the generated blocks {sorted(missing)}")

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in generators:
            raise ValueError(f"{DOCS_PATH}: unknown generated block {name!r}")
        return match.group(1) + "\n" + generators[name]().rstrip("\n") + "\n\n" + match.group(4)

    return _BLOCK.sub(replace, text)
