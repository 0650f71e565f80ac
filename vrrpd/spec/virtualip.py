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
    MAX_ADDRESSES,
    PRIORITY_OWNER,
    VRID_MAX,
    VRID_MIN,
    IPAddress,
    IPInterface,
)
from vrrpd.spec import API_VERSION, KIND
from vrrpd.spec.election import (
    Authentication,
    BasePriority,
    Garp,
    NodePriority,
    Peer,
    Preempt,
)
from vrrpd.spec.errors import Problem, error, fail, show, type_name, validate_adding
from vrrpd.spec.fields import (
    SpecModel,
    as_string,
    dns1035_label,
    dns_label,
    duration,
    enum_value,
    family_name,
    format_duration_cs,
    interface_name,
    is_standalone,
    list_once,
    parse_virtual_address,
    ranged_int,
)
from vrrpd.spec.notify import NotifySpec
from vrrpd.spec.probes import ProbeSpec
from vrrpd.spec.selectors import LabelSelector, match_labels


class Readiness(StrEnum):
    """When a node's daemon pod reports Ready."""

    HEALTHY = "Healthy"  # the daemon runs, its probes pass and no instance is in FAULT
    MASTER = "Master"  # only on the node that holds the VIP


class ServiceRef(SpecModel):
    """A LoadBalancer Service in the VirtualIP's namespace that gets the VIP in its status."""

    example = "{name: ingress}"

    name: Annotated[str, BeforeValidator(dns1035_label)]


class VirtualIPSpec(SpecModel):
    """spec of a VirtualIP. Fields are declared in dependency order: a validator may look
    at the fields above it (info.data), so cross-field problems are reported together with
    the other fields' problems."""

    example = "{addresses: [192.168.77.100/24], vrid: 51}"

    addresses: tuple[IPInterface, ...]
    vrid: Annotated[int, BeforeValidator(ranged_int(VRID_MIN, VRID_MAX))] | None = Field(
        default=None, validate_default=True
    )
    version: int = 3
    interface: Annotated[str, BeforeValidator(interface_name)] | None = None
    label: str | None = Field(default=None, validate_default=True)
    advert_interval_cs: int = Field(default=100, alias="advertInterval")
    priority: BasePriority = 100
    node_priorities: tuple[NodePriority, ...] = ()
    preempt: Preempt = Preempt()
    accept: StrictBool = True
    verify_addresses: StrictBool = True
    unicast: StrictBool = False
    peers: tuple[Peer, ...] = Field(default=(), validate_default=True)
    authentication: Authentication | None = None
    garp: Garp = Garp()
    node_selector: LabelSelector | None = None
    service_ref: ServiceRef | None = None
    readiness: Annotated[Readiness, BeforeValidator(enum_value(Readiness, "a readiness mode"))] = (
        Readiness.HEALTHY
    )
    track_interfaces: tuple[Annotated[str, BeforeValidator(interface_name)], ...] = ()
    probes: tuple[ProbeSpec, ...] = ()
    sync_group: Annotated[str, BeforeValidator(lambda v: dns_label(v, "edge"))] | None = None
    notify: NotifySpec | None = None

    @field_validator("addresses", mode="before")
    @classmethod
    def _parse_addresses(cls, value: Any) -> tuple[IPInterface, ...]:
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
                iface = parse_virtual_address(item)
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
        if isinstance(version, bool) or version not in (2, 3):
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
        if label is None:
            return None
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

    @field_validator("advert_interval_cs", mode="before")
    @classmethod
    def _advert_interval_fits_version(cls, value: Any, info: ValidationInfo) -> int:
        cs = duration(value)
        version = info.data.get("version")  # absent when spec.version itself is invalid
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
        if problems:
            raise error(problems)
        return peers

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
        problems: list[Problem] = []
        if isinstance(value, list | tuple):
            first_at: dict[str, int] = {}
            for i, item in enumerate(value):
                name = (
                    item.get("name") if isinstance(item, Mapping) else getattr(item, "name", None)
                )
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
