"""VRRP advertisement codec: VRRPv3 (RFC 5798) for IPv4/IPv6 and VRRPv2 (RFC 3768) for IPv4.

Contract (as FRR's vrrp_packet.c puts it): `decode` only checks whether the bytes are a
valid VRRP advertisement; `check_instance` checks it against one virtual router's
configuration. `vrrpd.vrrp.receive` matches the VRID and calls both. No sockets here: the
caller passes the addresses and TTL / hop limit it read off the IP header or ancillary data.

Wire formats (all fields network byte order):

    VRRPv3, RFC 5798 §5.1             VRRPv2, RFC 3768 §5.1
    0      Version(4) | Type(4)       0      Version(4) | Type(4)
    1      Virtual Rtr ID             1      Virtual Rtr ID
    2      Priority                   2      Priority
    3      Count IPvX Addr            3      Count IP Addrs
    4..5   rsvd(4) | Max Adver Int(12) 4      Auth Type
                                      5      Adver Int (seconds)
    6..7   Checksum                   6..7   Checksum
    8..    IPvX Address(es)           8..    IP Address(es), then 8 octets
                                             of Authentication Data
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address

from vrrpd.limits import (
    ADDRESS_COUNT_MAX,
    ADVERT_INTERVAL_V2_MAX_S,
    ADVERT_INTERVAL_V3_MAX_CS,
    PASSWORD_MAX_BYTES,
    PRIORITY_OWNER,
    PRIORITY_RESIGN,
    VRID_MAX,
    VRID_MIN,
    IPAddress,
)

IPPROTO_VRRP = 112
VRRP_TTL = 255  # RFC 5798 §5.1.1.3 / §5.1.2.3: TTL and hop limit MUST be 255
MULTICAST_V4 = IPv4Address("224.0.0.18")
MULTICAST_V6 = IPv6Address("ff02::12")

AUTH_NONE = 0
AUTH_PASS = 1  # RFC 2338 simple text password, 8 octets; the only v2 type keepalived peers use

VRRP_TYPE_ADVERTISEMENT = 1  # RFC 5798 §5.2.2: the only type defined
HEADER_LEN = 8  # the fixed part both versions share in size
AUTH_DATA_LEN = PASSWORD_MAX_BYTES  # RFC 3768 §5.3.10: v2 always carries these 8 octets

_HEADER = struct.Struct("!BBBBHH")  # vers|type, vrid, priority, count, v3 rsvd|int or v2 auth|int


class DropReason(StrEnum):
    """Why an advertisement was not accepted. Values double as metric labels."""

    LENGTH = "length"
    VERSION = "version"
    TYPE = "type"
    CHECKSUM = "checksum"
    TTL = "ttl"
    ADDRESS_COUNT = "address_count"
    AUTH = "auth"
    INTERVAL = "interval"
    ADDRESS_LIST = "address_list"
    VRID = "vrid"  # VRID 0: RFC 5798 §5.2.3 numbers virtual routers 1..255
    PEER = "peer"  # unicast: not from a configured peer (vrrpd.vrrp.receive)


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP advertisement, version-neutral.

    advert_interval_cs is in centiseconds for both versions (v2 carries whole seconds on
    the wire: 1 s is 100 here). auth_type/auth_data are VRRPv2 only (v3 has neither):
    auth_data is the password without its zero padding (b"lab-pass", b"abc"), and b""
    for AUTH_NONE, whose Authentication Data RFC 3768 §5.3.10 says to ignore on receipt.
    """

    version: int
    vrid: int
    priority: int
    advert_interval_cs: int
    addresses: tuple[IPAddress, ...]
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: DropReason
    detail: str


