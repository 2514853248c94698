"""Fetch the model into the local cache, bounded in bytes (SLUICE_MAX_MODEL_BYTES) and in total time
(SLUICE_DOWNLOAD_TIMEOUT), and verify its sha256 digest on the same bytes that are then loaded."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, BinaryIO

from sluice_serving import registry
from sluice_serving.custom import pack_directory
from sluice_serving.models import ModelFile

log = logging.getLogger("sluice_serving.fetch")

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """The model could not be fetched, is too large or too slow, or its digest does not match."""


def sha256_digest(data: bytes) -> str:
    """The digest of `data` as "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fetch(  # noqa: PLR0917 (the model's source, digest and bounds)
    uri: str, cache_dir: str, digest: str, timeout: float, max_bytes: int, tracking_uri: str = "", fmt: str = ""
) -> ModelFile:
    """Copy the model at `uri` into `cache_dir` and return its bytes, read once: the digest is computed on
    exactly the bytes the caller loads (no second open between check and load). A local directory (a python
    model's) is read into its canonical encoding instead, whose digest is checked the same way, and not cached.

    With a pinned `digest`, a cached copy that still verifies is reused and a fetched copy that does not
    verify is deleted and refused. Without one, the model is fetched afresh on every start. The copy stops
    with a FetchError past `max_bytes` or `timeout` seconds after it began, whatever the source's pace.

    A models:/ uri is first resolved through the MLflow tracking server at `tracking_uri` (registry.py; `fmt`:
    the format wanted, or "") and its artifact fetched from the server's proxy like any http(s) model; the
    returned file carries the flavor's format.
    """
    if registry.is_registry_uri(uri):
        return _fetch_registered(uri, cache_dir, digest, timeout, max_bytes, tracking_uri, fmt)
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""  # "C:" is not a scheme
    name = Path(urllib.parse.unquote(parsed.path)).name or "model"
    if scheme in ("", "file") and _local_path(scheme, uri, parsed).is_dir():
        return _read_directory(_local_path(scheme, uri, parsed), digest, max_bytes)
    cache = Path(cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create MODEL_CACHE_DIR {cache_dir}: {exc}") from exc
    key = digest.replace(":", "-") if digest else "uri-" + hashlib.sha256(uri.encode()).hexdigest()[:32]
    target = cache / key / name
    if digest and target.is_file() and target.stat().st_size <= max_bytes:
        data = target.read_bytes()
        if sha256_digest(data) == digest:
            log.info("model found in cache", extra={"path": str(target)})
            return ModelFile(name, data)
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    opener = _opener(scheme, uri, parsed, deadline)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as out:
            opener(_Sink(out, max_bytes, deadline, timeout))
            out.seek(0)
            data = out.read()
        actual = sha256_digest(data)
        if digest and actual != digest:
            raise FetchError(f"digest mismatch for {uri}: MODEL_DIGEST is {digest} but the file is {actual}")
        tmp.replace(target)
    except FetchError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise FetchError(f"cannot fetch {uri}: {exc}") from exc
    log.info("model fetched", extra={"uri": uri, "path": str(target), "digest": actual})
    return ModelFile(name, data)


def _fetch_registered(  # noqa: PLR0917 (fetch's arguments)
    uri: str, cache_dir: str, digest: str, timeout: float, max_bytes: int, tracking_uri: str, fmt: str
) -> ModelFile:
    started = time.monotonic()
    try:
        artifact = registry.resolve(uri, tracking_uri, fmt, timeout)
    except registry.RegistryError as exc:
        raise FetchError(f"cannot resolve {uri}: {exc}") from None
    log.info("registered model resolved", extra={"uri": uri, "version": artifact.version, "format": artifact.format})
    left = max(0.1, timeout - (time.monotonic() - started))
    return replace(fetch(artifact.url, cache_dir, digest, left, max_bytes), format=artifact.format)


def _local_path(scheme: str, uri: str, parsed: urllib.parse.ParseResult) -> Path:
    return Path(urllib.parse.unquote(parsed.path) if scheme == "file" else uri)


def _read_directory(path: Path, digest: str, max_bytes: int) -> ModelFile:
    data = pack_directory(path, max_bytes)
    actual = sha256_digest(data)
    if digest and actual != digest:
        raise FetchError(f"digest mismatch for the directory {path}: MODEL_DIGEST is {digest} but it is {actual}")
    log.info("model directory read", extra={"path": str(path), "digest": actual})
    return ModelFile(path.name, data, directory=True)


class _Sink:
    """The download's destination: refuses a byte past `max_bytes`, and any write after the deadline."""

    def __init__(self, out: BinaryIO, max_bytes: int, deadline: float, timeout: float) -> None:
        self._out = out
        self._max_bytes = max_bytes
        self._deadline = deadline
        self._timeout = timeout
        self.size = 0

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise FetchError(f"the model is larger than SLUICE_MAX_MODEL_BYTES ({self._max_bytes} bytes)")
        self.check_deadline()
        return self._out.write(chunk)

    def check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise FetchError(f"the model did not arrive within SLUICE_DOWNLOAD_TIMEOUT ({self._timeout:g} s)")

    def restart(self) -> None:
        """Drop what a failed attempt wrote."""
        self._out.seek(0)
        self._out.truncate()
        self.size = 0

    def fill(self, src: IO[bytes]) -> None:
        """Copy `src` chunk by chunk as it arrives (read1: one read of the source, not CHUNK bytes)."""
        read = getattr(src, "read1", src.read)
        while chunk := read(CHUNK):
            self.write(chunk)


def _opener(scheme: str, uri: str, parsed: urllib.parse.ParseResult, deadline: float) -> Callable[[_Sink], None]:
    if scheme in ("", "file"):
        src = _local_path(scheme, uri, parsed)
        if not src.is_file():
            raise FetchError(f"model file {src} does not exist or is not a regular file")

        def copy_file(sink: _Sink) -> None:
            with src.open("rb") as f:
                sink.fill(f)

        return copy_file
    if scheme in ("http", "https"):
        return lambda sink: _download_http(uri, sink, deadline)
    if scheme == "s3":
        return lambda sink: _download_s3(parsed.netloc, parsed.path.lstrip("/"), sink)
    if scheme == "gs":
        return lambda sink: _download_gcs(parsed.netloc, parsed.path.lstrip("/"), sink, deadline)
    raise FetchError(f"unsupported MODEL_URI scheme {scheme!r} (use a path, file, http, https, s3 or gs)")


class _NoSchemeChange(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to the same scheme, or from http to https: never to ftp, never to plain http."""

    def redirect_request(  # noqa: PLR0917 (urllib's signature)
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urllib.parse.urlparse(req.full_url).scheme, urllib.parse.urlparse(newurl).scheme
        if new != old and (old, new) != ("http", "https"):
            raise FetchError(f"the model URI redirects from {old}:// to {new}://, which is not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_HTTP = urllib.request.build_opener(_NoSchemeChange)


def _download_http(uri: str, sink: _Sink, deadline: float, attempts: int = 3) -> None:
    for attempt in range(1, attempts + 1):
        try:
            sink.restart()
            with _HTTP.open(uri, timeout=max(0.1, deadline - time.monotonic())) as resp:
                sink.fill(resp)
            return
        except OSError as exc:
            code = getattr(exc, "code", None)
            if attempt == attempts or (code is not None and 400 <= code < 500):
                raise
            sink.check_deadline()
            log.warning("model download failed, retrying", extra={"attempt": attempt, "error": str(exc)})
            time.sleep(min(2.0**attempt, max(0.0, deadline - time.monotonic())))
            sink.check_deadline()


def _download_s3(bucket: str, key: str, sink: _Sink) -> None:
    try:
        import boto3
    except ImportError:
        raise FetchError("s3:// needs boto3: install sluice-serving[s3]") from None
    boto3.client("s3").download_fileobj(bucket, key, sink)


def _download_gcs(bucket: str, key: str, sink: _Sink, deadline: float) -> None:
    try:
        from google.cloud import storage
    except ImportError:
        raise FetchError("gs:// needs google-cloud-storage: install sluice-serving[gcs]") from None
    timeout = max(0.1, deadline - time.monotonic())
    storage.Client().bucket(bucket).blob(key).download_to_file(sink, timeout=timeout)
