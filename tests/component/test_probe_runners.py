"""Probe runners against real local processes, sockets and files; loopback traffic only."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.component.test_httpclient import BODY, HttpServer, self_signed, serve, server_context
from vrrpd.probes.runners import (
    ExecProbe,
    FileProbe,
    HttpProbe,
    IcmpProbe,
    InterfaceProbe,
    ProbeOutcome,
    TcpProbe,
    _strtol,
    run_forever,
)

# --- exec -------------------------------------------------------------------------------------


def _marked_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries the marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"KVRRP_TEST_MARK={marker}".encode() in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


async def _wait_gone(marker: str) -> list[int]:
    """The marked processes still alive after a short grace: SIGKILL lands asynchronously."""
    for _ in range(100):
        if not (alive := _marked_processes(marker)):
            return []
        await asyncio.sleep(0.01)
    return alive


async def test_exec_exit_0_is_success() -> None:
    outcome = await ExecProbe(("true",), timeout_s=5).check()
    assert outcome.ok, outcome
    assert outcome.latency_s >= 0


async def test_exec_non_zero_fails_with_its_status_and_output() -> None:
    outcome = await ExecProbe(("sh", "-c", "echo haproxy is down >&2; exit 3"), 5).check()
    assert not outcome.ok
    assert outcome.detail == "exit status 3: haproxy is down"


async def test_exec_gets_env_additions() -> None:
    probe = ExecProbe(("sh", "-c", 'test "$PROBE_X" = y && test -n "$PATH"'), 5, {"PROBE_X": "y"})
    assert (await probe.check()).ok


async def test_exec_killed_by_signal() -> None:
    outcome = await ExecProbe(("sh", "-c", "kill -TERM $$"), 5).check()
    assert (outcome.ok, outcome.detail) == (False, "killed by signal SIGTERM")


@pytest.mark.parametrize("command", ["/nonexistent/kvrrp-check", "kvrrp-no-such-command"])
async def test_exec_missing_command(command: str) -> None:
    outcome = await ExecProbe((command, "arg"), 5).check()
    assert (outcome.ok, outcome.detail) == (False, f"command not found: {command}")


async def test_exec_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    outcome = await ExecProbe((str(script),), 5).check()
    # root may execute nothing without an x bit either
    assert (outcome.ok, outcome.detail) == (False, f"permission denied: {script}")


async def test_exec_empty_command() -> None:
    assert (await ExecProbe((), 5).check()).detail == "empty command"


async def test_exec_timeout_kills_the_whole_process_group() -> None:
    marker = uuid.uuid4().hex
    probe = ExecProbe(("sh", "-c", "sleep 30 & sleep 30"), 0.5, {"KVRRP_TEST_MARK": marker})
    task = asyncio.create_task(probe.check())
    await asyncio.sleep(0.3)
    assert len(_marked_processes(marker)) >= 2  # sh (or the sleep it exec'd) and the background one
    outcome = await task
    assert not outcome.ok
    assert outcome.detail == "timed out after 0.5s; killed its process group"
    assert 0.5 <= outcome.latency_s < 2
    assert await _wait_gone(marker) == []


async def test_exec_cancelled_kills_the_whole_process_group() -> None:
    marker = uuid.uuid4().hex
    probe = ExecProbe(("sh", "-c", "sleep 30 & sleep 30"), 30, {"KVRRP_TEST_MARK": marker})
    task = asyncio.create_task(probe.check())
    await asyncio.sleep(0.3)
    assert len(_marked_processes(marker)) >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_gone(marker) == []


async def test_exec_background_child_holding_output_does_not_delay_the_result() -> None:
    marker = uuid.uuid4().hex
    # The background sleep inherits stdout; with a pipe we would wait for it to exit.
    probe = ExecProbe(("sh", "-c", "sleep 30 & exit 0"), 5, {"KVRRP_TEST_MARK": marker})
    try:
        outcome = await probe.check()
        assert outcome.ok
        assert outcome.latency_s < 2
    finally:
        for pid in _marked_processes(marker):
            os.kill(pid, 9)


# --- tcp --------------------------------------------------------------------------------------


@pytest.fixture
async def tcp_port() -> AsyncIterator[int]:
    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_tcp_connects(tcp_port: int) -> None:
    outcome = await TcpProbe("127.0.0.1", tcp_port, 2).check()
    assert (outcome.ok, outcome.detail) == (True, f"connected to 127.0.0.1:{tcp_port}")


async def test_tcp_closed_port_is_refused() -> None:
    port = _closed_port()
    outcome = await TcpProbe("127.0.0.1", port, 2).check()
    assert (outcome.ok, outcome.detail) == (False, f"127.0.0.1:{port}: connection refused")


@pytest.mark.parametrize("port", [0, -1, 65536])
async def test_tcp_bad_port(port: int) -> None:
    outcome = await TcpProbe("127.0.0.1", port, 2).check()
    assert (outcome.ok, outcome.detail) == (False, f"port must be in 1..65535, not {port}")


async def test_tcp_unresolvable_host() -> None:
    outcome = await TcpProbe("kvrrp-probe.invalid", 80, 5).check()
    assert not outcome.ok
    assert outcome.detail.startswith("cannot resolve host 'kvrrp-probe.invalid': ")


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
async def test_bad_timeout_fails_without_running(timeout: float) -> None:
    outcome = await TcpProbe("127.0.0.1", 1, timeout).check()
    assert not outcome.ok
    assert outcome.detail.startswith("timeout must be a positive number of seconds")


# --- http / https -----------------------------------------------------------------------------


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    async with serve() as server:
        yield server


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[HttpServer]:
    async with serve(server_context(*self_signed(tmp_path))) as server:
        yield server


def _http(server: HttpServer, path: str, **kw: object) -> HttpProbe:
    return HttpProbe("127.0.0.1", timeout_s=2, port=server.port, path=path, **kw)  # type: ignore[arg-type]


async def test_http_status_match(http_server: HttpServer) -> None:
    outcome = await _http(http_server, "/ok").check()
    assert (outcome.ok, outcome.detail) == (True, "status 200")


async def test_http_sends_request_with_default_host_header(http_server: HttpServer) -> None:
    await _http(http_server, "/ok").check()
    lines = http_server.requests[-1].decode().split("\r\n")
    assert lines[0] == "GET /ok HTTP/1.1"
    assert f"Host: 127.0.0.1:{http_server.port}" in lines
    assert "Connection: close" in lines


async def test_http_host_header_override(http_server: HttpServer) -> None:
    outcome = await _http(http_server, "/ok", host_header="ingress.example.com").check()
    assert outcome.ok
    assert "Host: ingress.example.com" in http_server.requests[-1].decode().split("\r\n")


async def test_http_non_matching_status(http_server: HttpServer) -> None:
    outcome = await _http(http_server, "/down").check()
    assert (outcome.ok, outcome.detail) == (False, "status 503, expected 200")


async def test_http_redirect_is_a_status_not_followed(http_server: HttpServer) -> None:
    outcome = await _http(http_server, "/moved").check()
    assert (outcome.ok, outcome.detail) == (False, "status 301, expected 200")
    assert len(http_server.requests) == 1


async def test_http_expected_status_list(http_server: HttpServer) -> None:
    assert (await _http(http_server, "/down", expected_status=(200, 503)).check()).ok
    outcome = await _http(http_server, "/nope", expected_status=(200, 204)).check()
    assert outcome.detail == "status 404, expected 200, 204"


@pytest.mark.parametrize("path", ["/ok", "/chunked", "/until-close"])
async def test_http_body_match_and_digest(http_server: HttpServer, path: str) -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    outcome = await _http(http_server, path, body_contains="nominal", body_sha256=digest).check()
    assert (outcome.ok, outcome.detail) == (True, "status 200, body matched")


async def test_http_body_mismatch(http_server: HttpServer) -> None:
    outcome = await _http(http_server, "/ok", body_contains="degraded").check()
    assert (outcome.ok, outcome.detail) == (
        False,
        "status 200 but the body does not contain 'degraded'",
    )


async def test_http_digest_mismatch(http_server: HttpServer) -> None:
    outcome = await _http(http_server, "/ok", body_sha256="00" * 32).check()
    assert not outcome.ok
    assert outcome.detail == f"status 200 but body sha256 is {hashlib.sha256(BODY).hexdigest()}"


async def test_http_body_is_bounded(http_server: HttpServer) -> None:
    outcome = await _http(http_server, "/big", body_contains="x", max_body_bytes=1000).check()
    assert (outcome.ok, outcome.detail) == (False, "body larger than 1000 bytes")


async def test_http_timeout(http_server: HttpServer) -> None:
    outcome = await HttpProbe("127.0.0.1", 0.3, port=http_server.port, path="/hang").check()
    assert (outcome.ok, outcome.detail) == (False, "timed out after 0.3s")
    assert 0.3 <= outcome.latency_s < 1


async def test_http_refused() -> None:
    port = _closed_port()
    outcome = await HttpProbe("127.0.0.1", 2, port=port).check()
    assert (outcome.ok, outcome.detail) == (False, f"127.0.0.1:{port}: connection refused")


async def test_https_verify_off_accepts_self_signed(https_server: HttpServer) -> None:
    probe = _http(https_server, "/ok", tls=True, tls_verify=False, body_contains="nominal")
    outcome = await probe.check()
    assert (outcome.ok, outcome.detail) == (True, "status 200, body matched")


async def test_https_verify_on_rejects_self_signed(https_server: HttpServer) -> None:
    probe = _http(https_server, "/ok", tls=True, host_header="probe.test")
    outcome = await probe.check()
    assert not outcome.ok
    assert outcome.detail.startswith("TLS certificate not accepted: "), outcome.detail
    assert https_server.requests == []


# --- icmp -------------------------------------------------------------------------------------


def _icmp_available() -> bool:
    for kind in (socket.SOCK_RAW, socket.SOCK_DGRAM):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
            return True
        except PermissionError:
            continue
    return False


needs_icmp = pytest.mark.skipif(
    not _icmp_available(),
    reason="icmp probes need root (CAP_NET_RAW) or net.ipv4.ping_group_range covering our gid",
)


@needs_icmp
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_icmp_echo_to_loopback(host: str) -> None:
    outcome = await IcmpProbe(host, 2).check()
    assert (outcome.ok, outcome.detail) == (True, f"echo reply from {ipaddress.ip_address(host)}")
    assert outcome.latency_s < 1


@needs_icmp
async def test_icmp_many_at_once_match_their_own_replies() -> None:
    outcomes = await asyncio.gather(*(IcmpProbe("127.0.0.1", 2).check() for _ in range(20)))
    assert all(o.ok for o in outcomes)


async def test_icmp_unresolvable_host() -> None:
    outcome = await IcmpProbe("kvrrp-probe.invalid", 5).check()
    assert not outcome.ok
    assert outcome.detail.startswith("cannot resolve host 'kvrrp-probe.invalid': ")


# --- file -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "ok", "value"),
    [
        ("0\n", True, 0),
        ("1\n", False, 1),
        ("-5", False, -5),
        ("  0x10 trailing", False, 16),  # strtol base 0: hex
        ("010", False, 8),  # ... and octal
        ("", True, 0),  # keepalived: no number reads as 0
        ("not a number", True, 0),
    ],
)
async def test_file_probe(tmp_path: Path, content: str, ok: bool, value: int) -> None:
    path = tmp_path / "state"
    path.write_text(content)
    outcome = await FileProbe(str(path)).check()
    assert (outcome.ok, outcome.value, outcome.detail) == (ok, value, f"{path} holds {value}")


async def test_file_missing_reads_as_0(tmp_path: Path) -> None:
    # keepalived: a missing file is 0 (its init_file creates it with 0)
    outcome = await FileProbe(str(tmp_path / "gone")).check()
    assert (outcome.ok, outcome.value) == (True, 0)
    assert outcome.detail == f"no file {tmp_path / 'gone'}: 0, as keepalived reads it"


async def test_file_out_of_range_gives_no_number(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("99999999999")
    outcome = await FileProbe(str(tmp_path / "f")).check()
    assert (outcome.ok, outcome.value) == (False, None)  # the tracker keeps the last one
    assert "out of the 32-bit range" in outcome.detail


async def test_file_directory_fails_with_no_number(tmp_path: Path) -> None:
    outcome = await FileProbe(str(tmp_path)).check()
    assert (outcome.ok, outcome.value) == (False, None)
    assert outcome.detail.startswith(f"cannot read {tmp_path}: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", 42), ("+7", 7), ("-0x1F", -31), ("0x", 0), ("07", 7), ("09", 0), ("x", None)],
)
def test_strtol(text: str, expected: int | None) -> None:
    assert _strtol(text) == expected


# --- interface --------------------------------------------------------------------------------


async def test_interface_lo_is_up() -> None:
    outcome = await InterfaceProbe("lo").check()
    assert outcome.ok, outcome
    assert outcome.detail.startswith("lo is up (operstate ")


async def test_interface_missing() -> None:
    outcome = await InterfaceProbe("kvrrpnone0").check()
    assert (outcome.ok, outcome.detail) == (False, "no such interface: kvrrpnone0")


@pytest.mark.parametrize("name", ["", "../lo", "..", "a" * 16])
async def test_interface_bad_name(name: str) -> None:
    outcome = await InterfaceProbe(name).check()
    assert (outcome.ok, outcome.detail) == (False, f"not an interface name: {name!r}")


@pytest.mark.parametrize(
    ("flags", "operstate", "carrier", "ok", "detail"),
    [
        ("0x1003", "up", "1", True, "eth9 is up (operstate up, carrier 1)"),
        ("0x9", "unknown", "1", True, "eth9 is up (operstate unknown, carrier 1)"),  # like lo
        ("0x1003", "down", "0", False, "eth9 is down (operstate down, carrier 0)"),  # no carrier
        ("0x1002", "down", None, False, "eth9 is down (administratively down, operstate down)"),
        ("0x1003", "dormant", "1", False, "eth9 is down (operstate dormant, carrier 1)"),
    ],
)
async def test_interface_flags(
    tmp_path: Path, flags: str, operstate: str, carrier: str | None, ok: bool, detail: str
) -> None:
    link = tmp_path / "eth9"
    link.mkdir()
    (link / "flags").write_text(flags + "\n")
    (link / "operstate").write_text(operstate + "\n")
    if carrier is not None:
        (link / "carrier").write_text(carrier + "\n")
    outcome = await InterfaceProbe("eth9", sysfs_net=str(tmp_path)).check()
    assert (outcome.ok, outcome.detail) == (ok, detail)


# --- run_forever ------------------------------------------------------------------------------


def _recorder(
    durations: list[float],
) -> tuple[Callable[[], Awaitable[ProbeOutcome]], list[float]]:
    """A check taking the given times in turn; returns it and the loop times it started at."""
    starts: list[float] = []

    async def check() -> ProbeOutcome:
        loop = asyncio.get_running_loop()
        starts.append(loop.time())
        await asyncio.sleep(durations[min(len(starts) - 1, len(durations) - 1)])
        return ProbeOutcome(True, "ok", 0)

    return check, starts


@pytest.mark.looptime
async def test_run_forever_keeps_a_fixed_grid() -> None:
    check, starts = _recorder([0.3, 0.7, 0.1, 0.9, 0.2])
    results: list[ProbeOutcome] = []
    task = asyncio.create_task(run_forever(check, 1.0, results.append))
    await asyncio.sleep(4.5)
    task.cancel()  # while it sleeps between slots
    with pytest.raises(asyncio.CancelledError):
        await task
    origin = starts[0]
    assert [round(t - origin, 6) for t in starts] == [0, 1, 2, 3, 4]  # no drift
    assert len(results) == 5


@pytest.mark.looptime
async def test_run_forever_skips_slots_a_slow_check_overran() -> None:
    check, starts = _recorder([2.5, 0.1])
    task = asyncio.create_task(run_forever(check, 1.0, lambda _: None))
    await asyncio.sleep(4.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [round(t - starts[0], 6) for t in starts] == [0, 3, 4]


@pytest.mark.looptime
async def test_run_forever_survives_a_raising_check_and_handler() -> None:
    calls = 0

    async def check() -> ProbeOutcome:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug in a check")

    seen: list[ProbeOutcome] = []

    def handler(outcome: ProbeOutcome) -> None:
        seen.append(outcome)
        raise ValueError("bug in a handler")

    task = asyncio.create_task(run_forever(check, 1.0, handler))
    await asyncio.sleep(2.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 3
    assert [o.detail for o in seen] == ["RuntimeError: bug in a check"] * 3


async def test_run_forever_rejects_a_bad_interval() -> None:
    check, _ = _recorder([0])
    with pytest.raises(ValueError, match="interval"):
        await run_forever(check, 0, lambda _: None)
