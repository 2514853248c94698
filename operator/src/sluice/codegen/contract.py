"""The model server's copy of `sluice.contract`: the same text under a generated-file header.

sluice (the operator) and sluice_serving (the model server) are separate packages and images, neither importing
the other; the names they share are written once in operator/src/sluice/contract.py and vendored, so each package
installs alone and a unit test (tests/unit/sluice/codegen) fails when the copy is stale.
"""

from __future__ import annotations

from pathlib import Path

from sluice import contract

VENDORED_PATH = Path("serving-image") / "src" / "sluice_serving" / "contract.py"
HEADER = "# Generated from operator/src/sluice/contract.py by `make crds` (python -m sluice.codegen): do not edit.\n"


def render_vendored() -> str:
    """The vendored copy as committed under serving-image/."""
    return HEADER + Path(contract.__file__).read_text()
