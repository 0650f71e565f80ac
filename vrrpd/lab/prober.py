"""The client-side outage meter: ICMP echo to a target every few milliseconds, and what it saw.

`Prober(lab, "192.168.77.100").start()` runs `python -m vrrpd.lab.prober` inside the lab's
client namespace; `stop()` returns a `ProbeResult`. The child sends one echo request per
interval on a fixed schedule (raw ICMP or ICMPv6 socket) and reads replies on an AF_PACKET
socket, which also tells it the Ethernet source of each reply: the MAC of the node that
answers for the target, so a test sees a VIP move between nodes.

Outage, defined on probe send times. Probe k is sent at t_k; it is *answered* if its echo
reply arrives within `timeout` (default 1 s; a later reply counts as lost, as a client with
that timeout would see it). A *gap* is a maximal run of unanswered probes a..b. Its outage
is t_{b+1} - t_a: from sending the first probe that went unanswered to sending the first
one that was answered again. The true outage lies within one interval either side, so a
single lost probe reads as one interval. A gap still open when probing stops is reported
as t_b + interval - t_a (a lower bound) and flags the result `unrecovered`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vrrpd.lab.netns import Lab, Node

PAYLOAD_MAGIC = b"kvprobe\0"
_PAYLOAD = struct.Struct("!8sQ")  # magic, 64-bit probe index: no 16-bit sequence wrap
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
SOL_RAW = 255
ICMP_FILTER = 1  # linux/icmp.h: bitmask of ICMP types a raw socket does not receive
ICMP6_FILTER = 1  # linux/icmpv6.h
ICMP_ECHO, ICMP_ECHOREPLY = 8, 0
ICMP6_ECHO, ICMP6_ECHOREPLY = 128, 129


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the client saw. Times in seconds; offsets count from the first probe sent."""

    sent: int
    received: int
    lost: int  # unanswered within the timeout, late replies included
    gaps: list[float]  # the outage of each gap, in order (see the module docstring)
    max_outage: float  # the longest gap's outage; 0.0 without loss
    gap_starts: list[float] = field(default_factory=list)  # offset of each gap's first probe
    unrecovered: bool = False  # probing stopped inside a gap
    late: int = 0  # replies that came after the timeout
    duration: float = 0.0  # first to last probe sent
    # (offset, MAC) of the first reply and of each reply from another MAC than the one before.
    answerers: list[tuple[float, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        data = dict(data)
        data["answerers"] = [(float(t), str(m)) for t, m in data.get("answerers", [])]
        return cls(**data)


def summarize(
    send_times: Sequence[float],
    answered: Sequence[bool],
    interval: float,
    *,
    late: int = 0,
    answerers: Sequence[tuple[float, str]] = (),
) -> ProbeResult:
    """Gaps and outages from per-probe send times and whether each probe was answered."""
    if len(send_times) != len(answered):
        raise ValueError("send_times and answered differ in length")
    origin = send_times[0] if send_times else 0.0
    gaps: list[float] = []
    starts: list[float] = []
    first_lost: int | None = None
    for k, ok in enumerate(answered):
        if not ok and first_lost is None:
            first_lost = k
        elif ok and first_lost is not None:
            gaps.append(send_times[k] - send_times[first_lost])
            starts.append(send_times[first_lost] - origin)
            first_lost = None
    if first_lost is not None:
        gaps.append(send_times[-1] + interval - send_times[first_lost])
        starts.append(send_times[first_lost] - origin)
    received = sum(answered)
    return ProbeResult(
        sent=len(send_times),
        received=received,
        lost=len(send_times) - received,
        gaps=gaps,
        max_outage=max(gaps, default=0.0),
        gap_starts=starts,
        unrecovered=first_lost is not None,
        late=late,
        duration=(send_times[-1] - origin) if send_times else 0.0,
        answerers=list(answerers),
    )


# -- the prober process -----------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


class _Pinger:
    """The sockets: raw ICMP(v6) to send, AF_PACKET on the interface to receive."""

    def __init__(self, target: str, interface: str) -> None:
        info = socket.getaddrinfo(target, None, type=socket.SOCK_RAW)[0]
        self.family = info[0]
        self.sockaddr = info[4]
        self.v6 = self.family == socket.AF_INET6
        self.target = socket.inet_pton(self.family, str(self.sockaddr[0]).split("%")[0])
        self.ident = os.getpid() & 0xFFFF
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        self.tx = socket.socket(self.family, socket.SOCK_RAW, proto)
        # The receive side is the AF_PACKET socket; keep the raw socket's queue empty.
        if self.v6:
            self.tx.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, b"\xff" * 32)
        else:
            self.tx.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", 0xFFFFFFFF))
        ethertype = ETH_P_IPV6 if self.v6 else ETH_P_IP
        # SOCK_DGRAM: the kernel strips the Ethernet header and hands its source in the address.
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ethertype))
        self.rx.bind((interface, ethertype))
        self.rx.setblocking(False)

    def send(self, index: int) -> None:
        payload = _PAYLOAD.pack(PAYLOAD_MAGIC, index)
        seq = index & 0xFFFF
        if self.v6:  # the kernel fills in the ICMPv6 checksum (it needs the pseudo-header)
            packet = struct.pack("!BBHHH", ICMP6_ECHO, 0, 0, self.ident, seq) + payload
        else:
            header = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, self.ident, seq)
            csum = _checksum(header + payload)
            packet = struct.pack("!BBHHH", ICMP_ECHO, 0, csum, self.ident, seq) + payload
        # A send error (no route, neighbour failed) is a lost probe, not a reason to stop.
        with contextlib.suppress(OSError):
            self.tx.sendto(packet, self.sockaddr)

    def receive(self) -> list[tuple[int, str]]:
        """Drain the AF_PACKET socket: (probe index, source MAC) of our echo replies."""
        replies: list[tuple[int, str]] = []
        while True:
            try:
                data, addr = self.rx.recvfrom(2048)
            except BlockingIOError:
                return replies
            if addr[2] == PACKET_OUTGOING:
                continue
            parsed = self._parse(data)
            if parsed is not None:
                replies.append((parsed, ":".join(f"{b:02x}" for b in addr[4][:6])))

    def _parse(self, data: bytes) -> int | None:
        if self.v6:
            if len(data) < 40 or data[6] != socket.IPPROTO_ICMPV6 or data[8:24] != self.target:
                return None
            icmp, reply_type = data[40:], ICMP6_ECHOREPLY
        else:
            ihl = (data[0] & 0x0F) * 4 if data else 0
            if len(data) < 20 or data[9] != socket.IPPROTO_ICMP or data[12:16] != self.target:
                return None
            icmp, reply_type = data[ihl:], ICMP_ECHOREPLY
        if len(icmp) < 8 + _PAYLOAD.size or icmp[0] != reply_type:
            return None
        ident = struct.unpack_from("!H", icmp, 4)[0]
        magic, index = _PAYLOAD.unpack_from(icmp, 8)
        if ident != self.ident or magic != PAYLOAD_MAGIC:
            return None
        return int(index)

    def fileno(self) -> int:
        return self.rx.fileno()


