"""The asyncio driver: runs VRRP instances and carries out what their state machines decide.

Each instance is a sans-I/O `VirtualRouter`; this module owns the one timer per instance
(re-armed from `next_deadline()` after every event), the shared raw sockets (one per
interface and family, demultiplexed by VRID), the netlink link events, gratuitous ARP /
unsolicited NA bursts, live reload by difference, and the make-before-break shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from ipaddress import ip_address
from typing import Any

from vrrpd import standing
from vrrpd.config import InstanceConfig
from vrrpd.limits import IPAddress, IPInterface
from vrrpd.metrics import DaemonMetrics
from vrrpd.notify import Notifier
from vrrpd.ports import AdvertSocket, Packet, Ports
from vrrpd.probes.runners import ProbeOutcome, probe_for, run_forever
from vrrpd.probes.tracking import ProbeState, ProbeTracker
from vrrpd.vrrp import packet, receive
from vrrpd.vrrp.fsm import (
    Action,
    AddAddresses,
    Announce,
    RemoveAddresses,
    RouterConfig,
    SendAdvertisement,
    State,
    Stopped,
    Transition,
    VirtualRouter,
)

log = logging.getLogger("vrrpd")

SocketKey = tuple[str, int]  # (interface, address family)


class StartupError(Exception):
    """An instance cannot run on this host as configured (no interface, no address)."""


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
    # Actions waiting for an address change to reach the kernel (see Daemon._run).
    effects: asyncio.Task[None] | None = None

    @property
    def labels(self) -> dict[str, Any]:
        """keepalived-exporter's labels for this instance."""
        return {"iname": self.config.name, "intf": self.ifname, "vrid": self.config.vrid}

    @property
    def key(self) -> SocketKey:
        return (self.ifname, self.config.family)

    @property
    def state(self) -> State:
        return self.router.state


@dataclass(frozen=True)
class ApplyResult:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # reconfigured in place, or restarted (also in `restarted`)
    unchanged: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()


# What only a new router can change: another VRID, version or family is another router on
# the wire, other addresses or label another set of VIPs to hand over, another source
# address another tie-breaker. (A different interface, which needs another socket, is
# compared once resolved.) Everything else is applied in place: no re-election.
RESTART_FIELDS = ("vrid", "version", "family", "addresses", "label", "source_address")


