"""keepalived.conf -> VirtualIP documents: the file's top level read in keepalived's order
(definitions first, instances after), one document per vrrp_instance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vrrpd.convert.definitions import Definitions
from vrrpd.convert.instance import Instance
from vrrpd.convert.reader import Statement, read
from vrrpd.convert.report import Conversion, Report
from vrrpd.convert.spec import resolve_spec
from vrrpd.convert.values import dns_label, unique_name
from vrrpd.spec import API_VERSION, KIND

INSTANCE_ANNOTATION = "kubevrrp.io/keepalived-instance"

TOP_UNSUPPORTED = {
    "virtual_server": "IPVS load balancing is not part of kube-vrrp (use a Service or ingress)",
    "virtual_server_group": "IPVS load balancing is not part of kube-vrrp",
    "static_ipaddress": "static addresses are host configuration, not a VirtualIP",
    "static_routes": "static routes are host configuration, not a VirtualIP",
    "static_rules": "static rules are host configuration, not a VirtualIP",
    "garp_group": "per-interface GARP rate limits are not supported; see spec.garp.interval",
    "vrrp_track_process": "process tracking is not supported; use an exec probe (pgrep)",
    "bfd_instance": "BFD is not supported; use probes",
    "track_group": "track groups (for static addresses) are not supported",
    "linkbeat_interfaces": "not needed: link state comes from netlink events",
    "interface_up_down_delays": "interface debouncing is not supported",
}


def convert_text(
    text: str, *, source: str, node: str | None = None, namespace: str = "default"
) -> Conversion:
    """Convert keepalived.conf text into VirtualIP manifests.

    source: the file's path (includes are resolved next to it) or a name such as "<stdin>".
    node: the Kubernetes node this file belongs to: its priority becomes a nodePriorities
    entry, its unicast_src_ip the peer entry of that node, and `@node` lines apply.
    Raises ParseError for text that is not blocks of directives.
    """
    report = Report()
    statements = read(text, source, node, report)
    documents = _documents(statements, Definitions(report, node), namespace)
    ordered = sorted(report.warnings, key=lambda w: (w.file is not None, w.file or "", w.line))
    return Conversion(source=source, documents=documents, warnings=ordered, node=node)


def convert_file(
    path: str | Path, *, node: str | None = None, namespace: str = "default"
) -> Conversion:
    return convert_text(
        Path(path).read_text(encoding="utf-8"), source=str(path), node=node, namespace=namespace
    )


def _documents(
    statements: list[Statement], defs: Definitions, namespace: str
) -> list[dict[str, Any]]:
    report = defs.report
    instances: list[Statement] = []
    groups: list[Statement] = []
    # Definitions first, instances after: keepalived resolves names over the whole file.
    blocks: dict[str, Callable[[Statement], None]] = {
        "global_defs": defs.global_defs,
        "vrrp_script": defs.vrrp_script,
        "track_file": defs.track_file,
        "vrrp_track_file": defs.track_file,
        "vrrp_sync_group": groups.append,
        "vrrp_instance": instances.append,
    }
    for st in statements:
        kw = st.keyword
        if kw in blocks:
            if _has_block(report, st, named=kw != "global_defs"):
                blocks[kw](st)
        elif kw in TOP_UNSUPPORTED:
            report.on(st, TOP_UNSUPPORTED[kw] + "; block ignored")
        else:
            what = "block" if st.block is not None else "directive"
            report.on(st, f"unknown or unsupported top-level {what}; ignored")
    names = [i.args[0] for i in instances]
    for st in groups:
        defs.sync_group(st, names)
    taken: set[str] = set()
    documents = [_document(defs, st, namespace, taken) for st in instances]
    defs.report_unused_scripts(statements)
    defs.report_sync_groups(groups)
    return documents


def _has_block(report: Report, st: Statement, *, named: bool = False) -> bool:
    if named and not st.args:
        report.on(st, "has no name; ignored")
        return False
    if st.block is None:
        report.on(st, "has no { } block; ignored")
        return False
    return True


def _document(
    defs: Definitions, block: Statement, namespace: str, taken: set[str]
) -> dict[str, Any]:
    """One VirtualIP from one vrrp_instance; `taken`: the names given so far."""
    iname = block.args[0]
    name = dns_label(iname, "vrrp-instance")
    if name in taken:
        unique = unique_name(name, taken)
        defs.report.on(block, f"{iname} maps to the name {name}, already taken; named {unique}")
        name = unique
    else:
        taken.add(name)
    instance = Instance(defs, block, iname)
    instance.gather()
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {INSTANCE_ANNOTATION: iname},
        },
        "spec": resolve_spec(instance),
    }
