"""virtual_routes and virtual_rules entries, word by word, into spec.routes / spec.rules.

keepalived's syntax is `ip route` / `ip rule`'s (keepalived vrrp_iproute.c, vrrp_iprule.c);
what has no field here is reported on the entry and left out, and an entry that cannot be
converted at all is dropped with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address, ip_network
from typing import Any

from vrrpd.convert.reader import Statement
from vrrpd.convert.report import Report
from vrrpd.convert.values import integer

_ROUTE_TYPES = {"blackhole": "Blackhole", "unreachable": "Unreachable", "prohibit": "Prohibit"}
_TABLES = {"main": 254, "local": 255, "default": 253}
_METRIC = ("metric", "priority", "preference")
_RULE_PRIORITY = ("preference", "priority", "pref", "order")
# `ip route` options that take a value and have no field here
_ROUTE_VALUED = {
    "tos", "dsfield", "mtu", "advmss", "rtt", "rttvar", "reordering", "window", "cwnd",
    "ssthresh", "realms", "rto_min", "initcwnd", "initrwnd", "features", "quickack",
    "congctl", "pref", "protocol", "encap", "expires", "fastopen_no_cookie",
    "hoplimit", "as", "onlink", "weight",
}  # fmt: skip
_RULE_VALUED = {
    "fwmark", "iif", "oif", "tos", "dsfield", "realms", "goto", "uidrange", "ipproto",
    "sport", "dport", "suppress_prefixlength", "suppress_ifgroup", "l3mdev", "tun_id",
    "protocol",
}  # fmt: skip


def _network(text: str) -> str | None:
    """`text` as a network with a prefix length (a bare address is one host), or None."""
    if text == "default":
        return None
    try:
        return str(ip_network(text, strict=False))
    except ValueError:
        return None


def _address(text: str) -> str | None:
    try:
        return str(ip_address(text))
    except ValueError:
        return None


def _table(text: str) -> int | None:
    value = _TABLES.get(text, integer(text))
    return value if value is not None and 1 <= value <= 0xFFFFFFFF else None


class _Entry:
    """One entry's words, and how to complain about one of them."""

    def __init__(self, report: Report, entry: Statement) -> None:
        self.report, self.entry = report, entry
        self.words = [entry.keyword, *entry.args]

    def warn(self, what: str, message: str) -> None:
        self.report.at(self.entry.line, what, message, file=self.entry.file)

    def drop(self, message: str) -> None:
        self.warn(" ".join(self.words), f"{message}; entry not converted")


def convert_route(report: Report, entry: Statement) -> dict[str, Any] | None:
    """One virtual_routes entry as a spec.routes entry; None (reported) if it cannot be."""
    e = _Entry(report, entry)
    route: dict[str, Any] = {}
    words = e.words
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        step = 2
        if word in _ROUTE_TYPES and "to" not in route:
            route["type"] = _ROUTE_TYPES[word]
            step = 1
        elif word in ("src", "via", "gw", "dev", "table", "scope", "to", *_METRIC):
            if value is None:
                e.drop(f"{word} has no value")
                return None
            if not _route_option(e, route, word, value):
                return None
        elif word == "or":
            e.warn(
                f"or {value}",
                "multipath routes are not supported (keepalived: `or` is a deprecated "
                "spelling of two nexthops); only the first gateway is kept",
            )
        elif word == "nexthop":
            e.drop("multipath routes (nexthop) are not supported")
            return None
        elif word in _ROUTE_VALUED:
            e.warn(f"{word} {value}", "route option not supported; ignored")
        elif word in ("no_track", "onlink"):
            e.warn(word, "route option not supported; ignored")
            step = 1
        elif "to" not in route:
            network = "0.0.0.0/0" if word == "default" else _network(word)
            if network is None:
                e.drop(f"{word!r} is not a destination network")
                return None
            route["to"] = network
            step = 1
        else:
            e.warn(word, "route option not supported; ignored")
            step = 1
        i += step
    if "to" not in route:
        e.drop("no destination")
        return None
    if route.get("type", "Unicast") != "Unicast":
        for key in ("via", "interface"):
            route.pop(key, None)
    elif "via" not in route and "interface" not in route:
        e.drop("a route needs via or dev")
        return None
    return {k: route[k] for k in ("to", *sorted(k for k in route if k != "to"))}


def _route_option(e: _Entry, route: dict[str, Any], word: str, value: str) -> bool:
    """Store one `word value` pair of a route; False when the entry must be dropped."""
    parsers: dict[str, tuple[str, Callable[[str], Any]]] = {
        "src": ("source", _address),
        "via": ("via", _address),
        "gw": ("via", _address),
        "dev": ("interface", lambda v: v),
        "table": ("table", _table),
        "to": ("to", lambda v: "0.0.0.0/0" if v == "default" else _network(v)),
        **{m: ("metric", integer) for m in _METRIC},
    }
    if word == "scope":
        if value not in ("link", "global", "universe"):
            e.warn(f"scope {value}", "ignored: routes get link scope without via, else global")
        return True
    key, parse = parsers[word]
    parsed = parse(value)
    if parsed is None:
        e.drop(f"{word} {value!r} is not valid")
        return False
    if key != "to" or "to" not in route:
        route.setdefault(key, parsed)
    return True


def convert_rule(report: Report, entry: Statement) -> dict[str, Any] | None:
    """One virtual_rules entry as a spec.rules entry; None (reported) if it cannot be."""
    e = _Entry(report, entry)
    rule: dict[str, Any] = {}
    words = e.words
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word in ("from", "to", "table", "lookup", *_RULE_PRIORITY):
            if value is None:
                e.drop(f"{word} has no value")
                return None
            if word in ("from", "to"):
                parsed: Any = None if value == "all" else _network(value)
                key = word
                if value == "all":
                    i += 2
                    continue
            elif word in ("table", "lookup"):
                parsed, key = _table(value), "table"
            else:
                parsed, key = integer(value), "priority"
            if parsed is None:
                e.drop(f"{word} {value!r} is not valid")
                return None
            rule[key] = parsed
            i += 2
        elif word in _RULE_VALUED:
            e.warn(f"{word} {value}", "rule option not supported; entry not converted")
            return None
        else:
            e.drop(f"{word!r}: rule option not supported")
            return None
    if "table" not in rule:
        e.drop("only rules that look up a table are supported")
        return None
    if "from" not in rule and "to" not in rule:
        e.drop("a rule needs from or to")
        return None
    return rule
