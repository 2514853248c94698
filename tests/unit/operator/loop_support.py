"""Loops over a real `Reconciler` on an in-memory cluster, for the tests of the loops and of the Kopf wiring: the
reconciles are counted (a test waits for one instead of sleeping) and the wake-ups recorded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.adapters.metrics import PrometheusProvider
from sluice.core.children import ServingDefaults
from sluice.loops import Loops, ObjectKey
from sluice.reconciler import Reconciler
from unit.operator.memory_cluster import MemoryCluster

KEY = ("ml", "fraud")
SPEC = {"model": {"version": "1.0.0", "uri": "s3://models/fraud/1.0.0/model.onnx", "format": "onnx"}, "replicas": 1}


@dataclass
class CountingCluster(MemoryCluster):
    """Counts the reconciles (each reads its ModelDeployment once) and lets a test wait for the next one."""

    reconciles: int = 0
    _read: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def read_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        async with self._read:
            self.reconciles += 1
            self._read.notify_all()
        return await super().read_model_deployment(namespace, name)

    async def reconciled(self, count: int) -> None:
        """Until `count` reconciles have started."""
        async with self._read:
            await asyncio.wait_for(self._read.wait_for(lambda: self.reconciles >= count), timeout=10)


@dataclass
class RecordingLoops(Loops):
    """Loops that record every wake-up asked of them."""

    wakes: list[tuple[ObjectKey, bool]] = field(default_factory=list)

    def wake(self, key: ObjectKey, *, start: bool = True) -> None:
        self.wakes.append((key, start))
        super().wake(key, start=start)


def loops(cluster: CountingCluster) -> RecordingLoops:
    cluster.add_model_deployment(*KEY, SPEC)
    reconciler = Reconciler(
        cluster=cluster,
        defaults=ServingDefaults(image="sluice-serving:test"),
        default_prometheus_url="http://127.0.0.1:9",
        metrics_provider=lambda url: PrometheusProvider(url, 1.0),
        clock=lambda: datetime.now(UTC),
    )
    return RecordingLoops(reconciler, timedelta(seconds=600))
