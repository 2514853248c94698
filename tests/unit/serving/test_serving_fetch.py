"""Fetching the model into the cache and checking its digest."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice_serving.fetch import FetchError, fetch, sha256_digest
from sluice_serving.models import load_model
from unit.serving.support import ModelFiles, digest_of

MAX = 1 << 20


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"model bytes")
    return path


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"served bytes")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_local_path_is_copied_into_the_cache(model_file: Path, tmp_path: Path) -> None:
    fetched = fetch(str(model_file), str(tmp_path / "cache"), "", 5, MAX)
    assert fetched.data == b"model bytes"
    assert [p.read_bytes() for p in (tmp_path / "cache").rglob("model.onnx")] == [b"model bytes"]


def test_a_file_uri_with_the_right_digest_is_accepted(model_file: Path, tmp_path: Path) -> None:
    digest = sha256_digest(model_file.read_bytes())
    fetched = fetch(model_file.as_uri(), str(tmp_path / "cache"), digest, 5, MAX)
    assert sha256_digest(fetched.data) == digest


def test_a_digest_mismatch_is_refused_and_leaves_nothing_in_the_cache(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="digest mismatch"):
        fetch(str(model_file), str(tmp_path / "cache"), "sha256:" + "0" * 64, 5, MAX)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_a_cached_copy_that_no_longer_verifies_is_fetched_again(model_file: Path, tmp_path: Path) -> None:
    digest = sha256_digest(model_file.read_bytes())
    fetch(str(model_file), str(tmp_path / "cache"), digest, 5, MAX)
    for cached in (tmp_path / "cache").rglob("model.onnx"):
        cached.write_bytes(b"tampered")
    assert fetch(str(model_file), str(tmp_path / "cache"), digest, 5, MAX).data == b"model bytes"


def test_an_http_uri_is_downloaded(http_root: str, tmp_path: Path) -> None:
    assert fetch(f"{http_root}/model.onnx", str(tmp_path / "cache"), "", 5, MAX).data == b"served bytes"


def test_an_http_404_is_a_fetch_error(http_root: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="404"):
        fetch(f"{http_root}/missing.onnx", str(tmp_path / "cache"), "", 5, MAX)


def test_a_missing_file_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="does not exist"):
        fetch(str(tmp_path / "nope.onnx"), str(tmp_path / "cache"), "", 5, MAX)


def test_an_unknown_scheme_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unsupported"):
        fetch("ftp://host/model.onnx", str(tmp_path / "cache"), "", 5, MAX)


def test_a_file_over_the_size_cap_is_refused_and_leaves_nothing_in_the_cache(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="SLUICE_MAX_MODEL_BYTES"):
        fetch(str(model_file), str(tmp_path / "cache"), "", 5, len(b"model bytes") - 1)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_a_device_is_not_a_model_file(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="not a regular file"):
        fetch("/dev/zero", str(tmp_path / "cache"), "", 5, MAX)


def test_the_model_loaded_is_the_bytes_whose_digest_was_checked(classifier: ModelFiles, tmp_path: Path) -> None:
    """Finding 8: the file is read once; replacing it in the cache after the check changes nothing loaded."""
    fetched = fetch(str(classifier.onnx), str(tmp_path / "cache"), digest_of(classifier.onnx), 5, 1 << 30)
    for cached in (tmp_path / "cache").rglob("*.onnx"):
        cached.write_bytes(b"not the verified model")
    model = load_model(fetched, "onnx", True, 1)
    assert model.predict({"input": classifier.rows.astype("float32")}, ["label"])["label"].tolist() == (
        classifier.expected
    )
