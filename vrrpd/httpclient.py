"""One-shot HTTP requests on aiohttp for probes, the webhook, `vrrpd status` and the Kubernetes
API calls of cluster mode, with failures worded for a person.

Each request has a session and a connection of its own, closed after the answer (a health
check must open a connection as a client would, and nothing here is frequent enough to pool);
no redirects, no proxies from the environment, no compression asked for (a probe's body digest
is of what the server sends); the body is read only up to a limit.

Failures are OSErrors: TimeoutError, ConnectError (no connection), HttpClientError (a request
refused before it was sent, or an answer that is not HTTP), or a socket error mid-exchange.
``describe`` words any of them for a person ("connection refused", "TLS certificate not
accepted: ...").
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = "kube-vrrp"


class HttpClientError(OSError):
    """A request failed; the message says why, for a person."""


class ConnectError(HttpClientError):
    """No connection (bad port, unknown name, refused, TLS handshake failed). The message names
    the address ("10.0.0.1:80: connection refused"); ``reason`` leaves it out."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]  # names lower-cased; of a repeated header, the last one
    body: bytes  # empty with read_body=False


@functools.lru_cache(maxsize=8)
def tls_context(verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """A client context trusting the system's CAs, or only ``ca_file``'s; or, unverified, any.

    Built once per setting (loading CAs reads files): a changed CA file needs cache_clear().
    """
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def split_url(url: str) -> tuple[str, str, int, str, str | None]:
    """(scheme, host, port, path?query, "user:password" or None) of an http(s) URL, or a
    ValueError whose message shows no credentials."""
    if not (url.isascii() and url.isprintable()) or " " in url:
        raise ValueError("URL must be printable ASCII without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)  # ValueError if bad
    userinfo = None
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target, userinfo


def hostport(host: str, port: int) -> str:
    """host:port as written in URLs: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe(exc: BaseException) -> str:
    """An error as a person reads it: "connection refused" rather than errno 111."""
    if isinstance(exc, HttpClientError):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, EOFError):  # asyncio.IncompleteReadError among them
        return "connection closed before the response was complete"
    if isinstance(exc, OSError) and (exc.errno or exc.strerror):
        # asyncio rewrites strerror ("Connect call failed ..."); errno keeps the plain reason.
        text = os.strerror(exc.errno) if exc.errno else str(exc.strerror)
        return text[0].lower() + text[1:]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def request(
    method: str,
    host: str,
    port: int,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    tls: ssl.SSLContext | None = None,
    timeout_s: float,
    max_body_bytes: int = 1 << 20,
    read_body: bool = True,
) -> Response:
    """Send one request to host:port (over TLS with ``tls``, see ``tls_context``) and read the
    answer, all within ``timeout_s``; with ``read_body=False``, only the answer's head.

    ``headers`` add to or replace User-Agent, Accept and Host (by default host:port, without
    the scheme's default port); over TLS, a Host header's name is also the one sent for SNI
    and checked against the certificate. A header with a line break is refused unsent.
    """
    import aiohttp  # here: a daemon that makes no request never loads the client

    if not 1 <= port <= 65535:
        raise ConnectError(f"port must be in 1..65535, not {port}")
    fields = {"User-Agent": USER_AGENT} | {name.title(): v for name, v in (headers or {}).items()}
    server_name = _host_of(fields["Host"]) if tls is not None and "Host" in fields else None
    url = f"{'https' if tls else 'http'}://{hostport(host, port)}{path}"
    try:
        async with (
            asyncio.timeout(timeout_s),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
            session.request(
                method, url, headers=fields, data=body, ssl=tls if tls is not None else True,
                server_hostname=server_name, allow_redirects=False,
                skip_auto_headers=("Accept-Encoding",),
            ) as answer,
        ):  # fmt: skip
            content = await _read_body(answer, max_body_bytes) if read_body else b""
            found = {name.lower(): value for name, value in answer.headers.items()}
            return Response(answer.status, answer.reason or "", found, content)
    except aiohttp.ClientError as exc:
        raise _translate(exc, host, port) from exc
    except ValueError as exc:  # aiohttp refuses a header with a line break
        raise HttpClientError(f"request refused before sending: {exc}") from exc


async def _read_body(answer: aiohttp.ClientResponse, limit: int) -> bytes:
    too_big = HttpClientError(f"body larger than {limit} bytes")
    if answer.content_length is not None and answer.content_length > limit:
        raise too_big
    body = bytearray()
    async for chunk in answer.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def _translate(exc: aiohttp.ClientError, host: str, port: int) -> HttpClientError:
    """aiohttp's error as ours, worded for a person."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ConnectError(describe(exc.certificate_error))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        why = exc.os_error.strerror or str(exc.os_error)
        return ConnectError(f"cannot resolve host {host!r}: {why}", describe(exc.os_error))
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = describe(exc.os_error)
        if isinstance(exc.os_error, ssl.SSLError):
            return ConnectError(reason)
        return ConnectError(f"{hostport(host, port)}: {reason}", reason)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return HttpClientError("connection closed before the response was complete")
    if isinstance(exc, aiohttp.ClientResponseError):  # what came back is not HTTP
        first = str(exc.message).partition("\n")[0].rstrip(":")[:80]
        return HttpClientError(f"not a valid HTTP response: {first}")
    return HttpClientError(describe(exc))


def _host_of(authority: str) -> str:
    """The host part of "host", "host:port", "[v6]" or "[v6]:port" (or a bare "v6")."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.partition(":")[0] if authority.count(":") == 1 else authority
