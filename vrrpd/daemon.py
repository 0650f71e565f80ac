"""The asyncio driver: runs VRRP instances and carries out what their state machines decide.

Each instance is a sans-I/O `VirtualRouter`; this module owns the one timer per instance
(re-armed from `next_deadline()` after every event), the shared raw sockets (one per
interface and family, demultiplexed by VRID), the netlink link events, gratuitous ARP /
unsolicited NA bursts, live reload by difference, and the make-before-break shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from ipaddress import ip_address
from typing import Any

from vrrpd.model import InstanceConfig
from vrrpd.ports import AdvertSocket, IPAddress, Packet, Ports
from vrrpd.vrrp import packet
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
    since: float = 0.0
    last_reason: str = ""
    transitions: int = 0
    drops: dict[str, int] = field(default_factory=dict)

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
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


class Daemon:
    def __init__(self, ports: Ports, *, node: str) -> None:
        self.ports = ports
        self.node = node
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

    def start(self, configs: Iterable[InstanceConfig]) -> ApplyResult:
        """Clear what a killed predecessor left, then join every instance as BACKUP."""
        configs = list(configs)
        for config in configs:
            self._resolve_interface(config)  # fail before touching the host
        for ifname, address in self.ports.addresses.remove_leftovers():
            log.warning(
                "removed %s from %s: left behind by an earlier vrrpd that did not stop cleanly",
                address,
                ifname,
            )
        if self.ports.links is not None:
            self.loop.add_reader(self.ports.links.fileno(), self._on_link_events)
        return self.apply(configs)

    def apply(self, configs: Iterable[InstanceConfig]) -> ApplyResult:
        """Reload by difference: unchanged instances keep their state (no re-election)."""
        wanted = {c.name: c for c in configs}
        added, removed, changed, unchanged, failed = [], [], [], [], []
        for name in list(self.instances):
            if name not in wanted:
                removed.append(name)
                self._retire(self.instances.pop(name), "removed from the configuration")
        for name, config in wanted.items():
            current = self.instances.get(name)
            if current is not None and current.config == config:
                unchanged.append(name)
                continue
            if current is not None:
                changed.append(name)
                del self.instances[name]
                self._pending[name] = config
                self._retire(current, "configuration changed")
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
        result = ApplyResult(*(tuple(x) for x in (added, removed, changed, unchanged, failed)))
        log.info(
            "configuration applied: %d added, %d removed, %d changed, %d unchanged, %d failed",
            len(added),
            len(removed),
            len(changed),
            len(unchanged),
            len(failed),
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
        self.close()

    def abort(self) -> None:
        """Second signal during a handover: drop the VIPs now and leave."""
        for inst in [*self.instances.values(), *self._retiring.values()]:
            self._cancel_timers(inst)
            if inst.holds_addresses:
                self._remove_addresses(inst)
            if inst.stopped is not None and not inst.stopped.done():
                inst.stopped.set_result(None)
        self.instances.clear()
        self._retiring.clear()
        self.close()

    def close(self) -> None:
        if self._loop is not None and self.ports.links is not None:
            self._loop.remove_reader(self.ports.links.fileno())
        for key in list(self._sockets):
            self._close_socket(key)
        self.ports.announcer.close()
        if self.ports.links is not None:
            self.ports.links.close()

    # ---------------------------------------------------------------- status

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for inst in sorted(self.instances.values(), key=lambda i: i.config.name):
            master = inst.router.master_address
            rows.append(
                {
                    "name": inst.config.name,
                    "vrid": inst.config.vrid,
                    "interface": inst.ifname,
                    "state": str(inst.state),
                    "priority": inst.config.priority,
                    "effectivePriority": inst.router.effective_priority,
                    "master": None if master is None else str(master),
                    "since": inst.since,
                    "reason": inst.last_reason,
                    "transitions": inst.transitions,
                    "drops": dict(inst.drops),
                }
            )
        return rows

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
        auth = config.auth_password
        rconfig = RouterConfig(
            vrid=config.vrid,
            version=config.version,
            priority=config.priority,
            advert_interval_cs=config.advert_interval_cs,
            addresses=tuple(a.ip for a in config.addresses),
            primary_address=primary or _unspecified(config.family),
            preempt=config.preempt,
            preempt_delay_cs=config.preempt_delay_cs,
            accept=config.accept,
            auth_type=packet.AUTH_PASS if auth else packet.AUTH_NONE,
            auth_data=auth or b"",
        )
        inst = Instance(
            config=config,
            ifname=ifname,
            primary=rconfig.primary_address,
            rconfig=rconfig,
            router=VirtualRouter(rconfig),
            since=self.now(),
        )
        self._socket(key)
        self.instances[config.name] = inst
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
        self._run(inst, inst.router.start(self.now(), fault=not link_up))
        return inst

    def _retire(self, inst: Instance, reason: str) -> None:
        log.info("instance %s: stopping (%s)", inst.config.name, reason)
        inst.stopped = self.loop.create_future()
        self._retiring[inst.config.name] = inst
        self._run(inst, inst.router.shutdown(self.now()))

    def _finish(self, inst: Instance) -> None:
        self._cancel_timers(inst)
        if inst.holds_addresses:  # the FSM removes them first; this guards against a leak
            self._remove_addresses(inst)
        name = inst.config.name
        if self._retiring.get(name) is inst:
            del self._retiring[name]
        if inst.stopped is not None and not inst.stopped.done():
            inst.stopped.set_result(None)
        self._drop_unused_sockets()
        pending = self._pending.pop(name, None)
        if pending is not None and not self._stopping:
            try:
                self._launch(pending)
            except StartupError as exc:
                log.error("instance %s not started: %s", name, exc)

    # ---------------------------------------------------------------- actions

    def _run(self, inst: Instance, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendAdvertisement):
                self._send(inst, action.advertisement)
            elif isinstance(action, Transition):
                inst.since = self.now()
                inst.last_reason = action.reason
                inst.transitions += 1
                log.info(
                    "instance %s: %s -> %s (%s)",
                    inst.config.name,
                    action.old,
                    action.new,
                    action.reason,
                    extra={
                        "instance": inst.config.name,
                        "state": str(action.new),
                        "old_state": str(action.old),
                        "reason": action.reason,
                    },
                )
                if action.new != State.MASTER:
                    self._cancel_announcements(inst)
            elif isinstance(action, AddAddresses):
                self._add_addresses(inst)
            elif isinstance(action, RemoveAddresses):
                self._remove_addresses(inst)
            elif isinstance(action, Announce):
                self._schedule_announcements(inst)
            elif isinstance(action, Stopped):
                self._finish(inst)
                return
        self._rearm(inst)

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
            except OSError as exc:  # link down, no route: the FSM learns of it from netlink
                log.debug(
                    "instance %s: advert to %s not sent: %s", inst.config.name, destination, exc
                )

    def _add_addresses(self, inst: Instance) -> None:
        for address in inst.config.addresses:
            try:
                self.ports.addresses.add(
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
        inst.holds_addresses = True

    def _remove_addresses(self, inst: Instance) -> None:
        for address in inst.config.addresses:
            try:
                self.ports.addresses.remove(inst.ifname, address)
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
        """One received datagram: decode, find the instance by VRID, check, hand to the FSM."""
        candidates = [
            i for i in [*self.instances.values(), *self._retiring.values()] if i.key == key
        ]
        if any(pkt.source == i.primary for i in candidates):
            return  # our own advert looped back
        result = packet.decode(
            pkt.payload, source=pkt.source, destination=pkt.destination, ttl=pkt.ttl
        )
        if isinstance(result, packet.Dropped):
            log.debug(
                "dropped advert from %s on %s: %s (%s)",
                pkt.source,
                key[0],
                result.reason,
                result.detail,
            )
            return
        for inst in candidates:
            if inst.config.vrid != result.vrid:
                continue
            if inst.config.unicast and pkt.source not in inst.config.peers:
                self._count_drop(inst, "peer", f"advert from {pkt.source}, not a configured peer")
                continue
            drop = packet.check_instance(
                result,
                version=inst.config.version,
                advert_interval_cs=inst.config.advert_interval_cs,
                addresses=inst.rconfig.addresses,
                auth_type=inst.rconfig.auth_type,
                auth_data=inst.rconfig.auth_data,
            )
            if drop is not None:
                self._count_drop(inst, drop.reason, f"from {pkt.source}: {drop.detail}")
                continue
            self._run(inst, inst.router.receive(result, pkt.source, self.now()))

    def _count_drop(self, inst: Instance, reason: str, detail: str) -> None:
        first = reason not in inst.drops
        inst.drops[reason] = inst.drops.get(reason, 0) + 1
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
            for inst in [*self.instances.values(), *self._retiring.values()]:
                if inst.ifname != event.ifname:
                    continue
                if event.up and inst.primary.is_unspecified:
                    self._restart_with_primary(inst)
                    continue
                state = "up" if event.up else "down"
                self._run(
                    inst,
                    inst.router.set_fault(not event.up, f"link {event.ifname} {state}", self.now()),
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
        self._cancel_timers(inst)
        inst.primary = found
        inst.rconfig = replace(inst.rconfig, primary_address=found)
        inst.router = VirtualRouter(inst.rconfig)
        self._run(inst, inst.router.start(self.now()))


def _unspecified(family: int) -> IPAddress:
    return ip_address("0.0.0.0" if family == 4 else "::")