def _fold(total: int) -> int:
    """Fold a sum of 16-bit words into 16 bits with end-around carry (RFC 1071)."""
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sum16(data: bytes) -> int:
    """One's complement sum of data as big-endian 16-bit words, odd tail zero-padded."""
    if len(data) % 2:
        data += b"\x00"
    return _fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def _pseudo_header(source: IPAddress, destination: IPAddress, length: int) -> bytes:
    """The pseudo-header RFC 5798 §5.2.8 prepends for the v3 checksum.

    IPv4 as in RFC 768/793 (src, dst, zero, protocol, 16-bit length); IPv6 as in
    RFC 8200 §8.1 (src, dst, 32-bit length, 3 zero octets, next header). The destination
    is the packet's real one: the multicast group, or the peer for unicast, which is what
    keepalived puts there (its old "use 224.0.0.18 for unicast too" behaviour survives
    only behind unicast_checksum_compat).
    """
    if isinstance(source, IPv4Address):
        return source.packed + destination.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    return source.packed + destination.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


def _checksum_sum(version: int, message: bytes, source: IPAddress, destination: IPAddress) -> int:
    """Folded one's complement sum the checksum covers: v3 adds the pseudo-header, v2 not."""
    total = _sum16(message)
    if version == 3:
        total = _fold(total + _sum16(_pseudo_header(source, destination, len(message))))
    return total


def _family(address: IPAddress) -> str:
    return "IPv4" if isinstance(address, IPv4Address) else "IPv6"


def _pad_auth(auth_data: bytes) -> bytes:
    """RFC 2338 §5.3.10: the password goes left-justified into 8 octets, zero padded."""
    if len(auth_data) > AUTH_DATA_LEN:
        raise ValueError(f"password is {len(auth_data)} bytes, VRRPv2 carries at most 8")
    return auth_data.ljust(AUTH_DATA_LEN, b"\x00")


def encode(advert: Advertisement, source: IPAddress, destination: IPAddress) -> bytes:
    """The VRRP message (no IP header) with its checksum.

    v3 checksums include the IPv4/IPv6 pseudo-header built from source and destination
    (for unicast, destination is the peer, as keepalived does); v2 checksums cover the
    VRRP message only.

    Raises ValueError for anything the wire cannot carry or that decode would drop, so
    that every encodable advertisement decodes back to itself.
    """
    if type(source) is not type(destination):
        raise ValueError(f"source {source} and destination {destination} differ in family")
    if advert.version not in (2, 3):
        raise ValueError(f"VRRP version {advert.version}: only 2 and 3 exist")
    if not VRID_MIN <= advert.vrid <= VRID_MAX:
        raise ValueError(f"VRID {advert.vrid} outside {VRID_MIN}..{VRID_MAX}")
    if not PRIORITY_RESIGN <= advert.priority <= PRIORITY_OWNER:
        raise ValueError(f"priority {advert.priority} outside {PRIORITY_RESIGN}..{PRIORITY_OWNER}")
    # RFC 5798 §5.2.5: "the minimum value is 1"; keepalived refuses v3 instances without VIPs.
    if not 1 <= len(advert.addresses) <= ADDRESS_COUNT_MAX:
        raise ValueError(
            f"{len(advert.addresses)} addresses, an advertisement carries 1..{ADDRESS_COUNT_MAX}"
        )
    family = type(source)
    for address in advert.addresses:
        if type(address) is not family:
            raise ValueError(f"address {address} is not {_family(source)} like the source")
    addresses = b"".join(a.packed for a in advert.addresses)

    if advert.version == 3:
        if advert.auth_type != AUTH_NONE or advert.auth_data:
            raise ValueError("VRRPv3 has no authentication (RFC 5798 §9)")
        if not 1 <= advert.advert_interval_cs <= ADVERT_INTERVAL_V3_MAX_CS:
            raise ValueError(
                f"advertisement interval {advert.advert_interval_cs} cs outside "
                f"1..{ADVERT_INTERVAL_V3_MAX_CS}"
            )
        # The 4 rsvd bits above Max Adver Int MUST be zero on transmission (RFC 5798 §5.2.6).
        second_word = advert.advert_interval_cs
        auth = b""
    else:
        if family is not IPv4Address:
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768); use version 3 for IPv6")
        seconds, rest = divmod(advert.advert_interval_cs, 100)
        if rest or not 1 <= seconds <= ADVERT_INTERVAL_V2_MAX_S:
            raise ValueError(
                f"advertisement interval {advert.advert_interval_cs} cs: VRRPv2 carries "
                f"whole seconds, 1..{ADVERT_INTERVAL_V2_MAX_S}"
            )
        if not 0 <= advert.auth_type <= 255:
            raise ValueError(f"auth type {advert.auth_type} outside 0..255")
        if advert.auth_type == AUTH_NONE and advert.auth_data:
            raise ValueError("auth data given with auth type 0 (no authentication)")
        second_word = advert.auth_type << 8 | seconds
        # Auth type 0 still carries 8 zero octets, as keepalived sends them (see the
        # captures) and RFC 3768 §5.3.10 asks ("SHOULD be set to zero on transmission").
        auth = _pad_auth(advert.auth_data)

    header = _HEADER.pack(
        advert.version << 4 | VRRP_TYPE_ADVERTISEMENT,
        advert.vrid,
        advert.priority,
        len(advert.addresses),
        second_word,
        0,  # checksum, computed over the message with this field zero
    )
    message = header + addresses + auth
    checksum = ~_checksum_sum(advert.version, message, source, destination) & 0xFFFF
    return message[:6] + checksum.to_bytes(2, "big") + message[8:]


