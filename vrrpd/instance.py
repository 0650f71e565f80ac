"""One running VRRP instance as the driver keeps it: its configuration, its state machine,
its fault sources and probes, and what it has scheduled (timer, GARP bursts, pending
address changes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vrrpd.config import InstanceConfig
from vrrpd.limits import IPAddress, IPInterface
from vrrpd.notify import Notifier
from vrrpd.probes.runners import ProbeOutcome
from vrrpd.probes.tracking import ProbeTracker
from vrrpd.vrrp.fsm import RouterConfig, State, VirtualRouter
from vrrpd.vrrp.splitbrain import Conflict, SplitBrainDetector

SocketKey = tuple[str, int]  # (interface, address family)


@dataclass(eq=False)
class Instance:
    config: InstanceConfig
    ifname: str
    primary: IPAddress
    rconfig: RouterConfig
    router: VirtualRouter
    timer: asyncio.TimerHandle | None = None
    announcements: list[asyncio.TimerHandle] = field(default_factory=list)
    stopped: asyncio.Future[None] | None = None
    holds_addresses: bool = False
    vmac: str | None = None  # the virtual MAC interface carrying the VIPs and adverts
    since: float = 0.0  # wall clock (Unix seconds) of the last transition, fixed there
    last_reason: str = ""
    transitions: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    # Why the instance must be in FAULT, by source (vrrpd.standing). Empty: it may run.
    faults: dict[str, str] = field(default_factory=dict)
    trackers: dict[str, ProbeTracker] = field(default_factory=dict)
    outcomes: dict[str, ProbeOutcome] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # probe loops by name
    peers_seen: dict[str, tuple[int, float]] = field(default_factory=dict)
    notifier: Notifier | None = None
    split: SplitBrainDetector = field(default_factory=SplitBrainDetector)  # while MASTER
    # Actions waiting for an address change to reach the kernel (see Effects.run).
    effects: asyncio.Task[None] | None = None

    @property
    def labels(self) -> dict[str, Any]:
        """keepalived-exporter's labels for this instance."""
        return {"iname": self.config.name, "intf": self.ifname, "vrid": self.config.vrid}

    def where(self, address: IPInterface) -> str:
        """The interface this VIP goes on (spec.addressInterfaces, else the instance's or
        its virtual MAC interface)."""
        return self.config.interface_of(address, self.vmac or self.ifname)

    @property
    def key(self) -> SocketKey:
        return (self.vmac or self.ifname, self.config.family)

    @property
    def state(self) -> State:
        return self.router.state

    def status(self, unix: Callable[[float], float]) -> dict[str, Any]:
        """Its row of the /status document: where it is and why. `unix` converts the loop's
        clock (peers' last adverts) to Unix seconds."""
        master = self.router.master_address
        return {
            "name": self.config.name,
            "virtualip": self.config.virtualip,
            "vrid": self.config.vrid,
            "interface": self.ifname,
            "addresses": [str(a) for a in self.config.addresses],
            "state": str(self.state),
            "priority": self.config.priority,
            "effectivePriority": self.router.effective_priority,
            "master": None if master is None else str(master),
            "since": self.since,
            "reason": self.last_reason,
            "faults": list(self.faults.values()),
            "transitions": self.transitions,
            "probes": [
                {
                    "name": name,
                    "state": str(tracker.state),
                    "weight": tracker.weight,
                    "ok": None if (o := self.outcomes.get(name)) is None else o.ok,
                    "detail": None if o is None else o.detail,
                    "latencySeconds": None if o is None else round(o.latency_s, 6),
                }
                for name, tracker in self.trackers.items()
            ],
            "peers": [
                {"address": addr, "priority": prio, "lastSeen": unix(seen)}
                for addr, (prio, seen) in sorted(self.peers_seen.items())
            ],
            "drops": dict(self.drops),
            "splitBrain": _split_status(self.split.conflict, unix),
            "syncGroup": self.config.sync_group,
            "readiness": self.config.readiness,
            "held": self.router.held,
            "holdEnded": self.router.hold_ended,
        }


def _split_status(
    conflict: Conflict | None, unix: Callable[[float], float]
) -> dict[str, Any] | None:
    if conflict is None:
        return None
    return {
        "evidence": conflict.evidence,
        "peer": conflict.peer,
        "detail": conflict.describe(),
        "since": unix(conflict.since),
    }
