"""The project's CustomResourceDefinitions, generated from the models: `make crds`.

    python3 -m vrrpd.spec.crds [--check]

writes each resource's CRD to crds/ and to the Helm chart's files/ (which .Files.Get
reads: it cannot reach outside the chart); --check writes nothing and fails, naming the
files, when a checked-in one differs from what the models make.

Another resource: its spec and status models (with their Crd markers), a Resource here,
and its entry in RESOURCES. Fields it shares with a VirtualIP's spec can take their
schema from the same models (openapi.field_schema) instead of a copy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vrrpd.spec import API_VERSION, KIND
from vrrpd.spec.fields import DNS_LABEL_PATTERN
from vrrpd.spec.openapi import PrinterColumn, Resource, Rule
from vrrpd.spec.status import VirtualIPStatus
from vrrpd.spec.virtualip import VirtualIPSpec

GROUP, VERSION = API_VERSION.split("/")

VIRTUALIP = Resource(
    group=GROUP,
    version=VERSION,
    kind=KIND,
    plural="virtualips",
    short_names=("vip",),
    scope="Namespaced",
    spec=VirtualIPSpec,
    status=VirtualIPStatus,
    description="VirtualIP: one or more floating IP addresses held by one node at a time. The "
    "nodes that take part elect a master with VRRP (RFC 5798, keepalived-compatible); the "
    "master puts the addresses on its interface and announces them with gratuitous ARP / "
    "unsolicited neighbour advertisements. The equivalent of a keepalived vrrp_instance, "
    "declared once for the whole cluster.",
    rules=(
        Rule(
            f"self.metadata.name.size() <= 63 && self.metadata.name.matches('{DNS_LABEL_PATTERN}')",
            "metadata.name must be a DNS-1123 label: at most 63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit (e.g. web-vip)",
        ),
    ),
    printer_columns=(
        PrinterColumn(
            "VIP", "string", ".spec.addresses[0]", "The first virtual address (spec.addresses[0])."
        ),
        PrinterColumn(
            "VRID",
            "integer",
            ".status.vrid",
            "The virtual router ID in use (set, or allocated by the operator).",
        ),
        PrinterColumn("MASTER", "string", ".status.master", "The node that holds the addresses."),
        PrinterColumn(
            "READY",
            "string",
            '.status.conditions[?(@.type=="Ready")].status',
            "The Ready condition.",
        ),
        PrinterColumn("AGE", "date", ".metadata.creationTimestamp"),
    ),
    header="""\
VirtualIP: floating addresses held by one node at a time, elected by VRRP (RFC 5798).

Generated from vrrpd/spec (the models the daemon and the operator validate with) by
`make crds`; edit the models, not this file. The schema and the CEL rules reject what can
never work, with messages that say what would. The CEL rules use the Kubernetes IP/CIDR
library (isIP, ip, isCIDR, cidr): Kubernetes 1.31 or newer.""",
)

RESOURCES = (VIRTUALIP,)
ROOT = Path(__file__).resolve().parents[2]
PLACES = (ROOT / "crds", ROOT / "charts" / "kube-vrrp" / "files")


def files() -> dict[Path, str]:
    """Every CRD file this repository carries, and what it must hold."""
    return {place / r.file_name: r.yaml() for r in RESOURCES for place in PLACES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m vrrpd.spec.crds", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; fail on a stale file")
    args = parser.parse_args(argv)
    wanted = files()
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not what the models make: run make crds")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
