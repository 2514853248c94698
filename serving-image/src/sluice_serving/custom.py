"""Custom Python models (format `python`): a directory with `model.py` defining a class `Model`, or a wheel naming
its class in the `sluice_serving.model` entry-point group. The class implements:

    load() -> None                                  once, before the first request
    predict(inputs: dict[str, ndarray]) -> dict[str, ndarray-like]
    metadata() -> {"inputs": [...], "outputs": [...]}   optional: V2 tensors (name, datatype, shape)

It is code, so it loads only with a pinned digest, checked on the bytes read once: a directory is read into its
canonical encoding (`pack_directory`), whose sha256 is the directory's digest (`sluice-serving-digest DIR` prints it),
a wheel is a file like any other. The verified bytes are written to a fresh temporary directory and imported from
there, never from the original. Every refusal is a fixed text: nothing of the author's files is quoted."""

from __future__ import annotations

import configparser
import importlib
import io
import logging
import os
import re
import secrets
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from sluice_serving.models import NUMPY_TYPES, Array, Model, ModelError, ModelFile, TensorSpec

log = logging.getLogger("sluice_serving.custom")

MAX_FILES = 10_000
"""Files in a custom model's directory or wheel."""
MAX_UNPACKED_BYTES = 4 << 30
"""Bytes a wheel may unpack to."""
SKIPPED = "__pycache__"
"""Directories of this name are not part of a model directory (nor of its digest)."""
ENTRY_POINT_GROUP = "sluice_serving.model"
DEFAULT_METADATA = {
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, -1]}],
    "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
}
_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
_MAX_TENSORS = 64
_BAD_METADATA = "the python model's metadata() is not {inputs: [...], outputs: [...]} of V2 tensors (docs/serving.md)"


def pack_directory(root: Path, max_bytes: int) -> bytes:
    """The canonical encoding of the model directory `root`: for each regular file, in the order of its path
    relative to `root` (POSIX separators, compared as UTF-8 bytes), the path, a NUL byte, its size in decimal
    ASCII, a NUL byte, and its content. Directories named __pycache__ are left out; a symbolic link or any other
    non-regular file is refused. The directory's digest is "sha256:" + the hex sha256 of these bytes."""
    files = sorted(_files(root, PurePosixPath()), key=lambda item: item[0])
    if len(files) > MAX_FILES:
        raise ModelError(f"the model directory has more than {MAX_FILES} files")
    if not files:
        raise ModelError("the model directory has no files")
    out = bytearray()
    for rel, path in files:
        with path.open("rb") as f:
            # Bounded by what is left of max_bytes (and by the size, so no buffer larger than the file is asked for).
            content = f.read(min(os.fstat(f.fileno()).st_size, max_bytes - len(out)) + 1)
        out += rel + b"\0" + str(len(content)).encode() + b"\0" + content
        if len(out) > max_bytes:
            raise ModelError(f"the model directory is larger than SLUICE_MAX_MODEL_BYTES ({max_bytes} bytes)")
    return bytes(out)


def _files(directory: Path, rel: PurePosixPath) -> Iterator[tuple[bytes, Path]]:
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_symlink():
                raise ModelError("the model directory holds a symbolic link; copy the file instead")
            if entry.is_dir():
                if entry.name != SKIPPED:
                    yield from _files(Path(entry.path), rel / entry.name)
            elif entry.is_file():
                yield os.fsencode(rel / entry.name), Path(entry.path)
            else:
                raise ModelError("the model directory holds a file that is neither regular nor a directory")


def unpack_directory(data: bytes) -> list[tuple[str, bytes]]:
    """The files (relative path, content) of `pack_directory`'s encoding."""
    files: list[tuple[str, bytes]] = []
    at = 0
    while at < len(data):
        path_end = data.find(b"\0", at)
        size_end = data.find(b"\0", path_end + 1) if path_end >= 0 else -1
        size_text = data[path_end + 1 : size_end] if size_end >= 0 else b""
        if not size_text.isdigit() or len(files) >= MAX_FILES:
            raise ModelError("the model directory's encoding is malformed")
        end = size_end + 1 + int(size_text)
        files.append((_safe_path(data[at:path_end]), data[size_end + 1 : end]))
        at = end
    return files


