"""The daemon's one HTTP/1.1 client, for probes, the webhook, `vrrpd status` and the Kubernetes
API: on asyncio streams, one request per connection, Content-Length, chunked or read-to-close
bodies up to a limit, interim 1xx answers skipped; no pooling, redirects or proxies.

Failures are OSErrors: TimeoutError, ConnectError (no connection), HttpClientError (a request
refused or an answer that is not HTTP), or a socket error mid-exchange. ``describe`` words any
of them for a person ("connection refused", "TLS certificate not accepted: ...").
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 8192
USER_AGENT = "kube-vrrp"


class HttpClientError(OSError):
    """A request failed; the message says why, for a person."""


class ConnectError(HttpClientError):
    """No connection (bad port, unknown name, refused, TLS handshake failed). The message names
    the address ("10.0.0.1:80: connection refused"); ``reason`` leaves it out."""

    @property
    def reason(self) -> str:
        return describe(self.__cause__) if self.__cause__ is not None else str(self)


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


async def connect(
    host: str, port: int, *, tls: ssl.SSLContext | None = None, server_name: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection, over TLS with ``tls`` (for SNI and certificate checks the server
    is ``server_name``, by default ``host``); ConnectError says why it could not be made."""
    if not 1 <= port <= 65535:
        raise ConnectError(f"port must be in 1..65535, not {port}")
    name = (server_name or host) if tls else None
    try:
        return await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=name, limit=MAX_LINE_BYTES
        )
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    except ssl.SSLError as exc:
        raise ConnectError(describe(exc)) from exc
    except OSError as exc:
        raise ConnectError(f"{hostport(host, port)}: {describe(exc)}") from exc


async def close(writer: asyncio.StreamWriter) -> None:
    """Close the connection; a peer that does not see it through within 0.5s gets it aborted."""
    writer.close()
    try:
        async with asyncio.timeout(0.5):
            await writer.wait_closed()
    except Exception:  # the peer's manners are not the caller's result
        writer.transport.abort()


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

    ``headers`` add to or replace Host (host:port, no port if the scheme's default; over TLS,
    the server name for SNI and verification), User-Agent and Accept. The client sets
    Content-Length and Connection. A line break, a non-ASCII character, or a space in the path
    or Host, is refused before anything is sent.
    """
    authority = hostport(host, port).removesuffix(":443" if tls else ":80")
    fields = {"Host": authority, "User-Agent": USER_AGENT, "Accept": "*/*"}
    fields |= {name.title(): value for name, value in (headers or {}).items()}
    if body is not None:
        fields["Content-Length"] = str(len(body))
    fields["Connection"] = "close"
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items())]
    spaced = lines[0].count(" ") != 2 or " " in fields["Host"]
    if spaced or not all(line.isascii() and line.isprintable() for line in lines):
        raise HttpClientError("refusing to send a line break, a non-ASCII character or a space")
    async with asyncio.timeout(timeout_s):
        reader, writer = await connect(host, port, tls=tls, server_name=_host_of(fields["Host"]))
        try:
            writer.write("\r\n".join([*lines, "", ""]).encode("ascii") + (body or b""))
            await writer.drain()
            status, reason, answer = await _read_head(reader)
            content = await _read_body(reader, answer, max_body_bytes) if read_body else b""
        except asyncio.IncompleteReadError as exc:
            raise HttpClientError(describe(exc)) from exc
        except asyncio.LimitOverrunError as exc:
            raise HttpClientError(f"response line longer than {MAX_LINE_BYTES} bytes") from exc
        finally:
            await close(writer)
    return Response(status, reason, answer, content)


def _host_of(authority: str) -> str:
    """The host part of "host", "host:port", "[v6]" or "[v6]:port" (or a bare "v6")."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.partition(":")[0] if authority.count(":") == 1 else authority


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    return (await reader.readuntil(b"\n")).rstrip(b"\r\n")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    while True:
        line = await _read_line(reader)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpClientError(f"not an HTTP/1.x response: {line[:80]!r}")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = await _read_line(reader)
            if not line:
                break
            name, _, val = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = val.strip()
        else:
            raise HttpClientError(f"more than {MAX_HEADER_LINES} header lines")
        # 1xx are interim responses; the real one follows (101 would switch protocols).
        status = int(parts[1])
        if not 100 <= status < 200 or status == 101:
            return status, parts[2].decode("latin-1") if len(parts) > 2 else "", headers


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str], limit: int) -> bytes:
    too_big = HttpClientError(f"body larger than {limit} bytes")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = bytearray()
        while True:
            size_line = (await _read_line(reader)).split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9a-fA-F]{1,15}", size_line):
                raise HttpClientError(f"bad chunk size {size_line[:20]!r}")
            size = int(size_line, 16)
            if size == 0:
                return bytes(chunks)  # trailers are not needed
            if len(chunks) + size > limit:
                raise too_big
            chunks += await reader.readexactly(size)
            await _read_line(reader)
    if "content-length" in headers:
        text = headers["content-length"]
        if not text.isdigit():
            raise HttpClientError(f"bad Content-Length {text[:20]!r}")
        if int(text) > limit:
            raise too_big
        return await reader.readexactly(int(text))
    body = await reader.read(limit + 1)
    while len(body) <= limit and (more := await reader.read(limit + 1 - len(body))):
        body += more
    if len(body) > limit:
        raise too_big
    return body
