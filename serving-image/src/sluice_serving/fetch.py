"""Fetch the model into the local cache and verify its sha256 digest before anything loads it."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("sluice_serving.fetch")

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """The model could not be fetched, or its digest does not match."""


def sha256_file(path: Path) -> str:
    """The file's digest as "sha256:<hex>"."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def fetch(uri: str, cache_dir: str, digest: str, timeout: float) -> Path:
    """Copy the model at `uri` into `cache_dir` and return the cached path.

    With a pinned `digest`, a cached copy that still verifies is reused and a fetched copy that does not
    verify is deleted and refused. Without one, the model is fetched afresh on every start.
    """
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""  # "C:" is not a scheme
    name = Path(urllib.parse.unquote(parsed.path)).name or "model"
    cache = Path(cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create MODEL_CACHE_DIR {cache_dir}: {exc}") from exc
    key = digest.replace(":", "-") if digest else "uri-" + hashlib.sha256(uri.encode()).hexdigest()[:32]
    target = cache / key / name
    if digest and target.exists():
        if sha256_file(target) == digest:
            log.info("model found in cache", extra={"path": str(target)})
            return target
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    opener = _opener(scheme, uri, parsed, timeout)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            opener(out)
        actual = sha256_file(tmp)
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
    return target


def _opener(scheme: str, uri: str, parsed: urllib.parse.ParseResult, timeout: float) -> Callable[[BinaryIO], None]:
    if scheme in ("", "file"):
        src = Path(urllib.parse.unquote(parsed.path) if scheme == "file" else uri)
        if not src.is_file():
            raise FetchError(f"model file {src} does not exist")

        def copy_file(out: BinaryIO) -> None:
            with src.open("rb") as f:
                shutil.copyfileobj(f, out, CHUNK)

        return copy_file
    if scheme in ("http", "https"):
        return lambda out: _download_http(uri, out, timeout)
    if scheme == "s3":
        return lambda out: _download_s3(parsed.netloc, parsed.path.lstrip("/"), out)
    if scheme == "gs":
        return lambda out: _download_gcs(parsed.netloc, parsed.path.lstrip("/"), out, timeout)
    raise FetchError(f"unsupported MODEL_URI scheme {scheme!r} (use a path, file, http, https, s3 or gs)")


def _download_http(uri: str, out: BinaryIO, timeout: float, attempts: int = 3) -> None:
    deadline = time.monotonic() + timeout
    for attempt in range(1, attempts + 1):
        try:
            out.seek(0)
            out.truncate()
            remaining = max(1.0, deadline - time.monotonic())
            with urllib.request.urlopen(uri, timeout=remaining) as resp:
                shutil.copyfileobj(resp, out, CHUNK)
            return
        except OSError as exc:
            code = getattr(exc, "code", None)
            if attempt == attempts or (code is not None and 400 <= code < 500) or time.monotonic() > deadline:
                raise
            log.warning("model download failed, retrying", extra={"attempt": attempt, "error": str(exc)})
            time.sleep(min(2.0**attempt, max(0.0, deadline - time.monotonic())))


def _download_s3(bucket: str, key: str, out: BinaryIO) -> None:
    try:
        import boto3
    except ImportError:
        raise FetchError("s3:// needs boto3: install sluice-serving[s3]") from None
    boto3.client("s3").download_fileobj(bucket, key, out)


def _download_gcs(bucket: str, key: str, out: BinaryIO, timeout: float) -> None:
    try:
        from google.cloud import storage
    except ImportError:
        raise FetchError("gs:// needs google-cloud-storage: install sluice-serving[gcs]") from None
    storage.Client().bucket(bucket).blob(key).download_to_file(out, timeout=timeout)