def _safe_path(raw: bytes) -> str:
    """A relative path inside the model's directory, or ModelError."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ModelError("a path in the python model is not UTF-8") from None
    parts = text.split("/")
    if not text or "\\" in text or any(part in ("", ".", "..") for part in parts):
        raise ModelError("a path in the python model leaves its directory")
    return text


def _wheel_files(data: bytes) -> list[tuple[str, bytes]]:
    """The files (relative path, content) of a wheel, bounded in count and in unpacked bytes."""
    unreadable = "the python model's wheel is not a readable zip archive"
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ModelError(unreadable) from None
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > MAX_FILES:
        raise ModelError(f"the python model's wheel has more than {MAX_FILES} files")
    files, budget = [], MAX_UNPACKED_BYTES
    for info in members:
        try:
            with archive.open(info) as member:
                content = member.read(min(info.file_size, budget) + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
            raise ModelError(unreadable) from None
        if len(content) > info.file_size:
            raise ModelError(unreadable)
        budget -= len(content)
        if budget < 0:
            raise ModelError(f"the python model's wheel unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        files.append((_safe_path(info.filename.encode()), content))
    return files


def _entry_point(files: Sequence[tuple[str, bytes]]) -> str:
    """`module:Class` from the wheel's sole entry point in the sluice_serving.model group."""
    texts = [content for path, content in files if re.fullmatch(r"[^/]+\.dist-info/entry_points\.txt", path)]
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(texts[0].decode() if len(texts) == 1 else "")
    except (configparser.Error, UnicodeDecodeError):
        raise ModelError("the python model's wheel has a malformed entry_points.txt") from None
    values = list(parser[ENTRY_POINT_GROUP].values()) if parser.has_section(ENTRY_POINT_GROUP) else []
    if len(values) != 1 or not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", values[0].strip()):
        raise ModelError(f"the python model's wheel must name one module:Class in entry points [{ENTRY_POINT_GROUP}]")
    return values[0].strip()


def _materialize(files: Sequence[tuple[str, bytes]], under: str) -> Path:
    """Write the verified files to a fresh directory (`under` a package directory, or at its top) on sys.path."""
    root = Path(tempfile.mkdtemp(prefix="sluice-python-model-"))
    for rel, content in files:
        target = root / under / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    sys.path.append(str(root))
    importlib.invalidate_caches()
    return root


def _model_class(file: ModelFile) -> type:
    """Import the model's class from its verified files."""
    if file.directory:
        package = f"sluice_model_{secrets.token_hex(8)}"
        root = _materialize(unpack_directory(file.data), package)
        module_name, class_name = f"{package}.model", "Model"
    elif file.data[:4] == b"PK\x03\x04":
        files = _wheel_files(file.data)
        module_name, class_name = _entry_point(files).split(":")
        root = _materialize(files, "")
    else:
        raise ModelError(f"{file.name}: a python model is a directory or a wheel (.whl)")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (Exception, SystemExit):
        log.debug("importing the python model failed", exc_info=True)
        raise ModelError(f"{file.name}: importing the python model's class failed") from None
    origin = Path(getattr(module, "__file__", None) or "/").resolve()
    if not origin.is_relative_to(root.resolve()):
        raise ModelError(f"{file.name}: the python model's module is shadowed by another module of the same name")
    if not isinstance(cls, type):
        raise ModelError(f"{file.name}: the python model's class is not a class")
    return cls


class PythonModel(Model):
    """A custom model (the module docstring says what it implements), behind the runtime interface."""

    platform = "python"

    def __init__(self, file: ModelFile) -> None:
        try:
            self._impl = _model_class(file)()
            self._impl.load()
        except ModelError:
            raise
        except (Exception, SystemExit):
            log.debug("loading the python model failed", exc_info=True)
            raise ModelError(f"{file.name}: the python model's constructor or load() raised") from None
        describe = getattr(self._impl, "metadata", None)
        try:
            doc = describe() if callable(describe) else DEFAULT_METADATA
        except (Exception, SystemExit):
            raise ModelError(f"{file.name}: the python model's metadata() raised") from None
        self.inputs = _tensors(doc, "inputs")
        self.outputs = _tensors(doc, "outputs")
        self.read_signature()

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        results = self._impl.predict(inputs)
        if not isinstance(results, dict):
            raise ModelError("the python model's predict() did not return a dict of outputs by name")
        out = {}
        for name in {*wanted, self.prediction_output}:
            if name not in results:
                raise ModelError("the python model's predict() did not return every declared output")
            out[name] = np.asarray(results[name])
        return out


def _tensors(doc: Any, key: str) -> tuple[TensorSpec, ...]:
    """The V2 tensor specs under `key` of a metadata() document, or ModelError."""
    specs = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(specs, list) or not 1 <= len(specs) <= _MAX_TENSORS:
        raise ModelError(_BAD_METADATA)
    out = []
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        datatype = spec.get("datatype") if isinstance(spec, dict) else None
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not (isinstance(name, str) and _NAME.match(name) and datatype in NUMPY_TYPES and isinstance(shape, list)):
            raise ModelError(_BAD_METADATA)
        if not 1 <= len(shape) <= 8 or not all(type(d) is int and d >= -1 for d in shape):
            raise ModelError(_BAD_METADATA)
        out.append(TensorSpec(name, datatype, tuple(shape)))
    if len({s.name for s in out}) != len(out):
        raise ModelError(_BAD_METADATA)
    return tuple(out)


def digest_main(argv: Sequence[str] | None = None) -> None:
    """`sluice-serving-digest PATH`: print the digest MODEL_DIGEST (spec.model.digest) must pin for a model file
    or a python model's directory."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: sluice-serving-digest PATH (a model file or a python model's directory)", file=sys.stderr)
        sys.exit(2)
    from sluice_serving.fetch import sha256_digest

    path = Path(args[0])
    try:
        data = pack_directory(path, sys.maxsize) if path.is_dir() else path.read_bytes()
    except (OSError, ModelError) as exc:
        print(f"sluice-serving-digest: {exc}", file=sys.stderr)
        sys.exit(1)
    print(sha256_digest(data))
