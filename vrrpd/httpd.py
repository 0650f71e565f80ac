"""The daemon's HTTP face on aiohttp: GET and HEAD on /healthz, /readyz, /metrics, /status.

The answers come from caller-provided callbacks, so this module knows nothing about instances
or probes; a callback that raises costs one 500 and a log line, never the server. What a
client can hold in a process whose real job is VRRP is bounded: a connection with no complete
request for ``idle_timeout_s`` is closed (aiohttp's keep-alive timer, armed at connect), and
past ``max_connections`` open ones a new connection is dropped at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from aiohttp import web

from vrrpd.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger("vrrpd.http")

Liveness = Callable[[], bool]
Readiness = Callable[[], tuple[bool, str]]
MetricsText = Callable[[], bytes]
StatusDoc = Callable[[], Mapping[str, Any]]
Answer = tuple[int, str, str | bytes]  # status, content type, body

IDLE_TIMEOUT_S: Final = 5.0  # kubelet and Prometheus send their request at once
MAX_CONNECTIONS: Final = 64  # beyond this, new connections are dropped (no fd exhaustion)
_TEXT: Final = "text/plain; charset=utf-8"


class HttpServer:
    """GET/HEAD on /healthz, /readyz, /metrics, /status; 404 elsewhere, 405 other methods.

    ``liveness`` says the daemon's own machinery works (the loop answering is the other half);
    ``ready`` returns (ready, why) for /readyz; ``metrics`` the Prometheus text; ``status`` a
    JSON-able mapping. Without ``metrics`` or ``status`` those paths answer 404.
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
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.host = host
        self.port = port
        self.liveness = liveness
        self.ready = ready
        self.metrics = metrics
        self.status = status
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        app = web.Application()
        routes: dict[str, Callable[[], Answer]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
        }
        if self.metrics is not None:
            routes["/metrics"] = self._metrics
        if self.status is not None:
            routes["/status"] = self._status
        for path, answer in routes.items():
            app.router.add_get(path, _handler(answer))  # HEAD too
        # No access log: kubelet probes and scrapes would be most of the daemon's log.
        runner = web.AppRunner(
            app, access_log=None, logger=_ClientErrors(log), shutdown_timeout=1.0,
            keepalive_timeout=self.idle_timeout_s,
        )  # fmt: skip
        await runner.setup()
        server = runner.server
        assert server is not None

        def connection() -> asyncio.BaseProtocol:
            return _Dropped() if len(server.connections) >= self.max_connections else server()

        try:
            loop = asyncio.get_running_loop()
            self._listener = await loop.create_server(connection, self.host, self.port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("HTTP server listening on %s:%d", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound: with port 0 the kernel's choice."""
        if self._listener is None or not self._listener.sockets:
            raise RuntimeError("HttpServer.address before start()")
        name = self._listener.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    async def close(self) -> None:
        if self._listener is None or self._runner is None:
            return
        self._listener.close()  # no new connections
        await self._runner.cleanup()  # ends the open ones
        await self._listener.wait_closed()
        self._listener = self._runner = None

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the answers -------------------------------------------------------------------------

    def _healthz(self) -> Answer:
        if self.liveness is None or self.liveness():
            return 200, _TEXT, "ok\n"
        return 503, _TEXT, "not alive\n"

    def _readyz(self) -> Answer:
        ok, why = self.ready() if self.ready is not None else (True, "")
        return (200 if ok else 503), _TEXT, (why or ("ready" if ok else "not ready")) + "\n"

    def _metrics(self) -> Answer:
        assert self.metrics is not None
        return 200, METRICS_CONTENT_TYPE, self.metrics()

    def _status(self) -> Answer:
        assert self.status is not None
        # default=str: addresses, enums and datetimes print as people write them.
        document = json.dumps(self.status(), default=str, indent=2, sort_keys=True)
        return 200, "application/json", document + "\n"


def _handler(answer: Callable[[], Answer]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            status, content_type, body = answer()
        except Exception as exc:
            log.exception("HTTP %s %s: callback failed", request.method, request.path)
            status, content_type, body = 500, _TEXT, f"internal error: {type(exc).__name__}\n"
        data = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
        return web.Response(status=status, body=data, headers=headers)

    return handle


class _Dropped(asyncio.Protocol):
    """A connection past the cap: closed at once, so it holds no file descriptor."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()


class _ClientErrors(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp logs a malformed request at ERROR with a traceback; a port scan is not the
    daemon's error, so such lines go to DEBUG (`vrrpd run --verbose`). The callbacks' own
    failures are logged by ``_handler``, at ERROR."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.debug(msg, *args, **kwargs)
