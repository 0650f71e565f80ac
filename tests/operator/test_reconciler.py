"""Reconciler: concurrent reconcile requests coalesce; failures reach the caller."""

from __future__ import annotations

import asyncio

import pytest
from vrrp_operator.handlers import RESYNC_RETRY_S, Reconciler

pytestmark = [pytest.mark.looptime]


async def test_concurrent_requests_coalesce() -> None:
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(1)

    r = Reconciler(run)
    await asyncio.gather(*(r.request() for _ in range(50)))
    assert runs == 2  # the first, then one for everything that arrived meanwhile


async def test_a_request_after_a_run_runs_again() -> None:
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1

    r = Reconciler(run)
    await r.request()
    await r.request()
    assert runs == 2


async def test_resync_requests_skip_a_fresh_run() -> None:
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1

    r = Reconciler(run)
    await r.request()
    await r.request(max_age=60)
    assert runs == 1
    await asyncio.sleep(61)
    await asyncio.gather(*(r.request(max_age=60) for _ in range(20)))
    assert runs == 2


async def test_failure_reaches_the_caller_and_the_next_waiter_retries() -> None:
    calls = 0

    async def run() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(1)
        if calls == 1:
            raise RuntimeError("API down")

    r = Reconciler(run)
    results = await asyncio.gather(r.request(), r.request(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert calls == 2


async def test_a_failed_resync_is_tried_again_later_not_by_every_timer() -> None:
    calls, failing = 0, True

    async def run() -> None:
        nonlocal calls
        calls += 1
        if failing:
            raise ConnectionError("API server away")

    r = Reconciler(run)
    results = await asyncio.gather(
        *(r.request(max_age=60) for _ in range(20)), return_exceptions=True
    )
    assert calls == 1 and isinstance(results[0], ConnectionError) and results[1:] == [None] * 19
    with pytest.raises(ConnectionError):
        await r.request()  # an event's request is no resync: it runs
    assert calls == 2
    await asyncio.sleep(RESYNC_RETRY_S - 0.5)
    await r.request(max_age=60)
    assert calls == 2
    await asyncio.sleep(0.5)
    failing = False
    await r.request(max_age=60)
    assert calls == 3
