"""The operator benchmark: 500 VirtualIPs over 20 nodes, on kmock and on a real API server.

Run it as a module from the repository root: `python -m bench.operator` (never as
`python bench/operator.py`: the script's folder would then come first on sys.path and this
file would shadow the standard library's `operator`). `--api kmock` needs no cluster: the
API server is kmock (kopf's mock) in this process; `--api real` starts etcd +
kube-apiserver from KUBEBUILDER_ASSETS and installs the chart (bench/operator_realapi.py).
Either way the operator runs in a child process, so its CPU, RSS and log are its own.

1. render: the pure core alone, `render` + `manifests` over the fleet below, N times.
2. bulk: the operator starts with no VirtualIP; all but the last K are created at once;
   time until every node's ConfigMap holds every VirtualIP meant for it, then until the
   operator went quiet (statuses written).
3. idle: a window (`--window`, 60 s) in which nothing changes: the operator's CPU (% of one
   core), RSS, log lines and API requests per minute.
4. (real API only) a daemon's report -> status.master, K times one VirtualIP more, and
   once all of a node's VirtualIPs in one report.
5. apply: K more VirtualIPs, one at a time: create -> every ConfigMap of its nodes holds
   it. p50 / p95 over the K.
6. RSS of the operator process at the start, at the end, and its peak (VmHWM).

The fleet: 20 nodes in 5 racks of 4 (label rack=rN, InternalIP 10.N.0.M); VirtualIP k sits
in rack k mod 5 (nodeSelector rack), on that rack's subnet 10.N.0.0/16, so each rack is one
segment with 100 VirtualIPs (VRIDs 1..100, allocated). Every other one is unicast; one in
ten is dual-stack; one in twenty is VRRPv2 with a password from a Secret; each names its
preferred node in nodePriorities. A benchmark: it prints figures, it never fails on them.
Targets (issue 4): apply -> manifests p50 <= 1 s; 500 x 20 rendered <= 10 s; idle with
500 VirtualIPs (issue 8): <= 1 % of a core, <= 150 MB RSS, a quiet log; status within 2 s
of a daemon's report.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from vrrp_operator.manifests import DaemonSettings, manifests  # noqa: E402
from vrrp_operator.objects import node_from_object  # noqa: E402
from vrrp_operator.render import allocated_vrids, render  # noqa: E402

from bench.common import align_columns, fmt_ms, percentile  # noqa: E402
from bench.harness import (  # noqa: E402
    add_choices,
    add_output,
    exit_on_signal,
    format_machine,
    machine_info,
    save_json,
)

NAMESPACE = "kube-vrrp"
RACKS = 5


def node_objects(count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        rack = i % RACKS
        name = f"node-{i:02d}"
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "uid": f"uid-{name}", "labels": {"rack": f"r{rack}"}},
                "spec": {},
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": f"10.{rack}.0.{i + 1}"},
                        {"type": "InternalIP", "address": f"fd00:{rack}::{i + 1:x}"},
                    ],
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    return out


def virtualip_objects(count: int, nodes: int) -> list[dict[str, Any]]:
    out = []
    per_rack = nodes // RACKS
    for k in range(count):
        rack = k % RACKS
        n = k // RACKS
        addresses = [f"10.{rack}.{1 + n // 250}.{1 + n % 250}/16"]
        spec: dict[str, Any] = {
            "addresses": addresses,
            "nodeSelector": {"matchLabels": {"rack": f"r{rack}"}},
            "priority": 100,
            "nodePriorities": [
                {"nodeName": f"node-{rack + RACKS * (k % per_rack):02d}", "priority": 150}
            ],
        }
        if k % 2:
            spec["unicast"] = True
        if k % 20 == 3:
            spec["version"] = 2
            spec["authentication"] = {"secretRef": {"name": "vrrp-auth", "key": "password"}}
        elif k % 10 == 5:
            addresses.append(f"fd00:{rack}:1::{n + 1:x}/64")
        out.append(
            {
                "apiVersion": "kubevrrp.io/v1alpha1",
                "kind": "VirtualIP",
                "metadata": {
                    "name": f"vip-{k:03d}",
                    "namespace": f"team-{k % 7}",
                    "creationTimestamp": f"2025-01-01T00:{k // 60:02d}:{k % 60:02d}Z",
                },
                "spec": spec,
            }
        )
    return out


REQUESTS: collections.Counter[str] = collections.Counter()  # method + path without the name
SECRETS = {(f"team-{t}", "vrrp-auth"): {"password": b"s3cret"} for t in range(7)}


def bench_render(vips: int, nodes: int, runs: int) -> dict[str, Any]:
    node_list = [node_from_object(o) for o in node_objects(nodes)]
    objs = virtualip_objects(vips, nodes)
    settings = DaemonSettings(namespace=NAMESPACE)
    render_s, manifests_s = [], []
    rendered = None
    for _ in range(runs):
        t0 = time.perf_counter()
        rendered = render(objs, node_list, SECRETS, allocated_vrids(objs))
        t1 = time.perf_counter()
        out = [manifests(c, settings) for c in rendered.nodes.values()]
        t2 = time.perf_counter()
        render_s.append(t1 - t0)
        manifests_s.append(t2 - t1)
    assert rendered is not None
    docs = sum(len(c.documents) for c in rendered.nodes.values())
    size = max(len(c.text) for c in rendered.nodes.values())
    problems = len(rendered.conflicts) + len(rendered.unschedulable) + len(rendered.invalid)
    del out
    return {
        "virtualips": vips,
        "nodes": nodes,
        "documents": docs,
        "largest_configmap_bytes": size,
        "findings": problems,
        "render_p50_s": percentile(render_s, 50),
        "render_p95_s": percentile(render_s, 95),
        "manifests_p50_s": percentile(manifests_s, 50),
        "total_p50_s": percentile([a + b for a, b in zip(render_s, manifests_s, strict=True)], 50),
    }


# --- against kmock ---------------------------------------------------------------------------


def _kubeconfig(url: str, folder: str) -> str:
    path = os.path.join(folder, "kubeconfig")
    with open(path, "w") as f:
        json.dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "bench", "user": {}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "bench"}}],
                "current-context": "kmock",
            },
            f,
        )
    return path


class ProcessMeter:
    """CPU seconds, RSS and log lines of one process (by pid and its log file)."""

    def __init__(self, pid: int, log: Path) -> None:
        self.pid = pid
        self.log = log

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def rss_kib(self) -> tuple[int, int]:
        """VmRSS and VmHWM (the peak)."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def log_lines(self) -> int:
        with self.log.open("rb") as f:
            return sum(1 for _ in f)

    def tail(self, lines: int = 20) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()[-lines:]


