"""The VirtualIP resource (kubevrrp.io/v1alpha1): its spec, and the object around it.

Validation context: `{"standalone": True}` (what `vrrpd.spec.load` passes for a file the
daemon reads alone) adds the rules of such a file (vrid set, peers complete when unicast,
an inline password instead of a secretRef). Without a context the cluster rules apply: the
operator allocates VRIDs, fills in peers and resolves secrets, and server-populated
metadata / status are ignored. `docs/virtualip.md` is the field reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from vrrpd.limits import (
    ADVERT_INTERVAL_V2_MAX_S,
    ADVERT_INTERVAL_V3_MAX_CS,
    IFNAMSIZ,
    PRIORITY_BACKUP_MAX,
    PRIORITY_MIN,
    PRIORITY_OWNER,
    VRID_MAX,
    VRID_MIN,
    VRRP_VERSIONS,
    IPAddress,
    IPInterface,
)
from vrrpd.spec import API_VERSION, KIND
from vrrpd.spec.addresses import AddressInterface, VirtualAddresses, address_interface_problems
from vrrpd.spec.election import (
    Authentication,
    BasePriority,
    Garp,
    NodePriority,
    Peer,
    Preempt,
)
from vrrpd.spec.errors import Problem, error, fail, show, validate_adding
from vrrpd.spec.fields import (
    DNS_LABEL,
    DURATION_PATTERN,
    Dns1035Label,
    DurationText,
    InterfaceName,
    IntRange,
    SpecModel,
    as_string,
    crd_duration,
    dns_label,
    duration,
    enum_value,
    family_name,
    format_duration_cs,
    is_standalone,
    list_once,
)
from vrrpd.spec.notify import NotifySpec
from vrrpd.spec.openapi import Crd, Rule
from vrrpd.spec.probes import ProbeSpec
from vrrpd.spec.routing import VirtualRoute, VirtualRule, family_problems
from vrrpd.spec.selectors import LabelSelector, match_labels
from vrrpd.vrrp.fsm import PreemptMode


class Readiness(StrEnum):
    """When a node's daemon pod reports Ready."""

    HEALTHY = "Healthy"  # the daemon runs, its probes pass and no instance is in FAULT
    MASTER = "Master"  # only on the node that holds the VIP


class ServiceRef(SpecModel):
    """A LoadBalancer Service in the VirtualIP's namespace that gets the VIP in its status."""

    example = "{name: ingress}"

    name: Dns1035Label = Field(description="The Service's name (a DNS-1035 label, e.g. ingress).")


