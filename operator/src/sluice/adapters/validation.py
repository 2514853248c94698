"""The validation gate's runner: load the labelled dataset, send it to the canary pods, score the answers.

The dataset comes from a ConfigMap key (read through the Kubernetes API: `get` on configmaps in the
ModelDeployment's namespace) or a file:// / http(s):// URI the operator's allowlists admit (`Allowlists`). Rows go
in batches of `batchSize` to the canary Service's V2 infer endpoint, whose base URL is the operator's
`canary_url_template` (default `http://{service}.{namespace}.svc:{port}`); the scoring is
`sluice.core.gates.score`. Every answer must be the canary's model version (OIP `versions`, `model_version`): a
Service still sending to a replaced pod while it drains yields an error, not that pod's score. A run never raises:
any failure (dataset missing or malformed, canary unreachable, timeout) is the reading's `error`.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import json
import os
import stat
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from sluice.adapters.bounded_http import IDENTITY, MAX_RESPONSE_BYTES, RefusedAnswerError, read_capped
from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import DatasetFormat, ValidationSpec
from sluice.core.children import SERVICE_PORT, ChildNames
from sluice.core.gates import ScoreError, score
from sluice.core.plan import ValidationReading
from sluice.core.validation import Allowlists, dataset_file_allowed, dataset_uri_problem

DEFAULT_CANARY_URL_TEMPLATE = "http://{service}.{namespace}.svc:{port}"
MAX_ROWS = 100_000
OTHER_VERSION = "the canary Service answered as another model version (a replaced pod still draining?)"
CLOSED = Allowlists()
"""No dataset URI allowed: ConfigMap datasets only."""

ConfigMapReader = Callable[[str, str, str], Awaitable[str | None]]
"""(namespace, name, key) -> the key's text, None when the ConfigMap or the key does not exist."""


class DatasetError(ValueError):
    """The dataset cannot be read or parsed; the message says where."""


@dataclass(frozen=True)
class Dataset:
    rows: list[list[float]]
    labels: list[object]


