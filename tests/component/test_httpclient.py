"""The HTTP client (vrrpd.httpclient, on aiohttp) against loopback servers: the body limit,
errors worded for a person, TLS, and what the Kubernetes API client needs (PATCH with a JSON
body, a bearer token, a CA file). HTTP framing itself is aiohttp's, tested there."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vrrpd.httpclient import (
    ConnectError,
    HttpClientError,
    describe,
    request,
    split_url,
    tls_context,
)

BODY = b"<html>all systems nominal</html>"
NODE = json.dumps({"kind": "Node", "metadata": {"name": "n1"}}).encode()
OK = b"HTTP/1.1 200 OK\r\n"
CHUNKED = OK + b"Transfer-Encoding: chunked\r\n\r\n"
RESPONSES = {
    "/ok": OK + b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    "/down": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown",
    "/chunked": CHUNKED + b"6\r\n<html>\r\n1a;ext=1\r\nall systems nominal</html>\r\n0\r\n\r\n",
    "/until-close": OK + b"\r\n" + BODY,
    "/big": OK + b"Content-Length: 5000\r\n\r\n" + b"x" * 5000,
    "/big-chunked": CHUNKED + b"800\r\n" + b"x" * 0x800 + b"\r\n0\r\n\r\n",
    "/big-until-close": OK + b"\r\n" + b"x" * 5000,
    "/short": OK + b"Content-Length: 100\r\n\r\nonly this",
    "/badlen": OK + b"Content-Length: -5\r\n\r\n",
    "/garbage": b"SSH-2.0-OpenSSH_9.2\r\n",
    "/moved": b"HTTP/1.1 301 Moved\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n",
    "/api/v1/nodes/n1": OK + b"Content-Type: application/json\r\n\r\n" + NODE,
}


class HttpServer:
    """A tiny HTTP/1.1 server: each path is a canned response; requests are recorded."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []  # head and body of each
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            self.requests.append(head + await reader.readexactly(int(length[1]) if length else 0))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()  # the client gave up, e.g. on a failed TLS handshake
            return
        path = head.split(b" ")[1].decode()
        if path == "/hang":
            await asyncio.sleep(30)
        writer.write(RESPONSES.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def serve(context: ssl.SSLContext | None = None) -> AsyncIterator[HttpServer]:
    server = HttpServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        try:
            yield server
        finally:
            # Server.close() in 3.11 leaves accepted connections open (the /hang one, say).
            for writer in server.writers:
                writer.transport.abort()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for probe.test and 127.0.0.1, and its key: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe.test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("probe.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    async with serve() as server:
        yield server


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
async def https_server(cert: tuple[Path, Path]) -> AsyncIterator[HttpServer]:
    async with serve(server_context(*cert)) as server:
        yield server


async def get(server: HttpServer, path: str, **kw: object) -> bytes:
    response = await request("GET", "127.0.0.1", server.port, path, timeout_s=2, **kw)  # type: ignore[arg-type]
    return response.body


# --- the body and what goes wrong ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ok", "/chunked", "/until-close"])
async def test_body_framings(http_server: HttpServer, path: str) -> None:
    response = await request("GET", "127.0.0.1", http_server.port, path, timeout_s=2)
    assert (response.status, response.reason, response.body) == (200, "OK", BODY)


@pytest.mark.parametrize("path", ["/big", "/big-chunked", "/big-until-close"])
async def test_body_is_bounded(http_server: HttpServer, path: str) -> None:
    with pytest.raises(HttpClientError) as caught:
        await get(http_server, path, max_body_bytes=1000)
    assert str(caught.value) == "body larger than 1000 bytes"


async def test_body_left_unread_is_not_bounded(http_server: HttpServer) -> None:
    assert await get(http_server, "/big", max_body_bytes=10, read_body=False) == b""


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/short", "connection closed before the response was complete"),
        ("/badlen", "not a valid HTTP response: Invalid character in Content-Length"),
        ("/garbage", "not a valid HTTP response: Bad status line"),
    ],
)
async def test_bad_answers_say_why(http_server: HttpServer, path: str, message: str) -> None:
    with pytest.raises(HttpClientError) as caught:
        await get(http_server, path)
    assert str(caught.value) == message


async def test_no_redirect_no_compression_own_user_agent(http_server: HttpServer) -> None:
    response = await request("GET", "127.0.0.1", http_server.port, "/moved", timeout_s=2)
    assert response.status == 301  # not followed
    head = http_server.requests[-1].decode().lower()
    assert "accept-encoding" not in head and "user-agent: kube-vrrp\r\n" in head


async def test_a_path_cannot_smuggle_a_header(http_server: HttpServer) -> None:
    # The model refuses such paths; the client still never puts them on the wire raw.
    await get(http_server, "/ok HTTP/1.0\r\nX-Evil: 1")
    request_line, *headers = http_server.requests[-1].decode().split("\r\n\r\n")[0].split("\r\n")
    assert request_line.startswith("GET /ok%20HTTP/1.0") and request_line.endswith(" HTTP/1.1")
    assert not any(h.lower().startswith("x-evil") for h in headers)


@pytest.mark.parametrize("headers", [{"Host": "a\r\nX-Evil: 1"}, {"X-Token": "t\n"}])
async def test_header_injection_is_refused(
    http_server: HttpServer, headers: dict[str, str]
) -> None:
    with pytest.raises(HttpClientError, match="request refused before sending"):
        await get(http_server, "/ok", headers=headers)
    assert http_server.requests == []