class Daemon:
    def __init__(self, ports: Ports, *, node: str, metrics: DaemonMetrics | None = None) -> None:
        self.ports = ports
        self.node = node
        self.metrics = metrics or DaemonMetrics()
        self.metrics.on_scrape(self._collect_priorities)
        self._closing: set[asyncio.Task[None]] = set()  # notifiers delivering their last events
        self.instances: dict[str, Instance] = {}
        # Instances handing over (shutdown in progress) and the configs waiting for them.
        self._retiring: dict[str, Instance] = {}
        self._pending: dict[str, InstanceConfig] = {}
        self._sockets: dict[SocketKey, AdvertSocket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # ---------------------------------------------------------------- lifecycle

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    async def start(self, configs: Iterable[InstanceConfig]) -> ApplyResult:
        """Clear what a killed predecessor left, then join every instance as BACKUP.

        `vrrpd run` removes marked leftovers before it even validates its file
        (vrrpd.net.startup); what remains here is the fallback for kernels that keep no
        mark: the configured VIPs found on their interfaces.
        """
        configs = list(configs)
        vips = []
        for config in configs:
            ifname = self._resolve_interface(config)  # fail before touching the host
            vips += [(ifname, address) for address in config.addresses]
        for ifname, address in await self.ports.addresses.remove_leftovers(vips):
            log_leftover(ifname, address)
        if self.ports.links is not None:
            self.ports.links.subscribe(self._on_link_events)
        return self.apply(configs)

    def apply(self, configs: Iterable[InstanceConfig]) -> ApplyResult:
        """Reload by difference: unchanged instances keep their state, and so do instances
        whose change can be applied in place (priority, interval, preempt, probes, ...: no
        re-election); only what makes another router (RESTART_FIELDS, the interface)
        restarts one, with a make-before-break handover."""
        wanted = {c.name: c for c in configs}
        added, removed, changed, unchanged, failed, restarted = [], [], [], [], [], []
        for name in list(self.instances):
            if name not in wanted:
                removed.append(name)
                self._retire(self.instances.pop(name), "removed from the configuration")
        for name, config in wanted.items():
            current = self.instances.get(name)
            if current is not None and current.config == config:
                unchanged.append(name)
                continue
            if current is not None and self._readdressable(current, config):
                changed.append(name)
                self._readdress(current, config)
                continue
            if current is not None:
                changed.append(name)
                why = self._restart_reason(current, config)
                if why is None:
                    self._reconfigure(current, config)
                    continue
                restarted.append(name)
                del self.instances[name]
                self._pending[name] = config
                self._retire(current, f"configuration changed: {why}")
                continue
            if name in self._retiring:  # re-added while its old self still hands over
                self._pending[name] = config
                added.append(name)
                continue
            try:
                self._launch(config)
                added.append(name)
            except StartupError as exc:
                log.error("instance %s not started: %s", name, exc)
                failed.append(name)
        for name in list(self._pending):
            if name not in wanted:
                del self._pending[name]
        result = ApplyResult(
            *(tuple(x) for x in (added, removed, changed, unchanged, failed, restarted))
        )
        log.info(
            "configuration applied: %d added, %d removed, %d changed, %d unchanged, %d failed"
            " (%d restarted)",
            len(added),
            len(removed),
            len(changed),
            len(unchanged),
            len(failed),
            len(restarted),
        )
        return result

    async def shutdown(self) -> None:
        """Hand every held VIP over (priority 0, keep it until the new master speaks), then exit."""
        self._stopping = True
        self._pending.clear()
        for name in list(self.instances):
            self._retire(self.instances.pop(name), "daemon stopping")
        waits = [i.stopped for i in self._retiring.values() if i.stopped is not None]
        if waits:
            await asyncio.gather(*waits)
        if self._closing:  # the STOP notifications go out before we exit
            await asyncio.gather(*self._closing, return_exceptions=True)
        self.close()

    async def abort(self) -> None:
        """Second signal during a handover: drop the VIPs now and leave."""
        everyone = [*self.instances.values(), *self._retiring.values()]
        for inst in everyone:
            self._cancel_timers(inst)
            if inst.effects is not None:
                inst.effects.cancel()
        for inst in everyone:
            if inst.holds_addresses:
                await self._remove_addresses(inst)
            if inst.stopped is not None and not inst.stopped.done():
                inst.stopped.set_result(None)
        self.instances.clear()
        self._retiring.clear()
        self.close()

    def close(self) -> None:
        for key in list(self._sockets):
            self._close_socket(key)
        self.ports.announcer.close()
        if self.ports.links is not None:
            self.ports.links.close()

    # ---------------------------------------------------------------- status

    def _unix(self, loop_time: float) -> float:
        return time.time() - (self.now() - loop_time)

    def status(self) -> dict[str, Any]:
        """The /status document: every instance with why it is where it is."""
        rows = []
        for inst in sorted(self.instances.values(), key=lambda i: i.config.name):
            master = inst.router.master_address
            rows.append(
                {
                    "name": inst.config.name,
                    "virtualip": inst.config.virtualip,
                    "vrid": inst.config.vrid,
                    "interface": inst.ifname,
                    "addresses": [str(a) for a in inst.config.addresses],
                    "state": str(inst.state),
                    "priority": inst.config.priority,
                    "effectivePriority": inst.router.effective_priority,
                    "master": None if master is None else str(master),
                    "since": inst.since,
                    "reason": inst.last_reason,
                    "faults": list(inst.faults.values()),
                    "transitions": inst.transitions,
                    "probes": [
                        {
                            "name": name,
                            "state": str(tracker.state),
                            "weight": tracker.weight,
                            "ok": None if (o := inst.outcomes.get(name)) is None else o.ok,
                            "detail": None if o is None else o.detail,
                            "latencySeconds": None if o is None else round(o.latency_s, 6),
                        }
                        for name, tracker in inst.trackers.items()
                    ],
                    "peers": [
                        {"address": addr, "priority": prio, "lastSeen": self._unix(seen)}
                        for addr, (prio, seen) in sorted(inst.peers_seen.items())
                    ],
                    "drops": dict(inst.drops),
                    "syncGroup": inst.config.sync_group,
                    "readiness": inst.config.readiness,
                }
            )
        return {"node": self.node, "instances": rows}

    def health(self) -> dict[str, bool]:
        return {name: standing.unhealthy(inst) is None for name, inst in self.instances.items()}

    def readiness(self) -> tuple[bool, str]:
        """Pod readiness: this node is a healthy candidate (Healthy) or holds the VIP (Master)."""
        if not self.instances:
            return False, "no VRRP instance configured for this node"
        for inst in self.instances.values():
            if (why := standing.unhealthy(inst)) is not None:
                return False, f"{inst.config.name}: {why}"
            if inst.config.readiness == "Master" and inst.state != State.MASTER:
                return False, f"{inst.config.name} is {inst.state}, readiness Master"
        return True, f"{len(self.instances)} instance(s) healthy"

    def _collect_priorities(self) -> None:
        for inst in self.instances.values():
            gauge = self.metrics.effective_priority.labels(iname=inst.config.name)
            gauge.set(inst.router.effective_priority)

    # ---------------------------------------------------------------- instances

    def _resolve_interface(self, config: InstanceConfig) -> str:
        if config.interface is not None:
            return config.interface
        ifname = self.ports.addresses.interface_for(config.addresses[0])
        if ifname is None:
            raise StartupError(
                f"{config.name}: no interface has a subnet holding {config.addresses[0]}; "
                "set spec.interface"
            )
        return ifname

    def _launch(self, config: InstanceConfig) -> Instance:
        ifname = self._resolve_interface(config)
        key = (ifname, config.family)
        for other in [*self.instances.values(), *self._retiring.values()]:
            if other.key == key and other.config.vrid == config.vrid:
                raise StartupError(
                    f"VRID {config.vrid} on {ifname} (IPv{config.family}) is already used by "
                    f"{other.config.name}; pick another spec.vrid"
                )
        primary = config.source_address or self.ports.addresses.primary_address(
            ifname, config.family
        )
        link_up = self.ports.addresses.link_up(ifname)
        if primary is None and link_up:
            raise StartupError(
                f"{config.name}: {ifname} has no IPv{config.family} address to send adverts "
                "from" + (" (IPv6 needs a link-local address)" if config.family == 6 else "")
            )
        rconfig = _router_config(config, primary or _unspecified(config.family))
        inst = Instance(
            config=config,
            ifname=ifname,
            primary=rconfig.primary_address,
            rconfig=rconfig,
            router=VirtualRouter(rconfig),
            since=time.time(),
        )
        self._socket(key)
        self.instances[config.name] = inst
        if config.notify is not None:
            inst.notifier = Notifier(
                config.notify, instance=config.name, group=config.sync_group, node=self.node
            )
        inst.faults = standing.link_faults(config, ifname, self.ports.addresses.link_up)
        for probe in config.probes:
            inst.trackers[probe.name] = ProbeTracker(
                probe.name, probe.rise, probe.fall, probe.weight
            )
        self._assess_probes(inst)
        log.info(
            "instance %s: VRID %d v%d on %s from %s, priority %d, advert %d cs, %s",
            config.name,
            config.vrid,
            config.version,
            ifname,
            inst.primary,
            config.priority,
            config.advert_interval_cs,
            "unicast to " + ", ".join(map(str, config.peers)) if config.unicast else "multicast",
        )
        self._run(inst, inst.router.start(self.now(), fault=bool(inst.faults)))
        if inst.faults:
            log.info(
                "instance %s: waiting in FAULT: %s", config.name, "; ".join(inst.faults.values())
            )
        for probe in config.probes:
            inst.tasks[probe.name] = asyncio.create_task(self._probe_loop(inst, probe.name))
        self._sync_faults(inst)
        return inst

    def _restart_reason(self, inst: Instance, config: InstanceConfig) -> str | None:
        """Why `config` needs a new router for `inst` (None: it can be applied in place)."""
        changed = [f for f in RESTART_FIELDS if getattr(inst.config, f) != getattr(config, f)]
        if changed:
            return ", ".join(changed) + " changed"
        try:
            ifname = self._resolve_interface(config)
        except StartupError as exc:
            return str(exc)
        if ifname != inst.ifname:
            return f"interface {inst.ifname} -> {ifname}"
        return None

    def _reconfigure(self, inst: Instance, config: InstanceConfig) -> None:
        """Apply a new configuration to a running instance: it keeps its state, its VIPs
        and its probes' history; the FSM advertises what changed (RFC 5798 lets a router
        advertise a new priority) and the election takes its ordinary course."""
        old = inst.config
        what = [
            f.name
            for f in fields(InstanceConfig)
            if getattr(old, f.name) != getattr(config, f.name)
        ]
        log.info("instance %s: reconfigured in place, keeping %s (%s changed)",
                 config.name, inst.state, ", ".join(what))  # fmt: skip
        regrouped = {*self._group(inst)}
        inst.config = config
        inst.rconfig = _router_config(config, inst.primary)
        regrouped.update(self._group(inst))
        if old.notify != config.notify:
            self._close_notifier(inst)
            inst.notifier = None
            if config.notify is not None:
                inst.notifier = Notifier(
                    config.notify, instance=config.name, group=config.sync_group, node=self.node
                )
        if old.probes != config.probes:
            self._replace_probes(inst, old)
        standing.retrack(inst.faults, old, config, self.ports.addresses.link_up)
        _, effective = standing.probe_standing(inst, self._group(inst))
        self._run(inst, inst.router.reconfigure(inst.rconfig, self.now(), effective=effective))
        for member in [inst, *regrouped]:
            self._resync(member, "configuration changed")

    def _resync(self, inst: Instance, why: str) -> None:
        """Probe faults, weights and sync-group standing again, after a configuration change
        of the instance or of a member of its old or new sync group."""
        self._assess_probes(inst)
        if not self._group(inst):
            inst.faults.pop(standing.SYNC, None)
            inst.router.inhibit_preempt(False)
        self._apply_faults(inst, why)
        self._sync_faults(inst)
        if inst.config.sync_group is not None:
            self._hold_group(inst)

    def _replace_probes(self, inst: Instance, old: InstanceConfig) -> None:
        """Keep unchanged probes running; a changed one restarts with its state carried over
        (keepalived keeps a script's state over a reload); a new one starts unheard."""
        before = {p.name: p for p in old.probes}
        wanted = {p.name: p for p in inst.config.probes}
        for name, probe in before.items():
            if wanted.get(name) != probe:
                task = inst.tasks.pop(name, None)
                if task is not None:
                    task.cancel()
            if name not in wanted:
                inst.trackers.pop(name, None)
                inst.outcomes.pop(name, None)
        carried = {ProbeState.UP: True, ProbeState.DOWN: False, ProbeState.INIT: None}
        for name, probe in wanted.items():
            if before.get(name) == probe:
                continue
            previous = inst.trackers.get(name)
            inst.trackers[name] = ProbeTracker(
                name, probe.rise, probe.fall, probe.weight,
                initially_up=None if previous is None else carried[previous.state],
            )  # fmt: skip
            inst.tasks[name] = asyncio.create_task(self._probe_loop(inst, name))

    def _readdressable(self, inst: Instance, config: InstanceConfig) -> bool:
        """Only the address list of an instance that verifies no address list changed (and
        its interface stays): the pool instances, whose list changes with every Service."""
        if inst.config.verify_addresses or config.verify_addresses:
            return False
        if replace(inst.config, addresses=config.addresses) != config:
            return False
        try:
            return self._resolve_interface(config) == inst.ifname
        except StartupError:
            return False

    def _readdress(self, inst: Instance, config: InstanceConfig) -> None:
        """A new address list in place: no re-election. Adverts carry the new list at once;
        a master takes the removed addresses off, puts the new ones on and announces them,
        after whatever address change of the instance is still under way (see `_run`)."""
        old = inst.config
        gone = [a for a in old.addresses if a not in config.addresses]
        new = [a for a in config.addresses if a not in old.addresses]
        inst.config = config
        inst.rconfig = replace(inst.rconfig, addresses=tuple(a.ip for a in config.addresses))
        inst.router.set_addresses(inst.rconfig.addresses)
        log.info(
            "instance %s: addresses changed in place (%s): %d added, %d removed",
            config.name,
            inst.state,
            len(new),
            len(gone),
        )
        self.metrics.set_state(
            config.name, inst.ifname, config.vrid, (str(a) for a in config.addresses), inst.state
        )
        inst.effects = self.loop.create_task(self._readdress_later(inst, gone, new, inst.effects))
        inst.effects.add_done_callback(_report_failure)

    async def _readdress_later(
        self,
        inst: Instance,
        gone: list[IPInterface],
        new: list[IPInterface],
        before: asyncio.Task[None] | None,
    ) -> None:
        # Adding or removing what is (not) there already is a no-op: a pending AddAddresses
        # of the instance adds the new list itself.
        if before is not None:
            await asyncio.wait([before])
        try:
            if not inst.holds_addresses:
                return
            label = inst.config.label if inst.config.family == 4 else None
            for address in gone:
                try:
                    await self.ports.addresses.remove(inst.ifname, address)
                except OSError as exc:
                    log.error("instance %s: cannot remove %s: %s", inst.config.name, address, exc)
            for address in new:
                try:
                    await self.ports.addresses.add(inst.ifname, address, label)
                except OSError as exc:
                    log.error("instance %s: cannot add %s: %s", inst.config.name, address, exc)
            if inst.state == State.MASTER:
                for _ in range(max(1, inst.config.garp.master_repeat)):
                    for address in new:
                        try:
                            self.ports.announcer.announce(inst.ifname, address.ip)
                        except OSError as exc:
                            log.warning(
                                "instance %s: announcing %s failed: %s",
                                inst.config.name,
                                address,
                                exc,
                            )
        finally:
            if inst.effects is asyncio.current_task():
                inst.effects = None

    def _retire(self, inst: Instance, reason: str) -> None:
        log.info("instance %s: stopping (%s)", inst.config.name, reason)
        inst.stopped = self.loop.create_future()
        self._retiring[inst.config.name] = inst
        self._run(inst, inst.router.shutdown(self.now()))

    def _finish(self, inst: Instance) -> None:
        self._cancel_timers(inst)
        name = inst.config.name
        if self._retiring.get(name) is inst:
            del self._retiring[name]
        if name not in self.instances and name not in self._pending:
            self.metrics.forget_instance(name)
        self._close_notifier(inst)
        if inst.stopped is not None and not inst.stopped.done():
            inst.stopped.set_result(None)
        self._drop_unused_sockets()
        pending = self._pending.pop(name, None)
        if pending is not None and not self._stopping:
            try:
                self._launch(pending)
            except StartupError as exc:
                log.error("instance %s not started: %s", name, exc)

    def _close_notifier(self, inst: Instance) -> None:
        """Let the instance's notifier deliver what it has queued, then close it."""
        if inst.notifier is not None:
            task = asyncio.create_task(inst.notifier.aclose(timeout=10.0))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # ---------------------------------------------------------------- actions

    def _run(self, inst: Instance, actions: list[Action]) -> None:
        """Carry out what the state machine decided, in its order.

        Address changes are kernel round trips (coroutines): what follows one waits for it
        (the gratuitous ARP and the first advert come after the VIP is on the interface,
        the stop after it is off), and so does every later batch of the same instance, so
        its effects never overtake one another. Batches without address changes (adverts,
        nearly all of them) run at once when nothing of the instance is pending.
        """
        for action in actions:
            if isinstance(action, Transition):
                inst.since = time.time()
                inst.last_reason = action.reason
                inst.transitions += 1
                if action.new != State.MASTER:
                    self._cancel_announcements(inst)
        if inst.effects is None and not any(self._waits(inst, a) for a in actions):
            self._carry_out(inst, actions)
            return
        if inst.timer is not None:  # re-armed from the FSM's deadline once the batch is done
            inst.timer.cancel()
            inst.timer = None
        inst.effects = self.loop.create_task(self._carry_out_later(inst, actions, inst.effects))
        inst.effects.add_done_callback(_report_failure)

    def _waits(self, inst: Instance, action: Action) -> bool:
        return isinstance(action, AddAddresses | RemoveAddresses) or (
            isinstance(action, Stopped) and inst.holds_addresses
        )

    async def _carry_out_later(
        self, inst: Instance, actions: list[Action], before: asyncio.Task[None] | None
    ) -> None:
        if before is not None:
            await asyncio.wait([before])
        start = 0
        for k, action in enumerate(actions):
            if self._waits(inst, action):
                self._carry_out(inst, actions[start:k], last=False)
                start = k if isinstance(action, Stopped) else k + 1
                if isinstance(action, AddAddresses):
                    await self._add_addresses(inst)
                else:  # the FSM removes them before it stops; this guards against a leak
                    await self._remove_addresses(inst)
        if inst.effects is asyncio.current_task():
            inst.effects = None
        earlier = [a for a in actions[:start] if isinstance(a, Transition)]
        self._carry_out(inst, actions[start:], earlier=earlier)

    def _carry_out(
        self,
        inst: Instance,
        actions: list[Action],
        *,
        last: bool = True,
        earlier: list[Transition] | None = None,
    ) -> None:
        """Actions other than address changes. `last`: the end of the batch, whose
        transitions (`earlier` ones included) are recorded here."""
        moved = list(earlier or ())
        # A batch that waited for the kernel may find its state already left (the link went
        # down while the VIP was being added): no advert or GARP for a mastership now over.
        ended = [a.new for a in (*moved, *actions) if isinstance(a, Transition)]
        stale = bool(ended) and ended[-1] != inst.router.state
        stopped = False
        for action in actions:
            if isinstance(action, SendAdvertisement | Announce) and stale:
                continue
            if isinstance(action, SendAdvertisement):
                self._send(inst, action.advertisement)
            elif isinstance(action, Transition):
                moved.append(action)
                if action.new != State.MASTER:  # again: an earlier batch may have announced
                    self._cancel_announcements(inst)
            elif isinstance(action, Announce):
                self._schedule_announcements(inst)
            elif isinstance(action, Stopped):
                stopped = True
                break
        if not last:
            return
        if not stopped:
            self._rearm(inst)
        # Bookkeeping after the packets and addresses: a takeover is not slowed by logging.
        for transition in moved:
            self._record(inst, transition)
        if stopped:
            self._finish(inst)
            return
        for transition in moved:
            self._sync_states(inst, transition)
        if inst.config.sync_group is not None:
            self._hold_group(inst)

    def _record(self, inst: Instance, t: Transition) -> None:
        name, intf, vrid = inst.config.name, inst.ifname, inst.config.vrid
        self.metrics.record_transition(name, intf, vrid, t.old, t.new, time.time())
        self.metrics.set_state(name, intf, vrid, (str(a) for a in inst.config.addresses), t.new)
        if inst.notifier is not None:
            inst.notifier.notify(t.new, inst.router.effective_priority, t.reason)
        log.info(
            "instance %s: %s -> %s (%s)",
            name,
            t.old,
            t.new,
            t.reason,
            extra={"instance": name, "state": str(t.new), "old_state": str(t.old),
                   "reason": t.reason},
        )  # fmt: skip

    def _rearm(self, inst: Instance) -> None:
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        deadline = inst.router.next_deadline()
        if deadline is not None:
            inst.timer = self.loop.call_at(deadline, self._on_timer, inst, deadline)

    def _on_timer(self, inst: Instance, deadline: float) -> None:
        inst.timer = None
        # The loop may fire a hair before the deadline; the FSM must see it as due.
        self._run(inst, inst.router.handle_timer(max(self.now(), deadline)))

    def _cancel_timers(self, inst: Instance) -> None:
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        self._cancel_announcements(inst)
        for task in inst.tasks.values():
            task.cancel()
        inst.tasks.clear()

    def _send(self, inst: Instance, advert: packet.Advertisement) -> None:
        sock = self._sockets.get(inst.key)
        if sock is None:
            return
        if inst.config.unicast:
            destinations: tuple[IPAddress, ...] = inst.config.peers
        else:
            destinations = (
                packet.MULTICAST_V4 if inst.config.family == 4 else packet.MULTICAST_V6,
            )
        for destination in destinations:
            try:
                payload = packet.encode(advert, inst.primary, destination)
                sock.send(payload, destination, inst.primary)
                self.metrics.adverts_sent.labels(**inst.labels).inc()
                if advert.priority == 0:
                    self.metrics.priority_zero_sent.labels(**inst.labels).inc()
            except OSError as exc:  # link down, no route: the FSM learns of it from netlink
                log.debug(
                    "instance %s: advert to %s not sent: %s", inst.config.name, destination, exc
                )

    async def _add_addresses(self, inst: Instance) -> None:
        inst.holds_addresses = True  # first: an add cut short may still reach the kernel
        for address in inst.config.addresses:
            try:
                await self.ports.addresses.add(
                    inst.ifname, address, inst.config.label if inst.config.family == 4 else None
                )
            except OSError as exc:
                log.error(
                    "instance %s: cannot add %s to %s: %s",
                    inst.config.name,
                    address,
                    inst.ifname,
                    exc,
                )

    async def _remove_addresses(self, inst: Instance) -> None:
        for address in inst.config.addresses:
            try:
                await self.ports.addresses.remove(inst.ifname, address)
            except OSError as exc:
                log.error(
                    "instance %s: cannot remove %s from %s: %s",
                    inst.config.name,
                    address,
                    inst.ifname,
                    exc,
                )
        inst.holds_addresses = False

    def _schedule_announcements(self, inst: Instance) -> None:
        """keepalived's schedule: a burst now, another after garp master delay, then refreshes."""
        self._cancel_announcements(inst)
        garp = inst.config.garp
        now = self.now()
        starts = [now]
        if garp.master_delay_cs:
            starts.append(now + garp.master_delay_cs / 100)
        for start in starts:
            for k in range(garp.master_repeat):
                at = start + k * garp.interval_cs / 100
                if at <= now:
                    self._announce(inst)
                else:
                    inst.announcements.append(self.loop.call_at(at, self._announce, inst))
        if garp.master_refresh_cs:
            inst.announcements.append(
                self.loop.call_at(now + garp.master_refresh_cs / 100, self._refresh, inst)
            )

    def _refresh(self, inst: Instance) -> None:
        if inst.state != State.MASTER:
            return
        for _ in range(max(1, inst.config.garp.master_repeat)):
            self._announce(inst)
        inst.announcements.append(
            self.loop.call_later(inst.config.garp.master_refresh_cs / 100, self._refresh, inst)
        )

    def _announce(self, inst: Instance) -> None:
        for address in inst.config.addresses:
            try:
                self.ports.announcer.announce(inst.ifname, address.ip)
            except OSError as exc:
                log.warning(
                    "instance %s: announcing %s failed: %s", inst.config.name, address.ip, exc
                )

    def _cancel_announcements(self, inst: Instance) -> None:
        for handle in inst.announcements:
            handle.cancel()
        inst.announcements.clear()

    # ---------------------------------------------------------------- receiving

    def _socket(self, key: SocketKey) -> AdvertSocket:
        sock = self._sockets.get(key)
        if sock is None:
            sock = self.ports.open_socket(*key)
            self._sockets[key] = sock
            self.loop.add_reader(sock.fileno(), self._on_readable, key)
        return sock

    def _close_socket(self, key: SocketKey) -> None:
        sock = self._sockets.pop(key)
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        sock.close()

    def _drop_unused_sockets(self) -> None:
        used = {i.key for i in [*self.instances.values(), *self._retiring.values()]}
        for key in list(self._sockets):
            if key not in used:
                self._close_socket(key)

    def _on_readable(self, key: SocketKey) -> None:
        sock = self._sockets.get(key)
        if sock is None:
            return
        try:
            packets = sock.receive()
        except OSError as exc:
            log.warning("receiving on %s IPv%d failed: %s", key[0], key[1], exc)
            return
        for pkt in packets:
            self.deliver(key, pkt)

    def deliver(self, key: SocketKey, pkt: Packet) -> None:
        """One received datagram: sorted out (vrrpd.vrrp.receive), counted, handed to the FSM."""
        candidates = [
            i for i in [*self.instances.values(), *self._retiring.values()] if i.key == key
        ]
        sorted_out = receive.sort_out(
            pkt.payload,
            source=pkt.source,
            destination=pkt.destination,
            ttl=pkt.ttl,
            listeners=(
                receive.Listener(
                    i,
                    i.router.config,
                    peers=i.config.peers if i.config.unicast else None,
                    verify_addresses=i.config.verify_addresses,
                )
                for i in candidates
            ),
        )
        if sorted_out is None:
            return  # our own advert looped back
        if isinstance(sorted_out, packet.Dropped):
            log.debug(
                "dropped advert from %s on %s: %s (%s)",
                pkt.source,
                key[0],
                sorted_out.reason,
                sorted_out.detail,
            )
            return
        advert, verdicts = sorted_out
        for verdict in verdicts:
            inst = verdict.key
            if verdict.dropped is not None:
                self._count_drop(inst, verdict.dropped.reason, verdict.dropped.detail)
                continue
            self.metrics.adverts_received.labels(**inst.labels).inc()
            if advert.priority == 0:
                self.metrics.priority_zero_received.labels(**inst.labels).inc()
            inst.peers_seen[str(pkt.source)] = (advert.priority, self.now())
            self._run(inst, inst.router.receive(advert, pkt.source, self.now()))

    def _count_drop(self, inst: Instance, reason: str, detail: str) -> None:
        first = reason not in inst.drops
        inst.drops[reason] = inst.drops.get(reason, 0) + 1
        self.metrics.record_drop(inst.config.name, inst.ifname, inst.config.vrid, reason)
        # A misconfigured peer repeats every advert interval: warn once, then debug.
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "instance %s: dropped advert (%s) %s",
            inst.config.name,
            reason,
            detail,
        )

    # ---------------------------------------------------------------- links

    def _on_link_events(self) -> None:
        assert self.ports.links is not None
        for event in self.ports.links.poll():
            state = "up" if event.up else "down"
            for inst in [*self.instances.values(), *self._retiring.values()]:
                if inst.ifname == event.ifname:
                    if event.up and inst.primary.is_unspecified:
                        inst.faults.pop(standing.LINK, None)
                        self._restart_with_primary(inst)
                        continue
                    reason = None if event.up else standing.link_down(event.ifname)
                    self._set_fault(inst, standing.LINK, reason, f"link {event.ifname} {state}")
                if event.ifname in inst.config.track_interfaces:
                    source = standing.tracked(event.ifname)
                    reason = None if event.up else standing.tracked_down(event.ifname)
                    self._set_fault(inst, source, reason, f"tracked interface {event.ifname} up")

    # ---------------------------------------------------------------- faults and probes

    def _set_fault(self, inst: Instance, source: str, reason: str | None, cleared: str) -> None:
        """Set (reason) or clear (None) one fault source, then let the FSM know."""
        if not standing.set_fault(inst.faults, source, reason):
            return
        self._apply_faults(inst, cleared)
        if source != standing.SYNC:
            self._sync_faults(inst)

    def _apply_faults(self, inst: Instance, cleared: str) -> None:
        reason = standing.fault_reason(inst.faults, cleared)
        self._run(inst, inst.router.set_fault(bool(inst.faults), reason, self.now()))

    def _assess_probes(self, inst: Instance) -> bool:
        """The probes' standing (vrrpd.standing.assess_probes) on the instance: True when
        their fault changed (the caller lets the FSM know); a new priority goes at once."""
        changed, effective = standing.assess_probes(inst, self._group(inst))
        if effective is not None:
            self._run(inst, inst.router.set_priority(effective, self.now()))
        return changed

    async def _probe_loop(self, inst: Instance, name: str) -> None:
        config = next(p for p in inst.config.probes if p.name == name)
        probe = probe_for(config)
        await run_forever(
            probe.check, config.interval_cs / 100, lambda o: self._on_probe(inst, name, o)
        )

    def _on_probe(self, inst: Instance, name: str, outcome: ProbeOutcome) -> None:
        if inst.router.state == State.STOPPED:
            return
        inst.outcomes[name] = outcome
        self.metrics.record_probe(inst.config.name, name, outcome.ok, outcome.latency_s)
        tracker = inst.trackers[name]
        if not tracker.record(outcome.ok):
            return
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "instance %s: probe %s is %s (%s)",
            inst.config.name,
            name,
            tracker.state,
            outcome.detail,
            extra={"instance": inst.config.name, "probe": name},
        )
        for member in [inst, *self._group(inst)]:
            if self._assess_probes(member):
                self._apply_faults(member, f"probe {name} is {tracker.state}")
        self._sync_faults(inst)

    # ---------------------------------------------------------------- sync groups

    def _group(self, inst: Instance) -> list[Instance]:
        return standing.group_of(inst, self.instances.values())

    def _sync_faults(self, inst: Instance) -> None:
        """A member with a fault of its own puts the whole group in FAULT (keepalived)."""
        members = [inst, *self._group(inst)]
        if len(members) < 2:
            return
        for member in members:
            reason = standing.sync_fault(member, members)
            self._set_fault(member, standing.SYNC, reason, standing.sync_cleared(member))

    def _hold_group(self, inst: Instance) -> None:
        """While one member yields to a higher master, its siblings do not preempt."""
        members = [inst, *self._group(inst)]
        for m in members:
            m.router.inhibit_preempt(standing.preempt_held(m, members))

    def _sync_states(self, inst: Instance, transition: Transition) -> None:
        """Members follow one another into MASTER and back into BACKUP."""
        step = standing.follow(inst, transition)
        if step is None:
            return
        new, why = step
        now = self.now()
        for member in self._group(inst):
            if new == State.MASTER:
                self._run(member, member.router.sync_master(why, now))
            else:
                self._run(member, member.router.sync_backup(why, now))

    def _restart_with_primary(self, inst: Instance) -> None:
        """An instance that started on a down link without an address learns it on link up."""
        found = self.ports.addresses.primary_address(inst.ifname, inst.config.family)
        if found is None:
            log.warning(
                "instance %s: %s is up but has no IPv%d address yet",
                inst.config.name,
                inst.ifname,
                inst.config.family,
            )
            return
        self._cancel_timers(inst)
        inst.primary = found
        inst.rconfig = replace(inst.rconfig, primary_address=found)
        inst.router = VirtualRouter(inst.rconfig)
        self._run(inst, inst.router.start(self.now()))


def log_leftover(ifname: str, address: object) -> None:
    log.warning(
        "removed %s from %s: left behind by an earlier vrrpd that did not stop cleanly",
        address,
        ifname,
    )


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("carrying out state changes failed", exc_info=exc)


def _router_config(config: InstanceConfig, primary: IPAddress) -> RouterConfig:
    auth = config.auth_password
    return RouterConfig(
        vrid=config.vrid,
        version=config.version,
        priority=config.priority,
        advert_interval_cs=config.advert_interval_cs,
        addresses=tuple(a.ip for a in config.addresses),
        primary_address=primary,
        preempt=config.preempt,
        preempt_delay_cs=config.preempt_delay_cs,
        accept=config.accept,
        auth_type=packet.AUTH_PASS if auth else packet.AUTH_NONE,
        auth_data=auth or b"",
    )


def _unspecified(family: int) -> IPAddress:
    return ip_address("0.0.0.0" if family == 4 else "::")
