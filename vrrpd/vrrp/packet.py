"""VRRP advertisement codec: VRRPv3 (RFC 5798) for IPv4/IPv6 and VRRPv2 (RFC 3768) for IPv4.

Contract (as FRR's vrrp_packet.c puts it): `decode` only checks whether the bytes are a
valid VRRP advertisement; `check_instance` checks it against one virtual router's
configuration. The caller matches the VRID. No sockets here: the caller passes the
addresses and TTL / hop limit it read off the IP header or ancillary data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address

IPPROTO_VRRP = 112
VRRP_TTL = 255  # RFC 5798 §5.1.1.3 / §5.1.2.3: TTL and hop limit MUST be 255
MULTICAST_V4 = IPv4Address("224.0.0.18")
MULTICAST_V6 = IPv6Address("ff02::12")

AUTH_NONE = 0
AUTH_PASS = 1  # RFC 2338 simple text password, 8 octets; the only v2 type keepalived peers use


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


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP advertisement, version-neutral.

    advert_interval_cs is in centiseconds for both versions (v2 carries whole seconds on
    the wire: 1 s is 100 here).
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


def encode(advert: Advertisement, source: IPAddress, destination: IPAddress) -> bytes:
    """The VRRP message (no IP header) with its checksum.

    v3 checksums include the IPv4/IPv6 pseudo-header built from source and destination
    (for unicast, destination is the peer, as keepalived does); v2 checksums cover the
    VRRP message only.
    """
    raise NotImplementedError


def decode(
    data: bytes, *, source: IPAddress, destination: IPAddress, ttl: int
) -> Advertisement | Dropped:
    """Parse and validate one VRRP message (the IP payload)."""
    raise NotImplementedError


def check_instance(
    advert: Advertisement,
    *,
    version: int,
    advert_interval_cs: int,
    addresses: tuple[IPAddress, ...],
    auth_type: int = AUTH_NONE,
    auth_data: bytes = b"",
) -> Dropped | None:
    """Checks that need the receiving virtual router's configuration (RFC 5798 §7.1)."""
    raise NotImplementedError
