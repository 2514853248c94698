"""Show that a refactoring left behaviour alone: the final status of every e2e scenario, before and after.

As a pytest plugin it writes, after each test that uses `restricted_namespace`, the status of every
ModelDeployment in it to $STATUS_DUMP_DIR/<test id>.json; as a script it compares two such directories, timestamps,
unique names and the numbers in texts (counts, ports, measured values) aside:

    STATUS_DUMP_DIR=/tmp/before PYTHONPATH=hack .venv/bin/pytest -p e2e_statuses tests/e2e/test_canary_rollouts.py
    ... (the same on the changed tree, into /tmp/after)
    .venv/bin/python hack/e2e_statuses.py /tmp/before /tmp/after
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_MEASURED = ("value", "score")


@pytest.fixture(autouse=True)
def _dump_statuses(request: pytest.FixtureRequest) -> Iterator[None]:
    if "restricted_namespace" not in request.fixturenames or "STATUS_DUMP_DIR" not in os.environ:
        yield
        return
    namespace = request.getfixturevalue("restricted_namespace")
    api_client = request.getfixturevalue("kube_api_client")
    yield
    listed = cast(
        dict[str, Any],
        client.CustomObjectsApi(api_client).list_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "modeldeployments"
        ),
    )
    statuses = {item["metadata"]["name"]: item.get("status") for item in listed["items"]}
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid) + ".json"
    (Path(os.environ["STATUS_DUMP_DIR"]) / name).write_text(json.dumps(statuses, indent=1, sort_keys=True))


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "<measured>" if key in _MEASURED and isinstance(item, int | float) else normalized(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, str):
        value = re.sub(r"-[0-9a-f]{8}\b", "-<id>", _TIME.sub("<time>", value))  # unique names (namespaces)
        return re.sub(r"\d+(\.\d+)?", "<n>", value)  # counts, ports, measured values in messages
    return value


def _read(path: Path) -> Any:
    return normalized(json.loads(path.read_text())) if path.exists() else None


def compare(before: Path, after: Path) -> int:
    """Print each scenario as same or different (with a diff); the number that differ."""
    names = sorted({path.name for path in [*before.glob("*.json"), *after.glob("*.json")]})
    differing = 0
    for name in names:
        old, new = _read(before / name), _read(after / name)
        print("same     " if old == new else "DIFFERENT", name)
        if old != new:
            differing += 1
            old_lines = json.dumps(old, indent=1, sort_keys=True).splitlines()
            new_lines = json.dumps(new, indent=1, sort_keys=True).splitlines()
            for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=1):
                print("   ", line)
    print(f"{len(names)} scenarios, {differing} differing")
    return differing


if __name__ == "__main__":
    sys.exit(1 if compare(Path(sys.argv[1]), Path(sys.argv[2])) else 0)
