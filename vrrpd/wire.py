"""The raw VRRP sockets the instances share: one per interface and address family, opened
on first use and closed with their last instance. What comes in is sorted out by
`vrrpd.vrrp.receive` (drops counted and logged here) and handed on to the instance whose
router hears it; what goes out is encoded for the multicast group or each unicast peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vrrpd.instance import Instance, SocketKey
from vrrpd.limits import IPAddress
from vrrpd.metrics import DaemonMetrics
from vrrpd.ports import AdvertSocket, Packet, Ports
from vrrpd.vrrp import packet, receive

log = logging.getLogger("vrrpd")


class Wire:
    def __init__(
        self,
        ports: Ports,
        metrics: DaemonMetrics,
        *,
        listeners: Callable[[SocketKey], list[Instance]],
        hear: Callable[[Instance, packet.Advertisement, IPAddress], None],
        refused: Callable[[Instance, packet.Advertisement, IPAddress, str], None] | None = None,
    ) -> None:
        """`listeners(key)`: the instances on that socket; `hear(inst, advert, source)`: an
        advert the instance's router takes; `refused(inst, advert, source, why)`: one it
        must not take (another master may be speaking: vrrpd.vrrp.splitbrain)."""
        self._refused = refused
        self.ports = ports
        self.metrics = metrics
        self._listeners = listeners
        self._hear = hear
        self._sockets: dict[SocketKey, AdvertSocket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def close(self) -> None:
        for key in list(self._sockets):
            self._close(key)

    def open(self, key: SocketKey) -> AdvertSocket:
        sock = self._sockets.get(key)
        if sock is None:
            sock = self.ports.open_socket(*key)
            self._sockets[key] = sock
            self.loop.add_reader(sock.fileno(), self._on_readable, key)
        return sock

    def _close(self, key: SocketKey) -> None:
        sock = self._sockets.pop(key)
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        sock.close()

    def drop_unused(self, used: set[SocketKey]) -> None:
        for key in list(self._sockets):
            if key not in used:
                self._close(key)

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
        candidates = self._listeners(key)
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
                if self._refused is not None:
                    why = f"{verdict.dropped.reason}: {verdict.dropped.detail}"
                    self._refused(inst, advert, pkt.source, why)
                continue
            self.metrics.adverts_received.labels(**inst.labels).inc()
            if advert.priority == 0:
                self.metrics.priority_zero_received.labels(**inst.labels).inc()
            self._hear(inst, advert, pkt.source)

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

    def send(self, inst: Instance, advert: packet.Advertisement) -> None:
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
