"""Per-node resolution: the VRRP instances one node runs, from VirtualIP specs.

Pure: the daemon (standalone and in a cluster), the operator's advisories and `vrrpd
explain` all resolve through `instances_for_node`.
"""

from __future__ import annotations

from collections.abc import Mapping

from vrrpd.config import InstanceConfig
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.fields import family_name
from vrrpd.spec.virtualip import VirtualIP
from vrrpd.switchover import SWITCHOVER_TO


def instances_for_node(
    vips: list[VirtualIP], node: str, node_labels: Mapping[str, str] | None = None
) -> list[InstanceConfig]:
    """The VRRP instances `node` runs: one per VirtualIP and address family present.

    A VirtualIP whose spec.nodeSelector does not match node_labels has no instance here;
    with node_labels None (labels unknown, as in a standalone file) every node takes part.
    Priority: the first nodePriorities entry matching the node (by nodeName, or by
    nodeSelector against node_labels; with node_labels None selectors never match), else
    spec.priority. An address of spec.addressInterfaces goes on its interface, which is
    then tracked; routes and rules go to the instance of their family. The node's own
    entry in spec.peers gives the source address; the other entries of that family are
    the peers. Probes, tracked interfaces, sync group, notify and readiness are the same
    for every instance of a VirtualIP (the sync group is qualified by namespace:
    "<namespace>/<syncGroup>"). Raises ConfigError (all problems) when a VirtualIP
    cannot run here: vrid unset, a secretRef unresolved, a unicast node absent from
    spec.peers.
    """
    problems: list[str] = []
    instances: list[InstanceConfig] = []
    for vip in vips:
        spec = vip.spec
        if not spec.takes_part(node_labels):
            continue
        if spec.vrid is None:
            problems.append(
                f"{vip.key}: spec.vrid: not set; the operator allocates it in a cluster, "
                "a standalone file must set it (1..255)"
            )
            continue
        password: bytes | None = None
        if spec.authentication is not None:
            if spec.authentication.password is None:
                problems.append(
                    f"{vip.key}: spec.authentication.secretRef: not resolved; the operator "
                    "reads the Secret and passes the password"
                )
                continue
            password = spec.authentication.password.encode()
        priority = spec.priority_for(node, node_labels)
        probes = tuple(probe.to_config() for probe in spec.probes)
        notify = None if spec.notify is None else spec.notify.to_config()
        group_notify = spec.sync_group_notify
        sync_group = (
            None if spec.sync_group is None else f"{vip.metadata.namespace}/{spec.sync_group}"
        )
        for family in spec.families:
            moved = tuple(
                (e.address, e.interface)
                for e in spec.address_interfaces
                if e.address.version == family
            )
            # keepalived watches an address's interface too (unless no_track)
            tracked = tuple(dict.fromkeys(spec.track_interfaces + tuple(dev for _, dev in moved)))
            peers = [p for p in spec.peers if p.address.version == family]
            own = next((p.address for p in peers if p.node_name == node), None)
            if spec.unicast and own is None:
                problems.append(
                    f"{vip.key}: spec.peers: no entry for node {node} "
                    f"({family_name(family)}); add {{nodeName: {node}, address: ...}}"
                )
                continue
            instances.append(
                InstanceConfig(
                    name=f"{vip.key}/ipv{family}",
                    virtualip=vip.key,
                    family=family,
                    vrid=spec.vrid,
                    version=spec.version,
                    priority=priority,
                    advert_interval_cs=spec.advert_interval_cs,
                    addresses=tuple(a for a in spec.addresses if a.version == family),
                    interface=spec.interface,
                    label=spec.label if family == 4 else None,
                    preempt=spec.preempt.mode,
                    preempt_delay_cs=spec.preempt.delay_cs or 0,
                    accept=spec.accept,
                    unicast=spec.unicast,
                    source_address=own,
                    peers=tuple(p.address for p in peers if p.node_name != node),
                    auth_password=password,
                    garp=spec.garp.to_config(),
                    probes=probes,
                    track_interfaces=tracked,
                    sync_group=sync_group,
                    notify=notify,
                    sync_group_notify=None if group_notify is None else group_notify.to_config(),
                    readiness=spec.readiness.value,
                    verify_addresses=spec.verify_addresses,
                    hold=vip.metadata.annotations.get(SWITCHOVER_TO) == node,
                    address_interfaces=moved,
                    routes=tuple(r.to_config() for r in spec.routes if r.family == family),
                    rules=tuple(r.to_config() for r in spec.rules if r.family == family),
                    use_vmac=spec.use_vmac,
                )
            )
    if problems:
        raise ConfigError(problems)
    return instances
