"""`kubectl sluice analyze`: times, the versions taken from status or history, manifests, usage errors.

The replay against a real cluster and Prometheus is in tests/e2e/test_ml_drift.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.api.v1alpha1 import ModelDeployment
from sluice.cli.analyze import parse_time, spec_from_file, versions
from sluice.cli.base import CliError, ExitCode
from sluice.cli.main import main

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MODEL = {"version": "1.5.0", "uri": "s3://m/1.5.0/model.onnx", "format": "onnx"}


def deployment(status: dict[str, Any]) -> ModelDeployment:
    return ModelDeployment.model_validate({"metadata": {"name": "fraud"}, "spec": {"model": MODEL}, "status": status})


def entry(version: str, outcome: str, started: int, finished: int, stable: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": version,
        "outcome": outcome,
        "startedAt": (NOW + timedelta(minutes=started)).isoformat(),
        "finishedAt": (NOW + timedelta(minutes=finished)).isoformat(),
        "reason": outcome,
    }
    if stable is not None:
        body["stableModel"] = {"version": stable, "uri": f"s3://m/{stable}/model.onnx", "format": "onnx"}
    return body


def test_times_are_rfc3339_now_or_a_duration_ago() -> None:
    assert parse_time("now", NOW) == NOW
    assert parse_time("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_time("2025-03-01T11:00:00Z", NOW) == NOW - timedelta(hours=1)
    assert parse_time("2025-03-01T11:00:00", NOW) == NOW - timedelta(hours=1)  # no zone: UTC
    with pytest.raises(CliError) as error:
        parse_time("yesterday", NOW)
    assert error.value.code is ExitCode.USAGE


def test_versions_of_the_rollout_in_progress() -> None:
    md = deployment({"phase": "Progressing", "canaryVersion": "1.5.0", "stableVersion": "1.4.0"})
    assert versions(md, NOW, NOW + timedelta(hours=1)) == ("1.5.0", "1.4.0")


def test_versions_of_the_finished_rollout_overlapping_the_window() -> None:
    md = deployment(
        {
            "phase": "Stable",
            "stableVersion": "1.6.0",
            "history": [
                entry("1.5.0", "RolledBack", 0, 10, "1.4.0"),
                entry("1.6.0", "Promoted", 60, 70, "1.4.0"),
            ],
        }
    )
    assert versions(md, NOW + timedelta(minutes=2), NOW + timedelta(minutes=8)) == ("1.5.0", "1.4.0")
    assert versions(md, NOW + timedelta(minutes=61), NOW + timedelta(minutes=80)) == ("1.6.0", "1.4.0")
    assert versions(md, NOW + timedelta(hours=5), NOW + timedelta(hours=6)) == ("1.6.0", "1.4.0")  # the last one


def test_an_old_entry_without_stable_model_gives_versions_only_when_it_was_not_promoted() -> None:
    rolled_back = deployment({"stableVersion": "1.4.0", "history": [entry("1.5.0", "RolledBack", 0, 10, None)]})
    promoted = deployment({"stableVersion": "1.5.0", "history": [entry("1.5.0", "Promoted", 0, 10, None)]})
    window = (NOW, NOW + timedelta(minutes=5))
    assert versions(rolled_back, *window) == ("1.5.0", "1.4.0")
    assert versions(promoted, *window) is None
    assert versions(deployment({}), *window) is None


def test_a_manifest_gives_the_spec_to_replay(tmp_path: Path) -> None:
    manifest = tmp_path / "md.yaml"
    manifest.write_text(yaml.safe_dump({"spec": {"model": MODEL, "analysis": {"maxPredictionPSI": 0.3}}}))
    assert spec_from_file(str(manifest)).analysis.max_prediction_psi == 0.3
    manifest.write_text(yaml.safe_dump({"spec": {"model": MODEL, "analysis": {"maxPredictionKS": 2}}}))
    with pytest.raises(CliError, match="invalid spec"):
        spec_from_file(str(manifest))
    with pytest.raises(CliError, match="cannot read"):
        spec_from_file(str(tmp_path / "missing.yaml"))


def test_a_window_ending_before_it_starts_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "fraud", "--from", "10m", "--to", "20m"]) == ExitCode.USAGE
    assert capsys.readouterr().err == "error: --to must be later than --from\n"