_ADVERT_INTERVAL = "duration(self.advertInterval)"
_ADVERT_INTERVAL_READ = f"!self.advertInterval.matches('{DURATION_PATTERN}')"
_V2_MAX = f"{ADVERT_INTERVAL_V2_MAX_S}s"
# What the API server checks across the spec's fields (the model: in its validators).
_SPEC_RULES = (
    Rule(
        "!has(self.syncGroupNotify) || has(self.syncGroup)",
        "syncGroupNotify notifies a sync group, but syncGroup is not set: set syncGroup (e.g. "
        "syncGroup: edge), or move these hooks to notify",
        field_path=".syncGroupNotify",
    ),
    Rule(
        "self.version != 2 || !has(self.addresses) || self.addresses.all(a, !a.contains(':'))",
        "version 2 (VRRPv2) carries IPv4 addresses only, but spec.addresses has an IPv6 "
        "address: use version 3, or move the IPv6 addresses to another VirtualIP",
        field_path=".version",
    ),
    Rule(
        f"self.version != 2 || {_ADVERT_INTERVAL_READ} || {_ADVERT_INTERVAL} >= duration('1s')",
        "advertInterval is below 1s, the VRRPv2 minimum (version 2 counts whole seconds): use "
        f"1s..{_V2_MAX}, or version 3 for sub-second adverts",
        field_path=".advertInterval",
    ),
    Rule(
        f"self.version != 2 || {_ADVERT_INTERVAL_READ} || {_ADVERT_INTERVAL} < duration('1s') || "
        f"({_ADVERT_INTERVAL} <= duration('{_V2_MAX}') && "
        f"{_ADVERT_INTERVAL}.getMilliseconds() % 1000 == 0)",
        f"advertInterval must be a whole number of seconds for version 2 (VRRPv2): 1s..{_V2_MAX}",
        field_path=".advertInterval",
    ),
    Rule(
        f"self.version != 3 || {_ADVERT_INTERVAL_READ} || "
        f"({_ADVERT_INTERVAL} >= duration('10ms') && "
        f"{_ADVERT_INTERVAL} <= duration('{crd_duration(ADVERT_INTERVAL_V3_MAX_CS)}') && "
        f"{_ADVERT_INTERVAL}.getMilliseconds() % 10 == 0)",
        "advertInterval must be 10ms..40.95s in 10 ms steps for version 3 (VRRPv3), e.g. 100ms "
        "or 1s",
        field_path=".advertInterval",
    ),
    Rule(
        "!has(self.authentication) || self.version == 2",
        "authentication applies to version 2 only: VRRPv3 has no authentication (RFC 5798 "
        "removed it); remove authentication, or set version: 2 to talk to keepalived VRRPv2 "
        "peers with a PASS password",
        field_path=".authentication",
    ),
    Rule(
        "!has(self.label) || !has(self.addresses) || self.addresses.exists(a, !a.contains(':'))",
        "label applies to IPv4 addresses only, and spec.addresses has none; remove label",
        field_path=".label",
    ),
    Rule(
        "!has(self.label) || !has(self.interface) || self.label == self.interface || "
        "self.label.startsWith(self.interface + ':')",
        "label must start with the interface name followed by ':' (a Linux rule), e.g. "
        "interface: eth0 with label: eth0:vip",
        field_path=".label",
    ),
    Rule(
        "!has(self.useVmac) || !self.useVmac || !has(self.addresses) || "
        "self.addresses.all(a, !a.contains(':'))",
        "useVmac is for IPv4 addresses only, but spec.addresses has an IPv6 address: put the "
        "IPv6 addresses in another VirtualIP without useVmac",
        field_path=".useVmac",
    ),
    Rule(
        "!has(self.useVmac) || !self.useVmac || !has(self.label)",
        "useVmac puts the addresses on the virtual MAC interface vrrp.<vrid>, where label "
        "cannot go: remove label",
        field_path=".useVmac",
    ),
    Rule(
        f"!has(self.probes) || size(self.probes) == 0 || self.priority != {PRIORITY_OWNER}",
        f"priority {PRIORITY_OWNER} (address owner) cannot be combined with probes: an owner is "
        "never demoted, so no probe could move the VIP away from it; use "
        f"{PRIORITY_MIN}..{PRIORITY_BACKUP_MAX} with probes",
        field_path=".priority",
    ),
    Rule(
        "!has(self.probes) || size(self.probes) == 0 || !has(self.nodePriorities) || "
        f"self.nodePriorities.all(p, !has(p.priority) || p.priority != {PRIORITY_OWNER})",
        f"nodePriorities with priority {PRIORITY_OWNER} (address owner) cannot be combined with "
        f"probes: an owner is never demoted; use {PRIORITY_MIN}..{PRIORITY_BACKUP_MAX} with "
        "probes",
        field_path=".nodePriorities",
    ),
)
_NODE_NAME_ONCE_RULE = Rule(
    "self.all(a, has(a.nodeName) ? self.exists_one(b, has(b.nodeName) ? b.nodeName == "
    "a.nodeName : false) : true)",
    "a nodeName is listed twice; the first match wins, so the later entry would never apply: "
    "remove it",
)


