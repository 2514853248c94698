"""Adaptive batching (SLUICE_MAX_BATCH_SIZE > 1; off by default): concurrent one-row requests to the model are
merged into one model call and its outputs split back, row by row, to the requests they belong to.

A wrapper around the loaded model, like fault injection: each request is parsed and validated on its own before
it gets here, and its metrics, fallback and error are its own after; only the model call is shared. A one-row
request waits for at most SLUICE_MAX_BATCH_TIME seconds (0: only until the event loop has read what arrived with
it) or until SLUICE_MAX_BATCH_SIZE requests wait. Requests merge only when their inputs have the same names,
dtypes and trailing dimensions. When the merged call raises, or its outputs do not have one row per request,
every request of the batch is answered by a call of its own, so a request's error is never another's.

The merge assumes the model's rows are independent (a row's answer does not depend on the other rows of its
batch), true of the formats the server loads; docs/serving.md says so for custom models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sluice_serving.models import Array, Model, Results, WrappedModel


@dataclass
class Pending:
    """A request waiting for the batch: its inputs, the outputs it wants and the future of its results."""

    inputs: dict[str, Array]
    wanted: Sequence[str]
    future: asyncio.Future[Results] = field(repr=False)


def merge_key(inputs: dict[str, Array]) -> Hashable | None:
    """What requests must share to be merged (input names, dtypes, trailing dimensions), or None when `inputs`
    is not one row (every input an array whose first dimension is 1)."""
    key = []
    for name, array in inputs.items():
        if not isinstance(array, np.ndarray) or array.ndim == 0 or array.shape[0] != 1:
            return None
        key.append((name, array.dtype.str, array.shape[1:]))
    return tuple(sorted(key)) if key else None


def groups(pending: Sequence[Pending]) -> list[list[Pending]]:
    """The requests that can be merged together, in the order of their first request."""
    by_key: dict[Hashable, list[Pending]] = {}
    for request in pending:
        by_key.setdefault(merge_key(request.inputs), []).append(request)
    return list(by_key.values())


def merge(batch: Sequence[Pending]) -> tuple[dict[str, Array], list[str]]:
    """One model call's inputs (each request's row, in order) and the outputs any request wants."""
    inputs = {name: np.concatenate([r.inputs[name] for r in batch]) for name in batch[0].inputs}
    wanted = list(dict.fromkeys(name for r in batch for name in r.wanted))
    return inputs, wanted


def split(results: Results, rows: int) -> list[Results] | None:
    """Each row's results (row i of every output), or None when an output does not have one row per request."""
    arrays = {name: np.asarray(value) for name, value in results.items()}
    if any(a.ndim == 0 or a.shape[0] != rows for a in arrays.values()):
        return None
    return [{name: a[i : i + 1] for name, a in arrays.items()} for i in range(rows)]


class BatchingModel(WrappedModel):
    """`model` with the same signature, whose one-row answers are merged into shared calls (module docstring)."""

    def __init__(self, model: Model, max_size: int, max_time: float) -> None:
        super().__init__(model)
        self._max_size = max_size
        self._max_time = max_time
        self._pending: list[Pending] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> Results:
        return self.model.predict(inputs, wanted)

    def answer(self, inputs: dict[str, Array], wanted: Sequence[str]) -> Results | Awaitable[Results]:
        if merge_key(inputs) is None:
            return self.model.answer(inputs, wanted)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Results] = loop.create_future()
        self._pending.append(Pending(inputs, wanted, future))
        if len(self._pending) >= self._max_size:
            self.flush()
        elif self._timer is None:
            self._timer = (
                loop.call_later(self._max_time, self.flush) if self._max_time > 0 else loop.call_soon(self.flush)
            )
        return future

    def flush(self) -> None:
        """Answer every waiting request: each group of mergeable ones by one call, the others alone."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        for batch in groups(pending):
            if len(batch) > 1 and self._answer_merged(batch):
                continue
            for request in batch:
                self._answer_alone(request)

    def _answer_merged(self, batch: list[Pending]) -> bool:
        inputs, wanted = merge(batch)
        try:
            rows = split(self.model.predict(inputs, wanted), len(batch))
        except Exception:
            return False
        if rows is None:
            return False
        for request, results in zip(batch, rows, strict=True):
            if not request.future.done():
                request.future.set_result(results)
        return True

    def _answer_alone(self, request: Pending) -> None:
        try:
            results = self.model.predict(request.inputs, request.wanted)
        except Exception as exc:
            if not request.future.done():
                request.future.set_exception(exc)
            return
        if not request.future.done():
            request.future.set_result(results)


def with_batching(model: Model, max_size: int, max_time: float) -> Model:
    """`model` itself, or wrapped when batching is on (`max_size` > 1)."""
    return BatchingModel(model, max_size, max_time) if max_size > 1 else model