def probe(
    target: str,
    *,
    interval: float = 0.01,
    timeout: float = 1.0,
    duration: float | None = None,
    interface: str = "eth0",
    stop_on_eof: IO[bytes] | None = None,
    ready: IO[str] | None = None,
) -> ProbeResult:
    """Probe `target` until `duration` passes, SIGTERM/SIGINT, or EOF on `stop_on_eof`."""
    pinger = _Pinger(target, interface)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watch: list[Any] = [pinger] + ([stop_on_eof] if stop_on_eof is not None else [])
    if ready is not None:
        ready.write(json.dumps({"event": "ready", "pid": os.getpid(), "target": target}) + "\n")
        ready.flush()

    send_times: list[float] = []
    reply_times: dict[int, float] = {}
    late = 0
    answerers: list[tuple[float, str]] = []

    def collect() -> None:
        nonlocal late
        now = time.monotonic()
        for index, mac in pinger.receive():
            if index >= len(send_times) or index in reply_times:
                continue  # not ours to count, or a duplicate
            if now - send_times[index] > timeout:
                late += 1
                continue
            reply_times[index] = now
            if not answerers or answerers[-1][1] != mac:
                answerers.append((send_times[index] - send_times[0], mac))

    start = next_send = time.monotonic()
    while not stopping:
        now = time.monotonic()
        if duration is not None and now - start >= duration:
            break
        if now >= next_send:
            send_times.append(now)
            pinger.send(len(send_times) - 1)
            next_send += interval
            if next_send <= now:  # fell behind (a stall): resume the schedule, never burst
                next_send = now + interval
        readable, _, _ = select.select(watch, [], [], max(0.0, next_send - time.monotonic()))
        if pinger in readable:
            collect()
        if (
            stop_on_eof is not None
            and stop_on_eof in readable
            and not os.read(stop_on_eof.fileno(), 4096)
        ):
            break
    # Give the probes still in flight their timeout to be answered.
    if send_times:
        drain_until = send_times[-1] + timeout
        while len(reply_times) < len(send_times) and time.monotonic() < drain_until:
            select.select([pinger], [], [], max(0.0, drain_until - time.monotonic()))
            collect()
    answered = [k in reply_times for k in range(len(send_times))]
    return summarize(send_times, answered, interval, late=late, answerers=answerers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vrrpd.lab.prober",
        description="Send ICMP echo to TARGET every INTERVAL seconds; print a JSON summary.",
    )
    parser.add_argument("--target", required=True, help="IPv4 or IPv6 address to probe")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=1.0, help="a later reply is lost")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds; default: until stopped"
    )
    parser.add_argument("--interface", default="eth0", help="where replies arrive")
    parser.add_argument(
        "--stop-on-eof", action="store_true", help="stop when stdin closes (else SIGTERM/SIGINT)"
    )
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.timeout <= 0:
        parser.error("--interval and --timeout must be positive")
    result = probe(
        args.target,
        interval=args.interval,
        timeout=args.timeout,
        duration=args.duration,
        interface=args.interface,
        stop_on_eof=sys.stdin.buffer if args.stop_on_eof else None,
        ready=sys.stdout,
    )
    print(json.dumps({"event": "summary", **asdict(result)}), flush=True)
    return 0


