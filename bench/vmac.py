"""The virtual MAC benchmark: what a failover costs a client with useVmac (keepalived
use_vmac) against the interface's own MAC, when the client hears the gratuitous ARPs and
when it misses them.

Each run is a fresh two-node lab running vrrpd (n1 priority 150, n2 100; VRRPv3, VRID 51,
VIP 192.168.77.100/24, 100 ms adverts); the client pings the VIP every 10 ms and n1's link
goes down (`bench.failover`'s link-down). Client cases:

    garp-heard  the client takes the new master's gratuitous ARPs, as hosts do
    garp-lost   an nftables rule in the client drops them (arp request with sender and
                target the VIP): a host, switch or firewall that misses or filters them

Per run: the longest outage after the fault and the probes lost, the client's neighbour
entry for the VIP before the fault and after recovery, and whether it had to change. With
the interface's MAC and the GARPs lost, the client keeps sending to the dead node's MAC
until its neighbour entry expires (Linux: reachable 15..45 s, then 5 s delay, 3 probes);
probing stops after `--cap` seconds and the run is marked unrecovered. A benchmark: it
prints figures, it never fails on them.

    python -m bench.vmac [--runs 3] [--cap 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from bench.common import align_columns, fmt_ms, median
from bench.failover import (
    BACKUP,
    MASTER,
    PROBE_INTERVAL,
    SETTLE,
    VIP,
    Pair,
    clean_window,
    master_down_interval,
    render_vrrpd_config,
)
from bench.harness import (
    add_output,
    machine_info,
    prepare_lab_bench,
    print_report,
    run_matrix,
    save_json,
)
from vrrpd.lab.netns import Lab, wait_until
from vrrpd.lab.prober import Prober

LAB_PREFIX = "kvvmac"
ADVERT_S = 0.1
VMAC = "00:00:5e:00:01:33"  # RFC 5798 §7.3, VRID 51
MODES = ("interface-mac", "vmac")
CLIENTS = ("garp-heard", "garp-lost")
# Drop gratuitous ARP for the VIP in the client: requests whose sender and target are it.
DROP_GARP = f"""\
table arp kvvmac {{
  chain in {{
    type filter hook input priority 0;
    arp operation request arp saddr ip {VIP} arp daddr ip {VIP} drop
  }}
}}
"""


class VmacPair(Pair):
    """vrrpd on both nodes, with or without useVmac."""

    def __init__(self, lab: Lab, vmac: bool) -> None:
        super().__init__(lab, "vrrpd", ADVERT_S)
        self.vmac = vmac

    def vrrpd_config(self, i: int) -> str:
        text = render_vrrpd_config(ADVERT_S)
        return text + "  useVmac: true\n" if self.vmac else text


@dataclass
class Run:
    mode: str
    client: str
    run: int
    outage_ms: float = float("nan")
    lost: int = 0
    unrecovered: bool = False
    neighbour_before: str = ""
    neighbour_after: str = ""
    error: str = ""

    # what print_report / run_matrix name a run by
    @property
    def case(self) -> str:
        return self.client

    @property
    def advert(self) -> str:
        return "100ms"

    @property
    def impl(self) -> str:
        return self.mode


def neighbour(lab: Lab) -> str:
    """The client's neighbour entry for the VIP: its MAC, or its state when it has none."""
    found = json.loads(lab.ip(lab.client, "-j", "neigh", "show", VIP) or "[]")
    if not found:
        return "none"
    return str(found[0].get("lladdr") or "/".join(found[0].get("state", ["?"])))


def run_once(mode: str, client: str, index: int, cap: float) -> Run:
    run = Run(mode=mode, client=client, run=index)
    mdi = master_down_interval(ADVERT_S)
    with Lab(2, prefix=LAB_PREFIX, unique=True, kill_grace=0.5) as lab:
        pair = VmacPair(lab, mode == "vmac")
        try:
            pair.start()
            if not wait_until(pair.established, 2 * mdi + 10) or not clean_window(lab):
                run.error = f"no settled pair: n1={pair.states(MASTER)} n2={pair.states(BACKUP)}"
                return run
            if client == "garp-lost":
                lab.exec(lab.client, ["nft", "-f", "-"], input=DROP_GARP)
            run.neighbour_before = neighbour(lab)
            expected = VMAC if mode == "vmac" else lab.node(BACKUP).mac
            prober = Prober(lab, VIP, PROBE_INTERVAL).start()
            origin = time.monotonic()
            time.sleep(0.3)
            t_fault = time.monotonic()
            lab.link_down(MASTER)
            if not wait_until(lambda: pair.states(BACKUP).get(pair.instances[0]) == "MASTER", 5):
                run.error = "n2 did not become MASTER within 5 s"
            # Recovered: the client's entry names the MAC that answers now. Then let the
            # probes that were on their way come back.
            wait_until(lambda: neighbour(lab) == expected, cap, 0.1)
            time.sleep(SETTLE)
            result = prober.stop()
            run.neighbour_after = neighbour(lab)
            fault = t_fault - origin
            after = [g for s, g in zip(result.gap_starts, result.gaps, strict=True) if s >= fault]
            run.outage_ms = 1000 * max(after, default=0.0)
            run.lost = sum(max(1, round(g / PROBE_INTERVAL)) for g in after)
            run.unrecovered = result.unrecovered or run.neighbour_after != expected
        finally:
            pair.kill_all()
    return run


def format_table(runs: Sequence[Run]) -> str:
    rows = [["mode", "client", "runs", "outage median", "outage max", "lost median",
             "neighbour entry before -> after", "unrecovered"]]  # fmt: skip
    for mode in MODES:
        for client in CLIENTS:
            cell = [r for r in runs if r.mode == mode and r.client == client and not r.error]
            if not cell:
                continue
            macs = sorted({f"{r.neighbour_before} -> {r.neighbour_after}" for r in cell})
            rows.append(
                [
                    mode,
                    client,
                    str(len(cell)),
                    fmt_ms(median([r.outage_ms for r in cell])),
                    fmt_ms(max(r.outage_ms for r in cell)),
                    f"{median([float(r.lost) for r in cell]):.0f}",
                    "; ".join(macs),
                    str(sum(r.unrecovered for r in cell)),
                ]
            )
    return "\n".join(align_columns(rows, {2, 3, 4, 5, 7}))


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vmac", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument(
        "--cap", type=float, default=60.0, help="seconds to wait for the client to recover"
    )
    add_output(parser, "every run and the machine", report=False)
    args = parser.parse_args(argv)
    if (code := prepare_lab_bench("bench.vmac", ["vrrpd"], LAB_PREFIX)) is not None:
        return code
    info = machine_info(keepalived=False)
    cells = [(m, c, k) for k in range(1, args.runs + 1) for c in CLIENTS for m in MODES]
    runs = run_matrix(
        cells,
        lambda cell: run_once(*cell, args.cap),
        lambda cell, why: Run(mode=cell[0], client=cell[1], run=cell[2], error=why),
        lambda r: (
            f"{r.mode} {r.client} #{r.run}: "
            + (r.error or f"outage {fmt_ms(r.outage_ms)}, {r.lost} lost, {r.neighbour_after}")
        ),
    )
    info["loadavg_end"] = list(os.getloadavg())
    print_report("bench.vmac: link down on the master, 100 ms adverts", info,
                 format_table(runs), runs, out)  # fmt: skip
    if args.json:
        save_json(args.json, info, runs=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
