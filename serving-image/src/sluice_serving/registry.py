"""MLflow registry URIs as MODEL_URI: models:/<name>/<version> or models:/<name>@<alias>, resolved through the
tracking server at MLFLOW_TRACKING_URI (its REST API) to the artifact file of the flavor sluice serves, which
fetch.py then downloads through the server's artifact proxy with the same byte, time and digest checks as any
http(s) model.

The flavor comes from the model's MLmodel file (onnx, xgboost, lightgbm, sklearn; the first present, or the one
MODEL_FORMAT names). MLmodel is YAML as MLflow writes it (block mappings, two-space indents); only its `flavors`
mapping is read, by a small reader of that form, so that the server needs no YAML library. Every answer is bounded
in bytes and time, no redirect is followed, and errors are fixed text."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import orjson

MAX_ANSWER_BYTES = 64 * 1024
"""A registry answer or an MLmodel file larger than this is refused."""
URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,255})(/(?P<version>[1-9][0-9]{0,9})|@(?P<alias>[A-Za-z0-9_-]{1,255}))$"
)
ARTIFACT_PATH = re.compile(r"^mlflow-artifacts:(//[^/]*)?/(?P<path>[A-Za-z0-9][A-Za-z0-9._/-]{0,1023})$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
VERSION = re.compile(r"^[1-9][0-9]{0,9}$")
FLAVORS = (("onnx", "data", "onnx"), ("xgboost", "data", "xgboost"), ("lightgbm", "data", "lightgbm"),
           ("sklearn", "pickled_model", "sklearn"))  # fmt: skip
"""The flavors served, in the order one is chosen: the flavor, the key naming its file, the format."""
NATIVE_LIGHTGBM = "lightgbm.basic.Booster"
SKLEARN_SERIALIZATIONS = frozenset({"skops", "pickle", "cloudpickle"})


class RegistryError(RuntimeError):
    """The models:/ uri could not be resolved; the message is fixed text."""


@dataclass(frozen=True)
class Artifact:
    """What a models:/ uri resolved to: the version, the artifact's URL on the tracking server, its format."""

    version: str
    url: str
    format: str


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:/")


def resolve(uri: str, tracking_uri: str, wanted: str, timeout: float) -> Artifact:
    """The artifact `uri` names now, through the tracking server at `tracking_uri` (`wanted`: a format, or "")."""
    match = URI.match(uri)
    if match is None:
        raise RegistryError("MODEL_URI is not models:/<name>/<version> or models:/<name>@<alias>")
    if not tracking_uri.startswith(("http://", "https://")):
        raise RegistryError("a models:/ MODEL_URI needs MLFLOW_TRACKING_URI, an http(s):// URL")
    deadline = time.monotonic() + timeout
    base = tracking_uri.rstrip("/")
    name = urllib.parse.quote(match["name"], safe="")
    if match["alias"]:
        path = f"registered-models/alias?name={name}&alias={match['alias']}"
    else:
        path = f"model-versions/get?name={name}&version={match['version']}"
    version = _field(_json(f"{base}/api/2.0/mlflow/{path}", deadline), "model_version", "version")
    if not isinstance(version, str) or not VERSION.match(version):
        raise RegistryError("the MLflow tracking server's answer names no model version")
    answer = _json(f"{base}/api/2.0/mlflow/model-versions/get-download-uri?name={name}&version={version}", deadline)
    location = _field(answer, "artifact_uri")
    found = ARTIFACT_PATH.match(location) if isinstance(location, str) else None
    if found is None or ".." in found["path"].split("/"):
        raise RegistryError("the registered model's artifacts are not served by the tracking server's proxy")
    artifacts = f"{base}/api/2.0/mlflow-artifacts/artifacts/{found['path'].rstrip('/')}"
    fmt, file = choose_flavor(flavors(_get(f"{artifacts}/MLmodel", deadline)), wanted)
    return Artifact(version, f"{artifacts}/{file}", fmt)


def choose_flavor(found: dict[str, dict[str, str]], wanted: str) -> tuple[str, str]:
    """The format and file of the flavor served among an MLmodel's `found` flavors."""
    for flavor, key, fmt in FLAVORS:
        entry = found.get(flavor)
        if entry is None or (wanted and fmt != wanted):
            continue
        file = entry.get(key, "")
        if not FILE_NAME.match(file) or ".." in file:
            raise RegistryError(f"the registered model's {flavor} flavor names no artifact file sluice can fetch")
        if flavor == "lightgbm" and entry.get("model_class") != NATIVE_LIGHTGBM:
            raise RegistryError("the registered model's lightgbm flavor is not a native Booster file")
        if flavor == "sklearn" and entry.get("serialization_format", "cloudpickle") not in SKLEARN_SERIALIZATIONS:
            raise RegistryError("the registered model's sklearn flavor has a serialization sluice does not load")
        return fmt, file
    if wanted:
        raise RegistryError("the registered model has no flavor of MODEL_FORMAT")
    raise RegistryError("the registered model has no flavor sluice serves (onnx, xgboost, lightgbm, sklearn)")


def flavors(text: bytes) -> dict[str, dict[str, str]]:
    """The `flavors` mapping of an MLmodel file: each flavor's scalar keys (two-space block YAML)."""
    try:
        lines = text.decode().splitlines()
    except UnicodeDecodeError:
        raise RegistryError("the registered model's MLmodel file is not UTF-8 text") from None
    found: dict[str, dict[str, str]] = {}
    inside, flavor = False, ""
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside = line.rstrip() == "flavors:"
        elif inside and line.startswith("  ") and not line.startswith("   "):
            flavor = line.strip().removesuffix(":")
            found[flavor] = {}
        elif inside and flavor and line.startswith("    ") and not line.startswith("     ") and ":" in line:
            key, _, value = line.strip().partition(":")
            found[flavor][key] = value.strip().strip("'\"")
    if not found:
        raise RegistryError("the registered model's MLmodel file has no flavors mapping")
    return found


def _field(doc: Any, *keys: str) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _json(url: str, deadline: float) -> Any:
    try:
        return orjson.loads(_get(url, deadline))
    except orjson.JSONDecodeError:
        raise RegistryError("the MLflow tracking server's answer is not JSON") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        raise RegistryError("the MLflow tracking server answered with a redirect, which is not followed")


_OPENER = urllib.request.build_opener(_NoRedirect)


def _get(url: str, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RegistryError("the MLflow tracking server did not answer in time")
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    try:
        with _OPENER.open(request, timeout=left) as response:
            body = _read_within(response, deadline)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise RegistryError("the MLflow tracking server has no such registered model, version or file") from None
        raise RegistryError(f"the MLflow tracking server answered HTTP {error.code}") from None
    except OSError:
        raise RegistryError("the MLflow tracking server could not be reached or did not answer in time") from None
    return body


def _read_within(response: Any, deadline: float) -> bytes:
    """The body, chunk by chunk as it arrives: refused past MAX_ANSWER_BYTES or after the deadline."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(MAX_ANSWER_BYTES + 1):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise RegistryError(f"the MLflow tracking server's answer is larger than {MAX_ANSWER_BYTES} bytes")
        if time.monotonic() > deadline:
            raise RegistryError("the MLflow tracking server did not answer in time")
        chunks.append(chunk)
    return b"".join(chunks)
