"""Fixtures for the serving unit tests: models trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.serving.support import ModelFiles, make_classifier, make_regressor


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return make_classifier(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return make_regressor(tmp_path_factory.mktemp("models"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    return str(tmp_path / "cache")
