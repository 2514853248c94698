"""Fail when a module of the operator grows past 400 lines or a function past 60 (`make lint` runs it).

Small modules and functions are what keeps the operator readable for the next engineer (docs/architecture.md); a
module reaching the limit is split by what it holds, not trimmed.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
ROOT = Path(__file__).resolve().parents[1] / "operator" / "src"


def violations(root: Path = ROOT) -> Iterator[str]:
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            yield f"{path.relative_to(root)}: {lines} lines (at most {MAX_MODULE_LINES})"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    yield f"{where}: {node.name} is {length} lines (at most {MAX_FUNCTION_LINES})"


def main() -> int:
    found = list(violations())
    for violation in found:
        print(violation, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