async def idle_window(
    meter: ProcessMeter, window: float, requests: Callable[[], int]
) -> dict[str, Any]:
    """The operator's CPU (% of one core), log lines and requests per minute, and RSS, over
    `window` seconds in which nothing changes."""
    lines, cpu, sent, start = meter.log_lines(), meter.cpu_s(), requests(), time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - start
    return {
        "idle_window_s": elapsed,
        "idle_cpu_percent": 100 * (meter.cpu_s() - cpu) / elapsed,
        "idle_log_lines_per_min": (meter.log_lines() - lines) * 60 / elapsed,
        "idle_requests_per_min": (requests() - sent) * 60 / elapsed,
        "idle_rss_mib": meter.rss_kib()[0] / 1024,
    }


async def bench_apply(
    vips: int, nodes: int, applies: int, window: float, timeout: float
) -> dict[str, Any]:
    import kmock
    from kmock._internal import apps

    class Emulator(kmock.KubernetesEmulator):
        # kopf keys its per-object memory by uid and tests resourceVersion in its finalizer
        # patches; kmock sets neither (see tests/operator/test_handlers.py). kmock also keeps
        # every request and, to route each new one, scans them all through every fallback
        # reaction (quadratic: the mock, not the operator, saturates a core after a few
        # hundred requests), so the log is trimmed; in-flight requests are far fewer than
        # the part kept.
        async def _handle(self, request: Any) -> Any:
            path = "/".join(p for p in str(request.url.path).split("/")[:-1] if p)
            REQUESTS[f"{request.method} {path}"] += 1
            if len(self._requests) > 100:
                del self._requests[:-50]
                for payload in self._payloads:
                    del payload._requests[:-50]
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                if "name" not in meta and "generateName" in meta:
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:8]
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("resourceVersion", "1")
            return await super()._handle(request)

    objs = virtualip_objects(vips, nodes)
    node_names = {o["metadata"]["name"]: o for o in node_objects(nodes)}
    node_list = [node_from_object(o) for o in node_names.values()]
    # Which nodes must show each VirtualIP (the same render the operator will do).
    placement = render(objs, node_list, SECRETS, {}).placements

    async with Emulator() as cluster, apps.Server(cluster):
        cluster.resources.load_bundled()
        cluster.resources["kubevrrp.io/v1alpha1/virtualips"] = kmock.ResourceInfo(
            kind="VirtualIP",
            namespaced=True,
            subresources={"status"},
            verbs={"get", "list", "watch", "create", "patch", "delete"},  # kopf needs these
        )
        # The operator checks at start that its namespace exists (kmock serves no
        # namespaces: one answer for that one request).
        cluster[f"get /api/v1/namespaces/{NAMESPACE}"] << {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
        }  # fmt: skip
        for name, obj in node_names.items():
            cluster.objects["v1/nodes", None, name] = obj
        for (ns, name), data in SECRETS.items():
            cluster.objects["v1/secrets", ns, name] = {
                "metadata": {"name": name, "namespace": ns},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            }
        url = str(cluster.url).rstrip("/")
        with tempfile.TemporaryDirectory() as folder:
            env = {
                **os.environ,
                "KUBECONFIG": _kubeconfig(url, folder),
                "POD_NAMESPACE": NAMESPACE,
                "KUBEVRRP_PEERING": "standalone",
                "KUBEVRRP_LIVENESS_ENDPOINT": "none",
                "PYTHONPATH": f"{ROOT / 'operator'}{os.pathsep}{ROOT}",
            }
            log_path = os.environ.get("BENCH_OPERATOR_LOG") or os.path.join(folder, "operator.log")
            log = open(log_path, "w")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, "-m", "vrrp_operator"], env=env, stdout=log, stderr=log
            )
            try:
                await asyncio.sleep(2)
                if proc.poll() is not None:
                    raise RuntimeError("the operator exited at start (see its log below)")
                meter = ProcessMeter(proc.pid, Path(log_path))
                base_rss = meter.rss_kib()

                def shown(key: str) -> bool:
                    name = key.split("/", 1)[1]
                    for node in placement[key].nodes:
                        try:
                            cm = cluster.objects["v1/configmaps", NAMESPACE, f"vrrpd-{node}"]
                        except KeyError:
                            return False
                        if cm.deleted or f"name: {name}\n" not in cm.raw["data"]["virtualips.yaml"]:
                            return False
                    return True

                async def until(keys: list[str], poll: float) -> float:
                    # kmock serves the operator from this process: poll gently, and only
                    # what is still missing, or the polling starves the mock API server.
                    start = time.perf_counter()
                    missing = list(keys)
                    while missing:
                        missing = [k for k in missing if not shown(k)]
                        if not missing:
                            break
                        if time.perf_counter() - start > timeout or proc.poll() is not None:
                            raise RuntimeError(f"not converged in {timeout}s (see operator log)")
                        await asyncio.sleep(poll)
                    return time.perf_counter() - start

                def key(o: dict[str, Any]) -> str:
                    return f"{o['metadata']['namespace']}/{o['metadata']['name']}"

                bulk, single = objs[: vips - applies], objs[vips - applies :]
                start = time.perf_counter()
                for o in bulk:
                    ns = o["metadata"]["namespace"]
                    await cluster.post(
                        f"/apis/kubevrrp.io/v1alpha1/namespaces/{ns}/virtualips", json=o
                    )
                bulk_s = await until([key(o) for o in bulk], 0.5) + (time.perf_counter() - start)
                # The bulk leaves work behind (kopf's own patches, first statuses): time the
                # single applies on a quiet system, once no request came for 3 s.
                start = time.perf_counter()
                quiet_since, seen = time.perf_counter(), sum(REQUESTS.values())
                while time.perf_counter() - quiet_since < 3 and time.perf_counter() - start < 600:
                    await asyncio.sleep(0.5)
                    now_seen = sum(REQUESTS.values())
                    if now_seen != seen:
                        quiet_since, seen = time.perf_counter(), now_seen
                settle_s = time.perf_counter() - start - 3
                idle = await idle_window(meter, window, lambda: sum(REQUESTS.values()))
                latencies = []
                for o in single:
                    ns = o["metadata"]["namespace"]
                    t0 = time.perf_counter()
                    await cluster.post(
                        f"/apis/kubevrrp.io/v1alpha1/namespaces/{ns}/virtualips", json=o
                    )
                    await until([key(o)], 0.01)
                    latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(2)
                rss, hwm = meter.rss_kib()
            except Exception:
                log.flush()
                tail = Path(log.name).read_text().splitlines()[-20:]
                print("operator log (last lines):", *tail, sep="\n  ", file=sys.stderr)
                raise
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
    return {
        "bulk_virtualips": len(bulk),
        "bulk_converged_s": bulk_s,
        "bulk_settled_s": settle_s,
        "applies": len(latencies),
        "apply_p50_s": percentile(latencies, 50),
        "apply_p95_s": percentile(latencies, 95),
        "apply_max_s": max(latencies) if latencies else float("nan"),
        "rss_start_mib": base_rss[0] / 1024,
        "rss_end_mib": rss / 1024,
        "rss_peak_mib": hwm / 1024,
        **idle,
    }


