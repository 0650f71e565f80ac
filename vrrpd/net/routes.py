"""Routes and policy rules that follow the VIPs (keepalived virtual_routes / virtual_rules),
over rtnetlink through pyroute2's AsyncIPRoute.

Every route carries rtm_protocol VRRPD_ROUTE_PROTO and every rule FRA_PROTOCOL the same
value: the kernel keeps them, so a daemon restarted after kill -9 removes what its
predecessor left (`remove_leftovers`) without a state file, and never what someone else
configured. The requests are built by pure functions (`route_request`, `rule_request`),
tested without root.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Awaitable, Collection
from typing import Any

from pyroute2.iproute.linux import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vrrpd.config import RouteConfig, RuleConfig

VRRPD_ROUTE_PROTO = 0x56  # rtm_protocol / FRA_PROTOCOL: 86 ('V'), as addresses' IFA_PROTO
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
# rtnetlink answers for a route or rule that is already there / not there
_EXISTS = (errno.EEXIST,)
_ABSENT = (errno.ESRCH, errno.ENOENT, errno.ENODEV)


class RouteError(OSError):
    """A route or rule operation failed; `errno` is the kernel's reason."""


def route_request(route: RouteConfig, oif: int | None) -> dict[str, Any]:
    """pyroute2's `route()` arguments for `route`, with `oif` the index of route.interface.

    A unicast route without a gateway reaches its destination directly: link scope, as
    `ip route add NET dev IF` gives it; everything else universe."""
    request: dict[str, Any] = {
        "family": _AF[route.to.version],
        "dst": str(route.to.network_address),
        "dst_len": route.to.prefixlen,
        "table": route.table,
        "proto": VRRPD_ROUTE_PROTO,
        "type": route.type,
        "scope": RT_SCOPE_LINK
        if route.type == "unicast" and route.via is None
        else RT_SCOPE_UNIVERSE,
    }
    if route.via is not None:
        request["gateway"] = str(route.via)
    if oif is not None:
        request["oif"] = oif
    if route.source is not None:
        request["prefsrc"] = str(route.source)
    if route.metric is not None:
        request["priority"] = route.metric
    return request


def rule_request(rule: RuleConfig) -> dict[str, Any]:
    """pyroute2's `rule()` arguments for `rule`."""
    request: dict[str, Any] = {
        "family": _AF[rule.family],
        "table": rule.table,
        "protocol": VRRPD_ROUTE_PROTO,
    }
    if rule.source is not None:
        request["src"] = str(rule.source.network_address)
        request["src_len"] = rule.source.prefixlen
    if rule.destination is not None:
        request["dst"] = str(rule.destination.network_address)
        request["dst_len"] = rule.destination.prefixlen
    if rule.priority is not None:
        request["priority"] = rule.priority
    return request


def describe_route(route: RouteConfig) -> str:
    """`ip route` words for a route, for logs."""
    words = [route.to.with_prefixlen if route.type == "unicast" else f"{route.type} {route.to}"]
    for word, value in (("via", route.via), ("dev", route.interface), ("src", route.source)):
        if value is not None:
            words.append(f"{word} {value}")
    if route.table != 254:
        words.append(f"table {route.table}")
    if route.metric is not None:
        words.append(f"metric {route.metric}")
    return " ".join(words)


def describe_rule(rule: RuleConfig) -> str:
    """`ip rule` words for a rule, for logs."""
    words = []
    if rule.priority is not None:
        words.append(f"pref {rule.priority}")
    words.append(f"from {rule.source or 'all'}")
    if rule.destination is not None:
        words.append(f"to {rule.destination}")
    words.append(f"lookup {rule.table}")
    return " ".join(words)


def _strerror(exc: NetlinkError) -> str:
    return os.strerror(exc.code) if exc.code else str(exc)


async def _change(request: Awaitable[Any], tolerated: Collection[int], failure: str) -> bool:
    """Send one add or delete: True if it changed the table, False if the kernel answered
    with a `tolerated` error (already there, or not there); any other error is a
    RouteError worded `failure: why`."""
    try:
        await request
    except NetlinkError as exc:
        if exc.code in tolerated:
            return False
        raise RouteError(exc.code, f"{failure}: {_strerror(exc)}") from exc
    return True


