"""Accept_Mode false (RFC 5798 §6.1, keepalived no_accept): the nftables table that keeps a
master from accepting packets sent to its virtual addresses. Pure: which addresses, and the
`nft -f` text that puts them in our table; `vrrpd.net.nft` runs it.

As keepalived's vrrp_nftables.c: packets to a blocked address are dropped on input, packets
from it on output, and IPv6 neighbour solicitations and advertisements pass both ways (a
neighbour's reachability check of the VIP is unicast to it, and the kernel's answer comes
from it). VRRP itself needs nothing else: adverts go from the primary address to the group
or the peers, gratuitous ARP is not IP, unsolicited NAs leave on a packet socket.

The set holds every address of a no-accept instance, whatever its state: the input hook
sees only packets for addresses on the node, which a VIP is only on its master, so the
rules act on the master alone and a failover changes nothing in the firewall (no nft run
on its path). An address owner (priority 255) always accepts (RFC 5798 §6.1).
"""

from __future__ import annotations

from collections.abc import Iterable

from vrrpd.config import InstanceConfig
from vrrpd.limits import PRIORITY_OWNER, IPAddress

TABLE = "kube_vrrp_no_accept"  # family inet; per network namespace, like the VIPs
_ND = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"


def blocked_addresses(configs: Iterable[InstanceConfig]) -> frozenset[IPAddress]:
    """The virtual addresses whose master must not accept packets."""
    return frozenset(
        address.ip
        for config in configs
        if not config.accept and config.priority != PRIORITY_OWNER
        for address in config.addresses
    )


def ruleset(addresses: Iterable[IPAddress]) -> str:
    """`nft -f` input that replaces our table in one transaction; with no address, removes
    it. (Declaring the table first makes the delete work when it does not exist.)"""
    ordered = sorted(set(addresses), key=lambda a: (a.version, a))
    lines = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    if not ordered:
        return "\n".join(lines) + "\n"
    lines.append(f"table inet {TABLE} {{")
    for family, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        members = [str(a) for a in ordered if a.version == family]
        lines.append(f"  set vips{family} {{")
        lines.append(f"    type {kind}")
        if members:
            lines.append(f"    elements = {{ {', '.join(members)} }}")
        lines.append("  }")
    for chain, hook, field in (("in", "input", "daddr"), ("out", "output", "saddr")):
        lines += [
            f"  chain {chain} {{",
            f"    type filter hook {hook} priority filter - 1; policy accept;",
            f"    {_ND}",
            f"    ip {field} @vips4 drop",
            f"    ip6 {field} @vips6 drop",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
