"""The split-brain detector: evidence in, verdicts out, time by hand (no sockets)."""

from __future__ import annotations

import pytest

from vrrpd.vrrp.splitbrain import (
    ADVERT,
    ANNOUNCEMENT,
    ANNOUNCEMENT_HOLD_S,
    MISMATCH,
    SplitBrainDetector,
)

CS = 100  # our advert interval: 1 s


def adverts(d: SplitBrainDetector, times: list[float], *, mismatch: str | None = None) -> None:
    for t in times:
        d.advert("10.0.0.2", 90, CS, t, mismatch=mismatch)


def test_a_master_that_keeps_advertising_lower_is_a_conflict() -> None:
    d = SplitBrainDetector()
    adverts(d, [0.0, 1.0])
    assert d.evaluate(1.0, CS) == (None, False)  # two adverts: a preemption's overlap
    adverts(d, [2.0])
    conflict, changed = d.evaluate(2.0, CS)
    assert changed and conflict is not None
    assert (conflict.evidence, conflict.peer, conflict.since) == (ADVERT, "10.0.0.2", 0.0)
    assert "10.0.0.2 advertises priority 90" in conflict.describe()
    assert d.evaluate(2.5, CS) == (conflict, False)  # an edge is reported once


def test_a_preempted_master_that_yields_after_one_advert_is_none() -> None:
    d = SplitBrainDetector()
    adverts(d, [0.0])
    for t in (1.0, 2.0, 3.0, 10.0):
        assert d.evaluate(t, CS) == (None, False)


def test_a_burst_of_adverts_within_one_interval_is_not_persistence() -> None:
    d = SplitBrainDetector()
    adverts(d, [0.0, 0.1, 0.2, 0.3])
    assert d.evaluate(0.3, CS)[0] is None


def test_refused_adverts_count_and_priority_zero_does_not() -> None:
    d = SplitBrainDetector()
    for t in (0.0, 1.0, 2.0):
        d.advert("10.0.0.2", 0, CS, t, mismatch=None)
    assert d.evaluate(2.0, CS)[0] is None
    adverts(d, [0.0, 1.0, 2.0], mismatch="auth: wrong password")
    conflict = d.evaluate(2.0, CS)[0]
    assert conflict is not None and conflict.evidence == MISMATCH
    assert "auth: wrong password" in conflict.detail


def test_advert_evidence_goes_stale_and_the_verdict_clears() -> None:
    d = SplitBrainDetector()
    adverts(d, [0.0, 1.0, 2.0])
    assert d.evaluate(2.0, CS)[0] is not None
    assert d.evaluate(6.0, CS)[0] is not None  # 4 intervals: still fresh
    assert d.evaluate(6.1, CS) == (None, True)


def test_a_slower_peer_stays_fresh_for_its_own_interval() -> None:
    d = SplitBrainDetector()
    for t in (0.0, 3.0, 6.0):
        d.advert("10.0.0.2", 90, 300, t, mismatch="interval: 300 cs, ours 100 cs")
    assert d.evaluate(6.0, CS)[0] is not None
    assert d.evaluate(17.0, CS)[0] is not None  # 11 s of silence < 4 x 3 s


def test_an_announcement_is_a_conflict_when_we_stay_master() -> None:
    d = SplitBrainDetector()
    d.announcement("02:00:00:00:00:02", "192.0.2.10", 0.0, rechecked=False)
    assert d.evaluate(1.9, CS)[0] is None  # a takeover from us would have made us yield
    conflict, changed = d.evaluate(2.0, CS)
    assert changed and conflict is not None and conflict.evidence == ANNOUNCEMENT
    assert conflict.peer == "02:00:00:00:00:02" and "192.0.2.10" in conflict.detail
    assert d.evaluate(ANNOUNCEMENT_HOLD_S, CS)[0] is not None
    assert d.evaluate(ANNOUNCEMENT_HOLD_S + 0.1, CS) == (None, True)


def test_leaving_master_ends_the_verdict_and_forgets_the_evidence() -> None:
    d = SplitBrainDetector()
    d.announcement("02:00:00:00:00:02", "192.0.2.10", 0.0, rechecked=False)
    first = d.evaluate(2.0, CS)[0]
    assert first is not None and d.left_master() == first
    assert d.conflict is None and d.evaluate(3.0, CS) == (None, False)


def test_an_accepted_advert_settles_what_an_announcement_said() -> None:
    d = SplitBrainDetector()
    d.announcement("02:00:00:00:00:02", "192.0.2.10", 0.0, rechecked=False)
    assert d.evaluate(2.0, CS)[0] is not None
    adverts(d, [2.5])  # the partition is over: VRRP decides again
    assert d.evaluate(3.0, CS) == (None, True)


@pytest.mark.parametrize("order", [("adverts", "announcement"), ("announcement", "adverts")])
def test_the_verdict_in_force_stays_while_its_evidence_does(order: tuple[str, str]) -> None:
    d = SplitBrainDetector()
    feeds = {
        "announcement": lambda: d.announcement(
            "02:00:00:00:00:03", "2001:db8::10", 0.0, rechecked=False
        ),
        "adverts": lambda: adverts(d, [0.0, 1.0, 2.0], mismatch="auth"),
    }
    feeds[order[0]]()
    first = d.evaluate(2.0, CS)[0]
    feeds[order[1]]()
    assert first is not None and d.evaluate(2.0, CS) == (first, False)


def test_a_claim_that_is_rechecked_lasts_while_the_other_host_answers() -> None:
    d = SplitBrainDetector()
    d.announcement("02:00:00:00:00:02", "192.0.2.10", 0.0, rechecked=True)
    d.announcement("02:00:00:00:00:04", "2001:db8::10", 0.0, rechecked=False)
    assert d.rechecks() == ["192.0.2.10"]  # only what can be asked again
    for t in (2.0, 3.0, 4.0, 5.0):  # it answers at every tick
        d.announcement("02:00:00:00:00:02", "192.0.2.10", t, rechecked=True)
        assert d.evaluate(t, CS)[0] is not None
    d.left_master()
    d.announcement("02:00:00:00:00:02", "192.0.2.10", 10.0, rechecked=True)
    d.announcement("02:00:00:00:00:02", "192.0.2.10", 11.0, rechecked=True)  # answered once
    assert d.evaluate(12.0, CS)[0] is not None
    assert d.evaluate(15.0, CS)[0] is not None  # 4 silent intervals: it may be a lost answer
    assert d.evaluate(15.1, CS) == (None, True)  # it let go
    assert d.rechecks() == []


def test_a_burst_that_never_answers_a_recheck_is_no_split_brain() -> None:
    # keepalived's delayed gratuitous ARPs arrive after it stepped down: one burst, then
    # silence when asked who has the address.
    d = SplitBrainDetector()
    for offset in (0.0, 0.001, 0.002):
        d.announcement("02:00:00:00:00:02", "192.0.2.10", offset, rechecked=True)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert d.evaluate(t, CS)[0] is None
