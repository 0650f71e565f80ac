"""The container image: its size, and the daemon's start-up and memory inside it.

`python -m bench.image` (root, podman, an image built by `make image`) prints:

    size      the image as podman stores it (uncompressed), the venv in it, and the image
              saved and gzip-compressed (about what a node pulls from a registry)
    per run   a one-node lab (100 ms adverts, priority 150, so Master_Down_Interval is
              341 ms), the daemon started either from the image exactly as the operator's
              pod spec says (tests/image/daemonpod.py) or as a process from this checkout:
                start-up     `podman run` (or the process's start) -> the daemon logs
                             INITIALIZE -> BACKUP (the log's own timestamp)
                first advert `podman run` -> its first VRRP advert, seen by an AF_PACKET
                             socket in the lab's client namespace (start-up plus
                             Master_Down_Interval plus the advert's way)
                RSS          VmRSS of the daemon 3 s after its first advert

Medians over the runs; a benchmark: it prints, it never fails on a figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bench.common import align_columns, median
from bench.failover import master_down_interval, next_advert, packet_socket_in
from bench.harness import add_output, format_machine, machine_info, prepare_lab_bench, save_json
from tests.image.daemonpod import DaemonNode, edge_vip, node_configs
from tests.image.podman import REPO, Container, Podman
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab

LAB_PREFIX = "kvbimg"
ADVERT_S = 0.1
PRIORITY = 150
SETTLE_S = 3.0
MODES = ("container", "process")


@dataclass
class Run:
    mode: str
    startup_ms: float
    first_advert_ms: float
    rss_mb: float


def image_sizes(podman: Podman, image: str) -> dict[str, float]:
    """MB (10^6 bytes): as stored, the venv's share, gzip-compressed as saved."""
    stored = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    du = podman("run", "--rm", image, "du", "-s", "-B1", "--apparent-size", "/opt/kube-vrrp")
    with tempfile.TemporaryDirectory(prefix="kvbimg-") as tmp:
        archive = Path(tmp) / "image.tar"
        podman("save", "--format", "docker-archive", "-o", str(archive), image, timeout=600)
        compressor, packed = zlib.compressobj(6, zlib.DEFLATED, 31), 0  # gzip -6
        with archive.open("rb") as f:
            while chunk := f.read(1 << 20):
                packed += len(compressor.compress(chunk))
        packed += len(compressor.flush())
    return {"stored": stored / 1e6, "venv": int(du.stdout.split()[0]) / 1e6, "gzip": packed / 1e6}


def _wall(ts: str) -> float:
    parsed = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=datetime.UTC).timestamp()


def _backup_at(log: str) -> float:
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("state") == "BACKUP":
            return _wall(entry["ts"])
    raise RuntimeError(f"the daemon never logged BACKUP:\n{log[-2000:]}")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def run_once(mode: str, podman: Podman, image: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="kvbimg-") as tmp, Lab(
        1, prefix=LAB_PREFIX, unique=True, workdir=Path(tmp) / "lab"
    ) as lab:  # fmt: skip
        config = node_configs(lab, [edge_vip("web", "192.168.77.100/24")])["n1"]
        sniffer = packet_socket_in(lab.client.netns)
        containers: list[Container] = []
        try:
            if mode == "container":
                daemon = DaemonNode(lab, 1, podman, image, Path(tmp), containers)
                daemon.configure(config)
                wall, start = time.time(), time.monotonic()
                container = daemon.start()
            else:
                path = Path(tmp) / "n1.yaml"
                path.write_text(config.text)
                process = VrrpdProcess(lab, 1, path)
                wall, start = time.time(), time.monotonic()
                process.start()
            advert = next_advert(sniffer, lab.node(1).address4, timeout=60)
            if advert is None:
                raise RuntimeError(f"{mode}: no advert within 60 s")
            time.sleep(SETTLE_S)
            if mode == "container":
                pid, log = container.pid(), container.text()
            else:
                assert process.proc is not None
                pid, log = process.proc.pid, process.log_text()
            return Run(mode, (_backup_at(log) - wall) * 1000, (advert - start) * 1000, _rss_mb(pid))
        finally:
            sniffer.close()
            for c in containers:
                c.remove()


def format_table(runs: Sequence[Run]) -> str:
    lines = [["daemon", "runs", "start-up ms", "first advert ms", "RSS MB"]]
    for mode in MODES:
        mine = [r for r in runs if r.mode == mode]
        if mine:
            lines.append([
                "from the image" if mode == "container" else "process (checkout)", str(len(mine)),
                f"{median([r.startup_ms for r in mine]):.0f}",
                f"{median([r.first_advert_ms for r in mine]):.0f}",
                f"{median([r.rss_mb for r in mine]):.1f}",
            ])  # fmt: skip
    return "\n".join(align_columns(lines, numeric={1, 2, 3, 4}))


def build_parser() -> argparse.ArgumentParser:
    version = next(
        line.split('"')[1]
        for line in (REPO / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    parser = argparse.ArgumentParser(
        prog="python -m bench.image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--image", default=f"kube-vrrp/vrrpd:{version}")
    parser.add_argument("--runs", type=int, default=5)
    add_output(parser, "every run and the sizes", report=False)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    refused = prepare_lab_bench("bench.image", (), LAB_PREFIX)
    if refused is not None:
        return refused
    podman = Podman()
    if podman("image", "exists", args.image, check=False).returncode != 0:
        print(f"no image {args.image}: run `make image` first", file=sys.stderr)
        return 2
    info = machine_info(keepalived=False)
    sizes = image_sizes(podman, args.image)
    runs = []
    for i in range(args.runs):
        for mode in MODES:
            run = run_once(mode, podman, args.image)
            runs.append(run)
            print(f"run {i + 1} {mode}: {run}", file=sys.stderr, flush=True)
    info["loadavg_end"] = os.getloadavg()
    podman_version = podman("--version").stdout.strip()
    print(f"image benchmark, {format_machine(info)}; {podman_version}", file=out)
    print(
        f"image {args.image}: {sizes['stored']:.0f} MB as stored, of which the venv "
        f"{sizes['venv']:.0f} MB; {sizes['gzip']:.0f} MB saved and gzip-compressed",
        file=out,
    )
    print(f"Master_Down_Interval {master_down_interval(ADVERT_S, PRIORITY) * 1000:.0f} ms "
          "(100 ms adverts, priority 150)", file=out)  # fmt: skip
    print(format_table(runs), file=out)
    if args.json:
        save_json(args.json, info, sizes=sizes, runs=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