class VirtualIPSpec(SpecModel):
    """spec of a VirtualIP. Fields are declared in dependency order: a validator may look
    at the fields above it (info.data), so cross-field problems are reported together with
    the other fields' problems."""

    example = "{addresses: [192.168.77.100/24], vrid: 51}"

    crd = Crd(
        description="The desired floating addresses and how the nodes elect who holds them. "
        "Each field names its keepalived equivalent where there is one. Durations are strings "
        "such as 100ms, 1.5s, 2m or 1h30m (whole milliseconds: up to three decimals on s, none "
        "on ms, m and h).",
        rules=_SPEC_RULES,
    )

    addresses: VirtualAddresses = Field(
        description="The virtual addresses (keepalived virtual_ipaddress): IPv4 and/or IPv6, "
        "each with an optional prefix length used when the address is added to the interface "
        "(192.168.77.100/24, fd00:77::100/64; without one: /32 or /128). IPv4 and IPv6 "
        "addresses in one VirtualIP run as two VRRP instances (one per address family) with "
        "the same vrid. 1..64 addresses; each address belongs to one VirtualIP only."
    )
    vrid: (
        Annotated[
            int,
            BeforeValidator(IntRange(VRID_MIN, VRID_MAX)),
            Crd(
                rules=[
                    Rule(
                        f"self >= {VRID_MIN} && self <= {VRID_MAX}",
                        f"vrid must be {VRID_MIN}..{VRID_MAX} (an 8-bit field; 0 is reserved)",
                    )
                ]
            ),
        ]
        | None
    ) = Field(
        default=None,
        validate_default=True,
        description="The virtual router ID (keepalived virtual_router_id), 1..255: the same on "
        "every node of this VirtualIP and unique per link and address family (it sets the "
        "virtual MAC 00:00:5e:00:01:<vrid>). Optional in a cluster: when omitted the operator "
        "allocates the lowest free one for the segment and records it in status.vrid. A "
        "standalone file must set it.",
    )
    version: Annotated[int, Crd(enum=list(VRRP_VERSIONS))] = Field(
        default=3,
        description="The VRRP version (keepalived vrrp_version): 3 (the default; RFC 5798, IPv4 "
        "and IPv6, centisecond timers) or 2 (RFC 3768; IPv4 only, whole seconds, optional PASS "
        "authentication) to join keepalived VRRPv2 peers.",
    )
    interface: InterfaceName | None = Field(
        default=None,
        description="The node interface that carries the addresses and the adverts (keepalived "
        "interface), e.g. eth0 or bond0.100; 1..15 characters without '/', ':' or spaces. "
        "Default: on each node, the interface whose subnet holds the first address.",
    )
    label: Annotated[str, Crd(minLength=1, maxLength=IFNAMSIZ - 1, pattern=r"^\S+$")] | None = (
        Field(
            default=None,
            validate_default=True,
            description="An address label for the IPv4 addresses (keepalived `label` in "
            "virtual_ipaddress), shown by `ip addr` and ifconfig; it must start with the "
            "interface name, e.g. eth0:vip. At most 15 characters. IPv6 addresses carry no "
            "label.",
        )
    )
    use_vmac: StrictBool = Field(
        default=False,
        description="Put the addresses on a macvlan interface with the RFC 5798 virtual MAC "
        "00:00:5e:00:01:<vrid> (keepalived use_vmac), named vrrp.<vrid>, which the daemon "
        "makes on spec.interface on every node and sends the adverts from: hosts keep the "
        "same MAC for the VIP whoever holds it, so a failover needs no ARP cache update. "
        "Both interfaces get arp_ignore 1 and arp_announce 2, so that ARP for the VIP is "
        "answered with the virtual MAC only (left so when the daemon stops). IPv4 only for "
        "now, without label. Default false: the addresses go on spec.interface with its own "
        "MAC.",
    )
    address_interfaces: Annotated[
        tuple[AddressInterface, ...],
        Crd(maxItems=64, x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["address"]),
    ] = Field(
        default=(),
        description="Addresses that go on another interface than spec.interface (keepalived "
        "`dev` in virtual_ipaddress, e.g. 192.168.200.17 dev eth1): each entry names one of "
        "spec.addresses and its interface. The address is still listed in the adverts, which "
        "go out on spec.interface; spec.label does not apply to it. Such an interface is "
        "watched like trackInterfaces (keepalived tracks an address's interface too): while it "
        "is down the instance is in FAULT. Default: every address on spec.interface.",
    )
    routes: Annotated[tuple[VirtualRoute, ...], Crd(maxItems=64)] = Field(
        default=(),
        description="Routes installed while this node holds the addresses (keepalived "
        "virtual_routes): added after the addresses on becoming master, removed before them "
        "on leaving it, by the instance of the route's family. They carry route protocol 86 "
        "(`proto 86` in `ip route`), kube-vrrp's mark, by which a restarted daemon removes "
        "what a killed one left.",
    )
    rules: Annotated[tuple[VirtualRule, ...], Crd(maxItems=64)] = Field(
        default=(),
        description="Policy routing rules installed while this node holds the addresses "
        "(keepalived virtual_rules), as routes are, marked with protocol 86 too.",
    )
    advert_interval_cs: Annotated[int, DurationText()] = Field(
        default=100,
        alias="advertInterval",
        description="How often the master sends an advertisement (keepalived advert_int): a "
        "duration such as 1s, 100ms or 1.5s (keepalived's advert_int 1 is 1s). Default 1s. "
        "Version 3: 10ms..40.95s in 10 ms steps. Version 2: whole seconds, 1s..255s. A backup "
        "takes over about 3 x advertInterval after the master goes silent; every node must use "
        "the same value (keepalived ignores adverts whose interval differs).",
    )
    priority: BasePriority = Field(
        default=100,
        description="The base priority of the nodes not matched by nodePriorities (keepalived "
        "priority), 1..255, default 100: the highest priority becomes master (equal "
        "priorities: the higher primary IP address wins). 255 means address owner (RFC 5798 "
        "§5.2.4): it cannot be combined with probes. Probe weights change it within 1..254.",
    )
    node_priorities: Annotated[
        tuple[NodePriority, ...], Crd(maxItems=64, rules=[_NODE_NAME_ONCE_RULE])
    ] = Field(
        default=(),
        description="Per-node priority overrides, checked in order: the first entry that "
        "matches a node (by nodeName, or by nodeSelector on the Node's labels) gives that "
        "node's base priority; nodes that match none get spec.priority. The keepalived "
        "equivalent is a different priority in each node's keepalived.conf.",
    )
    preempt: Annotated[Preempt, Crd(default={"mode": PreemptMode.ALWAYS.value})] = Field(
        default=Preempt(),
        description="Whether a node with a higher priority takes the addresses from a running "
        "master (RFC 5798 Preempt_Mode). The same on every node: Always (the default; "
        "keepalived's default), Never (a running master keeps the addresses until it fails; "
        'keepalived nopreempt, without its "only in state BACKUP" trap), or Delay (take over '
        "only after `delay`, if still higher; keepalived preempt_delay).",
    )
    accept: StrictBool = Field(
        default=True,
        description="Whether the master accepts packets sent to the virtual addresses "
        "(keepalived accept / no_accept; RFC 5798 Accept_Mode), so that ping, SSH or a "
        "service bound to the VIP answer. Default true.",
    )
    verify_addresses: StrictBool = Field(
        default=True,
        description="Whether a backup drops adverts whose address list differs from its own "
        "(RFC 5798 §7.1, as keepalived does). Default true. false: adverts are accepted "
        "whatever addresses they list, and a new address list is applied to the running "
        "instance without a new election. The operator sets false on the instances of a "
        "VirtualIPPool, whose address list changes with every Service; set it only when every "
        "peer is kube-vrrp.",
    )
    unicast: StrictBool = Field(
        default=False,
        description="Send adverts to each other node by unicast instead of to the VRRP "
        "multicast group (224.0.0.18 / ff02::12), for networks that drop multicast (keepalived "
        "unicast_peer). Default false. In a cluster the operator fills in the peers from the "
        "participating Nodes' InternalIP addresses; a standalone file lists them in peers.",
    )
    peers: Annotated[tuple[Peer, ...], Crd(maxItems=128)] = Field(
        default=(),
        validate_default=True,
        description="Standalone files only: every participating node and its address, this "
        "node included (its own entry gives the source address; the others are the unicast "
        "peers, keepalived unicast_src_ip / unicast_peer). A node appears once per address "
        "family. Leave it empty in a cluster: the operator renders each node's peers from the "
        "participating Nodes' InternalIP addresses.",
    )
    authentication: Authentication | None = Field(
        default=None,
        description="VRRPv2 simple password authentication (keepalived authentication { "
        "auth_type PASS; auth_pass ... }), version 2 only: set exactly one of password or "
        "secretRef. It keeps misconfigured routers apart and is no security (the password "
        "travels in clear). In a cluster use secretRef: the operator passes the password to "
        "the daemon pods as a Secret, never in a ConfigMap, and an inline password would sit "
        "in the VirtualIP for everyone who can read it.",
    )
    garp: Garp = Field(
        default=Garp(),
        description="Gratuitous ARP (IPv4) / unsolicited neighbour advertisements (IPv6) sent "
        "on becoming master, so switches and hosts learn where the addresses moved. Defaults "
        "are keepalived's.",
    )
    node_selector: LabelSelector | None = Field(
        default=None,
        description="The nodes that take part: a label selector over Node labels (every "
        "matchLabels pair and every matchExpressions requirement must hold). All nodes when "
        "omitted. The operator runs a vrrpd pod on each selected node and removes it (after a "
        "handover) when the node leaves the selection.",
    )
    service_ref: ServiceRef | None = Field(
        default=None,
        description="A Service of type LoadBalancer in this namespace that gets the first "
        "address of each family in status.loadBalancer.ingress, so that `kubectl get svc` "
        "shows the VIP. Optional.",
    )
    readiness: Annotated[Readiness, BeforeValidator(enum_value(Readiness, "a readiness mode"))] = (
        Field(
            default=Readiness.HEALTHY,
            description="When a node's vrrpd pod reports Ready. Healthy (the default): the "
            "daemon runs, its probes pass and no instance is in FAULT, i.e. the node is a "
            "healthy candidate. Master: only the node holding the addresses is Ready, for "
            "routing to the holder through a Service.",
        )
    )
    track_interfaces: Annotated[
        tuple[
            Annotated[
                InterfaceName,
                Crd(description="An interface name, 1..15 characters without '/', ':' or spaces."),
            ],
            ...,
        ],
        Crd(maxItems=32, x_kubernetes_list_type="set"),
    ] = Field(
        default=(),
        description="Interfaces whose link is watched (keepalived track_interface): while any "
        "of them is down the node's instance is in FAULT and releases the addresses. The "
        "interface that carries the addresses is always watched.",
    )
    probes: Annotated[
        tuple[ProbeSpec, ...],
        Crd(maxItems=32, x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]),
    ] = Field(
        default=(),
        description="Health probes (keepalived vrrp_script + track_script). Each runs one check "
        "every interval; rise successes / fall failures in a row change its state. Weight 0 "
        "(the default): a failing probe puts the instance in FAULT (it releases the "
        "addresses). Weight > 0 adds the weight to the priority while the probe succeeds; "
        "weight < 0 subtracts it while the probe fails; the result is kept within 1..254.",
    )
    sync_group: (
        Annotated[str, BeforeValidator(lambda v: dns_label(v, "edge")), DNS_LABEL] | None
    ) = Field(
        default=None,
        description="A name shared by VirtualIPs (in this namespace) that change state "
        "together on a node (keepalived vrrp_sync_group): when one goes to FAULT or BACKUP, "
        "all do, so related addresses (say, the outside and the inside of a router) stay on "
        "one node. A DNS-1123 label, e.g. edge.",
    )
    notify: NotifySpec | None = Field(
        default=None,
        description="Notifications on state changes (keepalived notify_master, notify_backup, "
        "notify_fault, notify_stop, notify, smtp_alert): scripts, a webhook, e-mail. They run "
        "after the change, never delay or influence the election. Scripts run in the vrrpd "
        "container on the node.",
    )
    sync_group_notify: NotifySpec | None = Field(
        default=None,
        description="Notifications of the sync group as a whole (keepalived's notify_* "
        "inside vrrp_sync_group): once per change of the group's state on this node, not "
        "once per member. The group takes the state a member enters first, as keepalived's "
        "does; notify.all gets GROUP, the group (<namespace>/<syncGroup>), the state and 0 "
        'appended, a fifo gets GROUP "<group>" <state> 0. Needs syncGroup; members that set '
        "it should set the same (the first member by name wins, with a warning).",
    )

    @field_validator("vrid")
    @classmethod
    def _vrid_set_standalone(cls, vrid: int | None, info: ValidationInfo) -> int | None:
        if vrid is None and is_standalone(info):
            raise fail(
                "required in a standalone file; in a cluster the operator allocates it, "
                "standalone must set it: 1..255, the same on every node of this VirtualIP "
                "and unique on the link"
            )
        return vrid

    @field_validator("version", mode="before")
    @classmethod
    def _version_fits_addresses(cls, version: Any, info: ValidationInfo) -> int:
        if isinstance(version, bool) or version not in VRRP_VERSIONS:
            raise fail(
                f"{show(version)} is not supported; use 3 (VRRPv3, the default) or 2 "
                "(VRRPv2, for keepalived peers)"
            )
        if version == 2:
            v6 = [str(a) for a in info.data.get("addresses", ()) if a.version == 6]
            if v6:
                raise fail(
                    f"2 (VRRPv2) carries IPv4 only, but spec.addresses has {', '.join(v6)}; "
                    "use version: 3 or move the IPv6 addresses to another VirtualIP"
                )
        return int(version)

    @field_validator("label", mode="before")
    @classmethod
    def _label_linux_rule(cls, label: Any, info: ValidationInfo) -> Any:
        return None if label is None else _label(label, info)

    @field_validator("use_vmac")
    @classmethod
    def _vmac_ipv4_without_label(cls, use_vmac: bool, info: ValidationInfo) -> bool:
        if not use_vmac:
            return use_vmac
        problems: list[Problem] = []
        v6 = [str(a) for a in info.data.get("addresses", ()) if a.version == 6]
        if v6:
            problems.append(
                (
                    "",
                    f"true is for IPv4 addresses only, but spec.addresses has {', '.join(v6)}; "
                    "put the IPv6 addresses in another VirtualIP without useVmac",
                )
            )
        if info.data.get("label") is not None:
            problems.append(
                (
                    "",
                    "true puts the addresses on the virtual MAC interface vrrp.<vrid>, where "
                    "spec.label (which must start with spec.interface) cannot go; remove label",
                )
            )
        if problems:
            raise error(problems)
        return use_vmac

    @field_validator("address_interfaces")
    @classmethod
    def _address_interfaces_listed(
        cls, entries: tuple[AddressInterface, ...], info: ValidationInfo
    ) -> tuple[AddressInterface, ...]:
        if problems := address_interface_problems(entries, info.data.get("addresses")):
            raise error(problems)
        return entries

    @field_validator("routes", "rules")
    @classmethod
    def _of_a_family_present(cls, entries: Any, info: ValidationInfo) -> Any:
        addresses = info.data.get("addresses")
        families = {4, 6} if addresses is None else {a.version for a in addresses}
        if problems := family_problems(entries, families):
            raise error(problems)
        return entries

    @field_validator("advert_interval_cs", mode="before")
    @classmethod
    def _advert_interval_fits_version(cls, value: Any, info: ValidationInfo) -> int:
        # version is absent when spec.version itself is invalid
        return _advert_interval(value, info.data.get("version"))

    @field_serializer("advert_interval_cs")
    def _advert_interval_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    @field_validator("node_priorities")
    @classmethod
    def _node_names_once(cls, entries: tuple[NodePriority, ...]) -> tuple[NodePriority, ...]:
        problems: list[Problem] = []
        first_at: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if entry.node_name is None:
                continue
            if entry.node_name in first_at:
                problems.append(
                    (
                        f"[{i}].nodeName",
                        f"{entry.node_name} is already at [{first_at[entry.node_name]}]; "
                        "the first match wins, so this entry never applies: remove it",
                    )
                )
            else:
                first_at[entry.node_name] = i
        if problems:
            raise error(problems)
        return entries

    @field_validator("peers")
    @classmethod
    def _peers_complete(cls, peers: tuple[Peer, ...], info: ValidationInfo) -> tuple[Peer, ...]:
        if problems := _peer_problems(peers, info):
            raise error(problems)
        return peers

    @field_validator("sync_group_notify")
    @classmethod
    def _group_notify_needs_group(
        cls, notify: NotifySpec | None, info: ValidationInfo
    ) -> NotifySpec | None:
        if notify is not None and "sync_group" in info.data and info.data["sync_group"] is None:
            raise fail(
                "notifies a sync group, but syncGroup is not set: set syncGroup (e.g. "
                "syncGroup: edge), or move these hooks to notify"
            )
        return notify

    @field_validator("authentication")
    @classmethod
    def _authentication_is_v2(
        cls, auth: Authentication | None, info: ValidationInfo
    ) -> Authentication | None:
        if auth is not None and info.data.get("version") == 3:
            raise fail(
                "VRRPv3 has no authentication (RFC 5798 removed it); remove "
                "authentication, or set version: 2 to talk to keepalived VRRPv2 peers "
                "with a PASS password"
            )
        return auth

    @field_validator("track_interfaces", mode="wrap")
    @classmethod
    def _interface_list(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return list_once(value, handler, "[eth1]")

    @field_validator("probes", mode="wrap")
    @classmethod
    def _probes_fit_spec(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> tuple[ProbeSpec, ...]:
        # On the raw list, so that these problems show up with each probe's own.
        problems = _probe_list_problems(value, info)
        result: tuple[ProbeSpec, ...] = validate_adding(handler, value, problems)
        return result

    @model_validator(mode="after")
    def _one_owner(self) -> Self:
        # Two nodes with priority 255 both claim to own the address. Only nodes whose
        # priority is certain (no nodeSelector entry could match first) are counted.
        owners = sorted(
            {p.node_name for p in self.peers if self._known_priority(p.node_name) == 255}
        )
        if len(owners) > 1:
            raise fail(
                f"nodes {', '.join(owners)} would all have priority 255 (address owner); "
                "give 255 to one node at most, through nodePriorities",
                ".priority",
            )
        return self

    def _known_priority(self, node: str) -> int | None:
        for entry in self.node_priorities:
            if entry.node_selector is not None:
                return None
            if entry.node_name == node:
                return entry.priority
        return self.priority

    def priority_for(self, node: str, node_labels: Mapping[str, str] | None = None) -> int:
        """The first nodePriorities entry that matches `node`, else spec.priority.

        With node_labels None (labels unknown, as in a standalone file), nodeSelector
        entries never match.
        """
        for entry in self.node_priorities:
            if entry.matches(node, node_labels):
                return entry.priority
        return self.priority

    def takes_part(self, node_labels: Mapping[str, str] | None) -> bool:
        """True unless nodeSelector is set and the node's labels (when known) fail it."""
        return (
            self.node_selector is None
            or node_labels is None
            or match_labels(self.node_selector, node_labels)
        )

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(f for f in (4, 6) if any(a.version == f for a in self.addresses))


class ObjectMeta(SpecModel):
    example = "{name: web}"
    name: Annotated[str, BeforeValidator(dns_label)]
    namespace: Annotated[str, BeforeValidator(dns_label)] = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _server_fields(cls, data: Any, info: ValidationInfo) -> Any:
        # Objects read from the API carry uid, resourceVersion, managedFields ...
        if isinstance(data, Mapping) and not is_standalone(info):
            known = {"name", "namespace", "labels", "annotations"}
            return {k: v for k, v in data.items() if k in known}
        return data


class VirtualIP(SpecModel):
    """A kubevrrp.io/v1alpha1 VirtualIP: floating addresses held by one node at a time."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: VirtualIPSpec

    @model_validator(mode="before")
    @classmethod
    def _status_ignored(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Mapping) and "status" in data and not is_standalone(info):
            return {k: v for k, v in data.items() if k != "status"}
        return data

    @field_validator("api_version", mode="before")
    @classmethod
    def _known_api_version(cls, value: Any) -> str:
        if value != API_VERSION:
            raise fail(f"{show(value)} is not supported; use {API_VERSION}")
        return API_VERSION

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> str:
        if value != KIND:
            raise fail(
                f"{show(value)} is not supported; use {KIND} (this file holds "
                f"{API_VERSION} VirtualIP objects only)"
            )
        return KIND

    @property
    def key(self) -> str:
        """ "<namespace>/<name>", how messages and instance names refer to this VirtualIP."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


def _peer_problems(peers: tuple[Peer, ...], info: ValidationInfo) -> list[Problem]:
    """spec.peers: each node once per family, its own address, complete when unicast."""
    problems: list[Problem] = []
    addresses: tuple[IPInterface, ...] | None = info.data.get("addresses")
    families = {a.version for a in addresses} if addresses is not None else {4, 6}
    virtual = {a.ip for a in addresses} if addresses is not None else set()
    node_at: dict[tuple[str, int], int] = {}
    address_at: dict[IPAddress, int] = {}
    for i, peer in enumerate(peers):
        family = peer.address.version
        if (peer.node_name, family) in node_at:
            problems.append(
                (
                    f"[{i}].nodeName",
                    f"{peer.node_name} already has an {family_name(family)} entry at "
                    f"[{node_at[peer.node_name, family]}]; list each node once per family",
                )
            )
        else:
            node_at[peer.node_name, family] = i
        if peer.address in address_at:
            problems.append(
                (
                    f"[{i}].address",
                    f"{peer.address} is already the address of [{address_at[peer.address]}]",
                )
            )
        else:
            address_at[peer.address] = i
        if family not in families:
            problems.append(
                (
                    f"[{i}].address",
                    f"{peer.address} is {family_name(family)}, but spec.addresses has no "
                    f"{family_name(family)} address; remove this entry",
                )
            )
        if peer.address in virtual:
            problems.append(
                (
                    f"[{i}].address",
                    f"{peer.address} is a virtual address of this VirtualIP; give the "
                    "node's own address",
                )
            )
    unicast = info.data.get("unicast")
    if unicast and addresses is not None and (peers or is_standalone(info)):
        for needed in sorted(families):
            count = sum(1 for p in peers if p.address.version == needed)
            if count < 2:
                problems.append(
                    (
                        "",
                        f"unicast needs the {family_name(needed)} address of every "
                        f"participating node, this one included: at least 2 entries, "
                        f"found {count}; e.g. [{{nodeName: node-a, address: ...}}, "
                        "{nodeName: node-b, address: ...}]",
                    )
                )
    return problems


def _probe_list_problems(value: Any, info: ValidationInfo) -> list[Problem]:
    """spec.probes, before each is validated: names unique, no probes on an address owner."""
    problems: list[Problem] = []
    if isinstance(value, list | tuple):
        first_at: dict[str, int] = {}
        for i, item in enumerate(value):
            name = item.get("name") if isinstance(item, Mapping) else getattr(item, "name", None)
            if not isinstance(name, str):
                continue
            if name in first_at:
                problems.append(
                    (
                        f"[{i}].name",
                        f"{name} is already the name of [{first_at[name]}]; give each "
                        "probe its own name",
                    )
                )
            else:
                first_at[name] = i
        owners = []
        if info.data.get("priority") == PRIORITY_OWNER:
            owners.append("spec.priority is 255")
        for i, entry in enumerate(info.data.get("node_priorities", ())):
            if entry.priority == PRIORITY_OWNER:
                owners.append(f"spec.nodePriorities[{i}].priority is 255")
        if value and owners:
            problems.append(
                (
                    "",
                    f"not allowed because {' and '.join(owners)}: a node at priority 255 "
                    "owns the addresses (RFC 5798 §5.2.4) and cannot be demoted, so no "
                    "probe could move the VIP away from it; use priorities 1..254 with "
                    "probes, or remove the probes",
                )
            )
    return problems


def _label(label: Any, info: ValidationInfo) -> str:
    """spec.label: an IPv4 address label Linux takes on spec.interface."""
    text = as_string(label, '"eth0:0"')
    problems: list[str] = []
    if not text or len(text) >= IFNAMSIZ or any(c.isspace() for c in text):
        problems.append(f"{show(text)} is not an address label; use 1..15 characters")
    interface = info.data.get("interface")
    if interface is not None and text != interface and not text.startswith(f"{interface}:"):
        problems.append(
            f"{show(text)} must start with the interface name (Linux rule); "
            f"use {interface}:<suffix>, e.g. {interface}:vip"
        )
    addresses = info.data.get("addresses")
    if addresses is not None and not any(a.version == 4 for a in addresses):
        problems.append("labels apply to IPv4 addresses only; spec.addresses has none")
    if problems:
        raise error(("", p) for p in problems)
    return text


def _advert_interval(value: Any, version: int | None) -> int:
    """spec.advertInterval in centiseconds: what the version's advert field carries."""
    cs = duration(value)
    if version == 2:
        if cs < 100:
            raise fail(
                f"{show(value)} is below 1s, the VRRPv2 minimum (spec.version: 2 counts "
                "whole seconds); use 1s..255s, or version: 3 for sub-second adverts"
            )
        if cs % 100 or cs > ADVERT_INTERVAL_V2_MAX_S * 100:
            raise fail(
                f"{show(value)} does not fit VRRPv2 (spec.version: 2), which counts whole "
                "seconds; use 1s..255s"
            )
    elif version == 3 and not 1 <= cs <= ADVERT_INTERVAL_V3_MAX_CS:
        raise fail(
            f"{show(value)} is out of range for VRRPv3; use 10ms..40.95s in 10 ms steps "
            "(default 1s)"
        )
    elif not 1 <= cs <= ADVERT_INTERVAL_V2_MAX_S * 100:
        raise fail(f"{show(value)} is out of range; use 10ms..40.95s (VRRPv3) or 1s..255s")
    return cs
