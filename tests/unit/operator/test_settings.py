"""Operator settings: defaults, environment variables, flags over variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.main import main
from sluice.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLUICE_SERVING_IMAGE", "SLUICE_NAMESPACES", "SLUICE_LOG_LEVEL", "SLUICE_FIELD_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_command_line([])
    assert settings.serving_image == "ghcr.io/sluice-dev/sluice-serving:0.1.0"
    assert settings.namespaces == []
    assert settings.field_manager == "sluice"
    assert settings.log_level == "INFO"
    defaults = settings.serving_defaults()
    assert defaults.requests == {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "256Mi"}
    assert defaults.limits == {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2Gi"}


def test_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_NAMESPACES", "ml, staging")
    monkeypatch.setenv("SLUICE_SERVING_IMAGE", "from-env:1")
    monkeypatch.setenv("SLUICE_LOG_LEVEL", "debug")
    monkeypatch.setenv("SLUICE_MIRROR_GATEWAY_CLASSES", "istio, kong")
    settings = Settings.from_command_line(["--serving-image", "from-flag:2", "--resync-seconds", "5"])
    assert settings.namespaces == ["ml", "staging"]
    assert settings.mirror_gateway_classes == ["istio", "kong"]
    assert settings.serving_image == "from-flag:2"
    assert settings.resync_seconds == 5
    assert settings.log_level == "DEBUG"


def test_a_bad_value_names_the_setting_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--resync-seconds", "-1"])
    assert exit_info.value.code == 2
    assert "resync_seconds" in capsys.readouterr().err


def test_every_setting_is_documented_with_its_flag_and_variable() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    for name in Settings.model_fields:
        flag, variable = "--" + name.replace("_", "-"), "SLUICE_" + name.upper()
        assert f"| `{flag}` | `{variable}` |" in doc, f"{name} is missing from the settings table"
