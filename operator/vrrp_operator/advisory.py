"""Advisory: the what-if findings of each VirtualIP, from what every node runs (pure).

The analysis is `vrrpd.whatif`'s, run on the documents render wrote for each node (the
daemon's own input, through the daemon's own `instances_for_node`): the Advisory condition
says what `vrrpd explain` would say about those files. A VirtualIP in a sync group is
analysed with the members that share its nodes. Only warnings reach the condition; notes
(ties between equal base priorities, a third node that takes over only after two
failures, ...) are what `vrrpd explain` is for.

Analyses are memoised on the documents they read: the operator asks after every new
rendering, a VirtualIP's documents change only with its spec or its nodes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from vrrp_operator.render import Rendered
from vrrpd.config import InstanceConfig
from vrrpd.resolve import instances_for_node
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.load import parse_virtualip
from vrrpd.whatif import analyse_all, warnings_text

CACHE_SIZE = 2048  # VirtualIPs (or sync groups) whose last analysis is kept


def advisories(rendered: Rendered) -> dict[str, tuple[str, ...] | None]:
    """`advisory` of every VirtualIP render placed. The first analysis of a VirtualIP costs
    milliseconds of CPU (the operator runs this in a worker thread); later ones are lookups
    while its documents stay the same."""
    return {key: advisory(rendered, key) for key in rendered.placements}


def advisory(rendered: Rendered, key: str) -> tuple[str, ...] | None:
    """The what-if warnings of VirtualIP `key` ("<namespace>/<name>"): () when there is
    nothing to warn about, None when it is not rendered (nothing runs to analyse)."""
    placement = rendered.placements.get(key)
    if placement is None or not placement.rendered:
        return None
    namespace = key.split("/", 1)[0]
    per_node: dict[str, list[Mapping[str, Any]]] = {}
    for node, own in rendered.documents.get(key, {}).items():
        group = own["spec"].get("syncGroup")
        if group is None:
            per_node[node] = [own]
            continue
        per_node[node] = [
            d
            for d in rendered.nodes[node].documents
            if d is own
            or (
                (d.get("metadata") or {}).get("namespace") == namespace
                and d["spec"].get("syncGroup") == group
            )
        ]
    if not per_node:
        return None
    found = _analysed(json.dumps(per_node, sort_keys=True, default=str))
    if found is None:
        return None
    return found.get(key, ())


@functools.lru_cache(maxsize=CACHE_SIZE)
def _analysed(documents: str) -> dict[str, tuple[str, ...]] | None:
    """VirtualIP key -> its warnings, each "ipv4: <message>" (or "ipv4+ipv6: ...")."""
    configs: dict[str, list[InstanceConfig]] = {}
    try:
        for node, docs in json.loads(documents).items():
            vips = [parse_virtualip(_without_secret(d), standalone=True) for d in docs]
            configs[node] = instances_for_node(vips, node)
        analyses = analyse_all(configs, pairs=False)
    except (ConfigError, RuntimeError):
        return None  # what the daemon would refuse is reported by the daemon
    out: dict[str, list[str]] = {}
    for line in warnings_text(analyses):
        instance, _, message = line.partition(": ")
        key, _, family = instance.rpartition("/")
        out.setdefault(key, []).append(f"{family}: {message}")
    return {k: tuple(v) for k, v in out.items()}


def _without_secret(document: Mapping[str, Any]) -> dict[str, Any]:
    # The password (a secretRef to the node's Secret here) takes no part in an election.
    spec = {k: v for k, v in document["spec"].items() if k != "authentication"}
    return {**document, "spec": spec}
