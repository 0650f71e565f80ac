"""The route and rule requests vrrpd.net.routes sends, and the virtual MAC names and
addresses of vrrpd.net.vmac, without a kernel."""

from __future__ import annotations

import socket
from ipaddress import ip_address, ip_network

from vrrpd.config import RouteConfig, RuleConfig
from vrrpd.net.routes import (
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    VRRPD_ROUTE_PROTO,
    describe_route,
    describe_rule,
    route_request,
    rule_request,
)
from vrrpd.net.vmac import vmac_address, vmac_name


def test_a_gateway_route_is_marked_and_universe_scope() -> None:
    route = RouteConfig(
        to=ip_network("10.9.0.0/24"),
        via=ip_address("10.0.0.254"),
        interface="eth1",
        source=ip_address("10.0.0.5"),
        table=100,
        metric=7,
    )
    assert route_request(route, oif=4) == {
        "family": socket.AF_INET,
        "dst": "10.9.0.0",
        "dst_len": 24,
        "table": 100,
        "proto": VRRPD_ROUTE_PROTO,
        "type": "unicast",
        "scope": RT_SCOPE_UNIVERSE,
        "gateway": "10.0.0.254",
        "oif": 4,
        "prefsrc": "10.0.0.5",
        "priority": 7,
    }
    assert describe_route(route) == (
        "10.9.0.0/24 via 10.0.0.254 dev eth1 src 10.0.0.5 table 100 metric 7"
    )


def test_a_route_without_gateway_is_link_scope_and_a_blackhole_universe() -> None:
    direct = RouteConfig(to=ip_network("fd00:9::/64"), interface="eth1")
    request = route_request(direct, oif=3)
    assert (request["family"], request["scope"], request["oif"]) == (
        socket.AF_INET6,
        RT_SCOPE_LINK,
        3,
    )
    assert "gateway" not in request
    hole = RouteConfig(to=ip_network("10.7.0.0/16"), type="blackhole")
    assert route_request(hole, oif=None)["scope"] == RT_SCOPE_UNIVERSE
    assert route_request(hole, oif=None)["type"] == "blackhole"
    assert describe_route(hole) == "blackhole 10.7.0.0/16"


def test_rule_request() -> None:
    rule = RuleConfig(
        family=4,
        source=ip_network("10.0.0.0/24"),
        destination=ip_network("10.9.0.0/16"),
        table=2,
        priority=90,
    )
    assert rule_request(rule) == {
        "family": socket.AF_INET,
        "table": 2,
        "protocol": VRRPD_ROUTE_PROTO,
        "src": "10.0.0.0",
        "src_len": 24,
        "dst": "10.9.0.0",
        "dst_len": 16,
        "priority": 90,
    }
    assert describe_rule(rule) == "pref 90 from 10.0.0.0/24 to 10.9.0.0/16 lookup 2"
    only_to = RuleConfig(family=6, source=None, destination=ip_network("fd00::/8"), table=3)
    assert rule_request(only_to) == {
        "family": socket.AF_INET6,
        "table": 3,
        "protocol": VRRPD_ROUTE_PROTO,
        "dst": "fd00::",
        "dst_len": 8,
    }


def test_virtual_mac_is_rfc_5798s() -> None:
    assert (vmac_address(51, 4), vmac_name(51, 4)) == ("00:00:5e:00:01:33", "vrrp.51")
    assert (vmac_address(255, 6), vmac_name(255, 6)) == ("00:00:5e:00:02:ff", "vrrp6.255")