ROWS = (  # (label, figure, format) of the apply table, one column per API server
    ("bulk: created at once -> all ConfigMaps written", "bulk_converged_s", "{:.1f} s"),
    ("bulk: then quiet (statuses written) after", "bulk_settled_s", "{:.1f} s"),
    ("idle: CPU, % of one core", "idle_cpu_percent", "{:.1f} %"),
    ("idle: RSS", "idle_rss_mib", "{:.0f} MiB"),
    ("idle: log lines per minute", "idle_log_lines_per_min", "{:.0f}"),
    ("idle: API requests per minute", "idle_requests_per_min", "{:.0f}"),
    ("daemon report -> status.master p50", "report_status_p50_s", "{:.2f} s"),
    ("daemon report -> status.master p95", "report_status_p95_s", "{:.2f} s"),
    ("one report, all of a node's VirtualIPs -> last", "report_burst_s", "{:.2f} s"),
    ("single apply -> ConfigMaps p50", "apply_p50_s", "{:.2f} s"),
    ("single apply -> ConfigMaps p95", "apply_p95_s", "{:.2f} s"),
    ("RSS: start, end, peak", "rss", "{:.0f} / {:.0f} / {:.0f} MiB"),
)


def apply_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """The figures of each API server side by side ("-": not measured there)."""
    lines = [["figure", *results]]
    for label, name, fmt in ROWS:
        cells = []
        for r in results.values():
            if name == "rss":
                cells.append(fmt.format(r["rss_start_mib"], r["rss_end_mib"], r["rss_peak_mib"]))
            else:
                value = r.get(name)
                cells.append("-" if value is None else fmt.format(value))
        lines.append([label, *cells])
    return align_columns(lines, numeric=set(range(1, len(results) + 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.operator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--virtualips", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--render-runs", type=int, default=5)
    parser.add_argument("--applies", type=int, default=30, help="timed single applies")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--window", type=float, default=60.0, help="idle seconds measured")
    parser.add_argument("--skip-apply", action="store_true", help="render only (no server)")
    add_choices(parser, "--api", ("kmock", "real"), " (real: KUBEBUILDER_ASSETS)")
    add_output(parser, "the figures", report=False)
    parser.add_argument("--requests", action="store_true", help="print the API requests seen")
    args = parser.parse_args(argv)
    # SIGTERM as SystemExit: the operator process, etcd and kube-apiserver are stopped.
    signal.signal(signal.SIGTERM, exit_on_signal)
    if args.nodes % RACKS:
        parser.error(f"--nodes must be a multiple of {RACKS}")

    info = machine_info(keepalived=False)
    print(f"operator benchmark, {format_machine(info)}", flush=True)
    figures: dict[str, Any] = {
        "render": bench_render(args.virtualips, args.nodes, args.render_runs)
    }
    r = figures["render"]
    print(
        f"render   {r['virtualips']} VirtualIPs x {r['nodes']} nodes -> "
        f"{r['documents']} documents, {r['findings']} findings, "
        f"largest ConfigMap {r['largest_configmap_bytes'] / 1024:.0f} KiB"
    )
    print(
        f"         render p50 {fmt_ms(r['render_p50_s'] * 1000)} ms, "
        f"p95 {fmt_ms(r['render_p95_s'] * 1000)} ms; "
        f"manifests p50 {fmt_ms(r['manifests_p50_s'] * 1000)} ms; "
        f"total p50 {r['total_p50_s']:.2f} s (target <= 10 s)"
    )
    results: dict[str, dict[str, Any]] = {}
    for api in [] if args.skip_apply else args.api:
        print(f"{api}: {args.virtualips - args.applies} VirtualIPs at once, ...", flush=True)
        if api == "kmock":
            results[api] = asyncio.run(
                bench_apply(args.virtualips, args.nodes, args.applies, args.window, args.timeout)
            )
        else:
            from bench.operator_realapi import bench_real

            results["real API"] = bench_real(
                args.virtualips, args.nodes, args.applies, args.window, args.timeout
            )
    if results:
        figures["apply"] = results
        print(
            f"operator, {args.virtualips} VirtualIPs over {args.nodes} nodes "
            f"({args.applies} timed applies and reports, idle window {args.window:.0f} s):"
        )
        print(*apply_table(results), sep="\n")
        real = results.get("real API", {}).get("idle_requests")
        if real:
            print("idle requests (real API):", ", ".join(f"{n} {k}" for k, n in real.items()))
    if args.requests:
        for what, count in REQUESTS.most_common(15):
            print(f"  {count:7d}  {what}")
    info["loadavg_end"] = os.getloadavg()
    if args.json:
        save_json(args.json, info, **figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
