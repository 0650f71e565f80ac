"""Tests of the VRRP advertisement codec (vrrpd.vrrp.packet).

Two independent references: real keepalived 2.2.7 captures (golden vectors, byte for
byte) and scapy's VRRP / VRRPv3 layers (checksums computed by scapy). Crafted bad
packets are built with scapy too, so each carries a valid checksum and trips exactly the
check under test.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import rdpcap

from vrrpd.limits import IPAddress
from vrrpd.vrrp import packet
from vrrpd.vrrp.packet import (
    AUTH_NONE,
    AUTH_PASS,
    IPPROTO_VRRP,
    MULTICAST_V4,
    MULTICAST_V6,
    VRRP_TTL,
    Advertisement,
    Dropped,
    DropReason,
    check_instance,
    decode,
    encode,
)

# keepalived's own captures, carried by the repository (tests/data/README.md says how they
# were made).
PCAPS = Path(__file__).resolve().parents[1] / "data" / "pcap"

NODE1 = IPv4Address("192.168.77.11")
NODE2 = IPv4Address("192.168.77.12")
NODE3 = IPv4Address("192.168.77.13")
VIP = IPv4Address("192.168.77.100")
VIP_PASS = IPv4Address("192.168.77.101")
LL1 = IPv6Address("fe80::77:ff:fe00:1")
LL2 = IPv6Address("fe80::77:ff:fe00:2")

# Deterministic (same examples every run) and no example database in the tree.
FAST = settings(derandomize=True, database=None, deadline=None, max_examples=300)


# ------------------------------------------------------------------ captures


@dataclass(frozen=True)
class Frame:
    number: int  # 1-based, as Wireshark shows it
    source: IPAddress
    destination: IPAddress
    ttl: int
    payload: bytes  # the IP payload: exactly the VRRP message


def vrrp_frames(name: str) -> list[Frame]:
    frames = []
    for number, pkt in enumerate(rdpcap(str(PCAPS / name)), start=1):
        if IP not in pkt or pkt[IP].proto != IPPROTO_VRRP:
            continue
        ip = pkt[IP]
        # Slice by the IP header's own lengths: short Ethernet frames carry padding.
        payload = bytes(ip)[ip.ihl * 4 : ip.len]
        frames.append(Frame(number, ip_address(ip.src), ip_address(ip.dst), ip.ttl, payload))
    return frames


@dataclass(frozen=True)
class Capture:
    name: str
    version: int
    vrid: int
    interval_cs: int
    addresses: tuple[IPAddress, ...]
    priorities: dict[IPAddress, int]  # by sender
    frames: int  # how many VRRP frames the file holds
    priority_zero: tuple[int, ...] = ()  # frame numbers of a stopping master's advert
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""


BOTH: dict[IPAddress, int] = {NODE1: 150, NODE2: 100}  # the lab's priorities, by sender

CAPTURES = [
    Capture(
        "keepalived-vrrp_v2_mcast.pcap", 2, 51, 100, (VIP,), BOTH, frames=14, priority_zero=(36,)
    ),
    Capture(
        "keepalived-vrrp_v2_pass-auth.pcap",
        2,
        52,
        100,
        (VIP_PASS,),
        {NODE1: 120},
        frames=1,
        auth_type=AUTH_PASS,
        auth_data=b"lab-pass",
    ),
    Capture("keepalived-vrrp_v2_unicast.pcap", 2, 51, 100, (VIP,), BOTH, frames=20),
    Capture("keepalived-vrrp_v3_mcast.pcap", 3, 51, 10, (VIP,), BOTH, frames=32),
    Capture(
        "keepalived-vrrp_v3_mcast-shutdown.pcap",
        3,
        51,
        10,
        (VIP,),
        BOTH,
        frames=11,
        priority_zero=(9,),
    ),
    Capture("keepalived-vrrp_v3_unicast.pcap", 3, 51, 10, (VIP,), {NODE1: 150}, frames=35),
]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_keepalived_capture_decodes_and_reencodes_byte_identical(capture: Capture) -> None:
    frames = vrrp_frames(capture.name)
    assert len(frames) == capture.frames
    for frame in frames:
        where = f"{capture.name} frame {frame.number}"
        advert = decode(
            frame.payload, source=frame.source, destination=frame.destination, ttl=frame.ttl
        )
        priority = 0 if frame.number in capture.priority_zero else capture.priorities[frame.source]
        assert advert == Advertisement(
            version=capture.version,
            vrid=capture.vrid,
            priority=priority,
            advert_interval_cs=capture.interval_cs,
            addresses=capture.addresses,
            auth_type=capture.auth_type,
            auth_data=capture.auth_data,
        ), where
        # Byte-identical, checksum included: for v3 unicast this is the pseudo-header
        # built with the peer's address.
        assert encode(advert, frame.source, frame.destination) == frame.payload, where


def test_v2_mcast_frame_36_is_the_stopping_master_priority_0() -> None:
    frame = next(f for f in vrrp_frames("keepalived-vrrp_v2_mcast.pcap") if f.number == 36)
    advert = decode(frame.payload, source=frame.source, destination=frame.destination, ttl=255)
    assert isinstance(advert, Advertisement)
    assert (advert.priority, frame.source) == (0, NODE1)


def test_v3_unicast_checksum_uses_the_peers_address_not_the_group() -> None:
    to_node2 = next(
        f for f in vrrp_frames("keepalived-vrrp_v3_unicast.pcap") if f.destination == NODE2
    )
    # The same advert to two peers differs only in its checksum.
    to_node3 = next(
        f for f in vrrp_frames("keepalived-vrrp_v3_unicast.pcap") if f.destination == NODE3
    )
    assert to_node2.payload[:6] == to_node3.payload[:6]
    assert to_node2.payload[6:8] != to_node3.payload[6:8]
    # Verified against the group address (keepalived's unicast_checksum_compat) it fails.
    assert decode(to_node2.payload, source=NODE1, destination=MULTICAST_V4, ttl=255) == Dropped(
        DropReason.CHECKSUM, "checksum 0x0ecf, expected 0x3c71"
    )
    assert decode(to_node2.payload, source=NODE1, destination=NODE3, ttl=255) == Dropped(
        DropReason.CHECKSUM, "checksum 0x0ecf, expected 0x0ece"
    )


def test_v2_checksum_has_no_pseudo_header() -> None:
    frames = vrrp_frames("keepalived-vrrp_v2_unicast.pcap")
    to_node2 = next(f for f in frames if f.source == NODE1 and f.destination == NODE2)
    to_node3 = next(f for f in frames if f.source == NODE1 and f.destination == NODE3)
    assert to_node2.payload == to_node3.payload
    for source, destination in [(NODE3, MULTICAST_V4), (IPv4Address("10.0.0.1"), NODE1)]:
        advert = decode(to_node2.payload, source=source, destination=destination, ttl=255)
        assert isinstance(advert, Advertisement)


def test_v2_auth_none_still_sends_8_zero_octets() -> None:
    frame = vrrp_frames("keepalived-vrrp_v2_mcast.pcap")[0]
    assert len(frame.payload) == 8 + 4 + 8
    assert frame.payload[-8:] == bytes(8)


# ------------------------------------------------------------ scapy as oracle

V4_ADDRS = (VIP, IPv4Address("10.1.2.3"), IPv4Address("172.16.0.254"))
V6_ADDRS = (IPv6Address("2001:db8::100"), IPv6Address("fd00:77::1"), IPv6Address("fe80::1"))

ORACLE_CASES = [
    # (advert, source, destination)
    (Advertisement(3, 51, 150, 10, (VIP,)), NODE1, MULTICAST_V4),
    (Advertisement(3, 1, 255, 4095, V4_ADDRS), NODE2, NODE1),
    (Advertisement(3, 255, 0, 1, V4_ADDRS[:2]), NODE1, NODE3),
    (Advertisement(3, 51, 100, 100, V6_ADDRS[:1]), LL1, MULTICAST_V6),
    (Advertisement(3, 200, 254, 300, V6_ADDRS), LL2, LL1),
    (
        Advertisement(3, 7, 1, 4000, tuple(IPv6Address(f"2001:db8::{i:x}") for i in range(1, 21))),
        LL1,
        MULTICAST_V6,
    ),
    (Advertisement(2, 51, 100, 100, (VIP,)), NODE2, MULTICAST_V4),
    (Advertisement(2, 52, 120, 100, (VIP_PASS,), AUTH_PASS, b"lab-pass"), NODE1, MULTICAST_V4),
    (Advertisement(2, 9, 255, 25500, V4_ADDRS, AUTH_PASS, b"abc"), NODE1, NODE2),
    (Advertisement(2, 255, 0, 300, V4_ADDRS[1:]), NODE3, NODE1),
]


def scapy_bytes(advert: Advertisement, source: IPAddress, destination: IPAddress) -> bytes:
    """The same advert built by scapy, checksum left for scapy to compute."""
    addrs = [str(a) for a in advert.addresses]
    layer: VRRP | VRRPv3
    if advert.version == 3:
        layer = VRRPv3(
            vrid=advert.vrid,
            priority=advert.priority,
            adv=advert.advert_interval_cs,
            addrlist=addrs,
            chksum=None,
        )
    else:
        auth = advert.auth_data.ljust(8, b"\x00")
        layer = VRRP(
            vrid=advert.vrid,
            priority=advert.priority,
            authtype=advert.auth_type,
            adv=advert.advert_interval_cs // 100,
            addrlist=addrs,
            auth1=int.from_bytes(auth[:4], "big"),
            auth2=int.from_bytes(auth[4:], "big"),
            chksum=None,
        )
    if isinstance(source, IPv4Address):
        return bytes(IP(src=str(source), dst=str(destination), ttl=255) / layer)[20:]
    return bytes(IPv6(src=str(source), dst=str(destination), hlim=255) / layer)[40:]


@pytest.mark.parametrize(("advert", "source", "destination"), ORACLE_CASES)
def test_encode_matches_scapy(
    advert: Advertisement, source: IPAddress, destination: IPAddress
) -> None:
    ours = encode(advert, source, destination)
    assert ours == scapy_bytes(advert, source, destination)
    assert decode(ours, source=source, destination=destination, ttl=255) == advert


# --------------------------------------------------------------- drop reasons


def v3(**fields: Any) -> VRRPv3:
    layer: dict[str, Any] = {
        "vrid": 51,
        "priority": 150,
        "adv": 10,
        "addrlist": [str(VIP)],
        "chksum": None,
    }
    layer.update(fields)
    return VRRPv3(**layer)


def v2(**fields: Any) -> VRRP:
    layer: dict[str, Any] = {
        "vrid": 51,
        "priority": 150,
        "adv": 1,
        "addrlist": [str(VIP)],
        "chksum": None,
    }
    layer.update(fields)
    return VRRP(**layer)


def over_v4(layer: VRRP | VRRPv3, source: IPAddress = NODE1) -> bytes:
    return bytes(IP(src=str(source), dst=str(MULTICAST_V4)) / layer)[20:]


def over_v6(layer: VRRP | VRRPv3) -> bytes:
    return bytes(IPv6(src=str(LL1), dst=str(MULTICAST_V6)) / layer)[40:]


V3_GOOD = over_v4(v3())
V2_GOOD = over_v4(v2())
V6_GOOD = over_v6(v3(addrlist=[str(a) for a in V6_ADDRS[:2]]))


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


DROP_CASES = [
    # (id, payload, source, ttl, reason, detail or None)
    ("ttl 254", V3_GOOD, NODE1, 254, DropReason.TTL, "ttl 254, expected 255"),
    ("ttl 64 v2", V2_GOOD, NODE1, 64, DropReason.TTL, "ttl 64, expected 255"),
    ("ttl 1 v6", V6_GOOD, LL1, 1, DropReason.TTL, None),
    ("empty", b"", NODE1, 255, DropReason.LENGTH, "0 bytes, shorter than the 8-byte header"),
    ("7 bytes", V3_GOOD[:7], NODE1, 255, DropReason.LENGTH, None),
    ("v3 one byte short", V3_GOOD[:-1], NODE1, 255, DropReason.LENGTH, None),
    (
        "v3 trailing byte",
        V3_GOOD + b"\x00",
        NODE1,
        255,
        DropReason.LENGTH,
        "13 bytes, expected 12 for VRRPv3 with 1 IPv4 address",
    ),
    (
        "v2 without auth data",
        V2_GOOD[:-8],
        NODE1,
        255,
        DropReason.LENGTH,
        "12 bytes, expected 20 for VRRPv2 with 1 IPv4 address",
    ),
    ("count 2, one address", over_v4(v3(ipcount=2)), NODE1, 255, DropReason.LENGTH, None),
    # An IPv6 payload read as if it came over IPv4: count 2 predicts 16 bytes, not 40.
    ("v6 payload from v4 source", V6_GOOD, NODE1, 255, DropReason.LENGTH, None),
    ("version 1", over_v4(v3(version=1)), NODE1, 255, DropReason.VERSION, "version 1"),
    ("version 4", over_v4(v3(version=4)), NODE1, 255, DropReason.VERSION, "version 4"),
    ("version 15", flip(V3_GOOD, 0, 0xC0), NODE1, 255, DropReason.VERSION, "version 15"),
    ("v2 over IPv6", over_v6(v2()), LL1, 255, DropReason.VERSION, "VRRPv2 over IPv6"),
    ("type 2", over_v4(v3(type=2)), NODE1, 255, DropReason.TYPE, "type 2"),
    ("v2 type 0", over_v4(v2(type=0)), NODE1, 255, DropReason.TYPE, "type 0"),
    ("v3 address bit", flip(V3_GOOD, 11), NODE1, 255, DropReason.CHECKSUM, None),
    ("v3 priority", flip(V3_GOOD, 2), NODE1, 255, DropReason.CHECKSUM, None),
    ("v3 checksum", flip(V3_GOOD, 7), NODE1, 255, DropReason.CHECKSUM, None),
    ("v3 other source", V3_GOOD, NODE2, 255, DropReason.CHECKSUM, None),
    ("v2 password bit", flip(V2_GOOD, 19), NODE1, 255, DropReason.CHECKSUM, None),
    ("v2 interval", flip(V2_GOOD, 5, 0x02), NODE1, 255, DropReason.CHECKSUM, None),
    ("v6 address bit", flip(V6_GOOD, 30), LL1, 255, DropReason.CHECKSUM, None),
    (
        "v3 count 0",
        over_v4(v3(addrlist=[])),
        NODE1,
        255,
        DropReason.ADDRESS_COUNT,
        "no addresses (count 0)",
    ),
    ("v2 count 0", over_v4(v2(addrlist=[])), NODE1, 255, DropReason.ADDRESS_COUNT, None),
    ("v6 count 0", over_v6(v3(addrlist=[])), LL1, 255, DropReason.ADDRESS_COUNT, None),
    ("v3 vrid 0", over_v4(v3(vrid=0)), NODE1, 255, DropReason.VRID, "vrid 0"),
    ("v2 vrid 0", over_v4(v2(vrid=0)), NODE1, 255, DropReason.VRID, "vrid 0"),
    ("v3 interval 0", over_v4(v3(adv=0)), NODE1, 255, DropReason.INTERVAL, None),
    ("v3 interval 0, rsvd set", over_v4(v3(adv=0, res=0xF)), NODE1, 255, DropReason.INTERVAL, None),
    ("v2 interval 0", over_v4(v2(adv=0)), NODE1, 255, DropReason.INTERVAL, None),
]


@pytest.mark.parametrize(
    ("payload", "source", "ttl", "reason", "detail"),
    [case[1:] for case in DROP_CASES],
    ids=[case[0] for case in DROP_CASES],
)
def test_decode_drops(
    payload: bytes, source: IPAddress, ttl: int, reason: DropReason, detail: str | None
) -> None:
    destination = MULTICAST_V4 if isinstance(source, IPv4Address) else MULTICAST_V6
    result = decode(payload, source=source, destination=destination, ttl=ttl)
    assert isinstance(result, Dropped), result
    assert result.reason == reason, result
    assert result.detail
    if detail is not None:
        assert result.detail == detail


def test_good_crafted_packets_decode() -> None:
    # The baselines the drop cases mutate are themselves accepted.
    assert decode(V3_GOOD, source=NODE1, destination=MULTICAST_V4, ttl=255) == Advertisement(
        3, 51, 150, 10, (VIP,)
    )
    assert decode(V2_GOOD, source=NODE1, destination=MULTICAST_V4, ttl=255) == Advertisement(
        2, 51, 150, 100, (VIP,)
    )
    assert decode(V6_GOOD, source=LL1, destination=MULTICAST_V6, ttl=255) == Advertisement(
        3, 51, 150, 10, V6_ADDRS[:2]
    )


def test_checksum_detail_names_both_values() -> None:
    result = decode(flip(V3_GOOD, 7), source=NODE1, destination=MULTICAST_V4, ttl=255)
    good = int.from_bytes(V3_GOOD[6:8], "big")
    assert result == Dropped(DropReason.CHECKSUM, f"checksum {good ^ 1:#06x}, expected {good:#06x}")


def test_v3_reserved_bits_are_ignored_on_receipt() -> None:
    # RFC 5798 §5.2.6: rsvd MUST be zero on transmission, ignored on reception.
    result = decode(over_v4(v3(res=0xA)), source=NODE1, destination=MULTICAST_V4, ttl=255)
    assert result == Advertisement(3, 51, 150, 10, (VIP,))


def test_v2_auth_none_ignores_auth_data_on_receipt() -> None:
    # RFC 3768 §5.3.10: Authentication Data is ignored on reception.
    junk = over_v4(v2(auth1=0xDEADBEEF, auth2=1))
    result = decode(junk, source=NODE1, destination=MULTICAST_V4, ttl=255)
    assert result == Advertisement(2, 51, 150, 100, (VIP,))


def test_v2_short_password_comes_back_without_padding() -> None:
    data = over_v4(v2(authtype=AUTH_PASS, auth1=int.from_bytes(b"abc\0", "big")))
    result = decode(data, source=NODE1, destination=MULTICAST_V4, ttl=255)
    assert isinstance(result, Advertisement)
    assert (result.auth_type, result.auth_data) == (AUTH_PASS, b"abc")


def test_decode_accepts_bytearray_and_memoryview() -> None:
    for data in (bytearray(V3_GOOD), memoryview(V3_GOOD)):
        result = decode(data, source=NODE1, destination=MULTICAST_V4, ttl=255)  # type: ignore[arg-type]
        assert isinstance(result, Advertisement)


def test_decode_rejects_mixed_family_addresses_as_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="family"):
        decode(V3_GOOD, source=NODE1, destination=MULTICAST_V6, ttl=255)


# --------------------------------------------------------------------- encode

GOOD_V3 = Advertisement(3, 51, 150, 10, (VIP,))
GOOD_V2 = Advertisement(2, 51, 150, 100, (VIP,))

ENCODE_ERRORS = [
    ("version 1", replace(GOOD_V3, version=1), NODE1, MULTICAST_V4),
    ("version 4", replace(GOOD_V3, version=4), NODE1, MULTICAST_V4),
    ("vrid 0", replace(GOOD_V3, vrid=0), NODE1, MULTICAST_V4),
    ("vrid 256", replace(GOOD_V2, vrid=256), NODE1, MULTICAST_V4),
    ("priority -1", replace(GOOD_V3, priority=-1), NODE1, MULTICAST_V4),
    ("priority 256", replace(GOOD_V2, priority=256), NODE1, MULTICAST_V4),
    ("v3 interval 0", replace(GOOD_V3, advert_interval_cs=0), NODE1, MULTICAST_V4),
    ("v3 interval 4096", replace(GOOD_V3, advert_interval_cs=4096), NODE1, MULTICAST_V4),
    ("v2 interval 150", replace(GOOD_V2, advert_interval_cs=150), NODE1, MULTICAST_V4),
    ("v2 interval 0", replace(GOOD_V2, advert_interval_cs=0), NODE1, MULTICAST_V4),
    ("v2 interval 256 s", replace(GOOD_V2, advert_interval_cs=25600), NODE1, MULTICAST_V4),
    ("v2 over IPv6", replace(GOOD_V2, addresses=V6_ADDRS[:1]), LL1, MULTICAST_V6),
    ("v6 address, v4 source", replace(GOOD_V3, addresses=(V6_ADDRS[0],)), NODE1, MULTICAST_V4),
    ("mixed addresses", replace(GOOD_V3, addresses=(VIP, V6_ADDRS[0])), NODE1, MULTICAST_V4),
    ("v4 source, v6 destination", GOOD_V3, NODE1, MULTICAST_V6),
    ("no addresses", replace(GOOD_V3, addresses=()), NODE1, MULTICAST_V4),
    (
        "256 addresses",
        replace(GOOD_V3, addresses=tuple(IPv4Address(0x0A000000 + i) for i in range(256))),
        NODE1,
        MULTICAST_V4,
    ),
    (
        "password of 9 bytes",
        replace(GOOD_V2, auth_type=AUTH_PASS, auth_data=b"123456789"),
        NODE1,
        MULTICAST_V4,
    ),
    ("auth data with auth 0", replace(GOOD_V2, auth_data=b"x"), NODE1, MULTICAST_V4),
    ("auth type 256", replace(GOOD_V2, auth_type=256), NODE1, MULTICAST_V4),
    ("v3 with auth", replace(GOOD_V3, auth_type=AUTH_PASS, auth_data=b"x"), NODE1, MULTICAST_V4),
]


@pytest.mark.parametrize(
    ("advert", "source", "destination"),
    [case[1:] for case in ENCODE_ERRORS],
    ids=[case[0] for case in ENCODE_ERRORS],
)
def test_encode_rejects_impossible_values(
    advert: Advertisement, source: IPAddress, destination: IPAddress
) -> None:
    with pytest.raises(ValueError):
        encode(advert, source, destination)


def test_encode_limits_are_inclusive() -> None:
    many = tuple(IPv4Address(0x0A000000 + i) for i in range(255))
    for advert in (
        replace(GOOD_V3, vrid=1, priority=0, advert_interval_cs=1),
        replace(GOOD_V3, vrid=255, priority=255, advert_interval_cs=4095, addresses=many),
        replace(GOOD_V2, advert_interval_cs=25500, auth_type=AUTH_PASS, auth_data=b"12345678"),
    ):
        data = encode(advert, NODE1, MULTICAST_V4)
        assert decode(data, source=NODE1, destination=MULTICAST_V4, ttl=255) == advert


# ------------------------------------------------------------- check_instance

CONFIG_V3: dict[str, Any] = {"version": 3, "advert_interval_cs": 100, "addresses": (VIP, VIP_PASS)}
CONFIG_V2: dict[str, Any] = {
    "version": 2,
    "advert_interval_cs": 100,
    "addresses": (VIP,),
    "auth_type": AUTH_PASS,
    "auth_data": b"abc",
}
V3_ADVERT = Advertisement(3, 51, 100, 100, (VIP, VIP_PASS))
V2_ADVERT = Advertisement(2, 51, 100, 100, (VIP,), AUTH_PASS, b"abc")

CHECK_CASES = [
    # (id, advert, config, reason or None)
    ("v3 ok", V3_ADVERT, CONFIG_V3, None),
    (
        "v3 addresses in another order",
        replace(V3_ADVERT, addresses=(VIP_PASS, VIP)),
        CONFIG_V3,
        None,
    ),
    ("v3 interval differs: learnt", replace(V3_ADVERT, advert_interval_cs=10), CONFIG_V3, None),
    (
        "v3 from v2 instance",
        V3_ADVERT,
        {**CONFIG_V2, "addresses": (VIP, VIP_PASS)},
        DropReason.VERSION,
    ),
    (
        "v2 to v3 instance",
        replace(V2_ADVERT, addresses=(VIP, VIP_PASS)),
        CONFIG_V3,
        DropReason.VERSION,
    ),
    (
        "v3 address missing",
        replace(V3_ADVERT, addresses=(VIP,)),
        CONFIG_V3,
        DropReason.ADDRESS_LIST,
    ),
    (
        "v3 address extra",
        replace(V3_ADVERT, addresses=(VIP, VIP_PASS, NODE3)),
        CONFIG_V3,
        DropReason.ADDRESS_LIST,
    ),
    (
        "v3 address duplicated",
        replace(V3_ADVERT, addresses=(VIP, VIP, VIP_PASS)),
        CONFIG_V3,
        DropReason.ADDRESS_LIST,
    ),
    (
        "v3 other address",
        replace(V3_ADVERT, addresses=(VIP, NODE3)),
        CONFIG_V3,
        DropReason.ADDRESS_LIST,
    ),
    (
        "v3 owner's list may differ",
        replace(V3_ADVERT, priority=255, addresses=(NODE3,)),
        CONFIG_V3,
        None,
    ),
    (
        "v3 priority 254 list must match",
        replace(V3_ADVERT, priority=254, addresses=(NODE3,)),
        CONFIG_V3,
        DropReason.ADDRESS_LIST,
    ),
    (
        "v6 ok",
        Advertisement(3, 51, 100, 100, V6_ADDRS),
        {**CONFIG_V3, "addresses": tuple(reversed(V6_ADDRS))},
        None,
    ),
    ("v2 ok", V2_ADVERT, CONFIG_V2, None),
    ("v2 password padded either side", replace(V2_ADVERT, auth_data=b"abc\0"), CONFIG_V2, None),
    ("v2 wrong password", replace(V2_ADVERT, auth_data=b"abd"), CONFIG_V2, DropReason.AUTH),
    ("v2 password prefix", replace(V2_ADVERT, auth_data=b"ab"), CONFIG_V2, DropReason.AUTH),
    (
        "v2 no auth, want pass",
        replace(V2_ADVERT, auth_type=AUTH_NONE, auth_data=b""),
        CONFIG_V2,
        DropReason.AUTH,
    ),
    (
        "v2 pass, want none",
        V2_ADVERT,
        {**CONFIG_V2, "auth_type": AUTH_NONE, "auth_data": b""},
        DropReason.AUTH,
    ),
    ("v2 auth type 2", replace(V2_ADVERT, auth_type=2), CONFIG_V2, DropReason.AUTH),
    (
        "v2 none both",
        replace(V2_ADVERT, auth_type=AUTH_NONE, auth_data=b""),
        {**CONFIG_V2, "auth_type": AUTH_NONE, "auth_data": b""},
        None,
    ),
    (
        "v2 interval differs",
        replace(V2_ADVERT, advert_interval_cs=200),
        CONFIG_V2,
        DropReason.INTERVAL,
    ),
    (
        "v2 interval differs, even from the owner",
        replace(V2_ADVERT, advert_interval_cs=300, priority=255),
        CONFIG_V2,
        DropReason.INTERVAL,
    ),
    (
        "v2 wrong password and interval: auth first",
        replace(V2_ADVERT, auth_data=b"x", advert_interval_cs=200),
        CONFIG_V2,
        DropReason.AUTH,
    ),
    (
        "v2 address list",
        replace(V2_ADVERT, addresses=(VIP_PASS,)),
        CONFIG_V2,
        DropReason.ADDRESS_LIST,
    ),
    (
        "v2 owner's list may differ",
        replace(V2_ADVERT, addresses=(VIP_PASS,), priority=255),
        CONFIG_V2,
        None,
    ),
]


@pytest.mark.parametrize(
    ("advert", "config", "reason"),
    [case[1:] for case in CHECK_CASES],
    ids=[case[0] for case in CHECK_CASES],
)
def test_check_instance(
    advert: Advertisement, config: dict[str, Any], reason: DropReason | None
) -> None:
    result = check_instance(advert, **config)
    if reason is None:
        assert result is None
    else:
        assert isinstance(result, Dropped)
        assert result.reason == reason
        assert result.detail


def test_check_instance_keeps_the_password_out_of_the_detail() -> None:
    result = check_instance(replace(V2_ADVERT, auth_data=b"guess"), **CONFIG_V2)
    assert result is not None
    assert "abc" not in result.detail and "guess" not in result.detail


def test_capture_adverts_pass_their_instance_checks() -> None:
    frame = vrrp_frames("keepalived-vrrp_v2_pass-auth.pcap")[0]
    advert = decode(frame.payload, source=frame.source, destination=frame.destination, ttl=255)
    assert isinstance(advert, Advertisement)
    config: dict[str, Any] = {"version": 2, "advert_interval_cs": 100, "addresses": (VIP_PASS,)}
    assert check_instance(advert, **config, auth_type=AUTH_PASS, auth_data=b"lab-pass") is None
    dropped = check_instance(advert, **config, auth_type=AUTH_PASS, auth_data=b"lab-pas")
    assert dropped is not None and dropped.reason == DropReason.AUTH


# ----------------------------------------------------------------- properties

v4_addresses: st.SearchStrategy[IPAddress] = st.integers(0, 2**32 - 1).map(IPv4Address)
v6_addresses: st.SearchStrategy[IPAddress] = st.integers(0, 2**128 - 1).map(IPv6Address)
# Mostly 255, so that fuzzed packets get past the TTL check to the parsing.
ttls = st.one_of(st.just(VRRP_TTL), st.just(VRRP_TTL), st.integers(-1, 300))


@st.composite
def endpoints(draw: st.DrawFn, v6: bool) -> tuple[IPAddress, IPAddress]:
    addresses = v6_addresses if v6 else v4_addresses
    return draw(addresses), draw(addresses)


@st.composite
def adverts_with_endpoints(draw: st.DrawFn) -> tuple[Advertisement, IPAddress, IPAddress]:
    version = draw(st.sampled_from([2, 3]))
    v6 = version == 3 and draw(st.booleans())
    source, destination = draw(endpoints(v6))
    addresses = tuple(
        draw(st.lists(v6_addresses if v6 else v4_addresses, min_size=1, max_size=255))
    )
    vrid = draw(st.integers(1, 255))
    priority = draw(st.integers(0, 255))
    if version == 3:
        interval_cs = draw(st.integers(1, 4095))
        return Advertisement(3, vrid, priority, interval_cs, addresses), source, destination
    interval_cs = 100 * draw(st.integers(1, 255))
    auth_type = draw(st.sampled_from([AUTH_NONE, AUTH_PASS, 2, 255]))
    # Passwords as keepalived reads them from its config: no NUL octets.
    password = draw(st.binary(min_size=1, max_size=8).filter(lambda b: b"\0" not in b))
    auth_data = b"" if auth_type == AUTH_NONE else password
    advert = Advertisement(2, vrid, priority, interval_cs, addresses, auth_type, auth_data)
    return advert, source, destination


@FAST
@given(adverts_with_endpoints())
def test_round_trip(case: tuple[Advertisement, IPAddress, IPAddress]) -> None:
    advert, source, destination = case
    data = encode(advert, source, destination)
    assert decode(data, source=source, destination=destination, ttl=VRRP_TTL) == advert


@st.composite
def mutated_packets(draw: st.DrawFn) -> tuple[bytes, IPAddress, IPAddress]:
    """Valid encodings, intact or with bytes changed, cut or added: random bytes alone
    seldom get past the length check."""
    advert, source, destination = draw(adverts_with_endpoints())
    data = bytearray(encode(advert, source, destination))
    match draw(st.sampled_from(["intact", "changed", "cut", "extended"])):
        case "changed":
            for _ in range(draw(st.integers(1, 3))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        case "cut":
            data = data[: draw(st.integers(0, len(data) - 1))]
        case "extended":
            data += draw(st.binary(min_size=1, max_size=4))
    return bytes(data), source, destination


@st.composite
def random_packets(draw: st.DrawFn) -> tuple[bytes, IPAddress, IPAddress]:
    source, destination = draw(endpoints(draw(st.booleans())))
    return draw(st.binary(max_size=64)), source, destination


@FAST
@given(st.one_of(random_packets(), mutated_packets()), ttls)
def test_decode_never_raises(case: tuple[bytes, IPAddress, IPAddress], ttl: int) -> None:
    data, source, destination = case
    result = decode(data, source=source, destination=destination, ttl=ttl)
    assert isinstance(result, Advertisement | Dropped)
    if isinstance(result, Dropped):
        assert isinstance(result.reason, DropReason) and result.detail
    else:
        # Whatever decode accepts, encode can send again, and it reads back the same.
        again = encode(result, source, destination)
        assert decode(again, source=source, destination=destination, ttl=VRRP_TTL) == result


# ----------------------------------------------------------------- the module


def test_module_is_pure() -> None:
    """The codec does no I/O: only stdlib value types, struct packing and the protocol's
    limits (vrrpd.limits, pure itself: tests/unit/test_layering.py)."""
    tree = ast.parse(inspect.getsource(packet))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None
            imported.add(
                node.module if node.module == "vrrpd.limits" else node.module.split(".")[0]
            )
    assert imported <= {"__future__", "dataclasses", "enum", "ipaddress", "struct", "vrrpd.limits"}


def test_drop_reasons_are_distinct_metric_labels() -> None:
    values = [reason.value for reason in DropReason]
    assert len(set(values)) == len(values)
    assert all(v.isidentifier() and v.islower() for v in values)