def decode(
    data: bytes, *, source: IPAddress, destination: IPAddress, ttl: int
) -> Advertisement | Dropped:
    """Parse and validate one VRRP message (the IP payload).

    Checks follow RFC 5798 §7.1 in its order (TTL, version, length, checksum), then the
    header fields that only a well-formed, uncorrupted message can be blamed for (count,
    VRID, interval). Never raises on any bytes; raises ValueError only if source and
    destination differ in family, which no real packet can produce.
    """
    if type(source) is not type(destination):
        raise ValueError(f"source {source} and destination {destination} differ in family")
    data = bytes(data)  # also accept the bytearray / memoryview a recvmsg_into leaves

    # RFC 5798 §7.1: MUST verify that the IPv4 TTL / IPv6 Hop Limit is 255, which proves
    # the sender is on the link.
    if ttl != VRRP_TTL:
        return Dropped(DropReason.TTL, f"ttl {ttl}, expected {VRRP_TTL}")
    if len(data) < HEADER_LEN:
        return Dropped(DropReason.LENGTH, f"{len(data)} bytes, shorter than the 8-byte header")

    vers_type, vrid, priority, count, second_word, checksum = _HEADER.unpack_from(data)
    version, kind = vers_type >> 4, vers_type & 0x0F
    ipv4 = isinstance(source, IPv4Address)
    if version not in (2, 3):
        return Dropped(DropReason.VERSION, f"version {version}")
    if version == 2 and not ipv4:
        # keepalived has a non-standard v2-over-IPv6 (without the auth octets); RFC 3768
        # is IPv4 only and so are we.
        return Dropped(DropReason.VERSION, "VRRPv2 over IPv6")
    if kind != VRRP_TYPE_ADVERTISEMENT:
        return Dropped(DropReason.TYPE, f"type {kind}")

    # Exact length, as keepalived's vrrp_check_packet ("vrrp packet too long/short"): the
    # message is the whole IP payload, so trailing octets mean a malformed packet.
    address_len = 4 if ipv4 else 16
    expected = HEADER_LEN + count * address_len + (AUTH_DATA_LEN if version == 2 else 0)
    if len(data) != expected:
        return Dropped(
            DropReason.LENGTH,
            f"{len(data)} bytes, expected {expected} for VRRPv{version} with {count} "
            f"{_family(source)} address{'' if count == 1 else 'es'}",
        )

    if _checksum_sum(version, data, source, destination) != 0xFFFF:
        zeroed = data[:6] + b"\x00\x00" + data[8:]
        want = ~_checksum_sum(version, zeroed, source, destination) & 0xFFFF
        return Dropped(DropReason.CHECKSUM, f"checksum {checksum:#06x}, expected {want:#06x}")

    if count == 0:
        # RFC 5798 §5.2.5: "the minimum value is 1". (keepalived still lets a v2 instance
        # without VIPs send count 0 outside strict mode; nothing useful can come of it.)
        return Dropped(DropReason.ADDRESS_COUNT, "no addresses (count 0)")
    if vrid == 0:
        return Dropped(DropReason.VRID, "vrid 0")

    if version == 3:
        # RFC 5798 §5.2.6: the 4 rsvd bits are ignored on reception.
        interval_cs = second_word & ADVERT_INTERVAL_V3_MAX_CS
        auth_type, auth_data = AUTH_NONE, b""
    else:
        auth_type, interval_cs = second_word >> 8, (second_word & 0xFF) * 100
        raw_auth = data[-AUTH_DATA_LEN:]
        auth_data = b"" if auth_type == AUTH_NONE else raw_auth.rstrip(b"\x00")
    if interval_cs == 0:
        # A backup learns a v3 master's interval (RFC 5798 §6.4.2): 0 would make its
        # Master_Down_Interval 0 and it would take over at once.
        return Dropped(DropReason.INTERVAL, "advertisement interval 0")

    body = data[HEADER_LEN : HEADER_LEN + count * address_len]
    addresses: tuple[IPAddress, ...]
    if ipv4:
        addresses = tuple(IPv4Address(body[i : i + 4]) for i in range(0, len(body), 4))
    else:
        addresses = tuple(IPv6Address(body[i : i + 16]) for i in range(0, len(body), 16))
    return Advertisement(
        version=version,
        vrid=vrid,
        priority=priority,
        advert_interval_cs=interval_cs,
        addresses=addresses,
        auth_type=auth_type,
        auth_data=auth_data,
    )


