"""The per-object reconcile loops (sluice.loops): stopping a loop stops it, whatever else happens at that moment."""

from __future__ import annotations

import asyncio

from unit.operator.loop_support import KEY, CountingCluster, loops


def test_a_loop_woken_at_the_moment_it_is_stopped_stops() -> None:
    async def scenario() -> None:
        cluster = CountingCluster()
        loops_ = loops(cluster)
        loops_.wake(KEY)
        await cluster.reconciled(1)  # the reconcile runs to its end, and the loop waits for a wake-up

        loops_.wake(KEY)
        async with asyncio.timeout(5):  # not wait_for, which would let the woken loop run before stop_all
            await loops_.stop_all()

        assert not loops_.running(KEY)
        assert cluster.reconciles == 1

    asyncio.run(scenario())
