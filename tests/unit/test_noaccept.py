"""accept: false: which addresses are blocked, and the nft text that blocks them (pure)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address, ip_interface

from vrrpd.config import GarpConfig, InstanceConfig
from vrrpd.net import startup
from vrrpd.noaccept import TABLE, blocked_addresses, ruleset
from vrrpd.vrrp.fsm import PreemptMode

BASE = InstanceConfig(
    name="default/web/ipv4", virtualip="default/web", family=4, vrid=51, version=3,
    priority=100, advert_interval_cs=100,
    addresses=(ip_interface("192.168.77.100/24"), ip_interface("192.168.77.101/24")),
    interface="eth0", label=None, preempt=PreemptMode.ALWAYS, preempt_delay_cs=0,
    accept=False, unicast=False, source_address=None, peers=(), auth_password=None,
    garp=GarpConfig(),
)  # fmt: skip


def test_blocked_are_the_addresses_of_no_accept_instances_but_an_owners() -> None:
    v6 = replace(BASE, name="default/web/ipv6", family=6, addresses=(ip_interface("fd00::100/64"),))
    open_ = replace(BASE, name="default/open/ipv4", accept=True,
                    addresses=(ip_interface("192.168.77.50/24"),))  # fmt: skip
    owner = replace(BASE, name="default/own/ipv4", priority=255,
                    addresses=(ip_interface("192.168.77.60/24"),))  # fmt: skip
    assert blocked_addresses([BASE, v6, open_, owner]) == {
        ip_address("192.168.77.100"), ip_address("192.168.77.101"), ip_address("fd00::100"),
    }  # fmt: skip
    assert blocked_addresses([open_, owner]) == frozenset()


def test_ruleset_replaces_our_table_in_one_transaction() -> None:
    text = ruleset([ip_address("fd00::100"), ip_address("192.168.77.100")])
    lines = text.splitlines()
    # Declared, deleted, made again: atomic in one `nft -f`, whether it existed or not.
    assert lines[:3] == [f"table inet {TABLE}", f"delete table inet {TABLE}",
                         f"table inet {TABLE} {{"]  # fmt: skip
    assert "    elements = { 192.168.77.100 }" in lines
    assert "    elements = { fd00::100 }" in lines
    # keepalived's rules: neighbour discovery passes, then to / from the VIPs is dropped.
    body = [line.strip() for line in lines]
    for chain, field in (("in", "daddr"), ("out", "saddr")):
        start = body.index(f"chain {chain} {{")
        assert body[start + 2 : start + 5] == [
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
            f"ip {field} @vips4 drop",
            f"ip6 {field} @vips6 drop",
        ]


def test_ruleset_without_addresses_removes_the_table() -> None:
    assert ruleset([]) == f"table inet {TABLE}\ndelete table inet {TABLE}\n"


def test_an_empty_family_has_a_set_without_elements() -> None:
    text = ruleset([ip_address("192.168.77.100")])
    start = text.index("set vips6 {")
    assert text[start : text.index("}", start)].count("elements") == 0


def test_the_startup_clean_up_removes_the_same_table() -> None:
    # vrrpd.net.startup cannot import vrrpd.noaccept (standard library only, for speed)
    assert startup.NO_ACCEPT_TABLE == TABLE
