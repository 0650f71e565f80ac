"""Probe runners: one asyncio check per probe kind (exec, tcp, http/https, icmp, file, interface).

Each probe is a frozen dataclass of its settings with ``async def check() -> ProbeOutcome``.
A check never raises (bad settings, missing commands, unresolvable hosts all come back as a
failed outcome whose ``detail`` a person can act on), never blocks the event loop, and ends
within its timeout. Cancelling a check is safe: an exec probe kills its process group first.
Only ``asyncio.CancelledError`` escapes, so a caller can always stop a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, NoReturn, Protocol

from vrrpd import httpclient
from vrrpd.config import (
    Check,
    ExecCheck,
    FileCheck,
    HttpCheck,
    IcmpCheck,
    InterfaceCheck,
    ProbeConfig,
    TcpCheck,
)
from vrrpd.httpclient import describe

log = logging.getLogger(__name__)

DETAIL_OUTPUT_BYTES = 256  # how much of a failing command's output goes into the detail
REAP_GRACE_S = 2.0  # how long to wait for a killed command to be reaped


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    detail: str  # why it failed, or a short note of what passed ("status 200")
    latency_s: float
    value: int | None = None  # the number a file probe read (keepalived multiplies it by weight)


class Probe(Protocol):
    async def check(self) -> ProbeOutcome: ...


class _Failed(Exception):
    """A check found the probe failing; the message is the outcome's detail."""


