"""`vrrpd scan`'s survey: who advertises which VRID, and which VRIDs collide."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address

from vrrpd.limits import IPAddress
from vrrpd.scan import Survey
from vrrpd.vrrp import packet


@dataclass(frozen=True)
class Pkt:
    payload: bytes
    source: IPAddress
    destination: IPAddress
    ttl: int = 255


def advert(src: str, vrid: int, prio: int, *vips: str, version: int = 3) -> Pkt:
    source = ip_address(src)
    adv = packet.Advertisement(
        version, vrid, prio, 100, tuple(ip_address(v) for v in vips),
        auth_type=packet.AUTH_NONE,
    )  # fmt: skip
    return Pkt(packet.encode(adv, source, packet.MULTICAST_V4), source, packet.MULTICAST_V4)


def test_survey_lists_each_router_once_with_its_latest_values() -> None:
    s = Survey()
    s.add(advert("192.168.77.11", 51, 150, "192.168.77.100"), 1.0)
    s.add(advert("192.168.77.11", 51, 140, "192.168.77.100"), 2.0)
    s.add(advert("192.168.77.12", 52, 100, "192.168.77.101", version=2), 2.5)
    assert len(s.routers) == 2
    r = s.routers[(3, 51, IPv4Address("192.168.77.11"))]
    assert (r.priority, r.adverts, r.first, r.last) == (140, 2, 1.0, 2.0)
    table = s.table().splitlines()
    assert table[0].split() == ["VRID", "VER", "SOURCE", "PRIO", "INTERVAL", "ADVERTS",
                                "ADDRESSES"]  # fmt: skip
    assert table[1].split() == ["51", "v3", "192.168.77.11", "140", "1000ms", "2",
                                "192.168.77.100"]  # fmt: skip
    assert table[2].split()[:2] == ["52", "v2"]
    assert s.conflicts() == []


def test_survey_names_a_vrid_conflict_and_counts_malformed_packets() -> None:
    s = Survey()
    s.add(advert("192.168.77.11", 51, 150, "192.168.77.100"), 1.0)
    s.add(advert("192.168.77.13", 51, 100, "192.168.77.200"), 1.0)
    bad = advert("192.168.77.14", 9, 100, "192.168.77.9")
    s.add(Pkt(bad.payload, bad.source, bad.destination, ttl=64), 1.0)
    assert s.conflicts() == [
        "VRID 51 (IPv4) is used by routers advertising different addresses: "
        "192.168.77.100 vs 192.168.77.200"
    ]
    assert "conflict: VRID 51" in s.table()
    assert "malformed: ttl 1" in s.table()


def test_an_empty_survey_says_so() -> None:
    assert "no VRRP advertisement heard" in Survey().table()
