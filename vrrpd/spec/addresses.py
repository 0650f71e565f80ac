"""Addresses: the virtual ones a VirtualIP floats, the interface each goes on, and the
nodes' own (spec.peers).

A virtual address is a unicast host address with an optional prefix length, listed once;
one advert carries at most MAX_ADDRESSES of a family. A peer address is a node's own,
without a prefix length. Each type bundles its validator and the CRD's rules for it.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from vrrpd.limits import MAX_ADDRESSES, IPAddress, IPInterface
from vrrpd.spec.errors import Problem, error, fail, show, type_name
from vrrpd.spec.fields import InterfaceName, SpecModel, family_name
from vrrpd.spec.openapi import Crd, Rule


def _parse_virtual_address(value: Any) -> IPInterface:
    example = "e.g. 192.168.77.100/24 or fd00:77::100/64"
    if not isinstance(value, str):
        raise ValueError(
            f"{show(value)} is {type_name(value)}; write an address as a string, {example}"
        )
    try:
        iface = ip_interface(value.strip())
    except ValueError:
        raise ValueError(
            f"{show(value)} is not an IP address with an optional prefix length; {example}"
        ) from None
    ip, net = iface.ip, iface.network
    why: str | None = None
    if ip.is_unspecified:
        why = "the unspecified address"
    elif ip.is_loopback:
        why = "a loopback address"
    elif ip.is_multicast:
        why = "a multicast address"
    elif isinstance(ip, IPv4Address) and ip.is_link_local:
        why = "an IPv4 link-local address (169.254.0.0/16)"
    elif isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        why = f"an IPv4-mapped IPv6 address; write the IPv4 address {ip.ipv4_mapped} instead"
    elif isinstance(ip, IPv4Address) and net.prefixlen <= 30 and ip == net.network_address:
        why = f"the network address of {net}"
    elif isinstance(ip, IPv4Address) and net.prefixlen <= 30 and ip == net.broadcast_address:
        why = f"the broadcast address of {net}"
    elif isinstance(ip, IPv6Address) and net.prefixlen <= 126 and ip == net.network_address:
        why = f"the subnet-router anycast address of {net}"
    if why is not None:
        raise ValueError(
            f"{show(value)} is {why}; a virtual address must be a unicast host address ({example})"
        )
    return iface


def _parse_peer_address(value: Any) -> IPAddress:
    example = "e.g. 192.168.77.11 or fd00:77::11"
    if not isinstance(value, str):
        raise fail(f"{show(value)} is {type_name(value)}; write the address as a string, {example}")
    text = value.strip()
    if "/" in text:
        raise fail(
            f"{show(value)}: a peer address takes no prefix length; write {text.split('/')[0]}"
        )
    try:
        ip = ip_address(text)
    except ValueError:
        raise fail(f"{show(value)} is not an IP address; {example}") from None
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        raise fail(f"{show(value)} is not a node's unicast address; {example}")
    return ip


def _parse_listed_address(value: Any) -> IPAddress:
    example = "e.g. 192.168.77.101, an address of spec.addresses without its prefix length"
    if not isinstance(value, str):
        raise fail(f"{show(value)} is {type_name(value)}; write the address as a string, {example}")
    text = value.strip()
    if "/" in text:
        bare = text.split("/")[0]
        raise fail(f"{show(value)}: name the address without its prefix length: {bare}")
    try:
        return ip_address(text)
    except ValueError:
        raise fail(f"{show(value)} is not an IP address; {example}") from None


def _virtual_addresses(value: Any) -> tuple[IPInterface, ...]:
    """spec.addresses: each a unicast host address, listed once, as many as an advert carries."""
    if isinstance(value, str):
        raise fail(f"{show(value)} is a string; write a list: [{value}]")
    if not isinstance(value, list | tuple):
        raise fail(f"{show(value)} is {type_name(value)}; write a list of addresses")
    if not value:
        raise fail("is empty; list at least one address, e.g. [192.168.77.100/24]")
    problems: list[Problem] = []
    parsed: list[IPInterface] = []
    first_at: dict[IPAddress, int] = {}
    for i, item in enumerate(value):
        try:
            iface = _parse_virtual_address(item)
        except ValueError as exc:
            problems.append((f"[{i}]", str(exc)))
            continue
        if iface.ip in first_at:
            problems.append(
                (f"[{i}]", f"{iface.ip} is listed twice (also at [{first_at[iface.ip]}])")
            )
            continue
        first_at[iface.ip] = i
        parsed.append(iface)
    for family, limit in MAX_ADDRESSES.items():
        count = sum(1 for a in parsed if a.version == family)
        if count > limit:
            problems.append(
                ("", f"{count} {family_name(family)} addresses; one advert carries {limit}")
            )
    if problems:
        raise error(problems)
    return tuple(parsed)


_ADDRESS_RULES = (
    Rule(
        "isIP(self) || isCIDR(self)",
        "must be an IP address with an optional prefix length, e.g. 192.168.77.100/24 or "
        "fd00:77::100/64",
    ),
    Rule(
        "!(isIP(self) || isCIDR(self)) || (isIP(self) ? ip(self) : cidr(self).ip())"
        ".isGlobalUnicast() || ((isIP(self) ? ip(self) : cidr(self).ip()).family() == 6 && "
        "(isIP(self) ? ip(self) : cidr(self).ip()).isLinkLocalUnicast())",
        "must be a unicast host address: not unspecified, loopback, multicast, broadcast or "
        "IPv4 link-local (169.254.0.0/16)",
    ),
    Rule(
        "!isCIDR(self) || !(cidr(self).masked().ip() == cidr(self).ip()) || "
        "cidr(self).prefixLength() > (cidr(self).ip().family() == 4 ? 30 : 126)",
        "is the network address of its subnet (IPv6: the subnet-router anycast address), which "
        "no host can use; give a host address such as 192.168.77.100/24",
    ),
)
_ADDRESS_LIST_RULE = Rule(
    "self.all(a, (isIP(a) || isCIDR(a)) ? self.exists_one(b, (isIP(b) || isCIDR(b)) ? "
    "(isIP(b) ? ip(b) : cidr(b).ip()) == (isIP(a) ? ip(a) : cidr(a).ip()) : false) : true)",
    "an address is listed twice (with the same or another prefix length); list each address once",
)


VirtualAddresses = Annotated[
    tuple[
        Annotated[
            IPInterface,
            Crd(
                description="An IP address with an optional prefix length.",
                minLength=2,
                maxLength=49,
                rules=_ADDRESS_RULES,
            ),
        ],
        ...,
    ],
    BeforeValidator(_virtual_addresses),
    Crd(minItems=1, maxItems=64, rules=[_ADDRESS_LIST_RULE]),
]
PeerAddress = Annotated[
    IPAddress,
    BeforeValidator(_parse_peer_address),
    Crd(
        maxLength=45,
        rules=[
            Rule(
                "isIP(self)",
                "must be an IP address without a prefix length, e.g. 192.168.77.11 or fd00:77::11",
            )
        ],
    ),
]
ListedAddress = Annotated[
    IPAddress,
    BeforeValidator(_parse_listed_address),
    Crd(
        maxLength=45,
        rules=[
            Rule(
                "isIP(self)",
                "must be an IP address of spec.addresses without its prefix length, e.g. "
                "192.168.77.101",
            )
        ],
    ),
]


class AddressInterface(SpecModel):
    """One virtual address that goes on another interface than spec.interface."""

    example = "{address: 192.168.77.101, interface: eth1}"
    crd = Crd(description="A virtual address and the interface it goes on.")

    address: ListedAddress = Field(
        description="One of spec.addresses, without its prefix length, e.g. 192.168.77.101."
    )
    interface: InterfaceName = Field(
        description="The interface it goes on instead of spec.interface, e.g. eth1; 1..15 "
        "characters without '/', ':' or spaces."
    )


def address_interface_problems(
    entries: tuple[AddressInterface, ...], addresses: tuple[IPInterface, ...] | None
) -> list[Problem]:
    """spec.addressInterfaces: each entry an address of spec.addresses, each address once."""
    problems: list[Problem] = []
    listed = {a.ip for a in addresses} if addresses is not None else None
    first_at: dict[IPAddress, int] = {}
    for i, entry in enumerate(entries):
        if entry.address in first_at:
            problems.append(
                (
                    f"[{i}].address",
                    f"{entry.address} already has an interface at [{first_at[entry.address]}]; "
                    "an address goes on one interface: remove one entry",
                )
            )
            continue
        first_at[entry.address] = i
        if listed is not None and entry.address not in listed:
            known = ", ".join(str(ip) for ip in sorted(listed, key=lambda ip: (ip.version, ip)))
            problems.append(
                (
                    f"[{i}].address",
                    f"{entry.address} is not in spec.addresses ({known}); name one of them, "
                    "or add it to spec.addresses",
                )
            )
    return problems
