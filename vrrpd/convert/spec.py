"""A vrrp_instance's gathered directives resolved together into a VirtualIP spec: the
version from the address families, the interfaces and the label, adverts rounded as keepalived
rounds them, preemption, unicast peers, GARP, probes and notifications."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from ipaddress import ip_interface
from typing import Any

from pydantic import ValidationError

from vrrpd.convert.definitions import NOTIFY_ORDER, Globals
from vrrpd.convert.instance import Address, Instance
from vrrpd.convert.reader import Statement
from vrrpd.convert.routing import convert_route, convert_rule
from vrrpd.convert.values import duration, peer_name, show_seconds, to_cs
from vrrpd.limits import (
    ADVERT_INTERVAL_V2_MAX_S,
    ADVERT_INTERVAL_V3_MAX_CS,
    PREEMPT_DELAY_MAX_CS,
    PRIORITY_OWNER,
)
from vrrpd.spec.routing import VirtualRoute, VirtualRule

KEEPALIVED_DEFAULT_VERSION = 2  # keepalived's vrrp_version default (ours is 3)
THIS_NODE = "this-node"  # nodeName of unicast_src_ip when no --node is given


def resolve_spec(inst: Instance) -> dict[str, Any]:
    """The VirtualIP spec of a gathered instance; what changes on the way is reported."""
    g = inst.defs.globals
    spec: dict[str, Any] = {}
    families: set[int] = {a.interface.version for a in inst.addresses if not a.excluded}
    version = _resolve_version(inst, families)
    addresses = _resolve_addresses(inst, version)
    spec["addresses"] = [_address_text(a) for a in addresses]
    if not addresses:
        inst.report.on(
            inst.block,
            f"{inst.iname} has no virtual_ipaddress; a VirtualIP needs at least one "
            "address (add spec.addresses)",
        )
    if inst.vrid is not None:
        spec["vrid"] = inst.vrid
    else:
        inst.report.on(
            inst.block,
            "no virtual_router_id: the operator allocates one in a cluster; a standalone "
            "file must set spec.vrid (and it must match the keepalived peers)",
        )
    spec["version"] = version
    interface = _resolve_interface(inst, addresses)
    if interface is not None:
        spec["interface"] = interface
    moved = [
        {"address": str(a.interface.ip), "interface": a.dev}
        for a in addresses
        if a.dev is not None and a.dev != interface
    ]
    if moved:
        spec["addressInterfaces"] = moved
    label = _resolve_label(inst, addresses, interface)
    if inst.use_vmac is not None and _resolve_vmac(inst, spec, label):
        spec["useVmac"] = True
    elif label is not None:
        spec["label"] = label
    if inst.advert is not None:
        spec["advertInterval"] = _resolve_advert(inst, version)
    _resolve_priority(inst, spec)
    preempt = _resolve_preempt(inst)
    if preempt is not None:
        spec["preempt"] = preempt
    accept = _resolve_accept(inst)
    if accept is not None:
        spec["accept"] = accept
    _resolve_unicast(inst, spec)
    if inst.auth is not None:
        if version == 3:
            inst.report.on(
                inst.auth[1],
                "VRRPv3 has no authentication (keepalived ignores it too); not converted",
            )
        else:
            spec["authentication"] = {"password": inst.auth[0]}
            inst.defs.note_once(
                "password",
                inst.auth[1],
                "passwords are inline in the VirtualIPs; in a cluster put them in a Secret "
                "and use authentication.secretRef",
            )
    garp = _resolve_garp(inst, g, addresses)
    if garp:
        spec["garp"] = garp
    for key, entries in (
        ("routes", _resolve_routes(inst, spec)),
        ("rules", _resolve_rules(inst, spec)),
    ):
        if entries:
            spec[key] = entries
    if inst.tracking.track_interfaces:
        spec["trackInterfaces"] = list(inst.tracking.track_interfaces)
    probes = _resolve_probes(inst, spec) if inst.tracking.probes else []
    if probes:
        spec["probes"] = probes
    group = inst.defs.groups.get(inst.iname)
    if group is not None:
        spec["syncGroup"] = group.name
    notify = _resolve_notify(inst, g)
    if notify:
        spec["notify"] = notify
    if group is not None and (inst.group_notify or g.fifo is not None):
        # keepalived writes GROUP lines to its global FIFO too
        group_notify: dict[str, Any] = {
            k: inst.group_notify[k] for k in NOTIFY_ORDER if k in inst.group_notify
        }
        if g.fifo is not None:
            group_notify["fifo"] = g.fifo
        spec["syncGroupNotify"] = group_notify
    return spec


def _resolve_version(inst: Instance, families: set[int]) -> int:
    g = inst.defs.globals
    if inst.version is not None:
        version, st = inst.version
    elif g.version is not None:
        version, st = g.version, inst.block
    else:
        version, st = KEEPALIVED_DEFAULT_VERSION, inst.block
        if families != {6}:
            inst.defs.note_once(
                "version",
                inst.block,
                "no vrrp_version: keepalived's default is VRRPv2, so version: 2 is written "
                "out here and in every instance without `version` (kube-vrrp's default is "
                "3); move all nodes together to change it",
            )
    if version == 2 and 6 in families:
        inst.report.on(
            st,
            "IPv6 instances always run VRRPv3 (keepalived does the same); version: 3",
            severity="info",
        )
        return 3
    return version


def _resolve_addresses(inst: Instance, version: int) -> list[Address]:
    kept: list[Address] = []
    seen: set[str] = set()
    main_families = {a.interface.version for a in inst.addresses if not a.excluded}
    for address in inst.addresses:
        ip = str(address.interface.ip)
        if ip in seen:
            inst.report.at(
                address.st.line,
                address.st.keyword,
                "listed twice; kept once",
                file=address.st.file,
            )
            continue
        if version == 2 and address.interface.version == 6:
            inst.report.at(
                address.st.line,
                address.st.keyword,
                "an IPv6 address cannot be in a VRRPv2 VirtualIP; not converted (put it "
                "in a VirtualIP of its own with version: 3)",
                file=address.st.file,
            )
            continue
        if address.excluded and main_families and address.interface.version not in (main_families):
            inst.report.at(
                address.st.line,
                address.st.keyword,
                "of the other address family: kube-vrrp runs a second VRRP instance "
                "(same vrid) for it, which keepalived peers do not answer",
                file=address.st.file,
            )
        seen.add(ip)
        kept.append(address)
    return kept


def _address_text(address: Address) -> str:
    iface = address.interface
    return f"{iface.ip}/{iface.network.prefixlen}"


def _resolve_interface(inst: Instance, addresses: list[Address]) -> str | None:
    devs = [a for a in addresses if a.dev is not None]
    interface = inst.interface
    if interface is None and devs:
        interface = devs[0].dev
        inst.report.on(
            inst.block,
            f"no interface: using {interface}, the dev of the first address",
            severity="info",
        )
    return interface


def _resolve_vmac(inst: Instance, spec: dict[str, Any], label: str | None) -> bool:
    """Whether useVmac can be set; what changes on the way is reported."""
    st = inst.use_vmac
    assert st is not None
    if any(":" in a for a in spec["addresses"]):
        inst.report.on(
            st,
            "useVmac is for IPv4 addresses only here, and this instance has IPv6 ones; not "
            "converted: the addresses keep the interface's own MAC",
        )
        return False
    name = f"vrrp.{inst.vrid}" if inst.vrid is not None else "vrrp.<vrid>"
    if st.args and st.args[0] != name:
        inst.report.on(st, f"the interface is named {name}, not {st.args[0]}", severity="info")
    if label is not None:
        inst.report.on(
            st,
            f"label {label} dropped: the addresses go on the virtual MAC interface {name}",
        )
    return True


def _resolve_label(inst: Instance, addresses: list[Address], interface: str | None) -> str | None:
    labelled = []
    for address in addresses:
        if address.label is None:
            continue
        if address.dev is not None and address.dev != interface:
            inst.address_warning(
                address.st,
                f"label {address.label}",
                f"ignored: an address on another interface than {interface} "
                "(addressInterfaces) carries no label",
            )
        else:
            labelled.append(address)
    if not labelled:
        return None
    first = labelled[0]
    label = first.label
    for address in labelled:
        if address.interface.version == 6:
            inst.address_warning(
                address.st, f"label {address.label}", "IPv6 addresses have no label; ignored"
            )
        elif address.label != label:
            inst.address_warning(
                address.st,
                f"label {address.label}",
                f"one label per VirtualIP: all IPv4 addresses get {label}",
            )
    if first.interface.version == 6:
        return None
    return label


def _resolve_advert(inst: Instance, version: int) -> str:
    assert inst.advert is not None
    seconds, st = inst.advert
    cs = to_cs(seconds)
    if version == 2:
        whole = max(1, int(seconds.quantize(Decimal(1), rounding=ROUND_HALF_UP)))
        whole = min(whole, ADVERT_INTERVAL_V2_MAX_S)
        if Decimal(whole) != seconds:
            inst.report.on(
                st,
                f"VRRPv2 counts whole seconds: {show_seconds(seconds)} becomes {whole}s "
                "(keepalived rounds the same way)",
            )
        return f"{whole}s"
    rounded = min(max(cs, 1), ADVERT_INTERVAL_V3_MAX_CS)
    if Decimal(rounded) != seconds * 100:
        inst.report.on(
            st,
            f"VRRPv3 counts 10 ms steps (10ms..40.95s): {show_seconds(seconds)} becomes "
            f"{duration(rounded)} (keepalived rounds the same way)",
        )
    return duration(rounded)


def _resolve_priority(inst: Instance, spec: dict[str, Any]) -> None:
    if inst.priority is None:
        return
    priority, st = inst.priority
    if inst.defs.node is not None:
        spec["nodePriorities"] = [{"nodeName": inst.defs.node, "priority": priority}]
        inst.defs.note_once(
            "priority",
            st,
            f"priorities are node {inst.defs.node}'s (nodePriorities); other nodes get "
            "spec.priority (default 100): convert their files with --node and merge "
            "their nodePriorities entries",
        )
    else:
        spec["priority"] = priority


def _resolve_preempt(inst: Instance) -> dict[str, Any] | None:
    state = inst.state[0] if inst.state is not None else None
    owner = inst.priority is not None and inst.priority[0] == PRIORITY_OWNER
    if inst.nopreempt is not None:
        st = inst.nopreempt
        if inst.preempt_delay is not None:
            inst.report.on(
                inst.preempt_delay[1],
                "ignored: nopreempt wins (as in keepalived)",
                severity="info",
            )
        if owner:
            inst.report.on(
                st,
                "the address owner (priority 255) always preempts, here and in "
                "keepalived; preempt: Never applies to the other nodes",
                severity="info",
            )
        if state == "MASTER":
            inst.report.on(
                st,
                "keepalived ignores nopreempt with `state MASTER` (this node did preempt); "
                "preempt: Never applies on every node, whatever its state",
            )
        else:
            inst.report.on(
                st,
                "preempt: Never applies on every node and in every state (keepalived "
                "needs state BACKUP on each node for nopreempt to work)",
                severity="info",
            )
        return {"mode": "Never"}
    if inst.preempt_delay is None:
        return None
    seconds, st = inst.preempt_delay
    cs = to_cs(seconds)
    if cs == 0:
        return None
    if Decimal(cs) != seconds * 100:
        inst.report.on(st, f"{show_seconds(seconds)} rounded to 10 ms steps: {duration(cs)}")
    if cs > PREEMPT_DELAY_MAX_CS:
        inst.report.on(st, f"{duration(cs)} is above the 1h maximum; using 1h")
        cs = PREEMPT_DELAY_MAX_CS
    if state == "MASTER":
        inst.report.on(
            st,
            "keepalived ignores preempt_delay with `state MASTER`; the delay applies on "
            "every node here",
        )
    if inst.strict is not None or inst.defs.globals.strict:
        inst.report.on(st, "keepalived ignores preempt_delay in strict mode; converted anyway")
    inst.report.on(
        st,
        "preempt: Delay waits this long after first seeing a lower-priority master; "
        "keepalived also delays the first takeover after start-up, which kube-vrrp does not",
        severity="info",
    )
    return {"mode": "Delay", "delay": duration(cs)}


def _resolve_accept(inst: Instance) -> bool | None:
    if inst.accept is not None:
        return inst.accept
    if inst.strict is not None or inst.defs.globals.strict:
        owner = inst.priority is not None and inst.priority[0] == PRIORITY_OWNER
        return owner
    return None


def _resolve_unicast(inst: Instance, spec: dict[str, Any]) -> None:
    if inst.unicast_src is None and not inst.unicast_peers:
        return
    spec["unicast"] = True
    peers: list[dict[str, str]] = []
    if inst.unicast_src is not None:
        peers.append({"nodeName": inst.defs.node or THIS_NODE, "address": inst.unicast_src[0]})
        if inst.defs.node is None:
            inst.report.on(
                inst.unicast_src[1],
                f"this node is named {THIS_NODE!r} in spec.peers: give --node, or rename "
                "it to the node's name",
                severity="info",
            )
    else:
        inst.report.on(
            inst.unicast_block or inst.block,
            "no unicast_src_ip: this node's address is not known; add "
            "{nodeName: <this node>, address: ...} to spec.peers",
        )
    used = {p["address"] for p in peers}
    for address, entry in inst.unicast_peers:
        if address in used:
            inst.report.at(entry.line, address, "listed twice; kept once", file=entry.file)
            continue
        used.add(address)
        peers.append({"nodeName": peer_name(address), "address": address})
    if inst.unicast_peers:
        inst.report.on(
            inst.unicast_block or inst.block,
            "peers are named peer-<address>; rename them to the nodes' names (each node "
            "uses the entry with its own name as its source address)",
            severity="info",
        )
    else:
        inst.report.on(
            inst.unicast_src[1] if inst.unicast_src else inst.block,
            "unicast_src_ip without unicast_peer: keepalived stays multicast; converted as "
            "unicast, so add the other nodes to spec.peers",
        )
    spec["peers"] = peers


def _resolve_garp(inst: Instance, g: Globals, addresses: list[Address]) -> dict[str, Any]:
    garp: dict[str, Any] = {}
    for key in ("masterDelay", "masterRepeat", "interval", "masterRefresh"):
        if key in inst.garp:
            garp[key] = inst.garp[key]
        elif key in g.garp:
            garp[key] = g.garp[key]
        elif key == "interval":
            value = _garp_interval(inst, g, addresses)
            if value is not None:
                garp[key] = value
    return garp


def _garp_interval(inst: Instance, g: Globals, addresses: list[Address]) -> str | None:
    families = {a.interface.version for a in addresses}
    arp = g.garp_interval_cs if 4 in families else None
    na = g.gna_interval_cs if 6 in families else None
    if arp is not None and na is not None and arp != na:
        inst.report.on(
            g.garp_line["gna"],
            f"one interval for ARP and NA: {inst.iname} uses vrrp_garp_interval",
        )
    cs = arp if arp is not None else na
    if cs is None:
        return None
    if cs > 1000:
        inst.report.on(
            g.garp_line["interval" if arp is not None else "gna"],
            f"{duration(cs)} is above 10s; using 10s",
        )
        cs = 1000
    return duration(cs)


def _resolve_probes(inst: Instance, spec: dict[str, Any]) -> list[dict[str, Any]]:
    priorities = [spec.get("priority")] + [p["priority"] for p in spec.get("nodePriorities", [])]
    if PRIORITY_OWNER in priorities:
        assert inst.priority is not None
        inst.report.on(
            inst.priority[1],
            "an address owner (priority 255) cannot have probes: keepalived ignores "
            "their weights; probes not converted (lower the priority to 254 to keep them)",
        )
        return []
    return list(inst.tracking.probes)


def _resolve_notify(inst: Instance, g: Globals) -> dict[str, Any]:
    notify: dict[str, Any] = {k: inst.notify[k] for k in NOTIFY_ORDER if k in inst.notify}
    if g.fifo is not None:
        notify["fifo"] = g.fifo
    alert = inst.smtp_alert if inst.smtp_alert is not None else g.smtp_alert
    if not alert:
        return notify
    if not g.email_to or g.smtp_server is None:
        missing = "notification_email" if not g.email_to else "smtp_server"
        inst.report.on(
            inst.block,
            f"smtp_alert without global_defs {missing}: keepalived sends no email; "
            "notify.email not set",
        )
        return notify
    sender = g.email_from or f"keepalived@{inst.defs.node or 'localhost'}"
    if g.email_from is None:
        inst.report.on(
            inst.block,
            f"no notification_email_from: using {sender} (keepalived used keepalived@<hostname>)",
            severity="info",
        )
    email: dict[str, Any] = {"to": list(g.email_to), "from": sender}
    email["smtpServer"] = g.smtp_server
    if g.smtp_timeout_cs is not None:
        email["connectTimeout"] = duration(g.smtp_timeout_cs)
    notify["email"] = email
    return notify


def _resolve_routes(inst: Instance, spec: dict[str, Any]) -> list[dict[str, Any]]:
    converted = [(e, convert_route(inst.report, e)) for e in inst.routes]
    return _valid(inst, spec, "routes", VirtualRoute, converted)


def _resolve_rules(inst: Instance, spec: dict[str, Any]) -> list[dict[str, Any]]:
    converted = [(e, convert_rule(inst.report, e)) for e in inst.rules]
    return _valid(inst, spec, "rules", VirtualRule, converted)


def _valid(
    inst: Instance,
    spec: dict[str, Any],
    field: str,
    model: type[VirtualRoute | VirtualRule],
    converted: list[tuple[Statement, dict[str, Any] | None]],
) -> list[dict[str, Any]]:
    """The entries the model accepts, of a family the addresses have; the others reported."""
    families = {ip_interface(a).version for a in spec["addresses"]}
    kept = []
    for st, entry in converted:
        if entry is None:
            continue
        try:
            family = model.model_validate(entry).family
        except ValidationError as exc:
            reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            inst.report.on(st, f"{reason}; entry not converted")
            continue
        if family not in families:
            inst.report.on(
                st,
                f"IPv{family}, but the instance has no IPv{family} address, so no instance "
                f"would install it; not converted (keepalived installs it with the other "
                f"family's instance: put it in spec.{field} of a VirtualIP with IPv{family} "
                "addresses)",
            )
            continue
        kept.append(entry)
    return kept
