"""Regenerate (or with --check, verify) the generated files under the repository root: the CRD, the reference
sections of docs/api.md, and the model server's copy of the contract."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sluice.codegen import apidocs, contract, crdgen


def _sync(path: Path, text: str, check: bool) -> bool:
    """Write `text` to `path` unless it is already there; return whether it was stale."""
    stale = not path.exists() or path.read_text() != text
    if stale and not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sluice.codegen", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file is stale")
    args = parser.parse_args(argv)
    root: Path = args.root
    docs_path = root / apidocs.DOCS_PATH
    outputs = {
        root / crdgen.CRD_PATH: crdgen.render_crd(),
        docs_path: apidocs.render(docs_path.read_text(), root),
        root / contract.VENDORED_PATH: contract.render_vendored(),
    }
    stale = [path for path, text in outputs.items() if _sync(path, text, args.check)]
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}", file=sys.stderr)
    return 1 if stale and args.check else 0
