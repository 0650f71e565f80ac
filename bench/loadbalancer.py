"""The pool path benchmark: Service created -> its VIP answers, beside the VirtualIP path.

    sudo -E python -m bench.loadbalancer [--runs 20] [--bulk 500] [--bulk-virtualips 200]

Everything real but the kubelet: etcd + kube-apiserver from KUBEBUILDER_ASSETS, the chart
installed with helm, the operator as the chart's Deployment runs it (as its ServiceAccount),
three lab nodes (network namespaces on a bridge) whose daemon pods the system tier's test
kubelet (tests/system/kubelet.py) runs as `vrrpd run --kube`, and a client in the lab that
pings every address of the pool from the start and notes when each first answers
(multiping.py). The timings are wall-clock, create request -> first echo reply at the
client.

1. one at a time: `--runs` Services (loadBalancerClass kubevrrp.io/vrrp, automatic address),
   each created once the one before answers; then as many VirtualIPs, the same way.
2. at once: `--bulk` Services created together (16 requests in flight): when each answered,
   and when the last did; then `--bulk-virtualips` VirtualIPs (a VirtualIP needs a VRID of
   its own, so 255 per segment is the most there can be; the pool's Services share 2).

A VirtualIP that stays the whole run keeps the daemons running, so no figure includes a
daemon's start-up. Both paths use the defaults (advertInterval 1s): a new VRRP instance
becomes master after Master_Down_Interval (3 x 1 s + skew), an address added to a running
instance at once.
Prints figures, never fails on them. Root and KUBEBUILDER_ASSETS needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from ipaddress import ip_address
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from bench.common import percentile  # noqa: E402
from bench.harness import add_output, exit_on_signal, format_machine, machine_info, save_json  # noqa: E402
from tests.envtest import ApiServer, assets  # noqa: E402
from tests.realapi.cluster import (  # noqa: E402
    Release,
    admin,
    api_in_namespaces,
    install_chart,
    running_operator,
)
from tests.realapi.inprocess import POOLS, Sync, ingress_ips, load_balancer, service_path  # noqa: E402
from tests.system.kubelet import Kubelet  # noqa: E402
from vrrpd.lab.netns import Lab  # noqa: E402

NS = "bench-lb"
VIPS = f"/apis/kubevrrp.io/v1alpha1/namespaces/{NS}/virtualips"
SEQ_POOL = [f"10.77.8.{i}" for i in range(0, 256)]
BULK_POOL_CIDR = "10.77.16.0/23"  # 512 addresses
GATE = 16  # requests in flight when creating at once


MULTIPING = Path(__file__).with_name("multiping.py")
LAB_PREFIX = "kvlb"
LABEL = "kubevrrp.io/bench-lb"


class PoolLab:
    """Three lab nodes on 10.77.0.0/16 as Nodes of `api`, the system tier's test kubelet
    running each daemon pod the operator creates as `vrrpd run --kube` in its node, and a
    client that pings many addresses at once (multiping.py)."""

    def __init__(self, api: ApiServer, release: Release, stack: contextlib.ExitStack) -> None:
        self.api = api
        self.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kvlb-")))
        self.lab = stack.enter_context(
            Lab(3, prefix=LAB_PREFIX, unique=True, subnet4="10.77.0.0/16",
                workdir=self.workdir / "lab")
        )  # fmt: skip
        api_url = stack.enter_context(api_in_namespaces(api, self.lab))
        names = {f"{self.lab.prefix}-{n.name}": n.index for n in self.lab.nodes}
        for name, index in names.items():
            api.ready_node(name, self.lab.node(index).address4, {LABEL: self.lab.prefix})
        stack.callback(api.kubectl, "delete", "node", "--wait=false", *names)
        self.kubelet = Kubelet(
            admin(api), self.lab, names, self.workdir / "kubelet",
            namespace=release.namespace, api_url=api_url,
        )  # fmt: skip
        self.kubelet.start()
        stack.callback(self.kubelet.close)
        self.selector = {"matchLabels": {LABEL: self.lab.prefix}}

    @contextlib.contextmanager
    def pinger(self, addresses: Sequence[str], every: float = 0.05) -> Iterator[Pinger]:
        """multiping.py in the lab's client, pinging each address until it answers."""
        targets = self.workdir / f"targets-{time.monotonic_ns()}.txt"
        out = targets.with_suffix(".out")
        targets.write_text("\n".join(addresses) + "\n")
        with out.open("wb") as sink:
            process = self.lab.run(
                self.lab.client.netns,
                [sys.executable, str(MULTIPING), str(targets), str(every)],
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )
        pinger = Pinger(process, out)
        try:
            wait(lambda: out.read_text().startswith("ready"), 15, "multiping ready")
            yield pinger
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


