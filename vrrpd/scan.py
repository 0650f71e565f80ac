"""`vrrpd scan`: list the VRRP routers heard on an interface, to find VRID conflicts fast.

`Survey` is pure (it is fed decoded packets with their time); `scan` is the thin loop
that reads a raw socket for a while.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass, field

from vrrpd.limits import IPAddress
from vrrpd.ports import AdvertSocket, Packet
from vrrpd.vrrp import packet


@dataclass
class Router:
    vrid: int
    version: int
    source: IPAddress
    priority: int
    addresses: tuple[IPAddress, ...]
    interval_cs: int
    adverts: int = 0
    first: float = 0.0
    last: float = 0.0


@dataclass
class Survey:
    routers: dict[tuple[int, int, IPAddress], Router] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, pkt: Packet, now: float) -> None:
        result = packet.decode(
            pkt.payload, source=pkt.source, destination=pkt.destination, ttl=pkt.ttl
        )
        if isinstance(result, packet.Dropped):
            self.dropped[result.reason] = self.dropped.get(result.reason, 0) + 1
            return
        key = (result.version, result.vrid, pkt.source)
        router = self.routers.get(key)
        if router is None:
            router = self.routers[key] = Router(
                result.vrid, result.version, pkt.source, result.priority,
                result.addresses, result.advert_interval_cs, first=now,
            )  # fmt: skip
        router.priority = result.priority
        router.addresses = result.addresses
        router.interval_cs = result.advert_interval_cs
        router.adverts += 1
        router.last = now

    def conflicts(self) -> list[str]:
        """VRIDs whose routers disagree on the addresses: two groups share one VRID."""
        by_vrid: dict[tuple[int, int], set[tuple[IPAddress, ...]]] = {}
        for r in self.routers.values():
            family = r.source.version
            by_vrid.setdefault((family, r.vrid), set()).add(tuple(sorted(r.addresses)))
        return [
            f"VRID {vrid} (IPv{family}) is used by routers advertising different addresses: "
            + " vs ".join(", ".join(map(str, a)) for a in sorted(addrs))
            for (family, vrid), addrs in sorted(by_vrid.items())
            if len(addrs) > 1
        ]

    def table(self) -> str:
        rows = [("VRID", "VER", "SOURCE", "PRIO", "INTERVAL", "ADVERTS", "ADDRESSES")]
        for r in sorted(self.routers.values(), key=lambda r: (r.vrid, r.source.version,
                                                               int(r.source))):  # fmt: skip
            rows.append((
                str(r.vrid), f"v{r.version}", str(r.source), str(r.priority),
                f"{r.interval_cs * 10}ms", str(r.adverts), ", ".join(map(str, r.addresses)),
            ))  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]
                 for row in rows]  # fmt: skip
        if len(rows) == 1:
            lines.append("(no VRRP advertisement heard)")
        lines.extend(f"conflict: {c}" for c in self.conflicts())
        if self.dropped:
            lines.append("malformed: " + ", ".join(f"{k} {v}" for k, v in
                                                    sorted(self.dropped.items())))  # fmt: skip
        return "\n".join(line.rstrip() for line in lines)


def scan(sockets: list[AdvertSocket], seconds: float) -> Survey:
    survey = Survey()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(sockets, [], [], left)
        for sock in readable:
            for pkt in sock.receive():
                survey.add(pkt, time.monotonic())
    return survey
