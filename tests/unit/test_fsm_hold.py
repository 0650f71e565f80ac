"""Planned switchover in the state machine (VirtualRouter.hold / release): the holder
takes over make-before-break and keeps the addresses whatever the others' preempt modes,
until it is released or fails; then the ordinary rules apply. On the simulated link of
test_fsm, with explicit time: no sockets, no sleep."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_fsm import (
    Fault,
    Link,
    Prio,
    Shutdown,
    Start,
    Sync,
    T,
    node,
    reconf,
)
from vrrpd.vrrp.fsm import (
    HOLD_PRIORITY,
    AddAddresses,
    Announce,
    HoldRefused,
    PreemptMode,
    RemoveAddresses,
    SendAdvertisement,
    State,
    Transition,
    VirtualRouter,
)

ALWAYS, NEVER, DELAY = PreemptMode.ALWAYS, PreemptMode.NEVER, PreemptMode.DELAY


def started(*configs) -> Link:  # type: ignore[no-untyped-def]
    link = Link(list(configs))
    for i in range(len(configs)):
        link.event(i, Start())
    link.run_until(10.0)
    return link


def hold(link: Link, i: int) -> None:
    link.apply(i, link.routers[i].hold(link.now))


def release(link: Link, i: int) -> None:
    link.apply(i, link.routers[i].release(link.now))


def holders_at_each_step(link: Link, since: float) -> list[int]:
    """How many routers held the addresses after each action, replayed from the log."""
    holding = [False] * len(link.routers)
    counts = []
    for when, i, action in link.log:
        if isinstance(action, AddAddresses):
            holding[i] = True
        elif isinstance(action, RemoveAddresses):
            holding[i] = False
        if when >= since:
            counts.append(sum(holding))
    return counts


@pytest.mark.parametrize("holder_mode", list(PreemptMode))
@pytest.mark.parametrize("others_mode", list(PreemptMode))
def test_the_holder_takes_over_at_once_and_keeps_it(
    holder_mode: PreemptMode, others_mode: PreemptMode
) -> None:
    mode = {"preempt_delay_cs": 50}
    link = started(
        node(0, 150, preempt=others_mode, **mode),
        node(1, 50, preempt=holder_mode, **mode),
        node(2, 100, preempt=others_mode, **mode),
    )
    assert link.masters() == [0]
    hold(link, 1)
    assert link.masters() == [1] and link.holding == [False, True, False]
    assert link.routers[1].held and link.routers[1].effective_priority == HOLD_PRIORITY
    link.run_until(60.0)  # no preempt, no delay, no timer takes it back
    assert link.masters() == [1] and link.holding == [False, True, False]
    assert link.routers[0].master_priority == HOLD_PRIORITY


def test_make_before_break_the_old_master_lets_go_after_the_new_one_announced() -> None:
    link = started(node(0, 150), node(1, 100))
    t = link.now
    hold(link, 1)
    after = [(i, type(a).__name__) for when, i, a in link.log if when >= t]
    assert after[:4] == [
        (1, "Transition"),
        (1, "AddAddresses"),
        (1, "Announce"),
        (1, "SendAdvertisement"),
    ]
    assert (0, "RemoveAddresses") in after[4:]
    # Someone holds the VIP after every single action of the handover.
    assert 0 not in holders_at_each_step(link, t)
    assert link.log[-1][1:] == (0, RemoveAddresses())
    moves = [(i, a) for when, i, a in link.log if when >= t and isinstance(a, Transition)]
    assert moves == [
        (1, T(State.BACKUP, State.MASTER, "switchover requested")),
        (0, T(State.MASTER, State.BACKUP, f"higher priority {HOLD_PRIORITY} > 150")),
    ]


def test_release_returns_to_the_ordinary_rules() -> None:
    link = started(node(0, 150), node(1, 100, preempt=NEVER))
    hold(link, 1)
    release(link, 1)  # advertises 100: the Always backup at 150 preempts at once
    assert link.masters() == [0] and link.holding == [True, False]
    assert not link.routers[1].held and link.routers[1].hold_ended == "released"
    assert link.routers[1].effective_priority == 100


def test_release_under_never_leaves_the_vip_where_it_is() -> None:
    link = started(node(0, 150, preempt=NEVER), node(1, 100, preempt=NEVER))
    hold(link, 1)
    release(link, 1)
    link.run_until(60.0)
    assert link.masters() == [1]  # Never: nobody takes it from a live master


def test_release_without_a_hold_does_nothing() -> None:
    link = started(node(0, 150), node(1, 100))
    assert link.routers[1].release(link.now) == []
    assert link.routers[0].release(link.now) == []


def test_a_fault_ends_the_hold_and_the_ordinary_rules_apply() -> None:
    link = started(node(0, 150, preempt=NEVER), node(1, 100), node(2, 120, preempt=NEVER))
    hold(link, 1)
    link.event(1, Fault(True, "probe gw failing"))
    link.run_until(link.now + 1.0)  # it resigned: the best backup takes over after its skew
    assert link.masters() == [0]
    assert link.routers[1].hold_ended == "probe gw failing" and not link.routers[1].held
    link.event(1, Fault(False, "probe gw passing"))
    link.run_until(link.now + 30.0)
    assert link.masters() == [0] and link.routers[1].state is State.BACKUP
    assert link.routers[1].effective_priority == 100


def test_a_drop_of_its_own_priority_ends_the_hold() -> None:
    link = started(node(0, 150), node(1, 100))
    hold(link, 1)
    link.event(1, Prio(120))  # a probe recovering: a rise keeps the hold
    assert link.routers[1].held and link.masters() == [1]
    link.event(1, Prio(90))  # a weighted probe failing: the hold ends, 150 preempts
    assert not link.routers[1].held
    assert link.routers[1].hold_ended == "effective priority fell 120 -> 90"
    assert link.masters() == [0] and link.holding == [True, False]


def test_shutdown_ends_the_hold_with_the_usual_handover() -> None:
    link = started(node(0, 150), node(1, 100))
    hold(link, 1)
    link.event(1, Shutdown())
    assert link.routers[1].hold_ended == "shutdown"
    link.run_until(link.now + 1.0)
    assert link.masters() == [0] and link.routers[1].state is State.STOPPED


def test_a_sync_sibling_falling_back_ends_the_hold() -> None:
    link = started(node(0, 150), node(1, 100))
    hold(link, 1)
    link.event(1, Sync(False))
    assert not link.routers[1].held and "sync group" in str(link.routers[1].hold_ended)


def test_a_reconfiguration_keeps_the_hold() -> None:
    link = started(node(0, 150), node(1, 100))
    hold(link, 1)
    link.event(1, reconf(priority=90, advert_interval_cs=50))
    link.run_until(30.0)
    assert link.masters() == [1] and link.routers[1].held
    release(link, 1)
    assert link.masters() == [0] and link.routers[1].effective_priority == 90


def test_holding_the_master_raises_what_it_advertises() -> None:
    link = started(node(0, 150), node(1, 100))
    hold(link, 0)
    link.event(1, reconf(priority=200))  # would preempt a 150 master under Always
    link.run_until(30.0)
    assert link.masters() == [0] and link.routers[0].held
    assert link.routers[0].hold(link.now) == []  # a second hold is a no-op


def test_the_address_owner_keeps_255_and_cannot_be_outranked() -> None:
    link = started(node(0, 255), node(1, 100))
    with pytest.raises(HoldRefused, match=r"192\.168\.77\.10 advertises priority 255"):
        link.routers[1].hold(link.now)
    assert link.masters() == [0] and not link.routers[1].held
    hold(link, 0)
    assert link.routers[0].effective_priority == 255


@pytest.mark.parametrize(("holder", "wins"), [(1, True), (0, False)])
def test_two_holds_at_254_go_by_address(holder: int, wins: bool) -> None:
    link = started(node(0, 150), node(1, 100), node(2, 50))
    other = 1 - holder
    hold(link, 2)
    assert link.masters() == [2]
    # node 2 has the highest address: a later hold elsewhere is refused
    with pytest.raises(HoldRefused, match=r"192\.168\.77\.12 advertises priority 254"):
        link.routers[other].hold(link.now)
    release(link, 2)
    assert link.masters() == [0]
    hold(link, 1)
    assert link.masters() == [1]
    if wins:
        return
    with pytest.raises(HoldRefused, match=r"192\.168\.77\.11 advertises priority 254"):
        link.routers[0].hold(link.now)


@pytest.mark.parametrize("state", ["init", "fault", "stopping"])
def test_a_router_that_cannot_take_over_refuses(state: str) -> None:
    r = VirtualRouter(node(0, 100))
    if state != "init":
        r.start(0.0, fault=state == "fault")
    if state == "stopping":
        r.handle_timer(10.0)
        r.shutdown(10.0)
    with pytest.raises(HoldRefused, match="only a BACKUP or MASTER can take over"):
        r.hold(11.0)
    assert not r.held


def test_a_held_backup_holder_announces_before_it_advertises() -> None:
    r = VirtualRouter(node(0, 100))
    r.start(0.0)
    actions = r.hold(1.0)
    assert [type(a) for a in actions][1:] == [AddAddresses, Announce, SendAdvertisement]
    assert actions[-1] == SendAdvertisement(
        VirtualRouter(node(0, 100))._advertisement(HOLD_PRIORITY)
    )


EVENTS = st.sampled_from(["hold", "release", "fault", "clear", "drop", "rise", "timer", "stop"])


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 2), EVENTS, st.integers(0, 300)), max_size=25))
def test_a_hold_is_only_ever_on_a_live_master_and_one_master_remains(
    steps: list[tuple[int, str, int]],
) -> None:
    link = started(node(0, 150), node(1, 100, preempt=NEVER), node(2, 120, preempt=DELAY))
    for i, what, dt in steps:
        link.run_until(link.now + dt / 100)
        r = link.routers[i]
        if what == "hold":
            try:
                hold(link, i)
            except HoldRefused:
                # Refused only where it cannot take or keep the addresses: not a master, or
                # a master handing over on shutdown (still MASTER until a successor speaks).
                assert r.state is not State.MASTER or r.stopping
        elif what == "release":
            release(link, i)
        elif what in ("fault", "clear"):
            link.event(i, Fault(what == "fault"))
        elif what in ("drop", "rise"):
            link.event(i, Prio(r.config.priority + (-60 if what == "drop" else 0)))
        elif what == "stop":
            link.event(i, Shutdown())
        for other in link.routers:
            if other.held:
                assert other.state is State.MASTER and not other.stopping
                assert other.effective_priority == HOLD_PRIORITY
    link.run_until(link.now + 10.0)
    live = [r for r in link.routers if r.state in (State.BACKUP, State.MASTER)]
    assert len(link.masters()) == (1 if live else 0)
    assert sum(link.holding) == len(link.masters())
    held = [i for i, r in enumerate(link.routers) if r.held]
    assert held in ([], link.masters())
