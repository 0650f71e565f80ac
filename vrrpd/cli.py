"""The `vrrpd` command line: run the daemon from a VirtualIP file, validate or explain a file,
show a running daemon's status, run the lab."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vrrpd.config import InstanceConfig
from vrrpd.control import DEFAULT_SOCKET as DEFAULT_CONTROL
from vrrpd.control import ControlServer
from vrrpd.control import add_parser as add_switchover_parser
from vrrpd.controlplane.command import add_parser as add_control_plane_parser
from vrrpd.convert.command import add_parser as add_convert_parser
from vrrpd.lean import release_freed_memory
from vrrpd.net import startup
from vrrpd.resolve import instances_for_node
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.load import load_file
from vrrpd.spec.virtualip import VirtualIP

if TYPE_CHECKING:
    from vrrpd.daemon import Daemon
    from vrrpd.httpd import HttpServer

log = logging.getLogger("vrrpd")

EXIT_CONFIG = 2  # invalid configuration: nothing on the host was changed
DEFAULT_HTTP = "127.0.0.1:9655"
MAX_STATUS_BYTES = 16 * 1024 * 1024  # what `vrrpd status` reads of /status


class _JsonFormatter(logging.Formatter):
    FIELDS = ("instance", "state", "old_state", "reason")

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": self.node,
            "msg": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(node: str, fmt: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(node))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s vrrpd[{node}] %(levelname)s %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _load(path: str, node: str) -> list[InstanceConfig]:
    return instances_for_node(load_file(path), node)


async def _real_ports() -> Any:
    from vrrpd.net.announce import Announcer
    from vrrpd.net.heard import AnnouncementListener
    from vrrpd.net.nft import NftFirewall
    from vrrpd.net.routes import Routes
    from vrrpd.net.rtnl import Rtnl
    from vrrpd.net.transport import VrrpSocket
    from vrrpd.net.vmac import Vmacs
    from vrrpd.ports import Ports

    def open_socket(ifname: str, family: int) -> Any:
        return VrrpSocket.open(ifname, family, multicast=True)

    rtnl = await Rtnl.open()
    routes = await Routes.open()
    ports = Ports(
        open_socket=open_socket,
        addresses=rtnl,
        announcer=Announcer(),
        links=rtnl,
        routes=routes,
        vmacs=Vmacs(),
        firewall=NftFirewall(),
    )
    try:
        ports.heard = AnnouncementListener()
    except OSError as exc:  # the announcer's CAP_NET_RAW would have failed first
        log.warning("not listening for other hosts' ARP / NA: %s; split brain is seen from "
                    "adverts only", exc)  # fmt: skip
    return ports


async def _claim_namespace() -> None:
    """The lock `vrrpd run` took first thing (vrrpd.net.startup), or takes now; while a
    live vrrpd holds it, wait: its VIPs are not leftovers."""
    from vrrpd.daemon import log_leftover

    claim = startup.EARLY or startup.Claim()
    if not claim.lock.held and not claim.lock.acquire():
        log.warning("another vrrpd (pid %s) runs in this network namespace; waiting for it "
                    "to exit", claim.lock.holder())  # fmt: skip
        while not claim.lock.acquire():
            await asyncio.sleep(0.2)
    if not claim.cleaned:
        claim.clean()
    if claim.error is not None:
        log.warning("leftover VIPs not removed at start: %s; trying again", claim.error)
    for ifname, address in claim.removed:
        log_leftover(ifname, address)
    if claim.removed_table:
        log.warning("removed the accept: false table a killed vrrpd left (nft table inet %s)",
                    startup.NO_ACCEPT_TABLE)  # fmt: skip
    startup.EARLY = claim  # keeps the lock referenced (and so held) for good


def _file_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class FileSource:
    """Standalone mode: the VirtualIP file, reloaded on SIGHUP or when it changes."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.path, self.node, self.interval = args.config, args.node, args.watch_interval
        self.stamp = _file_stamp(self.path)

    def reload(self, daemon: Any, why: str) -> None:
        self.stamp = _file_stamp(self.path)
        try:
            new = _load(self.path, self.node)
        except ConfigError as exc:
            log.error("%s: %s; keeping the running configuration:\n%s", why, self.path, exc)
            return
        log.info("%s: reloading %s", why, self.path)
        daemon.apply(new)

    async def follow(self, daemon: Any) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if _file_stamp(self.path) != self.stamp:
                self.reload(daemon, "configuration file changed")

    async def finish(self, daemon: Any) -> None:
        pass