def parse_dataset(text: str, fmt: DatasetFormat, label_column: str) -> Dataset:
    """CSV with a header (every column but `label_column` is a numeric feature, in order) or JSONL
    (`{"features": [...], "label": ...}` per line); every row must have the same number of features."""
    rows: list[list[float]] = []
    labels: list[object] = []
    if fmt is DatasetFormat.CSV:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            raise DatasetError("the CSV dataset is empty")
        header = [name.strip() for name in header]
        if label_column not in header:
            raise DatasetError(f"none of the CSV header's {len(header)} columns is the label column {label_column!r}")
        at = header.index(label_column)
        for line, record in enumerate(reader, start=2):
            if not record or all(not cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                raise DatasetError(f"CSV line {line} has {len(record)} columns, the header {len(header)}")
            features = [cell for index, cell in enumerate(record) if index != at]
            rows.append(_numbers(features, f"CSV line {line}"))
            labels.append(_label(record[at].strip()))
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                doc = json.loads(raw)
                features, label = doc["features"], doc["label"]
            except (ValueError, KeyError, TypeError):
                raise DatasetError(f"JSONL line {line} is not an object with features and label") from None
            if not isinstance(features, list):
                raise DatasetError(f"JSONL line {line}: features is not a list")
            rows.append(_numbers(features, f"JSONL line {line}"))
            labels.append(label)
    if not rows:
        raise DatasetError("the dataset has no rows")
    if len(rows) > MAX_ROWS:
        raise DatasetError(f"the dataset has {len(rows)} rows; at most {MAX_ROWS}")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise DatasetError(f"rows have different numbers of features: {sorted(widths)}")
    return Dataset(rows, labels)


def _numbers(values: Sequence[Any], where: str) -> list[float]:
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: a feature is not a number") from None


def _label(cell: str) -> object:
    """A CSV label as a number when it reads as one (1, 0.5), else as text."""
    try:
        number = float(cell)
    except ValueError:
        return cell
    return int(number) if number.is_integer() else number


def canary_base_url(template: str, namespace: str, name: str) -> str:
    return template.format(service=ChildNames.of(name).canary_service, namespace=namespace, port=SERVICE_PORT)


class ValidationRunner:
    """Runs spec.validation against a ModelDeployment's canary Service.

    Hostile input: the dataset and the canary's answers are the author's. Every read stops past `max_bytes` (a file
    at `max_bytes + 1` bytes, a body at most one network chunk past it) and at the run's timeout; a file:// dataset
    must be a regular file under the allowlisted directory after symlinks are resolved, an http(s) one on an
    allowlisted host, with no redirect followed; errors say what failed in fixed words and counts, never with what
    was read."""

    def __init__(
        self,
        read_config_map: ConfigMapReader,
        canary_url_template: str = DEFAULT_CANARY_URL_TEMPLATE,
        allow: Allowlists = CLOSED,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._read_config_map = read_config_map
        self._template = canary_url_template
        self._allow = allow
        self._max_bytes = max_bytes

    async def run(self, spec: ValidationSpec, namespace: str, name: str, version: str) -> ValidationReading:
        """Score model `version` (the canary's): answers that name another version (a replaced pod the Service
        still sends to while it drains) make the run an error, retried later, never a score."""
        timeout = parse_duration(spec.timeout).total_seconds()
        try:
            return await asyncio.wait_for(self._run(spec, namespace, name, version, timeout), timeout=timeout)
        except TimeoutError:
            return ValidationReading(error=f"the run took longer than timeout {spec.timeout}")
        except (DatasetError, ScoreError, RefusedAnswerError) as error:  # texts of ours: counts and fixed words
            return ValidationReading(error=str(error))
        except Exception as error:  # a run never raises; other texts could quote what was read, so only the type
            return ValidationReading(error=f"{type(error).__name__} while validating (details withheld)")

    async def _run(
        self, spec: ValidationSpec, namespace: str, name: str, version: str, timeout: float
    ) -> ValidationReading:
        deadline = time.monotonic() + timeout
        dataset = parse_dataset(await self._dataset_text(spec, namespace, deadline), spec.format, spec.label_column)
        base = canary_base_url(self._template, namespace, name).rstrip("/")
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, headers=IDENTITY) as http:
            metadata = await self._json(http, "GET", f"{base}/v2/models/{name}", "model metadata")
            versions = metadata.get("versions")
            if isinstance(versions, list) and versions and version not in versions:
                raise DatasetError(OTHER_VERSION)
            try:
                input_spec, output_name = metadata["inputs"][0], metadata["outputs"][0]["name"]
                input_name, datatype = input_spec["name"], input_spec.get("datatype", "FP64")
            except (KeyError, IndexError, TypeError, AttributeError):
                raise DatasetError("the canary's metadata names no input or output") from None
            predictions: list[object] = []
            for start in range(0, len(dataset.rows), spec.batch_size):
                batch = dataset.rows[start : start + spec.batch_size]
                body = {
                    "inputs": [
                        {
                            "name": input_name,
                            "shape": [len(batch), len(batch[0])],
                            "datatype": datatype,
                            "data": [value for row in batch for value in row],
                        }
                    ],
                    "outputs": [{"name": output_name}],
                }
                answer = await self._json(http, "POST", f"{base}/v2/models/{name}/infer", "infer", body)
                if answer.get("model_version", version) != version:
                    raise DatasetError(OTHER_VERSION)
                try:
                    data = answer["outputs"][0]["data"]
                except (KeyError, IndexError, TypeError):
                    raise DatasetError("the canary's infer answer has no outputs[0].data") from None
                if not isinstance(data, list) or len(data) != len(batch):
                    count = len(data) if isinstance(data, list) else 0
                    raise DatasetError(f"the canary answered {count} predictions for {len(batch)} rows")
                predictions.extend(data)
        return ValidationReading(score=score(spec.metric, predictions, dataset.labels), samples=len(dataset.rows))

    async def _dataset_text(self, spec: ValidationSpec, namespace: str, deadline: float) -> str:
        if spec.config_map_ref is not None:
            ref = spec.config_map_ref
            text = await self._read_config_map(namespace, ref.name, ref.key)
            if text is None:
                raise DatasetError(f"ConfigMap {namespace}/{ref.name} or its key {ref.key!r} does not exist")
            if len(text) > self._max_bytes:
                raise RefusedAnswerError(f"the dataset is larger than {self._max_bytes} bytes")
            return text
        uri = spec.uri or ""
        problem = dataset_uri_problem(uri, self._allow)
        if problem is not None:
            raise DatasetError(problem)
        if uri.startswith("file://"):
            path = urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
            data = await asyncio.to_thread(read_dataset_file, path, self._allow.dataset_dir, self._max_bytes, deadline)
        else:
            data = await self._http_dataset(uri, deadline)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError("the dataset is not UTF-8 text") from None

    async def _http_dataset(self, uri: str, deadline: float) -> bytes:
        url = httpx.URL(uri)  # the host as the client will connect to it, checked again
        hosts = self._allow.dataset_hosts
        if url.host.lower() not in hosts and f"{url.host.lower()}:{url.port}" not in hosts:
            raise DatasetError("spec.validation.uri: the host is not one of the operator's dataset hosts")
        timeout = max(deadline - time.monotonic(), 0.001)
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, headers=IDENTITY) as http,
            http.stream("GET", url) as response,
        ):
            if response.is_redirect:
                raise DatasetError(f"the dataset host answered HTTP {response.status_code}: redirects are not followed")
            if response.status_code != 200:
                raise DatasetError(f"the dataset host answered HTTP {response.status_code}")
            return await read_capped(response, self._max_bytes, "the dataset")

    async def _json(
        self, http: httpx.AsyncClient, method: str, url: str, what: str, body: Any = None
    ) -> dict[str, Any]:
        async with http.stream(method, url, json=body) as response:
            if response.status_code != 200:
                raise DatasetError(f"the canary answered {what} with HTTP {response.status_code}")
            content = await read_capped(response, self._max_bytes, f"the canary's {what} answer")
        try:
            doc = json.loads(content)
        except ValueError:
            raise DatasetError(f"the canary's {what} answer is not JSON") from None
        if not isinstance(doc, dict):
            raise DatasetError(f"the canary's {what} answer is not a JSON object")
        return doc


_CHUNK = 64 * 1024


def read_dataset_file(path: str, dataset_dir: str, max_bytes: int, deadline: float) -> bytes:
    """A file:// dataset: a regular file under `dataset_dir` once symlinks are resolved, read in chunks until
    `max_bytes + 1` bytes or `deadline` (time.monotonic), whichever comes first."""
    real = os.path.realpath(path)
    if not dataset_file_allowed(real, os.path.realpath(dataset_dir)):
        raise DatasetError("spec.validation.uri: the file resolves outside the operator's dataset directory")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise DatasetError(
            f"the dataset file cannot be opened ({errno.errorcode.get(error.errno or 0, 'error')})"
        ) from None
    with os.fdopen(fd, "rb", buffering=0) as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DatasetError("the dataset is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while chunk := file.read(min(_CHUNK, max_bytes + 1 - size)):
            size += len(chunk)
            if size > max_bytes:
                raise RefusedAnswerError(f"the dataset is larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise DatasetError("reading the dataset took longer than the run's timeout")
            chunks.append(chunk)
        return b"".join(chunks)
