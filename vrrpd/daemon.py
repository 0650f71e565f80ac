"""The asyncio driver: runs VRRP instances and carries out what their state machines decide.

Each instance is a sans-I/O `VirtualRouter`. `Daemon` owns the instances: it starts them,
reloads them by difference, shuts them down make-before-break, routes the netlink link
events, the probes' results and the sync groups' moves to them, and answers for them
(/status, health, readiness). What each event means is decided by pure modules: the FSM,
`vrrpd.vrrp.receive` (which adverts a router hears) and `vrrpd.standing` (faults, probe
weights, sync-group rules). Carrying out the FSM's actions (VIPs, adverts, GARP, the one
timer per instance) is `vrrpd.effects`; the shared raw sockets are `vrrpd.wire`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from ipaddress import ip_address
from typing import Any

from vrrpd import standing
from vrrpd.config import InstanceConfig
from vrrpd.effects import Effects
from vrrpd.groupnotify import GroupNotifiers
from vrrpd.instance import Instance, SocketKey
from vrrpd.limits import IPAddress
from vrrpd.metrics import DaemonMetrics
from vrrpd.noaccept import blocked_addresses
from vrrpd.notify import Notifier
from vrrpd.ports import Packet, Ports
from vrrpd.probes.tracking import tracker_for
from vrrpd.supervisor import Supervisor
from vrrpd.switchover import SwitchoverError, select
from vrrpd.vrrp import packet
from vrrpd.vrrp.fsm import Action, HoldRefused, RouterConfig, State, Transition, VirtualRouter
from vrrpd.wire import Wire

log = logging.getLogger("vrrpd")


class StartupError(Exception):
    """An instance cannot run on this host as configured (no interface, no address)."""


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
RESTART_FIELDS = (
    "vrid",
    "version",
    "family",
    "addresses",
    "label",
    "source_address",
    "address_interfaces",
    "routes",
    "rules",
    "use_vmac",
)


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
        self._wire = Wire(
            ports,
            self.metrics,
            listeners=self._listeners,
            hear=self._hear,
            refused=lambda inst, advert, source, why: self._heard_master(inst, source, advert, why),
        )
        self._supervisor = Supervisor(
            self.metrics, instances=self.instances.values, run=self._run, now=self.now
        )
        self._group_notifiers = GroupNotifiers(node)
        self._effects = Effects(
            ports,
            self.metrics,
            send=self._wire.send,
            settled=self._settled,
            before_add=self._before_add,
            transitioned=self._transitioned,
            ticked=self._ticked,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._vmacs: set[str] = set()  # the virtual MAC interfaces made, deleted when unused
        self._accept_sync: asyncio.Future[None] | None = None

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
            vips += [(config.interface_of(a, ifname), a) for a in config.addresses]
        for ifname, address in await self.ports.addresses.remove_leftovers(vips):
            log_leftover(ifname, address)
        if self.ports.routes is not None:
            for what in await self.ports.routes.remove_leftovers():
                log_leftover("the routing tables", what)
        if self.ports.links is not None:
            self.ports.links.subscribe(self._on_link_events)
        if self.ports.heard is not None:
            self.ports.heard.subscribe(self._on_heard)
        return self.apply(configs)

    def apply(self, configs: Iterable[InstanceConfig]) -> ApplyResult:
        """Reload by difference: unchanged instances keep their state, and so do instances
        whose change can be applied in place (priority, interval, preempt, probes, ...: no
        re-election); only what makes another router (RESTART_FIELDS, the interface)
        restarts one, with a make-before-break handover."""
        wanted = {c.name: c for c in configs}
        self._group_notifiers.update(wanted.values())
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
        if self.ports.firewall is not None:  # a reload may change what is blocked
            self._accept_sync = asyncio.ensure_future(self._enforce_accept())
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
        await self._group_notifiers.aclose()
        await self._enforce_accept()  # nothing runs: our table goes
        self.close()

    async def abort(self) -> None:
        """Second signal during a handover: drop the VIPs now and leave."""
        everyone = [*self.instances.values(), *self._retiring.values()]
        for inst in everyone:
            self._effects.cancel_timers(inst)
            if inst.effects is not None:
                inst.effects.cancel()
        for inst in everyone:
            if inst.holds_addresses:
                await self._effects.remove_addresses(inst)
            if inst.stopped is not None and not inst.stopped.done():
                inst.stopped.set_result(None)
        self.instances.clear()
        self._retiring.clear()
        await self._enforce_accept()
        self.close()

    def _transitioned(self, inst: Instance, t: Transition) -> None:
        if t.new != State.MASTER:
            self._split_over(inst, t.reason)
        if inst.config.sync_group is not None:  # the group's own notify (syncGroupNotify)
            self._group_notifiers.member_changed(inst.config.sync_group, t.new, t.reason)

    async def _before_add(self, inst: Instance) -> None:
        if not inst.config.accept:  # blocked before the address exists, never after
            await self._enforce_accept()

    async def _enforce_accept(self) -> None:
        """Accept_Mode false: the firewall blocks the VIPs of every no-accept instance that
        runs or hands over (vrrpd.noaccept); a failure is logged and the VIPs still move."""
        if self.ports.firewall is None:
            return
        running = [i.config for i in [*self.instances.values(), *self._retiring.values()]]
        blocked = blocked_addresses(running)
        try:
            if await self.ports.firewall.block(blocked):
                shown = ", ".join(sorted(map(str, blocked))) or "nothing"
                log.info("accept: false: packets to %s are dropped", shown)
        except OSError as exc:
            log.error("accept: false is not enforced: %s", exc)

    def close(self) -> None:
        self._wire.close()
        for vmac in list(self._vmacs):
            self._delete_vmac(vmac)
        self.ports.announcer.close()
        if self.ports.links is not None:
            self.ports.links.close()
        if self.ports.heard is not None:
            self.ports.heard.close()
        if self.ports.routes is not None:
            self.ports.routes.close()
        if self.ports.vmacs is not None:
            self.ports.vmacs.close()

    def _delete_vmac(self, name: str) -> None:
        self._vmacs.discard(name)
        try:
            if self.ports.vmacs is not None:
                self.ports.vmacs.delete(name)
        except OSError as exc:
            log.error("cannot delete the virtual MAC interface %s: %s", name, exc)

    def _vmac(self, config: InstanceConfig, ifname: str) -> str | None:
        """The instance's virtual MAC interface, made on `ifname` (None without useVmac)."""
        if not config.use_vmac:
            return None
        if self.ports.vmacs is None:
            raise StartupError(f"{config.name}: virtual MAC interfaces cannot be made here")
        for other in [*self.instances.values(), *self._retiring.values()]:
            if other.vmac is not None and other.config.vrid == config.vrid:
                raise StartupError(
                    f"VRID {config.vrid}: {other.config.name} has the virtual MAC interface "
                    f"{other.vmac} (on {other.ifname}) already; pick another spec.vrid"
                )
        try:
            vmac = self.ports.vmacs.create(ifname, config.vrid, config.family)
        except OSError as exc:
            raise StartupError(f"{config.name}: {exc}") from exc
        self._vmacs.add(vmac)
        return vmac

    # ---------------------------------------------------------------- status

    def _unix(self, loop_time: float) -> float:
        return time.time() - (self.now() - loop_time)

    def status(self) -> dict[str, Any]:
        """The /status document: every instance with why it is where it is."""
        instances = sorted(self.instances.values(), key=lambda i: i.config.name)
        return {"node": self.node, "instances": [i.status(self._unix) for i in instances]}

    def switchover(self, names: Sequence[str] = (), *, release: bool = False) -> dict[str, str]:
        """Planned switchover: hold (take over and keep) or release the named instances
        (none: all) with their sync-group siblings. What happened, by instance; a
        SwitchoverError when a name is not known here."""
        groups = {name: inst.config.sync_group for name, inst in self.instances.items()}
        outcome = {}
        for name in select(names, groups):
            inst = self.instances[name]
            router = inst.router
            try:
                if release:
                    was_held = router.held
                    actions = router.release(self.now(), "switchover released")
                    ended = (
                        f" (the last hold ended: {router.hold_ended})" if router.hold_ended else ""
                    )
                    outcome[name] = "released" if was_held else "not held" + ended
                else:
                    was = router.state
                    actions = router.hold(self.now(), "switchover requested")
                    outcome[name] = "held" + (", took over" if was is not State.MASTER else "")
            except HoldRefused as exc:
                outcome[name] = f"refused: {exc}"
                continue
            log.info("instance %s: switchover %s", name, outcome[name], extra={"instance": name})
            self._run(inst, actions)
        return outcome

    def health(self) -> dict[str, bool]:
        return {name: standing.unhealthy(inst) is None for name, inst in self.instances.items()}

    def readiness(self) -> tuple[bool, str]:
        """Pod readiness: this node is a healthy candidate (Healthy) or holds the VIP (Master)."""
        return standing.readiness(list(self.instances.values()))

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
        if (config.routes or config.rules) and self.ports.routes is None:
            raise StartupError(f"{config.name}: routes and rules cannot be installed here")
        primary = config.source_address or self.ports.addresses.primary_address(
            ifname, config.family
        )
        link_up = self.ports.addresses.link_up(ifname)
        if primary is None and link_up:
            raise StartupError(
                f"{config.name}: {ifname} has no IPv{config.family} address to send adverts "
                "from" + (" (IPv6 needs a link-local address)" if config.family == 6 else "")
            )
        vmac = self._vmac(config, ifname)
        rconfig = _router_config(config, primary or _unspecified(config.family))
        inst = Instance(
            vmac=vmac,
            config=config,
            ifname=ifname,
            primary=rconfig.primary_address,
            rconfig=rconfig,
            router=VirtualRouter(rconfig),
            since=time.time(),
        )
        try:
            self._wire.open(inst.key)
        except BaseException:
            if vmac is not None:
                self._delete_vmac(vmac)
            raise
        self.instances[config.name] = inst
        if config.notify is not None:
            inst.notifier = Notifier(
                config.notify, instance=config.name, group=config.sync_group, node=self.node
            )
        inst.faults = standing.link_faults(config, ifname, self.ports.addresses.link_up)
        for probe in config.probes:
            inst.trackers[probe.name] = tracker_for(probe)
        self._supervisor.assess_probes(inst)
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
        self._supervisor.start_probes(inst)
        self._supervisor.sync_faults(inst)
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
        regrouped = {*self._supervisor.group(inst)}
        inst.config = config
        inst.rconfig = _router_config(config, inst.primary)
        regrouped.update(self._supervisor.group(inst))
        if old.notify != config.notify:
            self._close_notifier(inst)
            inst.notifier = None
            if config.notify is not None:
                inst.notifier = Notifier(
                    config.notify, instance=config.name, group=config.sync_group, node=self.node
                )
        if old.probes != config.probes:
            self._supervisor.replace_probes(inst, old)
        standing.retrack(inst.faults, old, config, self.ports.addresses.link_up)
        _, effective = standing.probe_standing(inst, self._supervisor.group(inst))
        self._run(inst, inst.router.reconfigure(inst.rconfig, self.now(), effective=effective))
        for member in [inst, *regrouped]:
            self._supervisor.resync(member, "configuration changed")
        if old.hold != config.hold:
            self._hold_as_configured(inst)

    def _hold_as_configured(self, inst: Instance) -> None:
        """The configuration asks this node to hold the VIP, or no longer does (the
        VirtualIP's kubevrrp.io/switchover-to annotation): hold or release, as the
        control socket would. Only a change acts: a hold that ended on a failure is not
        taken again until the request is made again."""
        try:
            outcome = self.switchover([inst.config.name], release=not inst.config.hold)
        except SwitchoverError as exc:  # the instance is gone meanwhile
            log.warning("instance %s: switchover: %s", inst.config.name, exc)
            return
        for name, what in outcome.items():
            if what.startswith("refused"):
                log.warning("instance %s: switchover %s", name, what, extra={"instance": name})

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
        after whatever address change of the instance is still under way (see `Effects.run`)."""
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
        self._effects.readdress(inst, gone, new)

    def _retire(self, inst: Instance, reason: str) -> None:
        log.info("instance %s: stopping (%s)", inst.config.name, reason)
        inst.stopped = self.loop.create_future()
        self._retiring[inst.config.name] = inst
        self._run(inst, inst.router.shutdown(self.now()))

    def _finish(self, inst: Instance) -> None:
        self._effects.cancel_timers(inst)
        name = inst.config.name
        if self._retiring.get(name) is inst:
            del self._retiring[name]
        if name not in self.instances and name not in self._pending:
            self.metrics.forget_instance(name)
        self._close_notifier(inst)
        if inst.stopped is not None and not inst.stopped.done():
            inst.stopped.set_result(None)
        used = {i.key for i in [*self.instances.values(), *self._retiring.values()]}
        self._wire.drop_unused(used)
        for vmac in self._vmacs - {ifname for ifname, _ in used}:
            self._delete_vmac(vmac)
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

    # ---------------------------------------------------------------- effects and the wire

    def _run(self, inst: Instance, actions: list[Action]) -> None:
        """Carry out what the state machine decided (vrrpd.effects)."""
        self._effects.run(inst, actions)

    def deliver(self, key: SocketKey, pkt: Packet) -> None:
        """One received datagram (vrrpd.wire: sorted out, counted, handed on)."""
        self._wire.deliver(key, pkt)

    def _listeners(self, key: SocketKey) -> list[Instance]:
        everyone = [*self.instances.values(), *self._retiring.values()]
        return [i for i in everyone if i.key == key]

    def _hear(self, inst: Instance, advert: packet.Advertisement, source: IPAddress) -> None:
        inst.peers_seen[str(source)] = (advert.priority, self.now())
        self._run(inst, inst.router.receive(advert, source, self.now()))
        self._heard_master(inst, source, advert, None)

    # ---------------------------------------------------------------- split brain

    def _ticked(self, inst: Instance) -> None:
        if inst.state == State.MASTER:  # a master's timer is its advert tick
            self._recheck_claims(inst)
            self._judge_split(inst)

    def _heard_master(
        self, inst: Instance, source: IPAddress, advert: packet.Advertisement, refused: str | None
    ) -> None:
        """An advert for our VRID that left us MASTER: another master (vrrpd.vrrp.splitbrain)."""
        if inst.router.state != State.MASTER or inst.router.stopping:
            return
        now = self.now()
        inst.split.advert(str(source), advert.priority, advert.advert_interval_cs, now,
                          mismatch=refused)  # fmt: skip
        self._judge_split(inst)

    def _on_heard(self) -> None:
        assert self.ports.heard is not None
        for heard in self.ports.heard.poll():
            for inst in self.instances.values():
                if (
                    inst.ifname == heard.ifname
                    and inst.router.state == State.MASTER
                    and not inst.router.stopping  # a successor announcing: our handover
                    and any(a.ip == heard.address for a in inst.config.addresses)
                ):
                    inst.split.announcement(heard.mac, str(heard.address), self.now(),
                                            rechecked=heard.address.version == 4)  # fmt: skip
                    self._judge_split(inst)

    def _recheck_claims(self, inst: Instance) -> None:
        """Ask again who has the VIPs another MAC claimed: its answer keeps the verdict,
        its silence (it let go) ends it within a few adverts."""
        if self.ports.heard is None:
            return
        for address in inst.split.rechecks():
            try:
                self.ports.heard.recheck(inst.ifname, ip_address(address))
            except OSError as exc:
                log.debug("instance %s: asking who has %s failed: %s", inst.config.name,
                          address, exc)  # fmt: skip

    def _judge_split(self, inst: Instance) -> None:
        conflict, changed = inst.split.evaluate(self.now(), inst.config.advert_interval_cs)
        if not changed:
            return
        name = inst.config.name
        self.metrics.record_split_brain(name, None if conflict is None else conflict.evidence)
        if conflict is None:
            log.info("instance %s: split brain over: no other master heard", name)
            return
        log.warning(
            "instance %s: split brain: MASTER for VRID %d on %s, and %s", name,
            inst.config.vrid, inst.ifname, conflict.describe(),
            extra={"instance": name, "split_brain": conflict.evidence, "peer": conflict.peer},
        )  # fmt: skip

    def _split_over(self, inst: Instance, why: str) -> None:
        if inst.split.left_master() is not None:
            self.metrics.record_split_brain(inst.config.name, None)
            log.info("instance %s: split brain over on this node: %s", inst.config.name, why)

    def _settled(self, inst: Instance, moved: list[Transition], stopped: bool) -> None:
        """A batch of the instance's actions is done: the instance stopped, or its sync
        group follows its transitions."""
        if stopped:
            self._finish(inst)
            return
        for transition in moved:
            self._supervisor.sync_states(inst, transition)
        if inst.config.sync_group is not None:
            self._supervisor.hold_group(inst)

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
                    self._supervisor.set_fault(
                        inst, standing.LINK, reason, f"link {event.ifname} {state}"
                    )
                if event.ifname in inst.config.track_interfaces:
                    source = standing.tracked(event.ifname)
                    reason = None if event.up else standing.tracked_down(event.ifname)
                    self._supervisor.set_fault(
                        inst, source, reason, f"tracked interface {event.ifname} up"
                    )

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
        self._effects.cancel_timers(inst)
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
