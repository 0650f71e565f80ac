"""An instance's standing (vrrpd.standing): fault sources, probe weights, sync-group rules,
on plain members and real state machines: no socket, no sleep, no root."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, ip_interface

import pytest

from vrrpd import standing
from vrrpd.config import GarpConfig, InstanceConfig
from vrrpd.probes.tracking import ProbeTracker
from vrrpd.vrrp.fsm import PreemptMode, RouterConfig, State, Transition, VirtualRouter
from vrrpd.vrrp.packet import Advertisement

OURS = IPv4Address("10.0.0.1")
HIGHER = IPv4Address("10.0.0.2")


def config(
    name: str, *, group: str | None = None, priority: int = 100, track: tuple[str, ...] = ()
) -> InstanceConfig:
    return InstanceConfig(
        name=name,
        virtualip=name.rsplit("/", 1)[0],
        family=4,
        vrid=7,
        version=3,
        priority=priority,
        advert_interval_cs=100,
        addresses=(ip_interface("10.0.0.100/24"),),
        interface="eth0",
        label=None,
        preempt=PreemptMode.ALWAYS,
        preempt_delay_cs=0,
        accept=True,
        unicast=False,
        source_address=None,
        peers=(),
        auth_password=None,
        garp=GarpConfig(),
        track_interfaces=track,
        sync_group=group,
    )


@dataclass
class Member:
    config: InstanceConfig
    router: VirtualRouter
    faults: dict[str, str] = field(default_factory=dict)
    trackers: dict[str, ProbeTracker] = field(default_factory=dict)


def member(name: str, *, group: str | None = None, priority: int = 100) -> Member:
    c = config(name, group=group, priority=priority)
    rc = RouterConfig(
        vrid=7,
        version=3,
        priority=priority,
        advert_interval_cs=100,
        addresses=(IPv4Address("10.0.0.100"),),
        primary_address=OURS,
    )
    return Member(c, VirtualRouter(rc))


def probe(name: str, weight: int, up: bool | None) -> ProbeTracker:
    t = ProbeTracker(name, rise=1, fall=1, weight=weight)
    if up is not None:
        t.record(up)
    return t


def hear(m: Member, priority: int, now: float = 1.0) -> None:
    """The member (started) hears a master at `priority`."""
    ad = Advertisement(version=3, vrid=7, priority=priority, advert_interval_cs=100,
                       addresses=(IPv4Address("10.0.0.100"),))  # fmt: skip
    m.router.receive(ad, HIGHER, now)


def test_fault_sources_are_set_and_cleared_one_by_one() -> None:
    faults: dict[str, str] = {}
    assert standing.set_fault(faults, standing.LINK, "link eth0 down")
    assert not standing.set_fault(faults, standing.LINK, "link eth0 down")  # no news
    assert standing.set_fault(faults, standing.tracked("eth1"), "tracked interface eth1 down")
    assert standing.fault_reason(faults, "clear") == "link eth0 down; tracked interface eth1 down"
    assert standing.set_fault(faults, standing.LINK, None)
    assert not standing.set_fault(faults, standing.LINK, None)
    assert faults == {"interface eth1": "tracked interface eth1 down"}  # the other still holds
    assert standing.set_fault(faults, "interface eth1", None)
    assert standing.fault_reason(faults, "link eth0 up") == "link eth0 up"


def test_an_instance_starts_with_its_links_faults() -> None:
    up = {"eth0": False, "eth1": True, "eth2": False}.__getitem__
    assert standing.link_faults(config("a", track=("eth1", "eth2")), "eth0", up) == {
        "link": "link eth0 down",
        "interface eth2": "tracked interface eth2 down",
    }
    assert standing.link_faults(config("a"), "eth1", up) == {}


def test_a_reload_forgets_untracked_interfaces_and_checks_new_ones() -> None:
    faults = {"interface eth1": "tracked interface eth1 down", "link": "link eth0 down"}
    old, new = config("a", track=("eth1",)), config("a", track=("eth2", "eth3"))
    standing.retrack(faults, old, new, {"eth2": False, "eth3": True}.__getitem__)
    assert faults == {"link": "link eth0 down", "interface eth2": "tracked interface eth2 down"}


def test_without_probes_the_base_priority_stands() -> None:
    assert standing.probe_standing(member("a"), []) == (None, None)


def test_weights_move_the_priority_and_a_failing_weight_0_probe_faults() -> None:
    m = member("a")
    m.trackers = {"up": probe("up", 20, True), "down": probe("down", -50, False)}
    assert standing.probe_standing(m, []) == (None, 70)
    m.trackers["gate"] = probe("gate", 0, False)
    # The FAULT holds the instance; the weights still give the priority it will join with.
    assert standing.assess_probes(m, []) == (True, 70)
    assert m.faults == {"probes": "probe gate failing"}
    assert standing.assess_probes(m, []) == (False, 70)  # unchanged: no news
    m.trackers["gate"].record(True)
    assert standing.assess_probes(m, []) == (True, 70) and m.faults == {}


def test_an_unheard_weight_0_probe_holds_only_an_instance_that_has_not_joined() -> None:
    m = member("a")
    m.trackers = {"gate": probe("gate", 0, None)}
    assert standing.probe_standing(m, []) == ("waiting for probe gate", 100)
    m.router.start(0.0)  # joined as BACKUP: a probe added by a reload does not pull it out
    assert standing.probe_standing(m, []) == (None, 100)


def test_a_sync_group_shares_weights_but_not_weight_0_faults() -> None:
    a, b = member("a", group="g"), member("b", group="g", priority=90)
    b.trackers = {"w": probe("w", -30, False), "gate": probe("gate", 0, False)}
    assert standing.probe_standing(a, [b]) == (None, 70)
    assert standing.probe_standing(b, [a]) == ("probe gate failing", 60)


def test_an_instance_is_unhealthy_in_fault_or_with_a_probe_not_passing() -> None:
    m = member("a")
    m.router.start(0.0)
    assert standing.unhealthy(m) is None
    m.trackers = {"web": probe("web", 10, None)}
    assert standing.unhealthy(m) == "probe web not passing"
    m.faults = {"link": "link eth0 down"}
    m.router.set_fault(True, "link eth0 down", 1.0)
    assert standing.unhealthy(m) == "in FAULT: link eth0 down"


def test_group_of_is_the_other_members_of_the_same_group() -> None:
    a, b, c, d = member("a", group="g"), member("b", group="g"), member("c", group="h"), member("d")
    everyone = [a, b, c, d]
    assert standing.group_of(a, everyone) == [b]
    assert standing.group_of(c, everyone) == [] and standing.group_of(d, everyone) == []


def test_a_member_with_a_fault_of_its_own_puts_the_group_in_fault() -> None:
    members = [member(f"ns/{n}", group="ns/g") for n in "abc"]
    a, b, c = members
    assert [standing.sync_fault(m, members) for m in members] == [None, None, None]
    b.faults = {"link": "link eth0 down"}
    a.faults = c.faults = {"sync": "sync group ns/g: ns/b in FAULT"}  # not a fault of their own
    assert standing.sync_fault(a, members) == "sync group ns/g: ns/b in FAULT"
    assert standing.sync_fault(b, members) is None  # b's own fault is no sync fault of b
    assert standing.sync_cleared(a) == "sync group ns/g clear"


def test_siblings_do_not_preempt_while_one_member_yields_to_a_higher_master() -> None:
    a, b = member("a", group="g"), member("b", group="g")
    for m in (a, b):
        m.router.start(0.0)
    assert not any(standing.preempt_held(m, [a, b]) for m in (a, b))
    hear(a, 150)  # a yields to a higher master
    assert standing.preempt_held(b, [a, b]) and not standing.preempt_held(a, [a, b])
    hear(a, 50)  # a lower master is not yielded to
    assert not standing.preempt_held(b, [a, b])


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (State.BACKUP, State.MASTER, (State.MASTER, "sync group g: a became MASTER")),
        (State.INITIALIZE, State.MASTER, (State.MASTER, "sync group g: a became MASTER")),
        (State.MASTER, State.BACKUP, (State.BACKUP, "sync group g: a fell back to BACKUP")),
        (State.MASTER, State.FAULT, None),  # the sync fault carries that one
        (State.INITIALIZE, State.BACKUP, None),
    ],
)
def test_members_follow_into_master_and_back_into_backup(
    old: State, new: State, expected: tuple[State, str] | None
) -> None:
    assert standing.follow(member("a", group="g"), Transition(old, new, "why")) == expected


def test_readiness_is_healthy_candidates_or_the_vip_held_where_master_is_asked() -> None:
    assert standing.readiness([]) == (False, "no VRRP instance configured for this node")
    a, b = member("ns/a"), member("ns/b")
    for m in (a, b):
        m.router.start(0.0)
    assert standing.readiness([a, b]) == (True, "2 instance(s) healthy")
    b.trackers = {"web": probe("web", 10, False)}
    assert standing.readiness([a, b]) == (False, "ns/b: probe web not passing")
    b.trackers = {}
    b.config = replace(b.config, readiness="Master")
    assert standing.readiness([a, b]) == (False, "ns/b is BACKUP, readiness Master")
    b.router.handle_timer(10.0)  # master down timer: b takes over
    assert standing.readiness([a, b]) == (True, "2 instance(s) healthy")