class Pinger:
    def __init__(self, process: subprocess.Popen[bytes], out: Path) -> None:
        self.process = process
        self.out = out

    def answered(self) -> dict[str, float]:
        """{address: Unix time of its first echo reply} so far."""
        found: dict[str, float] = {}
        for line in self.out.read_text().splitlines()[1:]:
            address, _, when = line.partition(" ")
            if when:
                found.setdefault(address, float(when))
        return found


def addresses_of(cidr_first: str, count: int) -> list[str]:
    first = int(ip_address(cidr_first))
    return [str(ip_address(first + i)) for i in range(count)]


def wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"not within {timeout:.0f} s: {what}")


def first_replies(
    pl: PoolLab, pinger: Pinger, wanted: set[str], started: float, timeout: float
) -> list[float]:
    """Seconds from `started` to each wanted address's first reply; the ones that never
    answered within `timeout` are named on stderr (with the nodes that hold them)."""
    deadline = time.monotonic() + timeout
    answered: dict[str, float] = {}
    while time.monotonic() < deadline:
        answered = pinger.answered()
        if wanted <= set(answered):
            break
        time.sleep(0.5)
    missing = sorted(wanted - set(answered))
    if missing:
        shown = ", ".join(f"{a} (held by {pl.lab.holders(a) or 'none'})" for a in missing[:10])
        print(f"  {len(missing)} of {len(wanted)} never answered: {shown}", file=sys.stderr)
    return [answered[a] - started for a in wanted if a in answered]


def pool(name: str, addresses: Sequence[str], selector: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": name},
        "spec": {"addresses": list(addresses), "nodeSelector": selector},
    }


def virtualip(name: str, address: str, selector: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": [f"{address}/16"], "nodeSelector": selector},
    }


def stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_s": percentile(values, 50),
        "p95_s": percentile(values, 95),
        "max_s": max(values) if values else float("nan"),
    }


