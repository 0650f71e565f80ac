"""Split brain as the daemon sees it, on the fake wire in fake time: lost adverts, refused
adverts, another MAC announcing our VIP; the verdict in /status, the metrics and the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.component.fakes import FakeHost, FakeWire
from tests.component.test_daemon import configs, pair, state
from vrrpd.vrrp.fsm import State

pytestmark = pytest.mark.looptime

NAME = "default/web/ipv4"


@pytest.fixture
def wire() -> Iterator[FakeWire]:
    w = FakeWire()
    yield w
    w.close()


def row(host: FakeHost) -> dict[str, Any]:
    assert host.daemon is not None
    return next(r for r in host.daemon.status()["instances"] if r["name"] == NAME)


def metric(host: FakeHost, line: str) -> bool:
    assert host.daemon is not None
    return line in host.daemon.metrics.render().decode()


async def test_lost_adverts_give_two_masters_and_the_old_one_hears_the_new_ones_arp(
    wire: FakeWire, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await pair(wire)
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert row(a)["splitBrain"] is None
    caplog.set_level(logging.INFO, "vrrpd")
    assert a.daemon is not None
    transitions = a.daemon.instances[NAME].transitions
    t0 = asyncio.get_running_loop().time()
    wire.filter[:] = [a, b]  # IP protocol 112 dropped both ways; ARP still passes
    await asyncio.sleep(8)
    assert (state(a), state(b)) == (State.MASTER, State.MASTER)
    split = row(a)["splitBrain"]
    assert split is not None and split["evidence"] == "announcement"
    assert split["peer"] == b.mac and "192.168.77.100" in split["detail"]
    # b took over after its Master_Down_Interval and announced; a confirms two adverts later.
    b_master = next(t for t, op, _ in b.log if op == "add")
    assert b_master - t0 == pytest.approx(3 + (256 - 100) / 256, abs=1.0)
    assert metric(a, 'vrrpd_split_brain{iname="default/web/ipv4"} 1.0')
    assert metric(
        a, 'vrrpd_split_brain_detected_total{evidence="announcement",iname="default/web/ipv4"} 1.0'
    )
    warning = next(r for r in caplog.records if "split brain" in r.getMessage())
    assert warning.levelno == logging.WARNING and b.mac in warning.getMessage()
    assert row(b)["splitBrain"] is None  # a announced long before: b hears nothing of a
    assert "192.168.77.100" in a.heard.rechecked  # a asks who has its VIP; b answers

    wire.filter.clear()  # the partition ends: a (150) wins, b yields, a hears adverts again
    await asyncio.sleep(5)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert a.holds("192.168.77.100/24") and not b.holds("192.168.77.100/24")
    assert row(a)["splitBrain"] is None
    assert metric(a, 'vrrpd_split_brain{iname="default/web/ipv4"} 0.0')
    assert a.daemon.instances[NAME].transitions == transitions  # a never flapped


async def test_a_master_that_never_hears_us_is_seen_by_its_adverts(wire: FakeWire) -> None:
    a, b = await pair(wire)
    await asyncio.sleep(10)
    wire.filter[:] = [a]  # only a's adverts are lost: b takes over and keeps advertising 100
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.MASTER)
    split = row(a)["splitBrain"]
    # b's announcement came first, but its adverts reach a: VRRP would settle it, and what
    # stays is a master a keeps winning against that never yields.
    assert split is not None and (split["evidence"], split["peer"]) == ("advert", "192.168.77.12")
    assert "advertises priority 100" in split["detail"]
    wire.filter.clear()
    await asyncio.sleep(3)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    await asyncio.sleep(5)
    assert row(a)["splitBrain"] is None


async def test_adverts_it_must_not_accept_are_another_master(wire: FakeWire) -> None:
    a = wire.host("node-a", "192.168.77.11/24")
    b = wire.host("node-b", "192.168.77.12/24")
    assert a.daemon is not None and b.daemon is not None
    await a.daemon.start(configs("node-a", "version: 2\n  authentication: {password: right}"))
    await b.daemon.start(configs("node-b", "version: 2\n  authentication: {password: wrong}"))
    await asyncio.sleep(10)
    assert state(a) == State.MASTER and state(b) == State.MASTER
    for host in (a, b):
        split = row(host)["splitBrain"]
        assert split is not None, host.name
        # Whoever became master second announced; the first one may see that first.
        assert split["evidence"] in ("mismatch", "announcement")
    mismatch = [
        row(h)["splitBrain"] for h in (a, b) if row(h)["splitBrain"]["evidence"] == "mismatch"
    ]
    assert mismatch and "auth" in mismatch[0]["detail"]


async def test_a_preemption_is_no_split_brain(wire: FakeWire) -> None:
    b = wire.host("node-b", "192.168.77.12/24")
    assert b.daemon is not None
    await b.daemon.start(configs("node-b"))
    await asyncio.sleep(10)
    a = wire.host("node-a", "192.168.77.11/24")
    assert a.daemon is not None
    await a.daemon.start(configs("node-a"))
    for _ in range(20):
        await asyncio.sleep(0.5)
        assert row(a)["splitBrain"] is None and row(b)["splitBrain"] is None
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert not metric(a, "vrrpd_split_brain_detected_total{")


async def test_a_claim_ends_when_its_holder_lets_go_even_if_no_advert_says_so(
    wire: FakeWire,
) -> None:
    a, b = await pair(wire)
    await asyncio.sleep(10)
    wire.filter[:] = [a, b]
    await asyncio.sleep(8)
    assert row(a)["splitBrain"] is not None
    assert b.daemon is not None
    await b.daemon.shutdown()  # b lets go; its priority-0 advert is lost with the others
    assert not b.holds("192.168.77.100/24")
    await asyncio.sleep(4 * 1 + 1.5)  # four of a's intervals without an answer, and a tick
    assert row(a)["splitBrain"] is None and state(a) == State.MASTER
