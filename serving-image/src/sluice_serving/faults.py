"""Fault injection for tests and demos (SLUICE_FAULT_ERROR_RATE, SLUICE_FAULT_LATENCY): a wrapper around the
loaded model that fails a fraction of its answers and answers late. The app and the transport know nothing
of it: a late answer is an awaitable, as any model's may be."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Sequence

from sluice_serving.config import Config
from sluice_serving.errors import RequestError
from sluice_serving.models import Array, Model, Results, WrappedModel


class InjectedFaultError(RequestError):
    def __init__(self) -> None:
        super().__init__(500, "injected fault (SLUICE_FAULT_ERROR_RATE)")


class FaultyModel(WrappedModel):
    """`model` with the same signature, whose answers fail with probability `error_rate` (a 500) and come
    `latency` seconds late, without blocking the event loop: other requests are answered meanwhile."""

    def __init__(self, model: Model, error_rate: float, latency: float) -> None:
        super().__init__(model)
        self._error_rate = error_rate
        self._latency = latency
        self._random = random.Random()

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> Results:
        self._fail_sometimes()
        return self.model.predict(inputs, wanted)

    def answer(self, inputs: dict[str, Array], wanted: Sequence[str]) -> Results | Awaitable[Results]:
        """The wrapped model's answer (batched, when batching is on), late and failing as configured."""
        if self._latency:
            return self._late(inputs, wanted)
        self._fail_sometimes()
        return self.model.answer(inputs, wanted)

    def _fail_sometimes(self) -> None:
        if self._error_rate and self._random.random() < self._error_rate:
            raise InjectedFaultError

    async def _late(self, inputs: dict[str, Array], wanted: Sequence[str]) -> Results:
        await asyncio.sleep(self._latency)
        self._fail_sometimes()
        answer = self.model.answer(inputs, wanted)
        return await answer if inspect.isawaitable(answer) else answer


def with_faults(model: Model, cfg: Config) -> Model:
    """`model` itself, or wrapped when the configuration injects faults."""
    if cfg.fault_error_rate or cfg.fault_latency:
        return FaultyModel(model, cfg.fault_error_rate, cfg.fault_latency)
    return model
