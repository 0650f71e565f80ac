"""Probe hysteresis and weight arithmetic, as keepalived's vrrp_script does them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vrrpd.config import ExecCheck, FileCheck, ProbeConfig
from vrrpd.probes.tracking import (
    Fault,
    Pending,
    Priority,
    ProbeState,
    ProbeTracker,
    Result,
    effective_priority,
    shared_priority,
    tracker_for,
)

UP, DOWN, INIT = ProbeState.UP, ProbeState.DOWN, ProbeState.INIT


def tracker(
    weight: int, *, up: bool | None, rise: int = 1, fall: int = 1, name: str = "chk"
) -> ProbeTracker:
    """A tracker already in a settled state (or INIT for up=None)."""
    return ProbeTracker(name, rise=rise, fall=fall, weight=weight, initially_up=up)


def value(result: Result) -> int:
    assert isinstance(result, Priority), result
    return result.value


# --- hysteresis -------------------------------------------------------------------------------


def states(t: ProbeTracker, results: str) -> str:
    """Feed '+'/'-' results; return the state after each as U/D."""
    out = []
    for r in results:
        t.record(r == "+")
        out.append("U" if t.state is UP else "D")
    return "".join(out)


@pytest.mark.parametrize(
    ("initially_up", "rise", "fall", "results", "expected"),
    [
        # keepalived default (INIT): the first result decides, whatever rise and fall are
        (None, 3, 3, "+", "U"),
        (None, 3, 3, "-", "D"),
        (None, 3, 3, "-++", "DDD"),  # ... and after that a down probe needs `rise` successes
        (None, 3, 3, "-+++", "DDDU"),
        (None, 2, 3, "+--", "UUU"),  # an up probe needs `fall` failures
        (None, 2, 3, "+---", "UUUD"),
        # init_fail: starts down, needs `rise` successes
        (False, 2, 3, "+", "D"),
        (False, 2, 3, "++", "DU"),
        (False, 1, 1, "+", "U"),
        # initially up: needs `fall` failures
        (True, 2, 3, "--", "UU"),
        (True, 2, 3, "---", "UUD"),
        # one contrary result restarts the count (keepalived refills / empties its counter)
        (True, 2, 3, "--+--", "UUUUU"),
        (True, 2, 3, "--+---", "UUUUUD"),
        (False, 3, 1, "++-++", "DDDDD"),
        (False, 3, 1, "++-+++", "DDDDDU"),
        # rise 1 / fall 1 follows every result
        (None, 1, 1, "+-+-", "UDUD"),
    ],
)
def test_rise_fall(
    initially_up: bool | None, rise: int, fall: int, results: str, expected: str
) -> None:
    t = ProbeTracker("chk", rise=rise, fall=fall, weight=-10, initially_up=initially_up)
    assert states(t, results) == expected


def test_flapping_rise2_fall3_never_flips_before_thresholds() -> None:
    t = tracker(-20, up=True, rise=2, fall=3)
    # fail twice, succeed once, repeatedly: never 3 failures in a row
    assert not any(t.record(ok) for ok in [False, False, True] * 20)
    assert t.state is UP
    # three in a row: down, exactly once
    assert [t.record(ok) for ok in [False, False, False]] == [False, False, True]
    # succeed once, fail once, repeatedly: never 2 successes in a row
    assert not any(t.record(ok) for ok in [True, False] * 20)
    assert t.state is DOWN
    assert [t.record(True), t.record(True)] == [False, True]
    assert t.state is UP


def test_record_reports_only_state_changes() -> None:
    t = tracker(-20, up=None, rise=2, fall=2)
    assert t.state is INIT
    assert t.record(True) is True  # leaving INIT is a change
    assert [t.record(True) for _ in range(5)] == [False] * 5
    assert [t.record(False) for _ in range(4)] == [False, True, False, False]


@pytest.mark.parametrize(
    ("rise", "fall", "weight", "message"),
    [(0, 1, 0, "rise"), (1, 0, 0, "fall"), (1, 1, 255, "weight"), (1, 1, -255, "weight")],
)
def test_rejects_impossible_settings(rise: int, fall: int, weight: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProbeTracker("chk", rise=rise, fall=fall, weight=weight)


# --- weight arithmetic ------------------------------------------------------------------------


def test_master_80_weight_minus_20_failing_loses_to_backup_70() -> None:
    master = effective_priority(80, [tracker(-20, up=False)])
    backup = effective_priority(70, [tracker(-20, up=True)])
    assert value(master) == 60
    assert value(backup) == 70
    assert value(master) < value(backup)  # with preempt, the backup takes over
    assert master == Priority(60, base=80, total=60, adjustments=(("chk", -20),))


@pytest.mark.parametrize(
    ("master_up", "backup_up", "master", "backup"),
    [
        (True, True, 103, 102),  # both healthy: the order of the bases stands
        (False, True, 101, 102),  # the master's check fails: the backup is now higher
        (True, False, 103, 100),
        (False, False, 101, 100),  # both failing: back to the bases
    ],
)
def test_weight_plus_2_on_both_nodes(
    master_up: bool, backup_up: bool, master: int, backup: int
) -> None:
    assert value(effective_priority(101, [tracker(2, up=master_up)])) == master
    assert value(effective_priority(100, [tracker(2, up=backup_up)])) == backup


@pytest.mark.parametrize("base", [1, 100, 254, 255])
def test_weight_0_down_is_fault_whatever_the_base(base: int) -> None:
    probes = [
        tracker(0, up=False, name="gw"),
        tracker(0, up=True, name="lb"),
        tracker(-5, up=False),
    ]
    assert effective_priority(base, probes) == Fault(failing=("gw",))


def test_weight_0_up_changes_nothing() -> None:
    assert effective_priority(100, [tracker(0, up=True)]) == Priority(100, 100, 100)


def test_fault_lists_every_failing_weight_0_probe() -> None:
    probes = [tracker(0, up=False, name="a"), tracker(0, up=False, name="b")]
    assert effective_priority(100, probes) == Fault(failing=("a", "b"))


def test_a_sync_group_member_takes_every_members_weights_but_not_their_faults() -> None:
    own = [tracker(-20, up=False, name="mine"), tracker(0, up=True, name="gate")]
    sibling = [tracker(-30, up=False, name="theirs"), tracker(0, up=False, name="down")]
    assert shared_priority(100, [own, sibling]) == Priority(
        50, 100, 50, (("mine", -20), ("theirs", -30))
    )
    assert shared_priority(100, [own]) == effective_priority(100, own[:1])


def test_init_state_weighted_probes_count_for_nothing() -> None:
    # keepalived: a script without a result adds nothing whatever the sign of its weight
    probes = [tracker(30, up=None, name="p"), tracker(-30, up=None, name="n")]
    assert effective_priority(100, probes) == Priority(100, 100, 100)


def test_init_state_weight_0_is_pending_and_fault_wins() -> None:
    assert effective_priority(100, [tracker(0, up=None, name="w")]) == Pending(awaiting=("w",))
    probes = [tracker(0, up=None, name="w"), tracker(0, up=False, name="x")]
    assert effective_priority(100, probes) == Fault(failing=("x",))


# --- track_file: the number times the weight --------------------------------------------------


def file_tracker(weight: int, value: int | None = None, name: str = "f") -> ProbeTracker:
    return ProbeTracker(name, 1, 1, weight, scaled=True, value=value)


@pytest.mark.parametrize(
    ("weight", "number", "expected"),
    [
        # keepalived track_file.c: the product, held to [-254, 253], is added...
        (-10, 0, Priority(100, 100, 100)),
        (-10, 1, Priority(90, 100, 90, (("f", -10),))),
        (-10, 3, Priority(70, 100, 70, (("f", -30),))),
        (10, 2, Priority(120, 100, 120, (("f", 20),))),
        (-1, -5, Priority(105, 100, 105, (("f", 5),))),  # a negative number raises it
        (100, 7, Priority(254, 100, 353, (("f", 253),))),  # held to 253, then to 254
        (-20, 12, Priority(1, 100, -140, (("f", -240),))),  # -240 is not the floor yet
        # ... and -254 (the product at or below it) is FAULT
        (-20, 13, Fault(("f",))),
        (-254, 1, Fault(("f",))),
        (2, -127, Fault(("f",))),
        # weight 0: any number but 0 is FAULT, whatever its sign
        (0, 0, Priority(100, 100, 100)),
        (0, 1, Fault(("f",))),
        (0, -1, Fault(("f",))),
    ],
)
def test_track_file_number_times_weight(weight: int, number: int, expected: Result) -> None:
    assert effective_priority(100, [file_tracker(weight, number)]) == expected


def test_track_file_fault_applies_to_an_address_owner_its_weight_does_not() -> None:
    assert effective_priority(255, [file_tracker(-10, 3)]) == Priority(255, 255, 225, (("f", -30),))
    assert effective_priority(255, [file_tracker(0, 1)]) == Fault(("f",))


def test_track_file_record_reports_every_change_of_effect() -> None:
    t = file_tracker(-10)
    assert t.state is INIT and t.contribution() == 0
    assert not t.record(False, None)  # unreadable before any number: still INIT
    assert t.state is INIT
    assert t.record(True, 0) and t.state is UP  # INIT -> UP
    assert not t.record(True, 0)
    assert t.record(False, 2) and t.contribution() == -20  # still UP, a new effect
    assert not t.record(False, None) and t.value == 2  # an unreadable number changes nothing
    assert t.record(False, 30) and t.state is DOWN and t.faulting  # -300: FAULT
    assert not t.record(False, 40)  # still FAULT, still nothing added
    assert t.record(True, 0) and t.state is UP and t.contribution() == 0


def test_track_file_weight_0_init_is_pending_like_a_script() -> None:
    assert effective_priority(100, [file_tracker(0)]) == Pending(("f",))
    assert effective_priority(100, [file_tracker(-5)]) == Priority(100, 100, 100)


def test_track_file_at_its_floor_faults_its_member_not_the_groups_sum() -> None:
    own = [file_tracker(-10, 1, name="mine")]
    sibling = [file_tracker(-100, 3, name="theirs")]  # -300: the sibling's FAULT
    assert effective_priority(100, sibling) == Fault(("theirs",))
    assert shared_priority(100, [own, sibling]) == Priority(90, 100, 90, (("mine", -10),))


def test_tracker_for_scales_file_probes_only() -> None:
    def probe(check: ExecCheck | FileCheck) -> ProbeConfig:
        return ProbeConfig("p", check, 100, 100, rise=2, fall=3, weight=-5)

    assert tracker_for(probe(FileCheck("/run/x")), value=4).contribution() == -20
    script = tracker_for(probe(ExecCheck(("true",))), initially_up=False)
    assert not script.scaled and script.contribution() == -5


@pytest.mark.parametrize(
    ("base", "weights_up", "expected", "total"),
    [
        (10, [(-50, False)], 1, -40),  # never below 1: 0 would mean "I resign"
        (1, [(-1, False)], 1, 0),
        (250, [(10, True)], 254, 260),  # never 255: that would claim address ownership
        (200, [(30, True), (30, True)], 254, 260),
        (200, [(30, True), (-100, False)], 130, 130),
        (255, [(-100, False)], 255, 155),  # an address owner is never adjusted
        (255, [(10, True)], 255, 265),
    ],
)
def test_clamping(base: int, weights_up: list[tuple[int, bool]], expected: int, total: int) -> None:
    probes = [tracker(w, up=u, name=f"p{i}") for i, (w, u) in enumerate(weights_up)]
    result = effective_priority(base, probes)
    assert isinstance(result, Priority)
    assert (result.value, result.total) == (expected, total)


@pytest.mark.parametrize("base", [0, 256, -1])
def test_rejects_base_out_of_range(base: int) -> None:
    with pytest.raises(ValueError, match="base priority"):
        effective_priority(base, [])


def test_failing_probe_changes_priority_once_not_per_result() -> None:
    t = tracker(-20, up=True)
    t.record(False)
    first = effective_priority(80, [t])
    for _ in range(50):
        t.record(False)
        assert effective_priority(80, [t]) == first == Priority(60, 80, 60, (("chk", -20),))
    t.record(True)
    assert value(effective_priority(80, [t])) == 80  # recovery restores exactly the base


# --- properties -------------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> tuple[int, int, bool | None, list[bool]]:
    rise = draw(st.integers(1, 6))
    fall = draw(st.integers(1, 6))
    init = draw(st.sampled_from([None, True, False]))
    results = draw(st.lists(st.booleans(), max_size=60))
    return rise, fall, init, results


@given(configs())
def test_state_never_changes_faster_than_thresholds(
    config: tuple[int, int, bool | None, list[bool]],
) -> None:
    rise, fall, init, results = config
    t = ProbeTracker("chk", rise=rise, fall=fall, weight=-1, initially_up=init)
    for i, ok in enumerate(results):
        before = t.state
        changed = t.record(ok)
        assert changed == (t.state is not before)
        assert t.state is (UP if ok else DOWN) or not changed  # a result only moves toward itself
        streak = results[: i + 1]
        if changed and before is not INIT:
            needed = rise if ok else fall
            assert len(streak) >= needed and set(streak[-needed:]) == {ok}
        if before is INIT:
            assert changed and t.state is (UP if ok else DOWN)  # the first result decides


@given(configs())
def test_state_matches_a_plain_streak_model(
    config: tuple[int, int, bool | None, list[bool]],
) -> None:
    # An independent statement of the rule: flip after `rise` / `fall` equal results in a row.
    rise, fall, init, results = config
    t = ProbeTracker("chk", rise=rise, fall=fall, weight=-1, initially_up=init)
    model: ProbeState = {None: INIT, True: UP, False: DOWN}[init]
    streak = 0
    for ok in results:
        if model is INIT:
            model, streak = (UP if ok else DOWN), 0
        elif (model is UP) == ok:
            streak = 0
        else:
            streak += 1
            if streak == (rise if ok else fall):
                model, streak = (UP if ok else DOWN), 0
        t.record(ok)
        assert t.state is model


probe_specs = st.lists(
    st.tuples(st.integers(-254, 254), st.sampled_from([None, True, False])), max_size=8
)


@given(st.integers(1, 254), probe_specs)
def test_effective_priority_is_in_range_or_fault(
    base: int, specs: list[tuple[int, bool | None]]
) -> None:
    probes = [tracker(w, up=u, name=f"p{i}") for i, (w, u) in enumerate(specs)]
    result = effective_priority(base, probes)
    if any(w == 0 and u is False for w, u in specs):
        assert isinstance(result, Fault)
    elif any(w == 0 and u is None for w, u in specs):
        assert isinstance(result, Pending)
    else:
        assert isinstance(result, Priority)
        assert 1 <= result.value <= 254
        assert result.total == base + sum(
            w for w, u in specs if (w > 0 and u is True) or (w < 0 and u is False)
        )


# --- layering ---------------------------------------------------------------------------------


def test_tracking_is_pure() -> None:
    # Same rule as tests/unit/test_layering.py applies to the sans-I/O core.
    path = Path(__file__).resolve().parents[2] / "vrrpd" / "probes" / "tracking.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.module == "vrrpd.limits" else node.module.split(".")[0])
    allowed = {"__future__", "collections", "dataclasses", "enum", "typing", "vrrpd.limits"}
    assert names <= allowed, names