async def test_timeout(http_server: HttpServer) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError):
        await request("GET", "127.0.0.1", http_server.port, "/hang", timeout_s=0.2)
    assert loop.time() - start < 1


# --- what the Kubernetes API client needs -----------------------------------------------------


async def test_patch_with_a_json_body_and_a_bearer_token(http_server: HttpServer) -> None:
    patch = json.dumps({"metadata": {"labels": {"vrrp": "master"}}}).encode()
    response = await request(
        "PATCH",
        "127.0.0.1",
        http_server.port,
        "/api/v1/nodes/n1",
        headers={"authorization": "Bearer t0k3n", "Content-Type": "application/merge-patch+json"},
        body=patch,
        timeout_s=2,
    )
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == json.loads(NODE)
    head, _, sent = http_server.requests[-1].partition(b"\r\n\r\n")
    request_line, *lines = head.decode().split("\r\n")
    assert request_line == "PATCH /api/v1/nodes/n1 HTTP/1.1"
    assert {k: v.strip() for k, _, v in (line.partition(":") for line in lines)} == {
        "Host": f"127.0.0.1:{http_server.port}",
        "User-Agent": "kube-vrrp",
        "Accept": "*/*",
        "Authorization": "Bearer t0k3n",
        "Content-Type": "application/merge-patch+json",
        "Content-Length": str(len(patch)),
        "Connection": "close",
    }
    assert sent == patch


@pytest.mark.parametrize("host", [None, "probe.test", "probe.test:8443"])
async def test_tls_with_a_ca_file(
    https_server: HttpServer, cert: tuple[Path, Path], host: str | None
) -> None:
    # The certificate is checked against the Host header's name, else the address dialled.
    headers = {"Host": host} if host else {}
    context = tls_context(ca_file=str(cert[0]))
    assert await get(https_server, "/ok", tls=context, headers=headers) == BODY


@pytest.mark.parametrize(
    ("with_ca", "host", "why"),
    [(False, "probe.test", "self-signed certificate"), (True, "other.test", "Hostname mismatch")],
)
async def test_tls_certificate_refused(
    https_server: HttpServer, cert: tuple[Path, Path], with_ca: bool, host: str, why: str
) -> None:
    context = tls_context(ca_file=str(cert[0]) if with_ca else None)
    with pytest.raises(ConnectError) as caught:
        await get(https_server, "/ok", tls=context, headers={"Host": host})
    assert str(caught.value).startswith(f"TLS certificate not accepted: {why}"), caught.value
    assert https_server.requests == []


async def test_tls_without_verification(https_server: HttpServer) -> None:
    assert await get(https_server, "/ok", tls=tls_context(verify=False)) == BODY


async def test_tls_to_a_plain_http_server() -> None:
    async def plain(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    async with await asyncio.start_server(plain, "127.0.0.1", 0) as listener:
        port = listener.sockets[0].getsockname()[1]
        with pytest.raises(ConnectError) as caught:
            await request("GET", "127.0.0.1", port, "/", tls=tls_context(False), timeout_s=2)
    assert str(caught.value).startswith("TLS error: "), caught.value


# --- connection errors, describe, split_url ---------------------------------------------------


async def test_connection_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ConnectError) as caught:
        await request("GET", "127.0.0.1", closed, "/", timeout_s=2)
    assert str(caught.value) == f"127.0.0.1:{closed}: connection refused"
    assert caught.value.reason == "connection refused"
    with pytest.raises(ConnectError, match=r"^port must be in 1\.\.65535, not 0$"):
        await request("GET", "127.0.0.1", 0, "/", timeout_s=2)
    with pytest.raises(ConnectError) as caught:
        await request("GET", "kvrrp-client.invalid", 80, "/", timeout_s=5)
    assert str(caught.value).startswith("cannot resolve host 'kvrrp-client.invalid': ")
    assert caught.value.reason.startswith("cannot resolve host: ")


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (HttpClientError("body larger than 5 bytes"), "body larger than 5 bytes"),
        (ConnectionRefusedError(111, "Connect call failed ('::1', 80)"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve host: Name or s"),
        (asyncio.IncompleteReadError(b"", 10), "connection closed before the response was compl"),
        (EOFError(), "connection closed before the response was complete"),
        (RuntimeError("bug"), "RuntimeError: bug"),
        (ValueError(), "ValueError"),
    ],
)
def test_describe(error: BaseException, text: str) -> None:
    assert describe(error).startswith(text)


def test_split_url() -> None:
    assert split_url("https://alice:s%40cret@[fd00::1]:8443/hooks/vrrp?src=a#frag") == (
        "https",
        "fd00::1",
        8443,
        "/hooks/vrrp?src=a",
        "alice:s@cret",
    )
    assert split_url("http://Example.test?x=1") == ("http", "example.test", 80, "/?x=1", None)
    assert split_url("https://example.test")[2] == 443
    for url, why in [
        ("ftp://example.test/", "scheme must be http or https"),
        ("http:///path", "no host"),
        ("http://example.test:99999/", "out of range"),
        ("http://user:pa ss@example.test/", "without spaces"),
        ("http://example.test/\r\nX: 1", "without spaces"),
    ]:
        with pytest.raises(ValueError, match=why) as caught:
            split_url(url)
        assert "pa ss" not in str(caught.value)
