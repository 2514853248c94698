"""Resolve a models:/ uri through the MLflow tracking server of the operator's own configuration (never a URL from
a ModelDeployment): the version an alias names, the flavor its MLmodel file offers, and the sha256 digest of the
artifact, streamed through the server's artifact proxy and hashed, never held.

Every answer is bounded (small answers by MAX_ANSWER_BYTES, the artifact by the operator's max model bytes; all of
it by one deadline), read without redirects or compression, and every failure is a RegistryError whose message is
fixed text: nothing the tracking server says reaches status, Events or logs but the version number and the digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from sluice.adapters.bounded_http import IDENTITY, RefusedAnswerError, read_capped
from sluice.api.v1alpha1 import ModelFormat
from sluice.core.registry import Flavor, FlavorError, RegistryRef, Resolution, choose_flavor

MAX_ANSWER_BYTES = 64 * 1024
"""A registry answer or an MLmodel file larger than this is refused."""
ARTIFACT_PATH = re.compile(r"^mlflow-artifacts:(//[^/]*)?/(?P<path>[A-Za-z0-9][A-Za-z0-9._/-]{0,1023})$")
"""A model version's download uri that the artifact proxy serves; its host, if any, is ignored."""
VERSION = re.compile(r"^[1-9][0-9]{0,9}$")


class RegistryError(RuntimeError):
    """The reference could not be resolved; the message is fixed text."""


class MlflowRegistry:
    """The MLflow tracking server at `tracking_uri` (the operator's setting)."""

    def __init__(self, tracking_uri: str, max_bytes: int, timeout: float) -> None:
        self._base = tracking_uri.rstrip("/")
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def resolve(self, ref: RegistryRef, wanted: ModelFormat | None) -> Resolution:
        """The version, format and artifact digest `ref` names now."""
        deadline = time.monotonic() + self._timeout
        async with httpx.AsyncClient(follow_redirects=False, headers=IDENTITY, timeout=self._timeout) as http:
            try:
                async with asyncio.timeout(self._timeout):  # all of it, however the server paces its bytes
                    return await self._resolve(http, ref, wanted, deadline)
            except (httpx.HTTPError, RefusedAnswerError, TimeoutError) as error:
                raise RegistryError(_transport_text(error)) from None

    async def _resolve(
        self, http: httpx.AsyncClient, ref: RegistryRef, wanted: ModelFormat | None, deadline: float
    ) -> Resolution:
        name = quote(ref.name, safe="")
        if ref.alias is not None:
            doc = await self._json(http, f"registered-models/alias?name={name}&alias={quote(ref.alias)}", deadline)
        else:
            doc = await self._json(http, f"model-versions/get?name={name}&version={ref.version}", deadline)
        version = _field(doc, "model_version", "version")
        if not isinstance(version, str) or not VERSION.match(version):
            raise RegistryError("the MLflow tracking server's answer names no model version")
        answer = await self._json(http, f"model-versions/get-download-uri?name={name}&version={version}", deadline)
        location = _field(answer, "artifact_uri")
        match = ARTIFACT_PATH.match(location) if isinstance(location, str) else None
        if match is None or ".." in match["path"].split("/"):
            raise RegistryError("the registered model's artifacts are not served by the tracking server's proxy")
        base = f"{self._base}/api/2.0/mlflow-artifacts/artifacts/{match['path'].rstrip('/')}"
        flavor = _flavor(await self._get(http, f"{base}/MLmodel", MAX_ANSWER_BYTES, deadline, "MLmodel"), wanted)
        digest = await self._digest(http, f"{base}/{flavor.file}", deadline)
        return Resolution(version=version, format=flavor.format, digest=digest)

    async def _json(self, http: httpx.AsyncClient, path: str, deadline: float) -> Any:
        body = await self._get(http, f"{self._base}/api/2.0/mlflow/{path}", MAX_ANSWER_BYTES, deadline, "answer")
        try:
            return json.loads(body)
        except ValueError:
            raise RegistryError("the MLflow tracking server's answer is not JSON") from None

    async def _get(self, http: httpx.AsyncClient, url: str, cap: int, deadline: float, what: str) -> bytes:
        async with http.stream("GET", url, timeout=_left(deadline)) as response:
            _check_status(response, what)
            return await read_capped(response, cap, f"the MLflow tracking server's {what}")

    async def _digest(self, http: httpx.AsyncClient, url: str, deadline: float) -> str:
        digest, size = hashlib.sha256(), 0
        async with http.stream("GET", url, timeout=_left(deadline)) as response:
            _check_status(response, "artifact")
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise RegistryError("the registered model's artifact is compressed; only identity encoding is read")
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self._max_bytes:
                    raise RegistryError(f"the registered model's artifact is larger than {self._max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise RegistryError(f"the registered model's artifact took longer than {self._timeout:g}s")
                digest.update(chunk)
        return "sha256:" + digest.hexdigest()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RegistryError("the MLflow tracking server did not answer in time")
    return left


def _field(doc: Any, *keys: str) -> Any:
    """doc[keys[0]][keys[1]]...; None when absent."""
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _check_status(response: httpx.Response, what: str) -> None:
    if response.status_code == 404:
        raise RegistryError(f"the MLflow tracking server has no such registered model, version or {what}")
    if response.status_code != 200:
        raise RegistryError(f"the MLflow tracking server answered HTTP {response.status_code} for the {what}")


def _flavor(text: bytes, wanted: ModelFormat | None) -> Flavor:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise RegistryError("the registered model's MLmodel file is not YAML") from None
    try:
        return choose_flavor(doc, wanted)
    except FlavorError as error:
        raise RegistryError(str(error)) from None


def _transport_text(error: Exception) -> str:
    if isinstance(error, RefusedAnswerError):
        return str(error)  # fixed text: what was refused and why, nothing read
    if isinstance(error, httpx.TimeoutException | TimeoutError):
        return "the MLflow tracking server did not answer in time"
    return "the MLflow tracking server could not be reached"
