"""The operator benchmark: render 500 VirtualIPs over 20 nodes; apply -> manifests; RSS.

Run it as a module from the repository root: `python -m bench.operator` (never as
`python bench/operator.py`: the script's folder would then come first on sys.path and this
file would shadow the standard library's `operator`). No root, no cluster: the API server
is kmock (kopf's mock) in this process, the operator is `python -m vrrp_operator` in a
child process, so its RSS is its own.

1. render: the pure core alone, `render` + `manifests` over the fleet below, N times.
2. bulk: the operator starts with no VirtualIP; all but the last K are created at once;
   time until every node's ConfigMap holds every VirtualIP meant for it.
3. apply: K more VirtualIPs, one at a time: POST -> every ConfigMap of its nodes holds it.
   p50 / p95 over the K.
4. RSS of the operator process after the run (VmRSS and VmHWM from /proc).

The fleet: 20 nodes in 5 racks of 4 (label rack=rN, InternalIP 10.N.0.M); VirtualIP k sits
in rack k mod 5 (nodeSelector rack), on that rack's subnet 10.N.0.0/16, so each rack is one
segment with 100 VirtualIPs (VRIDs 1..100, allocated). Every other one is unicast; one in
ten is dual-stack; one in twenty is VRRPv2 with a password from a Secret; each names its
preferred node in nodePriorities. A benchmark: it prints figures, it never fails on them.
Targets (issue 4): apply -> manifests p50 <= 1 s; 500 x 20 rendered <= 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from vrrp_operator.manifests import DaemonSettings, manifests  # noqa: E402
from vrrp_operator.objects import node_from_object  # noqa: E402
from vrrp_operator.render import allocated_vrids, render  # noqa: E402

from bench.common import fmt_ms, percentile  # noqa: E402
from bench.harness import add_output, format_machine, machine_info, save_json  # noqa: E402

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


def _rss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def bench_apply(vips: int, nodes: int, applies: int, timeout: float) -> dict[str, Any]:
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
                base_rss = _rss_kib(proc.pid)

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
                rss, hwm = _rss_kib(proc.pid)
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
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.operator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--virtualips", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--render-runs", type=int, default=5)
    parser.add_argument("--applies", type=int, default=30, help="timed single applies")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--skip-apply", action="store_true", help="render only (no kmock)")
    add_output(parser, "the figures", report=False)
    parser.add_argument("--requests", action="store_true", help="print the API requests seen")
    args = parser.parse_args(argv)
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
    if not args.skip_apply:
        a = asyncio.run(bench_apply(args.virtualips, args.nodes, args.applies, args.timeout))
        figures["apply"] = a
        print(
            f"bulk     {a['bulk_virtualips']} VirtualIPs created at once -> "
            f"all ConfigMaps written in {a['bulk_converged_s']:.1f} s, "
            f"quiet (statuses written) {a['bulk_settled_s']:.1f} s later"
        )
        print(
            f"apply    {a['applies']} single applies -> manifests: "
            f"p50 {fmt_ms(a['apply_p50_s'] * 1000)} ms, p95 {fmt_ms(a['apply_p95_s'] * 1000)} ms, "
            f"max {fmt_ms(a['apply_max_s'] * 1000)} ms (target p50 <= 1 s)"
        )
        print(
            f"rss      operator {a['rss_start_mib']:.0f} MiB idle, {a['rss_end_mib']:.0f} MiB with "
            f"{args.virtualips} VirtualIPs, peak {a['rss_peak_mib']:.0f} MiB"
        )
    if args.requests:
        for what, count in REQUESTS.most_common(15):
            print(f"  {count:7d}  {what}")
    info["loadavg_end"] = os.getloadavg()
    if args.json:
        save_json(args.json, info, **figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
