"""What the daemon runs: the resolved configuration of one node's VRRP instances.

Frozen, hashable dataclasses, so that reload can compare them: an instance whose
`InstanceConfig` is unchanged keeps its state. `vrrpd.resolve.instances_for_node` makes
them from VirtualIP specs (`vrrpd.spec`); the daemon, the probe runners, notify and
`vrrpd explain` take them as they are. Durations are in centiseconds, as RFC 5798 counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import ClassVar

from vrrpd.limits import SMTP_PORT, IPAddress, IPInterface
from vrrpd.vrrp.fsm import PreemptMode


@dataclass(frozen=True, slots=True)
class GarpConfig:
    master_delay_cs: int = 500  # keepalived vrrp_garp_master_delay: second burst after 5 s
    master_repeat: int = 5  # keepalived vrrp_garp_master_repeat
    interval_cs: int = 0  # pause between the messages of one burst
    master_refresh_cs: int = 0  # 0: no periodic refresh while MASTER


@dataclass(frozen=True, slots=True)
class Check:
    """What a probe checks, resolved: one subclass per kind of check (the registry is
    `vrrpd.spec.probes.PROBE_KINDS`); the daemon's runners take them as they are."""

    # True: the check reads a number that, times the weight, is the probe's effect on the
    # priority (keepalived track_file), instead of passing or failing.
    scaled: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class ExecCheck(Check):
    command: tuple[str, ...]  # argv; a relative argv[0] is looked up in PATH
    env: tuple[tuple[str, str], ...] = ()  # added to the daemon's environment, sorted by name


@dataclass(frozen=True, slots=True)
class TcpCheck(Check):
    host: str  # an IP address or a DNS name
    port: int


@dataclass(frozen=True, slots=True)
class HttpCheck(Check):
    scheme: str  # "http" or "https"
    host: str
    port: int  # resolved: 80 for http, 443 for https unless set
    path: str = "/"
    host_header: str | None = None  # None: the Host header is host[:port]
    expect_status: tuple[int, ...] = (200,)
    body_contains: str | None = None
    body_sha256: str | None = None  # lowercase hex digest of the whole body
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class IcmpCheck(Check):
    host: str


@dataclass(frozen=True, slots=True)
class FileCheck(Check):
    path: str  # absolute; keepalived track_file semantics

    scaled: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class InterfaceCheck(Check):
    name: str


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """One probe, resolved: keepalived vrrp_script + track_script."""

    name: str
    check: Check
    interval_cs: int
    timeout_cs: int  # <= interval_cs
    rise: int  # successes in a row that make a down probe up
    fall: int  # failures in a row that make an up probe down
    weight: int  # > 0 adds while up, < 0 subtracts while down, 0: down -> FAULT


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    timeout_cs: int = 500
    retries: int = 3


@dataclass(frozen=True, slots=True)
class EmailConfig:
    to: tuple[str, ...]
    sender: str
    smtp_host: str
    smtp_port: int = SMTP_PORT
    connect_timeout_cs: int = 3000


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Notification hooks; each script is an argv, () when not set."""

    master: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    fault: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    all: tuple[str, ...] = ()  # keepalived `notify`: argv + INSTANCE name state priority
    fifo: str | None = None  # keepalived notify_fifo: a line per change, made if missing
    timeout_cs: int = 1000
    webhook: WebhookConfig | None = None
    email: EmailConfig | None = None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """A route installed with the VIPs while MASTER (keepalived virtual_routes)."""

    to: IPv4Network | IPv6Network
    via: IPAddress | None = None
    interface: str | None = None
    source: IPAddress | None = None
    table: int = 254  # main
    metric: int | None = None
    type: str = "unicast"  # or "blackhole", "unreachable", "prohibit" (rtnetlink's names)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """A policy routing rule installed with the VIPs while MASTER (keepalived virtual_rules)."""

    family: int  # 4 or 6
    source: IPv4Network | IPv6Network | None  # `from`
    destination: IPv4Network | IPv6Network | None  # `to`
    table: int
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    """One VRRP instance on one node: a VirtualIP for one address family, fully resolved.

    Equality is what reload compares: an instance whose InstanceConfig is unchanged keeps
    its state.
    """

    name: str  # "<namespace>/<virtualip>/ipv4" or ".../ipv6"
    virtualip: str  # "<namespace>/<name>"
    family: int  # 4 or 6
    vrid: int
    version: int
    priority: int
    advert_interval_cs: int
    addresses: tuple[IPInterface, ...]  # with prefix length, as put on the interface
    interface: str | None  # None: the interface whose subnet holds the first address
    label: str | None  # IPv4 address label such as "eth0:0"; on `interface` only
    preempt: PreemptMode
    preempt_delay_cs: int
    accept: bool
    unicast: bool
    source_address: IPAddress | None  # from this node's entry in spec.peers, if any
    peers: tuple[IPAddress, ...]  # unicast peers, this node excluded
    auth_password: bytes | None  # VRRPv2 PASS, 1..8 bytes
    garp: GarpConfig
    probes: tuple[ProbeConfig, ...] = ()
    track_interfaces: tuple[str, ...] = ()  # any of them down -> FAULT
    sync_group: str | None = None  # "<namespace>/<syncGroup>": groups never span namespaces
    notify: NotifyConfig | None = None
    sync_group_notify: NotifyConfig | None = None  # the group's own, once per group change
    readiness: str = "Healthy"  # "Healthy" or "Master" (the value of Readiness)
    # False: adverts whose address list differs are accepted (RFC 5798 §7.1 makes the check
    # a MAY), and a new address list is applied without restarting the instance.
    verify_addresses: bool = True
    # A planned switchover asks this node to hold the VIP: the VirtualIP's annotation
    # kubevrrp.io/switchover-to names it (vrrpd/switchover.py). Acted on when it changes.
    hold: bool = False
    # Addresses that go on another interface than the instance's (keepalived `dev` in
    # virtual_ipaddress), by IP; the adverts still list them and go out on `interface`.
    address_interfaces: tuple[tuple[IPAddress, str], ...] = ()
    # Installed after the addresses on becoming MASTER, removed before them on leaving it.
    routes: tuple[RouteConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    # The VIPs go on a macvlan with the RFC 5798 virtual MAC, which sends the adverts too.
    use_vmac: bool = False

    def interface_of(self, address: IPInterface, ifname: str) -> str:
        """The interface `address` goes on, `ifname` being the instance's (resolved)."""
        return next((dev for ip, dev in self.address_interfaces if ip == address.ip), ifname)

    def label_for(self, address: IPInterface, ifname: str) -> str | None:
        """The label `address` gets on `ifname`: the IPv4 label on the instance's own
        interface, none elsewhere (Linux wants a label to start with its interface's name)."""
        if address.version != 4 or self.interface_of(address, ifname) != ifname:
            return None
        return self.label
