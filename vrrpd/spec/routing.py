"""Routes and policy rules that come and go with the virtual addresses (keepalived
virtual_routes / virtual_rules): spec.routes and spec.rules.

Each entry belongs to one address family (of its destination, or of its source for a rule
without one) and is installed by that family's instance, after its addresses, while it is
master. `to_config` gives what the daemon runs (`vrrpd.config.RouteConfig` / `RuleConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, model_validator

from vrrpd.config import RouteConfig, RuleConfig
from vrrpd.limits import IPAddress
from vrrpd.spec.errors import Problem, error, fail, show, type_name
from vrrpd.spec.fields import InterfaceName, IntRange, SpecModel, enum_value, family_name
from vrrpd.spec.openapi import Crd, Rule

IPNetwork = IPv4Network | IPv6Network
ROUTE_TABLE_MAIN = 254  # RT_TABLE_MAIN: `ip route` without `table`
U32_MAX = 0xFFFFFFFF


def _parse_network(value: Any) -> IPNetwork:
    example = "e.g. 192.168.109.0/24, fd00:109::/64 or 0.0.0.0/0 for a default route"
    if not isinstance(value, str):
        raise fail(f"{show(value)} is {type_name(value)}; write a network as a string, {example}")
    text = value.strip()
    if "/" not in text:
        raise fail(f"{show(value)} has no prefix length; write {text}/{_full(text)} for one host")
    try:
        return ip_network(text)
    except ValueError:
        pass
    try:
        wide = ip_network(text, strict=False)
    except ValueError:
        raise fail(
            f"{show(value)} is not a network address with a prefix length; {example}"
        ) from None
    raise fail(f"{show(value)} has host bits set; write the network, {wide}")


def _parse_address(value: Any) -> IPAddress:
    example = "e.g. 192.168.200.254 or fd00:200::1"
    if not isinstance(value, str):
        raise fail(f"{show(value)} is {type_name(value)}; write the address as a string, {example}")
    text = value.strip()
    if "/" in text:
        raise fail(
            f"{show(value)}: write the address without a prefix length, {text.split('/')[0]}"
        )
    try:
        return ip_address(text)
    except ValueError:
        raise fail(f"{show(value)} is not an IP address; {example}") from None


def _full(value: Any) -> int:
    return 128 if ":" in str(value) else 32


Network = Annotated[
    IPNetwork,
    BeforeValidator(_parse_network),
    Crd(
        maxLength=49,
        rules=[Rule("isCIDR(self)", "must be a network with a prefix length, e.g. 10.1.0.0/16")],
    ),
]
Address = Annotated[
    IPAddress,
    BeforeValidator(_parse_address),
    Crd(
        maxLength=45,
        rules=[Rule("isIP(self)", "must be an IP address without a prefix length, e.g. 10.0.0.1")],
    ),
]
RouteTable = Annotated[int, BeforeValidator(IntRange(1, U32_MAX, " (254 is main)"))]


class RouteType(StrEnum):
    """What the route does with a packet (`ip route add TYPE ...`)."""

    UNICAST = "Unicast"  # to a gateway (via) and/or out of an interface
    BLACKHOLE = "Blackhole"  # dropped silently
    UNREACHABLE = "Unreachable"  # dropped, ICMP host unreachable
    PROHIBIT = "Prohibit"  # dropped, ICMP administratively prohibited


class VirtualRoute(SpecModel):
    """One route installed while this node holds the addresses."""

    example = "{to: 192.168.109.0/24, via: 192.168.200.254}"
    crd = Crd(description="A route installed with the virtual addresses.")

    to: Network = Field(
        description="The destination network, e.g. 192.168.109.0/24 (0.0.0.0/0 or ::/0: a "
        "default route); its family picks the instance that installs it."
    )
    via: Address | None = Field(
        default=None, description="The gateway (keepalived via / gw), of the family of `to`."
    )
    interface: InterfaceName | None = Field(
        default=None,
        description="The interface the route goes out of (keepalived dev), e.g. eth1. A "
        "Unicast route needs via, interface or both.",
    )
    source: Address | None = Field(
        default=None,
        description="The preferred source address (keepalived src), often a virtual address.",
    )
    table: RouteTable = Field(
        default=ROUTE_TABLE_MAIN,
        description="The routing table, 1..4294967295 (keepalived table). Default 254, main.",
    )
    metric: Annotated[int, BeforeValidator(IntRange(0, U32_MAX))] | None = Field(
        default=None, description="The route's metric (keepalived metric / preference)."
    )
    type: Annotated[RouteType, BeforeValidator(enum_value(RouteType, "a route type"))] = Field(
        default=RouteType.UNICAST,
        description="Unicast (the default), or Blackhole, Unreachable or Prohibit (keepalived "
        "blackhole / unreachable / prohibit), which take no via and no interface.",
    )

    @property
    def family(self) -> int:
        return self.to.version

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[Problem] = []
        family = self.to.version
        for name, value in (("via", self.via), ("source", self.source)):
            if value is not None and value.version != family:
                problems.append(
                    (
                        f".{name}",
                        f"{value} is {family_name(value.version)}, but to ({self.to}) is "
                        f"{family_name(family)}; give an {family_name(family)} address",
                    )
                )
        if self.type == RouteType.UNICAST and self.via is None and self.interface is None:
            problems.append(("", f"to {self.to}: a Unicast route needs via, interface or both"))
        if self.type != RouteType.UNICAST and (self.via is not None or self.interface):
            problems.append(
                (".type", f"{self.type.value} routes take no via and no interface; remove them")
            )
        if problems:
            raise error(problems)
        return self

    def to_config(self) -> RouteConfig:
        return RouteConfig(
            to=self.to,
            via=self.via,
            interface=self.interface,
            source=self.source,
            table=self.table,
            metric=self.metric,
            type=self.type.value.lower(),
        )


class VirtualRule(SpecModel):
    """One policy routing rule installed while this node holds the addresses."""

    example = "{from: 192.168.200.0/24, table: 2}"
    crd = Crd(
        description="A policy routing rule installed with the virtual addresses.",
        rules=[
            Rule(
                "has(self.from) || has(self.to)",
                "a rule needs from, to or both, e.g. {from: 192.168.200.0/24, table: 2}",
            )
        ],
    )

    from_: Network | None = Field(
        default=None,
        alias="from",
        description="Source network the rule matches (keepalived from), e.g. 192.168.200.0/24.",
    )
    to: Network | None = Field(
        default=None, description="Destination network the rule matches (keepalived to)."
    )
    table: RouteTable = Field(description="The table to look up (keepalived table), required.")
    priority: Annotated[int, BeforeValidator(IntRange(0, U32_MAX))] | None = Field(
        default=None,
        description="The rule's priority (keepalived preference / priority); unset: the "
        "kernel's choice, just before the lowest existing one.",
    )

    @model_validator(mode="after")
    def _matches_something(self) -> Self:
        if self.from_ is None and self.to is None:
            raise fail("a rule needs from, to or both, e.g. {from: 192.168.200.0/24, table: 2}")
        if self.from_ is not None and self.to is not None and self.from_.version != self.to.version:
            raise fail(
                f"from ({self.from_}) and to ({self.to}) are of different families; one rule "
                "matches one family",
                ".to",
            )
        return self

    @property
    def family(self) -> int:
        network = self.from_ if self.from_ is not None else self.to
        assert network is not None
        return network.version

    def to_config(self) -> RuleConfig:
        return RuleConfig(
            family=self.family,
            source=self.from_,
            destination=self.to,
            table=self.table,
            priority=self.priority,
        )


def family_problems(
    entries: Sequence[VirtualRoute | VirtualRule], families: set[int]
) -> list[Problem]:
    """Routes and rules of a family spec.addresses lacks: no instance would install them."""
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        family = entry.family
        if family not in families:
            problems.append(
                (
                    f"[{i}]",
                    f"is {family_name(family)}, but spec.addresses has no {family_name(family)} "
                    "address, so no instance would install it; add one, or remove this entry",
                )
            )
    return problems
