"""The daemon's control socket: `vrrpd switchover` asks the local daemon through it.

A UNIX socket, not a TCP port: in a cluster the HTTP face listens on the node's addresses
(hostNetwork, 0.0.0.0:9641), and even a loopback port is open to every process and every
hostNetwork pod of the node. A socket file is reachable only through the filesystem it
lives in (in a pod, the container's own), and only by who may write it: it is created
mode 0600 in a directory made 0700, so only its owner (root) can connect. Nothing from
the network reaches it. In a cluster a switchover comes through the API (the VirtualIP's
annotation, under RBAC), and `vrrpd run --kube` opens no control socket unless asked.

One route: POST /switchover with `{"instances": [...], "release": false}` (see
vrrpd/switchover.py); the answer is `{"outcome": {instance: what happened}}`, or an
`{"error": ...}` with 400 (a request not understood) or 404 (an instance not known here).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import socket
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from vrrpd.switchover import Request, UnknownInstance

if TYPE_CHECKING:  # the server's; the client (`vrrpd switchover`) needs only the stdlib
    from aiohttp import web

log = logging.getLogger("vrrpd.control")

MAX_REQUEST_BYTES: Final = 64 * 1024

Switchover = Callable[[Sequence[str], bool], Mapping[str, str]]


class ControlError(OSError):
    """The control socket cannot be opened or asked; the message says why for a person."""


class ControlServer:
    """POST /switchover on a UNIX socket at `path`, answered by `switchover(names, release)`."""

    def __init__(self, path: str, switchover: Switchover) -> None:
        self.path = path
        self.switchover = switchover
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        from aiohttp import web

        directory = Path(self.path).parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _refuse_if_in_use(self.path)
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/switchover", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            await web.UnixSite(runner, self.path).start()
        except BaseException:
            await runner.cleanup()
            raise
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._runner = runner
        log.info("control socket %s (mode 0600): POST /switchover", self.path)

    async def close(self) -> None:
        if self._runner is None:
            return
        await self._runner.cleanup()
        self._runner = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _handle(self, request: web.Request) -> web.Response:
        from aiohttp.web import HTTPException, json_response

        try:
            wanted = Request.from_json(json.loads(await request.read() or b"{}"))
            outcome = self.switchover(wanted.instances, wanted.release)
        except (ValueError, HTTPException) as exc:
            status = 404 if isinstance(exc, UnknownInstance) else 400
            return json_response({"error": str(exc)}, status=status)
        return json_response({"outcome": dict(outcome)})


def _refuse_if_in_use(path: str) -> None:
    """Remove a stale socket file left by a killed daemon; refuse a live one or a non-socket."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket; pass another --control-socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # nobody listens: a leftover
            return
    raise ControlError(
        f"{path}: another vrrpd answers on it; pass each daemon its own --control-socket"
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("vrrpd", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def ask_switchover(
    path: str, instances: Sequence[str], *, release: bool, timeout_s: float = 10.0
) -> dict[str, str]:
    """POST /switchover to the daemon listening on `path`; its outcome by instance.

    The standard library's HTTP client: the command starts in tens of milliseconds, where
    aiohttp's import alone takes a few hundred.
    """
    body = json.dumps(Request(tuple(instances), release).to_json()).encode()
    connection = _UnixConnection(path, timeout_s)
    try:
        connection.request(
            "POST", "/switchover", body, headers={"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        document: Any = json.loads(answer.read() or b"null")
    except PermissionError:
        raise ControlError(
            f"{path}: permission denied: the control socket is root's (run it with sudo)"
        ) from None
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ControlError(
            f"{path}: no daemon answers ({exc.strerror}); is vrrpd running with"
            f" --control-socket {path}?"
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ControlError(f"{path}: {type(exc).__name__}: {exc}") from None
    finally:
        connection.close()
    if not isinstance(document, dict):
        raise ControlError(f"{path}: the answer is not a JSON object")
    if "error" in document:
        raise ControlError(str(document["error"]))
    outcome = document.get("outcome")
    if not isinstance(outcome, dict):
        raise ControlError(f"{path}: the answer has no outcome")
    return {str(k): str(v) for k, v in outcome.items()}


# -- `vrrpd switchover` ------------------------------------------------------------------------

DEFAULT_SOCKET: Final = "/run/vrrpd/control.sock"


def add_parser(sub: Any) -> None:
    """`vrrpd switchover` on the command line's subparsers."""
    parser = sub.add_parser(
        "switchover",
        help="move the VIPs to this node and keep them here (planned, no packet lost)",
        description="Ask the local vrrpd to take over its instances now and hold them "
        "until --release, or until this node fails (probes, link, stop).",
    )
    _arguments(parser)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", action="append", metavar="NAME",
                        help="an instance as `vrrpd status` names it (repeat for several;"
                        " default: all of this node's, with their sync groups)")  # fmt: skip
    parser.add_argument(
        "--release", action="store_true", help="end the hold: the ordinary rules apply again"
    )
    parser.add_argument(
        "--control-socket", default=DEFAULT_SOCKET, help="the daemon's --control-socket"
    )
    parser.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    try:
        outcome = ask_switchover(args.control_socket, args.instance or (), release=args.release)
    except ControlError as exc:
        print(f"vrrpd switchover: {exc}", file=sys.stderr)
        return 1
    for name, what in sorted(outcome.items()):
        print(f"{name}: {what}")
    return 1 if any(what.startswith("refused") for what in outcome.values()) else 0


def main(argv: Sequence[str]) -> int:
    """`vrrpd switchover ARGS`, without the rest of the command line's imports."""
    parser = argparse.ArgumentParser(prog="vrrpd switchover")
    _arguments(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))