def one_at_a_time(pl: PoolLab, api: Sync, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    api.create(POOLS, pool("bench-seq", [f"{SEQ_POOL[0]}-{SEQ_POOL[-1]}"], pl.selector))
    seconds: list[float] = []
    with pl.pinger(SEQ_POOL[: runs + 1]) as pinger:
        for k in range(runs):
            name = f"seq-{k:03d}"
            started = time.time()
            api.create(service_path(NS), load_balancer(name, NS))
            shown = wait(lambda n=name: ingress_ips(api.get(service_path(NS, n))), 60, "ingress")
            when = wait(lambda a=shown[0]: pinger.answered().get(a), 60, f"{shown[0]} answers")
            seconds.append(when - started)
            print(f"  service {k + 1}/{runs}: {shown[0]} answered in {when - started:.2f} s",
                  file=sys.stderr)  # fmt: skip
    out["services"] = stats(seconds)
    api.call("DELETE", service_path(NS))
    api.delete(f"{POOLS}/bench-seq")

    seconds = []
    vip_addresses = addresses_of("10.77.9.1", runs)
    with pl.pinger(vip_addresses) as pinger:
        for k, address in enumerate(vip_addresses):
            started = time.time()
            api.create(VIPS, virtualip(f"seq-{k:03d}", address, pl.selector))
            when = wait(lambda a=address: pinger.answered().get(a), 60, f"{address} answers")
            seconds.append(when - started)
            print(f"  virtualip {k + 1}/{runs}: {address} answered in {when - started:.2f} s",
                  file=sys.stderr)  # fmt: skip
    out["virtualips"] = stats(seconds)
    for k in range(runs):
        api.delete(f"{VIPS}/seq-{k:03d}")
    return out


async def _create_all(api: Sync, path: str, objects: Sequence[dict[str, Any]]) -> None:
    gate = asyncio.Semaphore(GATE)

    async def one(obj: dict[str, Any]) -> None:
        async with gate:
            await asyncio.to_thread(api.create, path, obj)

    await asyncio.gather(*(one(o) for o in objects))


def at_once(pl: PoolLab, api: Sync, bulk: int, bulk_vips: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    addresses = addresses_of("10.77.16.0", 512)
    api.create(POOLS, pool("bench-bulk", [BULK_POOL_CIDR], pl.selector))
    with pl.pinger(addresses, every=0.1) as pinger:
        started = time.time()
        asyncio.run(
            _create_all(
                api, service_path(NS), [load_balancer(f"b-{k:03d}", NS) for k in range(bulk)]
            )
        )
        created = time.time()

        def all_shown() -> dict[str, list[str]] | None:
            items = (api.get(service_path(NS)) or {}).get("items") or []
            shown = {s["metadata"]["name"]: ingress_ips(s) for s in items}
            return shown if len(shown) == bulk and all(shown.values()) else None

        shown = wait(all_shown, 600, "every Service's address", every=0.5)
        status_at = time.time()
        times = first_replies(pl, pinger, {ips[0] for ips in shown.values()}, started, 600)
        status = (api.get(f"{POOLS}/bench-bulk") or {}).get("status") or {}
    out["services"] = {
        **stats(times),
        "asked": bulk,
        "created_s": created - started,
        "all_status_s": status_at - started,
        "vrids": len(status.get("instances") or ()),
    }
    api.call("DELETE", service_path(NS))
    api.delete(f"{POOLS}/bench-bulk")
    wait(lambda: not pl.lab.holders(addresses[0]), 120, "bulk addresses released", 0.5)

    vip_addresses = addresses_of("10.77.20.1", bulk_vips)
    with pl.pinger(vip_addresses, every=0.1) as pinger:
        started = time.time()
        asyncio.run(
            _create_all(
                api,
                VIPS,
                [virtualip(f"b-{k:03d}", a, pl.selector) for k, a in enumerate(vip_addresses)],
            )
        )
        created = time.time()
        times = first_replies(pl, pinger, set(vip_addresses), started, 600)
    out["virtualips"] = {
        **stats(times),
        "asked": bulk_vips,
        "created_s": created - started,
        "vrids": bulk_vips,
    }
    for k in range(bulk_vips):
        api.delete(f"{VIPS}/b-{k:03d}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadbalancer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=20, help="one-at-a-time creations per path")
    parser.add_argument("--bulk", type=int, default=500, help="Services created at once")
    parser.add_argument(
        "--bulk-virtualips", type=int, default=200, help="VirtualIPs at once (<= 250)"
    )
    add_output(parser, "the figures", report=False)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.loadbalancer needs root (network namespaces)", file=sys.stderr)
        return 2
    if assets() is None:
        print("bench.loadbalancer needs KUBEBUILDER_ASSETS (etcd, kube-apiserver)", file=sys.stderr)
        return 2
    if not args.runs >= 0 or not 1 <= args.bulk <= 512 or not 1 <= args.bulk_virtualips <= 250:
        parser.error(
            "--runs: 0 or more; --bulk: 1..512 (the pool's size); --bulk-virtualips: 1..250 (VRIDs)"
        )
    signal.signal(signal.SIGTERM, exit_on_signal)
    Lab.cleanup_stale(LAB_PREFIX)
    info = machine_info(keepalived=False)
    print(f"load balancer benchmark, {format_machine(info)}", flush=True)
    figures: dict[str, Any] = {}
    with ApiServer.start() as kube, contextlib.ExitStack() as stack:
        release = install_chart(kube)
        stack.enter_context(running_operator(release))
        pl = PoolLab(kube, release, stack)
        kube.namespace(NS)
        api = Sync(kube)
        # A VirtualIP that stays: the daemons run before the first measurement, so no
        # figure includes a daemon's start-up.
        api.create(VIPS, virtualip("keeper", "10.77.0.250", pl.selector))
        with pl.pinger(["10.77.0.250"]) as pinger:
            wait(lambda: pinger.answered(), 120, "the keeper VirtualIP answers", 0.2)
        if args.runs:
            figures["one_at_a_time"] = one_at_a_time(pl, api, args.runs)
            print(report({"one_at_a_time": figures["one_at_a_time"]}), file=sys.stderr)
        figures["at_once"] = at_once(pl, api, args.bulk, args.bulk_virtualips)
    info["loadavg_end"] = os.getloadavg()
    print(f"load balancer benchmark, {format_machine(info)}")
    print(report(figures))
    if args.json:
        save_json(args.json, info, **figures)
    return 0


def report(figures: dict[str, Any]) -> str:
    """The table of whatever phases ran."""
    lines = [
        "path       case           answered  p50 s  p95 s  max s  VRIDs",
        "---------  -------------  --------  -----  -----  -----  -----",
    ]
    for phase, case in (("one_at_a_time", "one at a time"), ("at_once", "all at once")):
        for path, key in (("Service", "services"), ("VirtualIP", "virtualips")):
            s = (figures.get(phase) or {}).get(key)
            if not s:
                continue
            vrids = s.get("vrids", 1 if key == "services" else s["n"])
            answered = f"{s['n']}/{s.get('asked', s['n'])}"
            lines.append(
                f"{path:<9}  {case:<13}  {answered:>8}  {s['p50_s']:5.2f}  {s['p95_s']:5.2f}  "
                f"{s['max_s']:5.2f}  {vrids:>5}"
            )
    bulk = (figures.get("at_once") or {}).get("services")
    if bulk:
        lines.append(
            f"(all at once: the Services were created in {bulk['created_s']:.1f} s and every "
            f"status showed its address at {bulk['all_status_s']:.1f} s; times count from the "
            "first create request)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
