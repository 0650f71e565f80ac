"""Ping many addresses until each answers once; print when (run inside a lab namespace).

    python multiping.py TARGETS_FILE [EVERY_SECONDS]

TARGETS_FILE holds one IPv4 or IPv6 address per line. Every EVERY seconds (default 0.05)
each address that has not answered yet gets an ICMP echo request; the first echo reply from
an address prints "ADDRESS UNIX_TIME" (time.time() when it arrived). Prints "ready" first.
Standard library only (it runs under `ip netns exec`); stops on SIGTERM or when every
address has answered and stdout is closed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import signal
import socket
import struct
import sys
import time

ICMP_ECHO, ICMP_ECHOREPLY = 8, 0
ICMP6_ECHO, ICMP6_ECHOREPLY = 128, 129


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def request(v6: bool, ident: int, seq: int) -> bytes:
    kind = ICMP6_ECHO if v6 else ICMP_ECHO
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:  # the kernel fills in the ICMPv6 checksum
        return header
    return struct.pack("!BBHHH", kind, 0, checksum(header), ident, seq)


def main() -> int:
    targets = [line.strip() for line in open(sys.argv[1]) if line.strip()]  # noqa: SIM115
    every = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    pending = {str(ipaddress.ip_address(t)) for t in targets}
    ident = os.getpid() & 0xFFFF
    v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    for sock in (v4, v6):
        sock.setblocking(False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    seq = 0
    next_round = time.monotonic()
    while pending:
        now = time.monotonic()
        if now >= next_round:
            seq = (seq + 1) & 0xFFFF
            for address in list(pending):
                is_v6 = ":" in address
                with contextlib.suppress(OSError):  # not resolvable yet: the next round
                    (v6 if is_v6 else v4).sendto(request(is_v6, ident, seq), (address, 0))
            next_round = now + every
        ready, _, _ = select.select([v4, v6], [], [], max(0.0, next_round - time.monotonic()))
        for sock in ready:
            while True:
                try:
                    data, source = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                arrived = time.time()
                if sock is v4:
                    icmp = data[(data[0] & 0x0F) * 4 :]
                    kind = ICMP_ECHOREPLY
                else:
                    icmp, kind = data, ICMP6_ECHOREPLY
                if len(icmp) < 8 or icmp[0] != kind:
                    continue
                if struct.unpack_from("!H", icmp, 4)[0] != ident:
                    continue
                address = str(ipaddress.ip_address(source[0].split("%")[0]))
                if address in pending:
                    pending.discard(address)
                    print(f"{address} {arrived:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