async def _measure(
    timeout_s: float | None, body: Callable[[], Awaitable[tuple[bool, str, int | None]]]
) -> ProbeOutcome:
    """Run ``body`` under the timeout: it returns (ok, detail, value), or raises to fail."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(timeout_s):
            ok, detail, number = await body()
    except TimeoutError:
        return ProbeOutcome(False, f"timed out after {timeout_s:g}s", loop.time() - start)
    except Exception as exc:  # a probe's failure is data, never a crash of the daemon
        detail = str(exc) if isinstance(exc, _Failed) else describe(exc)
        return ProbeOutcome(False, detail, loop.time() - start)
    return ProbeOutcome(ok, detail, loop.time() - start, number)


def _invalid_timeout(timeout_s: float) -> ProbeOutcome | None:
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        return ProbeOutcome(
            False, f"timeout must be a positive number of seconds, not {timeout_s}", 0
        )
    return None


# --- exec -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecProbe:
    """Run a command; exit status 0 is success (keepalived vrrp_script).

    The command gets its own session, so on timeout (or cancellation) SIGKILL to the process
    group takes whatever it forked too. Output goes to a temporary file rather than a pipe: a
    background child holding a pipe open would keep us waiting for an EOF that never comes.
    """

    argv: tuple[str, ...]
    timeout_s: float
    env: Mapping[str, str] = field(default_factory=dict)  # added to the daemon's environment

    async def check(self) -> ProbeOutcome:
        if bad := _invalid_timeout(self.timeout_s):
            return bad
        if not self.argv or not self.argv[0]:
            return ProbeOutcome(False, "empty command", 0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            detail, ok = await self._run(start)
        except Exception as exc:
            detail, ok = describe(exc), False
        return ProbeOutcome(ok, detail, loop.time() - start)

    async def _run(self, start: float) -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryFile() as output:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    start_new_session=True,
                )
            except FileNotFoundError:
                return f"command not found: {self.argv[0]}", False
            except PermissionError:
                return f"permission denied: {self.argv[0]}", False
            try:
                remaining = self.timeout_s - (loop.time() - start)
                status = await asyncio.wait_for(proc.wait(), max(remaining, 0))
            except TimeoutError:
                _kill_group(proc.pid)
                # Bounded: a leader stuck in uninterruptible sleep must not hold the probe.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), REAP_GRACE_S)
                return f"timed out after {self.timeout_s:g}s; killed its process group", False
            except asyncio.CancelledError:
                # The child watcher reaps the leader once it dies; we must not outlive the
                # cancellation by waiting here.
                _kill_group(proc.pid)
                raise
            if status == 0:
                return "exit status 0", True
            reason = (
                f"killed by signal {_signal_name(-status)}"
                if status < 0
                else f"exit status {status}"
            )
            if tail := _tail(output):
                reason += f": {tail}"
            return reason, False


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # real-time signals have no name of their own
        return str(number)


def _kill_group(pgid: int) -> None:
    # start_new_session made the leader's pid the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(output: IO[bytes]) -> str:
    # A local temporary file of at most a few KB: reading it does not stall the loop.
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - DETAIL_OUTPUT_BYTES))
    text = output.read().decode(errors="replace").strip()
    return " | ".join(line for line in text.splitlines() if line.strip())


# --- tcp --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TcpProbe:
    """Connect to host:port; an established connection is success."""

    host: str
    port: int
    timeout_s: float

    async def check(self) -> ProbeOutcome:
        if bad := _invalid_timeout(self.timeout_s):
            return bad

        async def body() -> tuple[bool, str, None]:
            where = httpclient.hostport(self.host, self.port)
            if not 1 <= self.port <= 65535:
                raise _Failed(f"port must be in 1..65535, not {self.port}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except socket.gaierror as exc:
                raise _Failed(f"cannot resolve host {self.host!r}: {exc.strerror}") from exc
            except OSError as exc:
                raise _Failed(f"{where}: {describe(exc)}") from exc
            writer.close()
            with contextlib.suppress(OSError):  # the answer is in: it connected
                await writer.wait_closed()
            return True, f"connected to {where}", None

        return await _measure(self.timeout_s, body)


# --- http / https -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpProbe:
    """GET a path over HTTP/1.1 (optionally TLS); success is an expected status and body.

    The body is read (through ``vrrpd.httpclient``, on aiohttp) only when a body check asks
    for it, and never more than ``max_body_bytes``. Redirects are not followed (keepalived's
    HTTP_GET does not either): a 301 is a status like any other.
    """

    host: str
    timeout_s: float
    port: int | None = None  # 80 or 443 by default
    path: str = "/"
    tls: bool = False
    tls_verify: bool = True
    host_header: str | None = None  # sent as Host (and used for TLS SNI and verification)
    expected_status: tuple[int, ...] = (200,)
    body_contains: str | None = None
    body_sha256: str | None = None  # hex digest of the whole body
    max_body_bytes: int = 1 << 20

    async def check(self) -> ProbeOutcome:
        if bad := _invalid_timeout(self.timeout_s):
            return bad
        return await _measure(self.timeout_s, self._get)

    async def _get(self) -> tuple[bool, str, None]:
        check_body = self.body_contains is not None or self.body_sha256 is not None
        headers = {"User-Agent": "kube-vrrp-probe"}  # services filter their access logs by it
        if self.host_header is not None:
            headers["Host"] = self.host_header
        response = await httpclient.request(
            "GET",
            self.host,
            self.port if self.port is not None else 443 if self.tls else 80,
            self.path if self.path.startswith("/") else "/" + self.path,
            headers=headers,
            tls=httpclient.tls_context(self.tls_verify) if self.tls else None,
            timeout_s=self.timeout_s,
            max_body_bytes=self.max_body_bytes,
            read_body=check_body,
        )
        status, body = response.status, response.body
        if status not in self.expected_status:
            wanted = ", ".join(str(s) for s in self.expected_status)
            raise _Failed(f"status {status}, expected {wanted}")
        if not check_body:
            return True, f"status {status}", None
        if self.body_contains is not None and self.body_contains.encode() not in body:
            raise _Failed(f"status {status} but the body does not contain {self.body_contains!r}")
        if self.body_sha256 is not None:
            digest = hashlib.sha256(body).hexdigest()
            if digest != self.body_sha256.lower():
                raise _Failed(f"status {status} but body sha256 is {digest}")
        return True, f"status {status}, body matched", None


# --- icmp -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IcmpProbe:
    """Send one ICMP echo request (icmplib); success is its echo reply within the timeout.

    A raw socket when the daemon may open one (CAP_NET_RAW, which it has), else an
    unprivileged ping socket where net.ipv4.ping_group_range allows one; either lives in the
    daemon's network namespace. Replies are matched by identifier and sequence.
    """

    host: str
    timeout_s: float
    family: Literal[4, 6] | None = None  # None: whatever the name resolves to first

    async def check(self) -> ProbeOutcome:
        if bad := _invalid_timeout(self.timeout_s):
            return bad
        return await _measure(self.timeout_s, self._ping)

    async def _ping(self) -> tuple[bool, str, None]:
        import icmplib  # here: only a daemon with an icmp probe loads it

        loop = asyncio.get_running_loop()
        family = {4: socket.AF_INET, 6: socket.AF_INET6, None: socket.AF_UNSPEC}[self.family]
        try:  # resolved here, for a reason a person can act on (icmplib's has none)
            infos = await loop.getaddrinfo(self.host, None, family=family, type=socket.SOCK_RAW)
        except socket.gaierror as exc:
            raise _Failed(f"cannot resolve host {self.host!r}: {exc.strerror}") from exc
        address = str(infos[0][4][0])
        for privileged in (True, False):  # a raw socket, else a ping socket
            try:
                host = await icmplib.async_ping(
                    address, count=1, timeout=self.timeout_s, privileged=privileged
                )
                break
            except icmplib.SocketPermissionError:
                continue
            except icmplib.ICMPLibError as exc:
                raise _Failed(f"cannot ping {address}: {exc}") from exc
        else:
            raise _Failed(
                "no ICMP socket: needs CAP_NET_RAW, or net.ipv4.ping_group_range covering "
                f"group {os.getgid()}"
            )
        if not host.is_alive:
            raise _Failed(f"no echo reply from {address} within {self.timeout_s:g}s")
        return True, f"echo reply from {address}", None


# --- file -------------------------------------------------------------------------------------


def _strtol(text: str) -> int | None:
    """C ``strtol(text, NULL, 0)`` as keepalived uses it: the leading number, or None."""
    s = text.lstrip()
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    base, digits = 10, "0123456789"
    if s[:2].lower() == "0x" and s[2:3].lower() in "0123456789abcdef" and s[2:3]:
        base, digits, s = 16, "0123456789abcdef", s[2:]
    elif s[:1] == "0":
        base, digits = 8, "01234567"
    n = 0
    for i, c in enumerate(s.lower()):
        if c not in digits:
            if i == 0:
                return None
            break
        n = n * base + int(c, base)
    else:
        if not s:
            return None
    return sign * n


@dataclass(frozen=True)
class FileProbe:
    """keepalived track_file: the file holds an integer, returned as ``value``; the tracker
    multiplies it by the weight (`vrrpd.probes.tracking`). ``ok`` is the number being 0, the
    meaning it has under weight 0.

    As in keepalived, the number is read like ``strtol(s, NULL, 0)``, a file with no number
    and a missing file read as 0 (keepalived's init_file creates it with 0), and a number out
    of the 32-bit range is not taken: the outcome fails with no value and the tracker keeps
    the last one. A file that exists and cannot be read fails the same way (keepalived reads
    it as 0; here the daemon says why in the probe's detail).
    """

    path: str
    timeout_s: float = 1.0

    async def check(self) -> ProbeOutcome:
        if bad := _invalid_timeout(self.timeout_s):
            return bad
        return await _measure(self.timeout_s, self._read)

    async def _read(self) -> tuple[bool, str, int]:
        # In a thread: the file may sit on a filesystem that hangs (NFS, FUSE).
        try:
            data = await asyncio.to_thread(_read_head_bytes, Path(self.path))
        except FileNotFoundError:
            return True, f"no file {self.path}: 0, as keepalived reads it", 0
        except OSError as exc:
            raise _Failed(f"cannot read {self.path}: {describe(exc)}") from exc
        number = _strtol(data.decode("latin-1")) or 0
        if not -(2**31) <= number <= 2**31:  # keepalived's own bounds
            raise _Failed(f"{self.path} holds {number}, out of the 32-bit range; ignored")
        return number == 0, f"{self.path} holds {number}", number


def _read_head_bytes(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(127)  # keepalived reads 128 bytes minus the terminator


# --- interface --------------------------------------------------------------------------------

IFF_UP = 0x1  # <linux/if.h>


@dataclass(frozen=True)
class InterfaceProbe:
    """The link is up: keepalived's FLAGS_UP test, IFF_UP and IFF_RUNNING both set.

    sysfs ``flags`` holds the administrative flags only; the kernel derives IFF_RUNNING
    (``dev_get_flags``) from the operational state being "up" or "unknown" (``netif_oper_up``;
    loopback and some virtual links say "unknown"), so that is the test here. Carrier loss
    turns operstate to "down" and fails the probe.
    """

    interface: str
    timeout_s: float = 1.0
    sysfs_net: str = "/sys/class/net"  # a test can point this at a fake tree

    async def check(self) -> ProbeOutcome:
        if bad := _invalid_timeout(self.timeout_s):
            return bad
        return await _measure(self.timeout_s, self._read)

    async def _read(self) -> tuple[bool, str, None]:
        name = self.interface
        if not name or "/" in name or name in (".", "..") or len(name) > 15:
            raise _Failed(f"not an interface name: {name!r}")
        up, note = await asyncio.to_thread(_link_state, Path(self.sysfs_net) / name)
        if not up:
            raise _Failed(f"{name} is down ({note})")
        return True, f"{name} is up ({note})", None


def _link_state(base: Path) -> tuple[bool, str]:
    try:
        flags = int((base / "flags").read_text().strip(), 16)
    except FileNotFoundError as exc:
        raise _Failed(f"no such interface: {base.name}") from exc
    except ValueError as exc:
        raise _Failed(f"cannot parse {base / 'flags'}") from exc
    operstate = _sysfs_text(base / "operstate")
    carrier = _sysfs_text(base / "carrier")  # EINVAL while the link is administratively down
    if not flags & IFF_UP:
        return False, f"administratively down, operstate {operstate}"
    return operstate in ("up", "unknown"), f"operstate {operstate}, carrier {carrier}"


def _sysfs_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return "n/a"


# --- scheduling -------------------------------------------------------------------------------


async def run_forever(
    check: Callable[[], Awaitable[ProbeOutcome]],
    interval_s: float,
    on_result: Callable[[ProbeOutcome], object],
) -> NoReturn:
    """Call ``check`` now and then on a fixed grid of ``interval_s``; hand each outcome on.

    The grid is anchored at the first call, so slow checks do not make the schedule drift;
    a check that overruns its slot skips the slots it covered rather than running back to
    back (keepalived likewise skips a run while the previous one is still going). Cancel the
    task to stop; an exception from ``on_result`` is logged and the loop goes on, because a
    bug in a consumer must not silence a health probe.
    """
    if not (interval_s > 0 and math.isfinite(interval_s)):
        raise ValueError(f"interval must be a positive number of seconds, not {interval_s}")
    loop = asyncio.get_running_loop()
    origin = loop.time()
    slot = 0
    while True:
        try:
            outcome = await check()
        except Exception as exc:  # checks here never raise; a foreign one might
            outcome = ProbeOutcome(False, describe(exc), 0.0)
        try:
            on_result(outcome)
        except Exception:
            log.exception("probe result handler failed")
        now = loop.time()
        slot = max(slot + 1, math.floor((now - origin) / interval_s) + 1)
        await asyncio.sleep(origin + slot * interval_s - now)


def probe_for(config: ProbeConfig) -> Probe:
    """The runner for one probe of a VirtualIP, as the spec resolved it."""
    return runner(config.check, config.timeout_cs / 100)


@functools.singledispatch
def runner(check: Check, timeout_s: float) -> Probe:
    """The runner of a check: one registered per kind (vrrpd.spec.probes.PROBE_KINDS)."""
    raise TypeError(f"no probe runner for {type(check).__name__}")


@runner.register
def _exec(check: ExecCheck, timeout_s: float) -> Probe:
    return ExecProbe(check.command, timeout_s, dict(check.env))


@runner.register
def _tcp(check: TcpCheck, timeout_s: float) -> Probe:
    return TcpProbe(check.host, check.port, timeout_s)


@runner.register
def _http(check: HttpCheck, timeout_s: float) -> Probe:
    return HttpProbe(
        check.host, timeout_s, port=check.port, path=check.path,
        tls=check.scheme == "https", tls_verify=check.verify_tls,
        host_header=check.host_header, expected_status=check.expect_status,
        body_contains=check.body_contains, body_sha256=check.body_sha256,
    )  # fmt: skip


@runner.register
def _icmp(check: IcmpCheck, timeout_s: float) -> Probe:
    return IcmpProbe(check.host, timeout_s)


@runner.register
def _file(check: FileCheck, timeout_s: float) -> Probe:
    return FileProbe(check.path, timeout_s)


@runner.register
def _interface(check: InterfaceCheck, timeout_s: float) -> Probe:
    return InterfaceProbe(check.name, timeout_s)
