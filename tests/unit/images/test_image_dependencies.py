"""What the images install matches what the packages declare: imports ⊆ pyproject dependencies ⊆ the hashed lock.

An import that its package's pyproject.toml does not declare works in the development virtualenv (something else
pulled it in) and fails in the image, which installs exactly the lock (`pip install --require-hashes`); a lock that
misses or contradicts a declared dependency breaks the image build or ships a version the package does not accept.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
# The platform both images run on: the locks are resolved for it (Makefile `locks`).
IMAGE_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "x86_64",
}


@dataclass(frozen=True)
class Project:
    directory: str
    package: str
    image_extras: tuple[str, ...]  # the optional dependencies the image installs (its lock holds them)


PROJECTS = [
    Project("operator", "sluice", ()),
    Project("serving-image", "sluice_serving", ("s3", "gcs", "skops", "xgboost", "lightgbm")),
]
LOCK_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


def _pyproject(project: Project) -> dict[str, object]:
    return tomllib.loads((ROOT / project.directory / "pyproject.toml").read_text())


def _requirements(project: Project, *, extras: tuple[str, ...]) -> list[Requirement]:
    """The project's dependencies, the named extras' and its build backend's, for the image's platform."""
    data = _pyproject(project)
    meta = data["project"]
    build = data["build-system"]
    assert isinstance(meta, dict)
    assert isinstance(build, dict)
    texts = list(meta["dependencies"]) + list(build["requires"])
    texts += [text for extra in extras for text in meta.get("optional-dependencies", {})[extra]]
    requirements = [Requirement(text) for text in texts]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(IMAGE_ENVIRONMENT)]


def _lock(project: Project) -> tuple[dict[str, Version], set[str]]:
    """The lock's pins (canonical name → version) and the names pinned without a hash."""
    pins: dict[str, Version] = {}
    unhashed: set[str] = set()
    current = ""
    for line in (ROOT / project.directory / "requirements.lock").read_text().splitlines():
        if match := LOCK_PIN.match(line):
            current = canonicalize_name(match["name"])
            pins[current] = Version(match["version"])
            marker = line.split(";", 1)[1].rstrip(" \\") if ";" in line else ""
            if marker and not Marker(marker).evaluate(IMAGE_ENVIRONMENT):
                del pins[current]
            if "--hash=sha256:" not in line:
                unhashed.add(current)
        elif "--hash=sha256:" in line:
            unhashed.discard(current)
    return pins, unhashed


def _imported_top_level_modules(package_dir: Path) -> dict[str, str]:
    """Every absolutely imported top-level module of the package's sources → one file that imports it."""
    found: dict[str, str] = {}
    for source in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(source.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.directory)
def test_every_third_party_import_is_declared_in_its_own_pyproject(project: Project) -> None:
    meta = _pyproject(project)["project"]
    assert isinstance(meta, dict)
    declared = {
        canonicalize_name(r.name) for r in _requirements(project, extras=tuple(meta.get("optional-dependencies", {})))
    }
    distributions = packages_distributions()
    undeclared = []
    for module, where in _imported_top_level_modules(ROOT / project.directory / "src" / project.package).items():
        if module in sys.stdlib_module_names or module in {project.package, "__future__"}:
            continue
        providers = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not providers & declared:
            undeclared.append(f"{module} (imported by {where}; provided by {sorted(providers) or 'nothing installed'})")
    assert not undeclared, f"imports missing from {project.directory}/pyproject.toml: {undeclared}"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.directory)
def test_image_lock_pins_every_declared_dependency_within_its_specifier(project: Project) -> None:
    pins, _ = _lock(project)
    problems = []
    for requirement in _requirements(project, extras=project.image_extras):
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement} but the lock pins {pinned}")
    assert not problems, f"{project.directory}/requirements.lock disagrees with pyproject.toml (make locks): {problems}"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.directory)
def test_image_lock_pins_every_package_with_its_hashes(project: Project) -> None:
    pins, unhashed = _lock(project)
    assert pins
    assert not unhashed


def test_serving_image_fetches_from_s3_and_gcs() -> None:
    serving = next(p for p in PROJECTS if p.directory == "serving-image")
    pins, _ = _lock(serving)
    assert {"boto3", "google-cloud-storage"} <= set(pins)


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.directory)
def test_dockerfile_installs_the_lock_by_hash_on_a_base_pinned_by_digest(project: Project) -> None:
    dockerfile = (ROOT / project.directory / "Dockerfile").read_text()
    default_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert default_base is not None
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", default_base[1])
    assert "--require-hashes" in dockerfile
    assert "-r requirements.lock" in dockerfile