def _address_key(address: IPAddress) -> tuple[int, int]:
    return address.version, int(address)


def check_instance(
    advert: Advertisement,
    *,
    version: int,
    advert_interval_cs: int,
    addresses: tuple[IPAddress, ...] | None,
    auth_type: int = AUTH_NONE,
    auth_data: bytes = b"",
) -> Dropped | None:
    """Checks that need the receiving virtual router's configuration (RFC 5798 §7.1).

    v2 only: authentication (RFC 3768 §7.1 "MUST perform authentication") and the
    interval (RFC 3768 §7.1 "MUST verify that the Adver Interval in the packet is the same
    as the locally configured"). v3 intervals may differ: a backup adopts the master's.
    Raises ValueError for a password (configured or received) longer than 8 bytes.
    """
    if advert.version != version:
        return Dropped(DropReason.VERSION, f"version {advert.version}, configured {version}")
    if version == 2:
        if advert.auth_type != auth_type:
            return Dropped(DropReason.AUTH, f"auth type {advert.auth_type}, configured {auth_type}")
        # Compare the 8 octets as they travel, so b"abc" matches b"abc\0\0\0\0\0". The
        # password itself stays out of the detail: drop details end up in logs.
        if auth_type == AUTH_PASS and _pad_auth(advert.auth_data) != _pad_auth(auth_data):
            return Dropped(DropReason.AUTH, "password mismatch")
        if advert.advert_interval_cs != advert_interval_cs:
            return Dropped(
                DropReason.INTERVAL,
                f"advertisement interval {advert.advert_interval_cs} cs, "
                f"configured {advert_interval_cs} cs",
            )
    # RFC 5798 §7.1: MAY verify Count IPvX Addrs and the address list; on mismatch the
    # receiver MUST log, and MUST drop unless the sender is the address owner (priority
    # 255). The order of addresses is not significant; their number is (as in keepalived).
    # addresses None: not verified (an instance whose list changes while it runs).
    if (
        addresses is not None
        and advert.priority != PRIORITY_OWNER
        and sorted(advert.addresses, key=_address_key) != sorted(addresses, key=_address_key)
    ):
        received = ", ".join(map(str, advert.addresses))
        configured = ", ".join(map(str, addresses))
        return Dropped(
            DropReason.ADDRESS_LIST, f"addresses [{received}], configured [{configured}]"
        )
    return None
