"""Split brain: from IP protocol 112 dropped between two nodes to the old master saying so.

Each run builds a fresh two-node lab (n1 priority 150, n2 100, VRRPv3, VRID 51, VIP
192.168.77.100/24) and starts `vrrpd run` on both. Once n1 is MASTER and n2 BACKUP and a
few adverts have passed, one nftables table in n2's namespace drops protocol 112 in and out
(n1's adverts no longer reach n2, n2's no longer leave it: the partition is complete when
that one `nft` command returns, the moment everything is timed from). It records, from the
daemons' JSON logs (millisecond stamps, the same clock):

    to-master   n2's BACKUP -> MASTER (its Master_Down_Interval, plus the scheduling)
    to-detect   n1's "split brain:" warning: it heard n2's gratuitous ARP for the VIP and
                was still MASTER two of its advert intervals later

then deletes the table and checks that n1 kept the VIP without a transition (no flap) and
n2 went back to BACKUP. `python -m bench.split_brain --help` for the options; a benchmark
prints figures, it never fails on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import align_columns, fmt_ms, median
from bench.harness import (
    add_output,
    machine_info,
    prepare_lab_bench,
    print_report,
    run_matrix,
    save_json,
)
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, wait_until

LAB_PREFIX = "kvsplit"
WEB = "default/web/ipv4"
VIP = "192.168.77.100"
ADVERTS = {"1s": 1.0, "100ms": 0.1}
MANIFEST = """\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: web}}
spec:
  addresses: ["{vip}/24"]
  vrid: 51
  advertInterval: {advert}
  nodePriorities:
    - {{nodeName: n1, priority: 150}}
    - {{nodeName: n2, priority: 100}}
"""
DROP_112 = """\
table inet kvsplit {
  chain in { type filter hook input priority 0; meta l4proto 112 drop; }
  chain out { type filter hook output priority 0; meta l4proto 112 drop; }
}
"""


@dataclass
class Run:
    impl: str
    case: str
    advert: str
    run: int
    error: str = ""
    to_master_ms: float = float("nan")
    to_detect_ms: float = float("nan")
    nft_ms: float = float("nan")  # how long the nft command took (the partition's blur)
    flap: bool = False


def stamp(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()


def one_run(advert: str, index: int) -> Run:
    result = Run("vrrpd", "proto-112", advert, index)
    interval = ADVERTS[advert]
    with Lab(2, prefix=LAB_PREFIX, unique=True) as lab:
        config = Path(lab.workdir) / "vip.yaml"
        config.write_text(MANIFEST.format(vip=VIP, advert=advert))
        n1, n2 = (
            VrrpdProcess(lab, i, config, extra_args=("--http-address", "none")).start()
            for i in (1, 2)
        )
        if not (n1.wait_state(WEB, "MASTER", 20) and n2.wait_state(WEB, "BACKUP", 20)):
            result.error = "the pair did not settle"
            return result
        time.sleep(3 * interval + 0.5)
        before = len(n1.transitions(WEB))
        start = time.time()
        lab.exec(2, ["nft", "-f", "-"], input=DROP_112)
        t0 = time.time()
        result.nft_ms = (t0 - start) * 1000

        def detected() -> dict[str, Any] | None:
            return next((e for e in n1.events() if "split brain:" in e.get("msg", "")), None)

        if not wait_until(lambda: detected() is not None, 10 + 10 * interval, 0.02):
            result.error = "n1 did not report the split brain"
            return result
        warning = detected()
        assert warning is not None
        # Not n2's MASTER before n1 joined (a node alone at start takes over, then yields).
        master = next(
            (e for e in n2.transitions(WEB) if e["state"] == "MASTER" and stamp(e) >= start),
            None,
        )
        if master is not None:
            result.to_master_ms = (stamp(master) - t0) * 1000
        result.to_detect_ms = (stamp(warning) - t0) * 1000
        lab.exec(2, ["nft", "delete", "table", "inet", "kvsplit"])
        if not n2.wait_state(WEB, "BACKUP", 10):
            result.error = "n2 did not yield after the partition"
        time.sleep(3 * interval)
        result.flap = len(n1.transitions(WEB)) != before or lab.holders(VIP) != [1]
    return result


def table(runs: list[Run]) -> str:
    lines = [["advert", "runs", "to-master ms med", "max", "to-detect ms med", "max", "flaps"]]
    for advert in dict.fromkeys(r.advert for r in runs):
        ok = [r for r in runs if r.advert == advert and not r.error]
        masters = [r.to_master_ms for r in ok]
        detects = [r.to_detect_ms for r in ok]
        lines.append([
            advert, str(len(ok)),
            fmt_ms(median(masters) if masters else None), fmt_ms(max(masters, default=None)),
            fmt_ms(median(detects) if detects else None), fmt_ms(max(detects, default=None)),
            str(sum(r.flap for r in ok)),
        ])  # fmt: skip
    return "\n".join(align_columns(lines, numeric={1, 2, 3, 4, 5, 6}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.split_brain", description=__doc__)
    parser.add_argument("--adverts", default="1s,100ms", help="1s,100ms (comma-separated)")
    parser.add_argument("--runs", type=int, default=5, help="runs per advert interval")
    add_output(parser, "every run and the machine", report=False)
    args = parser.parse_args(argv)
    adverts = [a for a in args.adverts.split(",") if a]
    if any(a not in ADVERTS for a in adverts):
        parser.error(f"--adverts {args.adverts!r}: use a subset of {','.join(ADVERTS)}")
    if (code := prepare_lab_bench("bench.split_brain", ["vrrpd"], LAB_PREFIX)) is not None:
        return code
    info = machine_info(keepalived=False)
    cells = [(a, k) for a in adverts for k in range(1, args.runs + 1)]

    def failed(cell: tuple[str, int], why: str) -> Run:
        return Run("vrrpd", "proto-112", cell[0], cell[1], error=why)

    runs = run_matrix(
        cells,
        lambda c: one_run(*c),
        failed,
        lambda r: (
            f"{r.advert} #{r.run}: to-master {fmt_ms(r.to_master_ms)} ms, "
            f"to-detect {fmt_ms(r.to_detect_ms)} ms{' FLAP' if r.flap else ''} {r.error}"
        ),
    )
    info["loadavg_end"] = list(os.getloadavg())
    if args.json:
        save_json(args.json, info, runs=runs)
    print_report("bench.split_brain", info, table(runs), runs, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
