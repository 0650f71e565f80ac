"""The contract between the operator and the daemon in cluster mode, in one place.

The operator writes each node's configuration into a ConfigMap under `CONFIG_KEY`, with
`config_hash` of that text in the ConfigMap's `CONFIG_HASH_ANNOTATION`; the daemon runs
it and reports on its own pod, as JSON in `STATUS_ANNOTATION`, a `Report`: the hash it
runs, why it refused the ConfigMap or some of its documents, and one `InstanceRow` per
VRRP instance. The operator reads that report leniently (operator status.parse_report):
a field it does not know is ignored, a missing one is unknown.

Pure, and importable by the operator (which never imports the daemon's I/O).
"""

from __future__ import annotations

import hashlib
from typing import NotRequired, TypedDict

from vrrpd.spec import API_GROUP

CONFIG_KEY = "virtualips.yaml"  # the one key of a node's ConfigMap
CONFIG_HASH_ANNOTATION = f"{API_GROUP}/config-hash"  # on the ConfigMap: config_hash(text)
STATUS_ANNOTATION = f"{API_GROUP}/status"  # on the daemon's pod: a Report, as JSON


def config_hash(text: str) -> str:
    """Identifies a node's configuration; the daemon reports the hash of what it runs."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class InstanceRow(TypedDict):
    """One VRRP instance: `name` is "<namespace>/<virtualip>/ipv4" (or ipv6)."""

    name: str
    vrid: int
    interface: str
    state: str  # INITIALIZE, BACKUP, MASTER, FAULT
    priority: int  # base priority, after nodePriorities
    effectivePriority: int  # after probe weights
    healthy: bool
    since: str  # RFC 3339, when it entered `state`
    reason: str  # why it did
    master: str | None  # the master it hears, if it is not the master
    transitions: int
    # A MASTER that hears another master (vrrpd.vrrp.splitbrain), without its time so the
    # report does not change while the verdict stands: {evidence, peer, detail}, or None.
    splitBrain: NotRequired[dict[str, str] | None]


class RefusedRow(TypedDict):
    """A document of the ConfigMap the daemon does not run (the others run)."""

    virtualip: str | None  # "<namespace>/<name>", when the document says
    document: int  # its position in the ConfigMap, from 1
    error: str
    previous: bool  # an earlier version of that VirtualIP still runs


class Report(TypedDict, total=False):
    node: str
    configHash: str | None  # config_hash of the ConfigMap text it runs
    configError: str | None  # why it refused the ConfigMap as a whole
    refused: list[RefusedRow]
    instances: list[InstanceRow]
    updated: str  # RFC 3339, when the report was written