async def _run(args: argparse.Namespace, source: Any, instances: list[InstanceConfig]) -> int:
    """Run the daemon; `source` (FileSource, or kube.ClusterSource) feeds configurations."""
    from vrrpd.daemon import Daemon, StartupError

    await _claim_namespace()  # held until the process exits
    daemon = Daemon(await _real_ports(), node=args.node)
    try:
        await daemon.start(instances)
    except StartupError as exc:
        log.error("%s", exc)
        daemon.close()
        return EXIT_CONFIG
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    stop_task: asyncio.Task[None] | None = None
    aborting: list[asyncio.Task[None]] = []
    follower = asyncio.create_task(source.follow(daemon))

    def on_stop(signame: str) -> None:
        nonlocal stop_task
        if stop_task is None:
            log.info("%s: handing over and stopping (send it again to stop at once)", signame)
            follower.cancel()
            stop_task = asyncio.create_task(daemon.shutdown())
            stop_task.add_done_callback(lambda _: done.set())
        else:
            log.warning("%s again: removing the VIPs and stopping now", signame)
            aborting.append(asyncio.create_task(daemon.abort()))
            aborting[-1].add_done_callback(lambda _: done.set())

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)
    loop.add_signal_handler(signal.SIGHUP, source.reload, daemon, "SIGHUP")
    http = await _serve_http(args.http_address, daemon) if args.http_address != "none" else None
    control = await _serve_control(args.control_socket, daemon)
    release_freed_memory()  # the imports are done
    await done.wait()
    follower.cancel()
    if stop_task is not None:
        await asyncio.gather(stop_task, return_exceptions=True)
        await source.finish(daemon)
    if http is not None:
        await http.close()
    if control is not None:
        await control.close()
    log.info("stopped")
    return 0


async def _serve_http(address: str, daemon: Daemon) -> HttpServer | None:
    """The HTTP face, or None (logged) when ``address`` cannot be bound.

    Started once the daemon runs and its signal handlers are in place: aiohttp takes a few
    hundred ms to import, after the start (leftover VIPs are gone by then) and in a thread,
    so the instances that just joined keep their timers (the loop gets the interpreter back
    at least every 5 ms, sys.getswitchinterval()) and a signal meanwhile is handled.
    """
    httpd = await asyncio.to_thread(importlib.import_module, "vrrpd.httpd")
    host, port = _host_port(address)
    http: HttpServer = httpd.HttpServer(
        host, port, ready=daemon.readiness, metrics=daemon.metrics.render, status=daemon.status
    )
    try:
        await http.start()
    except OSError as exc:
        log.error("cannot serve HTTP on %s: %s; running without it", address, exc)
        return None
    log.info("serving /healthz /readyz /metrics /status on %s:%d", *http.address)
    return http


async def _serve_control(path: str | None, daemon: Daemon) -> ControlServer | None:
    """The control socket (vrrpd/control.py), or None: not asked for, or not possible (logged)."""
    if not path or path == "none":
        return None
    # aiohttp's import, in a thread as for the HTTP face (a no-op once that one loaded it)
    await asyncio.to_thread(importlib.import_module, "aiohttp.web")
    server = ControlServer(path, lambda names, release: daemon.switchover(names, release=release))
    try:
        await server.start()
    except OSError as exc:
        log.error("cannot open the control socket %s: %s; running without it", path, exc)
        return None
    return server


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SystemExit(f"vrrpd: --http-address {text!r}: use HOST:PORT, e.g. 127.0.0.1:9655")
    return host.strip("[]") or "0.0.0.0", int(port)


def cmd_status(args: argparse.Namespace) -> int:
    host, port = _host_port(args.address)
    try:
        status = asyncio.run(fetch_status(host, port))
    except StatusFetchError as exc:
        print(f"vrrpd status: {args.address}: {exc} (is vrrpd running with --http-address "
              f"{args.address}?)", file=sys.stderr)  # fmt: skip
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_status_table(status), end="")
    return 0