class Routes:
    """Adds and removes our routes and rules in the namespace the socket was opened in.

    Open with `await Routes.open()` inside the running loop; `close()` when done.
    Implements the daemon's RoutePort."""

    def __init__(self, ipr: AsyncIPRoute) -> None:
        self._ipr = ipr

    @classmethod
    async def open(cls) -> Routes:
        return cls(AsyncIPRoute())

    def close(self) -> None:
        self._ipr.close()

    async def _oif(self, ifname: str | None) -> int | None:
        if ifname is None:
            return None
        found = await self._ipr.link_lookup(ifname=ifname)
        if not found:
            raise RouteError(errno.ENODEV, f"no interface {ifname!r}")
        return int(found[0])

    async def add_route(self, route: RouteConfig) -> bool:
        """Install the route. False if it was there already."""
        request = route_request(route, await self._oif(route.interface))
        return await _change(
            self._ipr.route("add", **request), _EXISTS, f"cannot add route {describe_route(route)}"
        )

    async def remove_route(self, route: RouteConfig) -> bool:
        """Remove the route. False if it was not there (its interface gone, say)."""
        try:
            request = route_request(route, await self._oif(route.interface))
        except RouteError:
            return False  # the interface went, and its routes with it
        return await _change(
            self._ipr.route("del", **request),
            _ABSENT,
            f"cannot remove route {describe_route(route)}",
        )

    async def add_rule(self, rule: RuleConfig) -> bool:
        """Install the rule. False if it was there already."""
        return await _change(
            self._ipr.rule("add", **rule_request(rule)),
            _EXISTS,
            f"cannot add rule {describe_rule(rule)}",
        )

    async def remove_rule(self, rule: RuleConfig) -> bool:
        """Remove the rule. False if it was not there."""
        return await _change(
            self._ipr.rule("del", **rule_request(rule)),
            _ABSENT,
            f"cannot remove rule {describe_rule(rule)}",
        )

    async def remove_leftovers(self) -> list[str]:
        """Remove every route and rule carrying our mark (a killed vrrpd's); describe each."""
        removed: list[str] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            routes = [m async for m in await self._ipr.route("dump", family=family, table=None)]
            for msg in routes:
                if msg["proto"] != VRRPD_ROUTE_PROTO:
                    continue
                request = {
                    "family": family,
                    "dst_len": msg["dst_len"],
                    "table": msg.get("RTA_TABLE") or msg["table"],
                    "proto": VRRPD_ROUTE_PROTO,
                    "type": msg["type"],
                }
                for attr, key in (("RTA_DST", "dst"), ("RTA_PRIORITY", "priority")):
                    if msg.get(attr) is not None:
                        request[key] = msg.get(attr)
                if await self._delete("route", request):
                    removed.append(f"route {request.get('dst', 'default')}/{msg['dst_len']} "
                                   f"table {request['table']}")  # fmt: skip
            rules = [m async for m in await self._ipr.rule("dump", family=family)]
            for msg in rules:
                if msg.get("FRA_PROTOCOL") != VRRPD_ROUTE_PROTO:
                    continue
                request = {"family": family, "protocol": VRRPD_ROUTE_PROTO}
                for attr, key in (
                    ("FRA_TABLE", "table"),
                    ("FRA_PRIORITY", "priority"),
                    ("FRA_SRC", "src"),
                    ("FRA_DST", "dst"),
                ):
                    if msg.get(attr) is not None:
                        request[key] = msg.get(attr)
                request["src_len"], request["dst_len"] = msg["src_len"], msg["dst_len"]
                if await self._delete("rule", request):
                    removed.append(f"rule pref {request.get('priority')} lookup {request['table']}")
        return removed

    async def _delete(self, kind: str, request: dict[str, Any]) -> bool:
        try:
            await getattr(self._ipr, kind)("del", **request)
        except NetlinkError as exc:
            if exc.code in _ABSENT:
                return False
            raise RouteError(
                exc.code, f"cannot remove a leftover {kind}: {_strerror(exc)}"
            ) from exc
        return True
