"""The validation gate's runner: load the labelled dataset, send it to the canary pods, score the answers.

The dataset comes from a ConfigMap key (read through the Kubernetes API: `get` on configmaps in the
ModelDeployment's namespace) or a file:// / http(s):// URI. Rows go in batches of `batchSize` to the canary
Service's V2 infer endpoint, whose base URL is the operator's `canary_url_template` (default
`http://{service}.{namespace}.svc:{port}`); the scoring is `sluice.core.gates.score`. A run never raises: any
failure (dataset missing or malformed, canary unreachable, timeout) is the reading's `error`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import DatasetFormat, ValidationSpec
from sluice.core.children import SERVICE_PORT, ChildNames
from sluice.core.gates import score
from sluice.core.plan import ValidationReading

DEFAULT_CANARY_URL_TEMPLATE = "http://{service}.{namespace}.svc:{port}"
MAX_DATASET_BYTES = 16 * 1024 * 1024
"""A URI dataset larger than this is refused (a ConfigMap holds at most 1 MiB anyway)."""
MAX_ROWS = 100_000

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
            raise DatasetError(f"the CSV header has no label column {label_column!r}: {header[:10]}")
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
    """Runs spec.validation against a ModelDeployment's canary Service."""

    def __init__(
        self, read_config_map: ConfigMapReader, canary_url_template: str = DEFAULT_CANARY_URL_TEMPLATE
    ) -> None:
        self._read_config_map = read_config_map
        self._template = canary_url_template

    async def run(self, spec: ValidationSpec, namespace: str, name: str) -> ValidationReading:
        timeout = parse_duration(spec.timeout).total_seconds()
        try:
            return await asyncio.wait_for(self._run(spec, namespace, name, timeout), timeout=timeout)
        except TimeoutError:
            return ValidationReading(error=f"the run took longer than timeout {spec.timeout}")
        except Exception as error:  # a run never raises: dataset, API, HTTP or scoring failures are its error
            return ValidationReading(error=f"{type(error).__name__}: {_short(error)}")

    async def _run(self, spec: ValidationSpec, namespace: str, name: str, timeout: float) -> ValidationReading:
        dataset = parse_dataset(await self._dataset_text(spec, namespace), spec.format, spec.label_column)
        base = canary_base_url(self._template, namespace, name).rstrip("/")
        async with httpx.AsyncClient(timeout=timeout) as http:
            metadata = await _json(await http.get(f"{base}/v2/models/{name}"), "model metadata")
            try:
                input_spec, output_name = metadata["inputs"][0], metadata["outputs"][0]["name"]
            except (KeyError, IndexError, TypeError):
                raise DatasetError(f"the canary's metadata names no input or output: {metadata}") from None
            predictions: list[object] = []
            for start in range(0, len(dataset.rows), spec.batch_size):
                batch = dataset.rows[start : start + spec.batch_size]
                body = {
                    "inputs": [
                        {
                            "name": input_spec["name"],
                            "shape": [len(batch), len(batch[0])],
                            "datatype": input_spec.get("datatype", "FP64"),
                            "data": [value for row in batch for value in row],
                        }
                    ],
                    "outputs": [{"name": output_name}],
                }
                answer = await _json(await http.post(f"{base}/v2/models/{name}/infer", json=body), "infer")
                data = answer["outputs"][0]["data"]
                if len(data) != len(batch):
                    raise DatasetError(f"the canary answered {len(data)} predictions for {len(batch)} rows")
                predictions.extend(data)
        return ValidationReading(score=score(spec.metric, predictions, dataset.labels), samples=len(dataset.rows))

    async def _dataset_text(self, spec: ValidationSpec, namespace: str) -> str:
        if spec.config_map_ref is not None:
            ref = spec.config_map_ref
            text = await self._read_config_map(namespace, ref.name, ref.key)
            if text is None:
                raise DatasetError(f"ConfigMap {namespace}/{ref.name} or its key {ref.key!r} does not exist")
            return text
        uri = spec.uri or ""
        if uri.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
            if path.stat().st_size > MAX_DATASET_BYTES:
                raise DatasetError(f"{uri} is larger than {MAX_DATASET_BYTES} bytes")
            return await asyncio.to_thread(path.read_text)
        async with httpx.AsyncClient(timeout=30.0, follow_redirects=True) as http:
            response = await http.get(uri)
            response.raise_for_status()
            if len(response.content) > MAX_DATASET_BYTES:
                raise DatasetError(f"{uri} is larger than {MAX_DATASET_BYTES} bytes")
            return response.text


async def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise DatasetError(f"the canary answered {what} with HTTP {response.status_code}: {response.text[:200]}")
    doc = response.json()
    if not isinstance(doc, dict):
        raise DatasetError(f"the canary's {what} answer is not a JSON object")
    return doc


def _short(error: Exception) -> str:
    """The error's text, cut to 300 characters (an API error's body can be long)."""
    text = str(error)
    return text if len(text) <= 300 else text[:297] + "..."
