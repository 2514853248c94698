"""The fuzz targets' seeds and every kept failing input (tests/fuzz/crashes/: what the fuzzer finds, and the
requests of issue #14 finding 3 in the targets' input format) pass, and a short atheris run finds nothing new
(`make stress` runs it for minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz.targets import dispatch, seeds

CRASHES = sorted((Path(__file__).parent / "crashes").iterdir())
SMOKE_SECONDS = int(os.environ.get("SLUICE_FUZZ_SECONDS", "10"))


@pytest.fixture(autouse=True)
def traced_memory() -> Iterator[None]:
    """The decode target bounds its memory only while tracemalloc traces."""
    tracemalloc.start()
    yield
    tracemalloc.stop()


@pytest.mark.parametrize("data", list(seeds().values()), ids=list(seeds()))
def test_each_seed_is_handled(data: bytes) -> None:
    dispatch(data)


@pytest.mark.parametrize("path", CRASHES, ids=[p.name for p in CRASHES])
def test_a_kept_failing_input_is_handled(path: Path) -> None:
    dispatch(path.read_bytes())


@pytest.mark.integration
def test_a_short_coverage_guided_run_finds_no_failure(tmp_path: Path) -> None:
    script = Path(__file__).with_name("run_atheris.py")
    result = subprocess.run(
        [sys.executable, str(script), f"-max_total_time={SMOKE_SECONDS}", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=SMOKE_SECONDS + 120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
