"""MLflow registry URIs in spec.model.uri (models:/<name>/<version>, models:/<name>@<alias>): the reference they
name, the flavor of a registered model's MLmodel that sluice serves, and the spec.model a resolution pins.

A models:/ uri is resolved once per spec.model (adapters/registry.py) and the result kept in status.resolvedModel;
every later reconcile decides on the pinned spec.model (models:/<name>/<version>, the flavor's format, the digest
the operator computed), so an alias that moves changes no running revision. Error texts are fixed: nothing read
from the tracking server is repeated in them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sluice.api.v1alpha1 import REGISTRY_URI, ModelDeploymentSpec, ModelFormat, ModelSpec, ResolvedModel

_URI = re.compile(REGISTRY_URI)
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
"""An artifact file name sluice fetches: one path segment, no '..'."""

FLAVORS: tuple[tuple[str, str, ModelFormat], ...] = (
    ("onnx", "data", ModelFormat.ONNX),
    ("xgboost", "data", ModelFormat.XGBOOST),
    ("lightgbm", "data", ModelFormat.LIGHTGBM),
    ("sklearn", "pickled_model", ModelFormat.SKLEARN),
)
"""The MLmodel flavors sluice serves, in the order one is chosen when a model has several: the flavor's name, the
key naming its file, sluice's format."""
NATIVE_LIGHTGBM = "lightgbm.basic.Booster"
"""The lightgbm flavor's model_class whose file is LightGBM's native text (a scikit-learn API model is pickled)."""
SKLEARN_SERIALIZATIONS = frozenset({"skops", "pickle", "cloudpickle"})

NO_TRACKING_URI = (
    "spec.model.uri is a models:/ uri, but the operator has no MLflow tracking server (set the chart value "
    "mlflow.trackingUri)"
)
DIGEST_MISMATCH = "spec.model.digest does not match the digest of the registered model's artifact"


class FlavorError(ValueError):
    """A registered model's MLmodel names no flavor sluice serves, or is malformed; the message is fixed text."""


@dataclass(frozen=True)
class RegistryRef:
    """A models:/ uri: a registered model's name and either a version or an alias."""

    name: str
    version: str | None
    alias: str | None


@dataclass(frozen=True)
class Flavor:
    """The flavor chosen from an MLmodel: sluice's format and the artifact file that holds it."""

    format: ModelFormat
    file: str


@dataclass(frozen=True)
class Resolution:
    """What the tracking server resolved a reference to: the version, the chosen flavor, the artifact's digest."""

    version: str
    format: ModelFormat
    digest: str


def parse_registry_uri(uri: str) -> RegistryRef | None:
    """The reference a models:/ uri names; None for any other uri."""
    if not _URI.match(uri):
        return None
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        return RegistryRef(name, None, alias)
    name, _, version = rest.rpartition("/")
    return RegistryRef(name, version, None)


def choose_flavor(mlmodel: object, wanted: ModelFormat | None) -> Flavor:
    """The flavor of a parsed MLmodel document that sluice serves (the first of FLAVORS present, or the one of
    format `wanted`), and its file."""
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, Mapping) else None
    if not isinstance(flavors, Mapping):
        raise FlavorError("the registered model's MLmodel file has no flavors mapping")
    for flavor, key, fmt in FLAVORS:
        entry = flavors.get(flavor)
        if not isinstance(entry, Mapping) or (wanted is not None and fmt is not wanted):
            continue
        file = entry.get(key)
        if not isinstance(file, str) or not FILE_NAME.match(file) or ".." in file:
            raise FlavorError(f"the registered model's {flavor} flavor names no artifact file sluice can fetch")
        if flavor == "lightgbm" and entry.get("model_class") != NATIVE_LIGHTGBM:
            raise FlavorError("the registered model's lightgbm flavor is not a native Booster file")
        if flavor == "sklearn" and entry.get("serialization_format", "cloudpickle") not in SKLEARN_SERIALIZATIONS:
            raise FlavorError("the registered model's sklearn flavor has a serialization sluice does not load")
        return Flavor(fmt, file)
    if wanted is not None:
        raise FlavorError("the registered model has no flavor of spec.model.format")
    raise FlavorError("the registered model has no flavor sluice serves (onnx, xgboost, lightgbm, sklearn)")


def spec_hash(model: ModelSpec) -> str:
    """What a resolution is kept for: a hash of spec.model as written."""
    return hashlib.sha256(model.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


def resolution_due(model: ModelSpec, resolved: ResolvedModel | None) -> bool:
    """Whether spec.model is a models:/ uri not yet resolved (or resolved for a spec.model since changed)."""
    if parse_registry_uri(model.uri) is None:
        return False
    return resolved is None or resolved.spec_hash != spec_hash(model)


def resolved_model(model: ModelSpec, resolution: Resolution, now: datetime) -> ResolvedModel:
    """The status record of a resolution of `model`; ValueError(DIGEST_MISMATCH) when spec.model pins another
    digest."""
    if model.digest is not None and model.digest != resolution.digest:
        raise ValueError(DIGEST_MISMATCH)
    return ResolvedModel(
        spec_hash=spec_hash(model),
        version=resolution.version,
        format=resolution.format,
        digest=resolution.digest,
        resolved_at=now,
    )


def pinned(spec: ModelDeploymentSpec, resolved: ResolvedModel | None) -> ModelDeploymentSpec:
    """The spec every decision is made on: a models:/ uri replaced by the version, format and digest it resolved
    to; any other spec as it is."""
    ref = parse_registry_uri(spec.model.uri)
    if ref is None or resolved is None or resolved.spec_hash != spec_hash(spec.model):
        return spec
    model = spec.model.model_copy(
        update={"uri": f"models:/{ref.name}/{resolved.version}", "format": resolved.format, "digest": resolved.digest}
    )
    return spec.model_copy(update={"model": model})