class StatusFetchError(Exception):
    """The daemon's /status could not be read; the message says why for a person."""


async def fetch_status(host: str, port: int, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """GET /status from a running daemon and return the decoded document.

    A bare JSON list (one row per instance) comes back as {"instances": [...]}.
    """
    from vrrpd.httpclient import ConnectError, describe, hostport, request

    where = hostport(host, port)
    try:
        response = await request(
            "GET", host, port, "/status", headers={"Accept": "application/json"},
            timeout_s=timeout_s, max_body_bytes=MAX_STATUS_BYTES,
        )  # fmt: skip
    except TimeoutError:
        raise StatusFetchError(f"no answer from {where} within {timeout_s:g}s") from None
    except ConnectError as exc:
        raise StatusFetchError(f"cannot reach the daemon at {where}: {exc.reason}") from None
    except OSError as exc:
        raise StatusFetchError(f"{where}/status: {describe(exc)}") from None
    body = response.body
    if response.status != 200:
        text = body.decode("utf-8", "replace").strip()[:200]
        answer = f"{response.status} {response.reason}".strip()
        raise StatusFetchError(f"{where}/status answered {answer}: {text}")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise StatusFetchError(f"{where}/status is not JSON: {exc}") from None
    if isinstance(document, list):
        return {"instances": document}
    if not isinstance(document, dict):
        raise StatusFetchError(f"{where}/status is JSON but not an object")
    return document


def format_status_table(status: Mapping[str, Any], *, now: float | None = None) -> str:
    """The /status document as a table a person reads in a terminal.

    Expected shape (fields missing print as "-"): ``{"node": str, "instances": [{"name",
    "state", "held" (a switchover holds it), "priority" (base), "effectivePriority", "master",
    "since" (Unix time, or an RFC 3339 string), "reason", "probes": [{"name", "ok",
    "detail"}] or {name: {...}}}]}``.
    """
    now = time.time() if now is None else now
    header = ("INSTANCE", "STATE", "PRIORITY", "MASTER", "SINCE", "REASON", "PROBES")
    rows: list[tuple[str, ...]] = [header]
    instances = status.get("instances", [])
    for inst in instances if isinstance(instances, list) else []:
        if not isinstance(inst, Mapping):
            continue
        base = inst.get("priority", inst.get("basePriority"))
        effective = inst.get("effectivePriority")
        rows.append(
            (
                _cell(inst.get("name", inst.get("instance"))),
                _cell(inst.get("state")) + (" (held)" if inst.get("held") else ""),
                f"{_cell(base)}/{_cell(effective)}",
                _cell(inst.get("master")),
                _since(inst.get("since"), now),
                _shorten(_cell(inst.get("reason") or inst.get("lastReason")), 48),
                _probes(inst.get("probes")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    if status.get("node"):
        lines.append(f"node: {status['node']}")
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if len(rows) == 1:
        lines.append("(no instances)")
    for inst in instances if isinstance(instances, list) else []:
        split = inst.get("splitBrain") if isinstance(inst, Mapping) else None
        if isinstance(split, Mapping):  # too long for a column, too important to leave out
            lines.append(f"SPLIT BRAIN {_cell(inst.get('name'))}: {_cell(split.get('detail'))}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())  # a newline in a reason must not break the table


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _since(value: Any, now: float) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, int | float) and math.isfinite(value):
        # Unix time; a small number cannot be one (a monotonic clock leaked): show it raw.
        if value < 1e9:
            return _cell(value)
        return _age(max(0.0, now - float(value))) + " ago"
    return _cell(value)


def _age(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _probes(value: Any) -> str:
    items: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list):
        items = [(str(p.get("name", "?")), p) for p in value if isinstance(p, Mapping)]
    if not items:
        return "-"
    marks = []
    for name, probe in items:
        ok = probe.get("ok", probe.get("healthy")) if isinstance(probe, Mapping) else probe
        marks.append(f"{name}:{'-' if ok is None else 'ok' if ok else 'FAIL'}")
    return " ".join(marks)


def cmd_run(args: argparse.Namespace) -> int:
    _setup_logging(args.node, args.log_format, args.verbose)
    if args.control_socket is None:
        args.control_socket = "none" if args.kube else DEFAULT_CONTROL
    if args.kube:
        return asyncio.run(_run_kube(args))
    if not args.config:
        print("vrrpd run: give --config FILE (standalone) or --kube (cluster)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        instances = _load(args.config, args.node)
    except ConfigError as exc:
        print(f"vrrpd: invalid configuration, nothing changed:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not instances:
        print(f"vrrpd: {args.config} has no VirtualIP for node {args.node}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_run(args, FileSource(args), instances))


async def _run_kube(args: argparse.Namespace) -> int:
    from vrrpd.kube import ApiError, ClusterSource, KubeApi, import_client_only

    import_client_only()  # the kubernetes client: --kube mode only, and only what is used
    try:
        api = KubeApi.connect(
            args.kube_api, token_file=args.kube_token_file, ca_file=args.kube_ca_file,
            user_agent=f"vrrpd/{args.node}",
        )  # fmt: skip
    except ApiError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    source = ClusterSource(
        api, node=args.node, namespace=args.namespace,
        configmap=args.configmap or f"vrrpd-{args.node}", pod=args.pod,
        secrets_dir=args.secrets_dir, state_dir=args.state_dir, poll_s=args.watch_interval,
    )  # fmt: skip
    return await _run(args, source, await source.initial())


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        vips = load_file(args.file)
        nodes = (
            [args.node] if args.node else sorted({p.node_name for v in vips for p in v.spec.peers})
        )
        for node in nodes:
            instances_for_node(vips, node)
    except ConfigError as exc:
        print(f"{args.file}: invalid:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    count = sum(len(v.spec.addresses) for v in vips)
    print(f"{args.file}: valid: {len(vips)} VirtualIP(s), {count} address(es)")
    _print_whatif_warnings(args.file, vips, [args.node] if args.node else [])
    return 0


def _print_whatif_warnings(path: str, vips: list[VirtualIP], extra_nodes: list[str]) -> None:
    """The what-if findings that need a person's eye; they never change the exit code."""
    from vrrpd import whatif

    configs, _ = whatif.resolve(vips, sorted({*whatif.named_nodes(vips), *extra_nodes}))
    lines = whatif.warnings_text(whatif.analyse_all(configs, pairs=False))
    for line in lines:
        print(f"{path}: warning: {line}", file=sys.stderr)
    if lines:
        print(f"{path}: `vrrpd explain {path}` shows what each failure does", file=sys.stderr)


def cmd_explain(args: argparse.Namespace) -> int:
    from vrrpd import whatif

    try:
        vips = load_file(args.file)
    except ConfigError as exc:
        print(f"{args.file}: invalid:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    nodes = sorted({*whatif.named_nodes(vips), *(args.node or ())})
    if not nodes:
        print(
            f"{args.file}: names no node (spec.peers, spec.nodePriorities[].nodeName); "
            "give the nodes that run it with --node NAME, once per node",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    configs, notes = whatif.resolve(vips, nodes)
    analyses = whatif.analyse_all(configs)
    if args.output == "json":
        print(json.dumps(whatif.as_json(analyses, notes), indent=2))
    else:
        print(whatif.format_text(analyses, notes), end="")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from vrrpd.net.transport import VrrpSocket
    from vrrpd.scan import scan

    sockets = []
    for family in (4, 6):
        try:
            sockets.append(VrrpSocket.open(args.interface, family, multicast=True))
        except OSError as exc:
            print(f"vrrpd scan: IPv{family} on {args.interface}: {exc}", file=sys.stderr)
    if not sockets:
        return 1
    try:
        print(f"listening on {args.interface} for {args.seconds:g} s ...", file=sys.stderr)
        print(scan(list(sockets), args.seconds).table())
    finally:
        for sock in sockets:
            sock.close()
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from vrrpd.lab import demo

    return demo.main(args.nodes, args.scenario, args.interval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vrrpd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the VRRP daemon from a VirtualIP file or ConfigMap")
    run.add_argument("--config", help="VirtualIP manifest (one or more documents)")
    run.add_argument("--node", required=True, help="this node's name (nodePriorities, peers)")
    env = os.environ.get
    kube = run.add_argument_group("cluster mode (the operator's pods set these)")
    kube.add_argument("--kube", action="store_true", help="read the node's ConfigMap via the API")
    kube.add_argument("--kube-api", help="API server URL (default: in-cluster service account)")
    kube.add_argument("--kube-token-file", help="bearer token file for --kube-api (re-read "
                      "when it changes)")  # fmt: skip
    kube.add_argument("--kube-ca-file", help="CA bundle (PEM) that signs --kube-api's "
                      "certificate (default: the system's)")  # fmt: skip
    kube.add_argument("--namespace", default=env("POD_NAMESPACE", "kube-vrrp"))
    kube.add_argument("--pod", default=env("POD_NAME"), help="this pod, for status reports")
    kube.add_argument("--configmap", default=env("VRRPD_CONFIGMAP"),
                      help="default vrrpd-<node>")  # fmt: skip
    kube.add_argument("--secrets-dir", default=env("VRRPD_SECRETS_DIR", "/etc/kube-vrrp/secrets"))
    kube.add_argument("--state-dir", default=env("VRRPD_STATE_DIR", "/var/lib/kube-vrrp"),
                      help="where the last good configuration is kept")  # fmt: skip
    run.add_argument("--log-format", choices=("text", "json"),
                     default=env("VRRPD_LOG_FORMAT", "text"))  # fmt: skip
    run.add_argument("--verbose", "-v", action="store_true", help="log dropped adverts too")
    run.add_argument(
        "--http-address",
        default=f"0.0.0.0:{env('VRRPD_HTTP_PORT')}" if env("VRRPD_HTTP_PORT") else DEFAULT_HTTP,
        help=f"HOST:PORT for /healthz /readyz /metrics /status (default {DEFAULT_HTTP}; none: off)",
    )  # fmt: skip
    run.add_argument(
        "--control-socket",
        default=env("VRRPD_CONTROL_SOCKET"),
        help=f"UNIX socket (mode 0600) for `vrrpd switchover` (default {DEFAULT_CONTROL}; with "
        "--kube none: in a cluster a switchover goes through the API)",
    )  # fmt: skip
    run.add_argument("--watch-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check a VirtualIP file and exit")
    validate.add_argument("file")
    validate.add_argument("--node", help="also resolve it for this node")
    validate.set_defaults(func=cmd_validate)

    explain = sub.add_parser(
        "explain", help="what each failure would do: who holds the VIP after it, and why"
    )
    explain.add_argument("file")
    explain.add_argument(
        "--node",
        action="append",
        help="a node that runs the file besides those it names (spec.peers, "
        "nodePriorities[].nodeName); repeat for several",
    )
    explain.add_argument("--output", "-o", choices=("text", "json"), default="text")
    explain.set_defaults(func=cmd_explain)

    status = sub.add_parser("status", help="show a running vrrpd's instances as a table")
    status.add_argument("--address", default=DEFAULT_HTTP, help="the daemon's --http-address")
    status.add_argument("--json", action="store_true", help="print /status as JSON")
    status.set_defaults(func=cmd_status)

    add_switchover_parser(sub)
    add_convert_parser(sub)

    scan = sub.add_parser("scan", help="list the VRRP routers heard on an interface (root)")
    scan.add_argument("--interface", "-i", required=True)
    scan.add_argument("--seconds", "-s", type=float, default=5.0)
    scan.set_defaults(func=cmd_scan)

    add_control_plane_parser(sub)

    lab = sub.add_parser("lab", help="show a failover on this machine in network namespaces (root)")
    lab.add_argument("--nodes", type=int, default=3, help="number of nodes (2..9)")
    lab.add_argument(
        "--scenario",
        choices=("link-down", "daemon-stop", "kill", "switchover"),
        default="link-down",
        help="how the master fails (switchover: it does not, the VIP is moved on purpose)",
    )
    lab.add_argument("--interval", default="100ms", help="advertInterval of the demo VIP")
    lab.set_defaults(func=cmd_lab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
