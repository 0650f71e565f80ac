"""The daemon's HTTP face: /healthz, /readyz, /metrics and /status on one small asyncio server,
plus the client side of `vrrpd status` (fetch /status, print it as a table).

Deliberately minimal HTTP/1.1: GET and HEAD only, one request per connection (the server
closes after each response), a bounded request head and a read deadline. Kubelet probes and
Prometheus scrapes need no more, and a server this small has little to go wrong in a
process whose real job is VRRP. The answers come from caller-provided callbacks, so this
module knows nothing about instances or probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

from vrrpd.httpclient import ConnectError, describe, hostport, request
from vrrpd.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger("vrrpd.http")

Liveness = Callable[[], bool]
Readiness = Callable[[], tuple[bool, str]]
MetricsText = Callable[[], str]
StatusDoc = Callable[[], Mapping[str, Any]]

MAX_REQUEST_BYTES: Final = 8192  # request line + headers; ours are a few hundred bytes
REQUEST_TIMEOUT_S: Final = 5.0  # a client that sends its head slower than this is dropped
MAX_CONNECTIONS: Final = 64  # beyond this, new connections get 503 at once (no fd exhaustion)
LINGER_S: Final = 0.5  # after the response, how long to wait for the client to close
MAX_LINGER_BYTES: Final = 1024 * 1024  # and how much of its leftover input to read meanwhile
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024  # what fetch_status accepts
_TEXT: Final = "text/plain; charset=utf-8"


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """GET/HEAD on /healthz, /readyz, /metrics, /status; 404 elsewhere, 405 other methods.

    ``liveness`` says the daemon's own machinery works (the loop answering is the other half);
    ``ready`` returns (ready, why) for /readyz; ``metrics`` the Prometheus text; ``status`` a
    JSON-able mapping. A callback that raises gives a 500 and a log line, never a crash.
    Without ``metrics`` or ``status`` those paths answer 404.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        liveness: Liveness | None = None,
        ready: Readiness | None = None,
        metrics: MetricsText | None = None,
        status: StatusDoc | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.host = host
        self.port = port
        self.liveness = liveness
        self.ready = ready
        self.metrics = metrics
        self.status = status
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        # limit bounds the reader's buffer, so one header line cannot grow it past the cap.
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        log.info("HTTP server listening on %s:%d", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound: with port 0 the kernel's choice."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("HttpServer.address before start()")
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Python 3.11's wait_closed does not wait for handlers; cancel them so none
        # outlives the server (they are short, but a slow client could hold one).
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- one connection ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if len(self._handlers) > self.max_connections:
                await self._respond(writer, HTTPStatus.SERVICE_UNAVAILABLE, "busy\n", head=False)
            else:
                await self._serve_one(reader, writer)
            await _linger(reader, writer)
        except (ConnectionError, OSError):
            pass  # the client went away mid-response; nothing to tell anyone
        except asyncio.CancelledError:
            # close() cancels handlers; ending quietly here matters because Python 3.11's
            # stream callback logs a handler task that ends cancelled as an error.
            pass
        except Exception:  # a bug here must cost one response, never the server
            log.exception("HTTP handler failed")
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.request_timeout_s):
                method, path = await _read_request_head(reader)
        except TimeoutError:
            await self._respond(writer, HTTPStatus.REQUEST_TIMEOUT, "request timeout\n")
            return
        except asyncio.IncompleteReadError:
            return  # closed before a full head: there is nobody to answer
        except _BadRequest as bad:
            await self._respond(writer, bad.status, f"{bad}\n")
            return
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await self._respond(
                writer,
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method {method} not allowed\n",
                extra={"Allow": "GET, HEAD"},
            )
            return
        try:
            status, content_type, body = self._route(path)
        except Exception as exc:
            log.exception("HTTP %s %s: callback failed", method, path)
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT
            body = f"internal error: {type(exc).__name__}\n"
        await self._respond(writer, status, body, content_type=content_type, head=head)

    def _route(self, path: str) -> tuple[HTTPStatus, str, str]:
        if path == "/healthz":
            alive = self.liveness() if self.liveness is not None else True
            if alive:
                return HTTPStatus.OK, _TEXT, "ok\n"
            return HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, "not alive\n"
        if path == "/readyz":
            ok, why = self.ready() if self.ready is not None else (True, "")
            text = why or ("ready" if ok else "not ready")
            return (HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE), _TEXT, f"{text}\n"
        if path == "/metrics" and self.metrics is not None:
            return HTTPStatus.OK, METRICS_CONTENT_TYPE, self.metrics()
        if path == "/status" and self.status is not None:
            # default=str: addresses, enums and datetimes print as people write them.
            document = json.dumps(self.status(), default=str, indent=2, sort_keys=True)
            return HTTPStatus.OK, "application/json", document + "\n"
        return HTTPStatus.NOT_FOUND, _TEXT, f"no such path: {path[:200]}\n"

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        body: str,
        *,
        content_type: str = _TEXT,
        head: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        payload = body.encode("utf-8")
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(payload)),
            "Cache-Control": "no-store",
            "Connection": "close",
            **(extra or {}),
        }
        lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head:
            writer.write(payload)
        await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then drain what the client still sends, briefly.

    Closing a socket with unread input makes the kernel send RST, which can destroy our
    response before the client reads it (a 405 or 431 sent without reading the whole
    request). Waiting for the client's EOF first is the usual "lingering close".
    """
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_S):
            drained = 0
            while drained < MAX_LINGER_BYTES and (chunk := await reader.read(65536)):
                drained += len(chunk)


async def _read_request_head(reader: asyncio.StreamReader) -> tuple[str, str]:
    """Read the request line and headers; return (method, path without query)."""
    total = 0
    lines: list[bytes] = []
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _BadRequest(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
            ) from None
        total += len(line)
        if total > MAX_REQUEST_BYTES:
            raise _BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        if not lines and line in (b"\r\n", b"\n"):
            continue  # RFC 9112 §2.2: ignore empty lines before the request line
        if line in (b"\r\n", b"\n"):
            break
        lines.append(line)
    # latin-1 maps every byte, so garbage decodes (and then fails the checks below).
    parts = lines[0].decode("latin-1").strip().split(" ")
    if len(parts) != 3:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/1."):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "unsupported protocol version")
    if not method.isascii() or not method.isalpha() or not method.isupper():
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed method")
    if target.startswith(("http://", "https://")):  # absolute-form, as proxies send
        after_scheme = target.split("//", 1)[1]
        target = "/" + after_scheme.split("/", 1)[1] if "/" in after_scheme else "/"
    if not target.startswith("/") or not target.isprintable():
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed request target")
    return method, target.split("?", 1)[0].split("#", 1)[0]


# --- the client side: `vrrpd status` ------------------------------------------------------------


class StatusFetchError(Exception):
    """The daemon's /status could not be read; the message says why for a person."""


async def fetch_status(host: str, port: int, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """GET /status from a running daemon and return the decoded document.

    A bare JSON list (one row per instance) comes back as {"instances": [...]}.
    """
    where = hostport(host, port)
    try:
        response = await request(
            "GET", host, port, "/status", headers={"Accept": "application/json"},
            timeout_s=timeout_s, max_body_bytes=MAX_RESPONSE_BYTES,
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
    "state", "priority" (base), "effectivePriority", "master", "since" (Unix time, or an
    RFC 3339 string), "reason", "probes": [{"name", "ok", "detail"}] or {name: {...}}}]}``.
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
                _cell(inst.get("state")),
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
