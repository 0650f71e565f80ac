"""The `vrrpd` command line: run the daemon from a VirtualIP file, validate a file, run the lab."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from vrrpd.model import ConfigError, InstanceConfig, instances_for_node, load_file

log = logging.getLogger("vrrpd")

EXIT_CONFIG = 2  # invalid configuration: nothing on the host was changed
DEFAULT_HTTP = "127.0.0.1:9655"


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


def _real_ports() -> Any:
    from vrrpd.net.addresses import AddressManager
    from vrrpd.net.announce import Announcer
    from vrrpd.net.links import LinkMonitor
    from vrrpd.net.transport import VrrpSocket
    from vrrpd.ports import Ports

    def open_socket(ifname: str, family: int) -> Any:
        return VrrpSocket.open(ifname, family, multicast=True)

    return Ports(
        open_socket=open_socket,
        addresses=AddressManager(),
        announcer=Announcer(),
        links=LinkMonitor(),
    )


def _file_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


async def _run(args: argparse.Namespace, instances: list[InstanceConfig]) -> int:
    from vrrpd.daemon import Daemon, StartupError
    from vrrpd.httpd import HttpServer

    daemon = Daemon(_real_ports(), node=args.node)
    try:
        daemon.start(instances)
    except StartupError as exc:
        log.error("%s", exc)
        daemon.close()
        return EXIT_CONFIG
    http: HttpServer | None = None
    if args.http_address != "none":
        host, port = _host_port(args.http_address)
        http = HttpServer(
            host, port, ready=daemon.readiness, metrics=daemon.metrics.render, status=daemon.status
        )
        try:
            await http.start()
            log.info("serving /healthz /readyz /metrics /status on %s:%d", *http.address)
        except OSError as exc:
            log.error("cannot serve HTTP on %s: %s; running without it", args.http_address, exc)
            http = None
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    stop_task: asyncio.Task[None] | None = None

    def on_stop(signame: str) -> None:
        nonlocal stop_task
        if stop_task is None:
            log.info("%s: handing over and stopping (send it again to stop at once)", signame)
            stop_task = asyncio.create_task(daemon.shutdown())
            stop_task.add_done_callback(lambda _: done.set())
        else:
            log.warning("%s again: removing the VIPs and stopping now", signame)
            daemon.abort()
            done.set()

    stamp = _file_stamp(args.config)

    def reload(why: str) -> None:
        nonlocal stamp
        stamp = _file_stamp(args.config)
        try:
            new = _load(args.config, args.node)
        except ConfigError as exc:
            log.error("%s: %s; keeping the running configuration:\n%s", why, args.config, exc)
            return
        log.info("%s: reloading %s", why, args.config)
        daemon.apply(new)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)
    loop.add_signal_handler(signal.SIGHUP, reload, "SIGHUP")

    async def watch() -> None:
        while True:
            await asyncio.sleep(args.watch_interval)
            if stop_task is None and _file_stamp(args.config) != stamp:
                reload("configuration file changed")

    watcher = asyncio.create_task(watch())
    await done.wait()
    watcher.cancel()
    if stop_task is not None:
        await asyncio.gather(stop_task, return_exceptions=True)
    if http is not None:
        await http.close()
    log.info("stopped")
    return 0


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SystemExit(f"vrrpd: --http-address {text!r}: use HOST:PORT, e.g. 127.0.0.1:9655")
    return host.strip("[]") or "0.0.0.0", int(port)


def cmd_status(args: argparse.Namespace) -> int:
    from vrrpd.httpd import StatusFetchError, fetch_status, format_status_table

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


def cmd_run(args: argparse.Namespace) -> int:
    _setup_logging(args.node, args.log_format, args.verbose)
    try:
        instances = _load(args.config, args.node)
    except ConfigError as exc:
        print(f"vrrpd: invalid configuration, nothing changed:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not instances:
        print(f"vrrpd: {args.config} has no VirtualIP for node {args.node}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_run(args, instances))


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


def cmd_convert(args: argparse.Namespace) -> int:
    from vrrpd.convert import cli

    return cli(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vrrpd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the VRRP daemon from a VirtualIP file")
    run.add_argument("--config", required=True, help="VirtualIP manifest (one or more documents)")
    run.add_argument("--node", required=True, help="this node's name (nodePriorities, peers)")
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--verbose", "-v", action="store_true", help="log dropped adverts too")
    run.add_argument(
        "--http-address", default=DEFAULT_HTTP,
        help=f"HOST:PORT for /healthz /readyz /metrics /status (default {DEFAULT_HTTP}; none: off)",
    )  # fmt: skip
    run.add_argument("--watch-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check a VirtualIP file and exit")
    validate.add_argument("file")
    validate.add_argument("--node", help="also resolve it for this node")
    validate.set_defaults(func=cmd_validate)

    status = sub.add_parser("status", help="show a running vrrpd's instances as a table")
    status.add_argument("--address", default=DEFAULT_HTTP, help="the daemon's --http-address")
    status.add_argument("--json", action="store_true", help="print /status as JSON")
    status.set_defaults(func=cmd_status)

    convert = sub.add_parser(
        "convert",
        help="print a keepalived.conf as VirtualIP YAML (warnings on stderr)",
        add_help=False,
    )
    convert.add_argument("rest", nargs=argparse.REMAINDER,
                         help="FILE|- [--node NAME] [--namespace NS]")  # fmt: skip
    convert.set_defaults(func=cmd_convert)

    scan = sub.add_parser("scan", help="list the VRRP routers heard on an interface (root)")
    scan.add_argument("--interface", "-i", required=True)
    scan.add_argument("--seconds", "-s", type=float, default=5.0)
    scan.set_defaults(func=cmd_scan)

    lab = sub.add_parser("lab", help="show a failover on this machine in network namespaces (root)")
    lab.add_argument("--nodes", type=int, default=3, help="number of nodes (2..9)")
    lab.add_argument(
        "--scenario",
        choices=("link-down", "daemon-stop", "kill"),
        default="link-down",
        help="how the master fails",
    )
    lab.add_argument("--interval", default="100ms", help="advertInterval of the demo VIP")
    lab.set_defaults(func=cmd_lab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