# -- the parent side --------------------------------------------------------------------------


class Prober:
    """Run the prober inside a lab namespace (the client by default) against `target`."""

    def __init__(
        self,
        lab: Lab,
        target: str,
        interval: float = 0.01,
        *,
        timeout: float = 1.0,
        ns: str | Node | None = None,
        interface: str = "eth0",
    ) -> None:
        self.lab = lab
        self.target = target
        self.interval = interval
        self.timeout = timeout
        self.ns: str | Node = lab.client if ns is None else ns
        self.interface = interface
        self.proc: subprocess.Popen[bytes] | None = None
        self.result: ProbeResult | None = None

    def start(self, ready_timeout: float = 10.0) -> Prober:
        """Start probing; returns once the prober's sockets are open (probing has begun)."""
        from vrrpd.lab.netns import LabError

        if self.proc is not None:
            raise LabError("this Prober was started already")
        root = str(Path(__file__).resolve().parents[2])  # the directory holding `vrrpd`
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        argv = [
            sys.executable,
            "-m",
            "vrrpd.lab.prober",
            "--target",
            self.target,
            "--interval",
            repr(self.interval),
            "--timeout",
            repr(self.timeout),
            "--interface",
            self.interface,
            "--stop-on-eof",
        ]
        self.proc = self.lab.run(
            self.ns,
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], ready_timeout)
        line = self.proc.stdout.readline() if readable else b""
        if not line.startswith(b'{"event": "ready"'):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
            raise LabError(
                f"prober for {self.target} did not start: {line!r} {err.decode(errors='replace')}"
            )
        return self

    def stop(self) -> ProbeResult:
        """Stop probing, wait for probes in flight (up to the timeout); returns the result."""
        from vrrpd.lab.netns import LabError

        if self.result is not None:
            return self.result
        if self.proc is None:
            raise LabError("the Prober was not started")
        try:
            out, err = self.proc.communicate(input=b"", timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        for line in reversed(out.decode().splitlines()):
            data = json.loads(line)
            if data.pop("event", None) == "summary":
                self.result = ProbeResult.from_dict(data)
                return self.result
        raise LabError(
            f"prober for {self.target} exited {self.proc.returncode} without a summary: "
            f"{err.decode(errors='replace')}"
        )

    def __enter__(self) -> Prober:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.proc is None or self.result is not None:
            return
        if exc_type is None:
            self.stop()
        else:  # the body failed: stop the prober, but let the body's exception through
            with contextlib.suppress(Exception):
                self.stop()


if __name__ == "__main__":
    sys.exit(main())
