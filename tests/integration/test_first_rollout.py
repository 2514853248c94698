"""The README's "Your first rollout", run as written: its shell blocks, in order, in one bash, on a fresh copy of the
repository (so the `.local/` cluster it starts is its own, not a developer's), ending with 1.2.0 Promoted.

Block 1 is `make setup`, which the test session itself stands on (the same virtualenv, symlinked into the copy,
and the built binaries); it is checked to be exactly that and not run again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from harness.tools import REPO_ROOT

pytestmark = pytest.mark.integration

SECTION = "## Your first rollout"
BLOCK = re.compile(r"^(?P<indent> *)```sh\n(?P<body>.*?)^(?P=indent)```$", re.MULTILINE | re.DOTALL)
NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".local", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "*.egg-info"
)
BUDGET_SECONDS = 900


def first_rollout_blocks(readme: str) -> list[str]:
    """The shell blocks of the section, dedented as a reader's copy of the rendered page is."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end >= 0 else None]
    return [textwrap.dedent(found["body"]) for found in BLOCK.finditer(section)]


def test_the_readme_blocks_are_found_and_start_with_the_set_up() -> None:
    blocks = first_rollout_blocks((REPO_ROOT / "README.md").read_text())

    assert len(blocks) == 7
    assert blocks[0] == "make setup\n"
    assert "EOF\n" in blocks[3], "the heredoc's end marker is at the start of its line after dedenting"


def test_the_readme_first_rollout_runs_as_written_and_ends_promoted(tmp_path: Path) -> None:
    repo = tmp_path / "sluice"
    shutil.copytree(REPO_ROOT, repo, ignore=NOT_COPIED)
    (repo / ".venv").symlink_to(REPO_ROOT / ".venv")
    _, *steps, cleanup = first_rollout_blocks((REPO_ROOT / "README.md").read_text())
    # the last block stops the cluster: the outcome is read just before it
    outcome_file = ".local/iris.yaml"
    script = "\n".join(["set -e", *steps, f"kubectl get modeldeployment iris -n ml -o yaml > {outcome_file}", cleanup])
    # a person's shell: no virtualenv or cluster of ours, and not inside `make test` (a nested make would print its
    # "Entering/Leaving directory" lines around the README's own make commands)
    private = ("KUBECONFIG", "VIRTUAL_ENV", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    environment = {key: value for key, value in os.environ.items() if key not in private}
    shell = subprocess.Popen(
        ["bash", "-c", script],
        cwd=repo,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=BUDGET_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGTERM)
        output, _ = shell.communicate(timeout=60)
    finally:
        with_cluster_down(repo, shell.pid)
    logs = "\n".join(
        f"--- {log.name} ---\n{log.read_text()[-4000:]}" for log in sorted((repo / ".local").glob("*.log"))
    )
    shown = output if len(output) < 12000 else f"{output[:4000]}\n[...]\n{output[-8000:]}"
    assert shell.returncode == 0, f"the README's first rollout failed:\n{shown}\n{logs}"
    outcome = yaml.safe_load((repo / outcome_file).read_text())["status"]
    assert outcome["phase"] == "Stable"
    assert outcome["stableVersion"] == "1.2.0"
    assert [(entry["version"], entry["outcome"]) for entry in outcome["history"]] == [
        ("1.1.0", "Promoted"),
        ("1.2.0", "Promoted"),
    ]
    assert "stopped" in output.splitlines()[-1]


def with_cluster_down(repo: Path, session: int) -> None:
    """Whatever happened: the session's processes (the background make jobs) and the cluster are stopped."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGTERM)
    subprocess.run(["make", "cluster-down"], cwd=repo, capture_output=True, timeout=120, check=False)
