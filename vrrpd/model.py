"""The VirtualIP spec (kubevrrp.io/v1alpha1): one validated model for the CRD, operator and daemon.

`load_manifests` parses a standalone file (one or several YAML documents) into VirtualIP
objects; `instances_for_node` resolves them for one node into concrete `InstanceConfig`s,
one per VirtualIP and address family. Errors name the field, the value and what would work.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from vrrpd.vrrp.fsm import PreemptMode

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface


class ConfigError(ValueError):
    """Invalid configuration; str() is a readable multi-line report (field, value, what works)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class GarpConfig:
    master_delay_cs: int = 500  # keepalived vrrp_garp_master_delay: second burst after 5 s
    master_repeat: int = 5  # keepalived vrrp_garp_master_repeat
    interval_cs: int = 0  # pause between the messages of one burst
    master_refresh_cs: int = 0  # 0: no periodic refresh while MASTER


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
    label: str | None  # IPv4 address label such as "eth0:0"
    preempt: PreemptMode
    preempt_delay_cs: int
    accept: bool
    unicast: bool
    source_address: IPAddress | None  # from this node's entry in spec.peers, if any
    peers: tuple[IPAddress, ...]  # unicast peers, this node excluded
    auth_password: bytes | None  # VRRPv2 PASS, 1..8 bytes
    garp: GarpConfig
