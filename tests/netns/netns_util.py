"""Small netns fixtures for the net adapter tests: two throwaway network namespaces joined
by veth pairs, a way to run code inside a namespace from the test process, and a frame
sniffer. (The full multi-node lab topology lives in vrrpd/lab/; this is deliberately less.)

Entering a namespace uses setns(2) on the calling thread only: a socket keeps the namespace
it was created in for its whole life, so adapters opened inside `entered(ns)` keep working
in that namespace after the test thread has returned to its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

_libc = ctypes.CDLL(None, use_errno=True)


def require_root() -> None:
    """Skip (with the reason) where namespaces cannot be made: not root, no iproute2."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces, veth links and raw sockets")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's `ip` command")


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    """Run `ip [-n ns] args...` and return its stdout."""
    command = ["ip", *(["-n", ns] if ns else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


def ip_json(*args: str, ns: str | None = None) -> Any:
    return json.loads(ip("-j", *args, ns=ns) or "[]")


def addr_info(ns: str, ifname: str) -> list[dict[str, Any]]:
    """`ip -j addr show dev ifname` addr_info entries."""
    links = ip_json("addr", "show", "dev", ifname, ns=ns)
    return list(links[0]["addr_info"]) if links else []


def link_info(ns: str, ifname: str) -> dict[str, Any]:
    return dict(ip_json("link", "show", "dev", ifname, ns=ns)[0])


def mac_of(ns: str, ifname: str) -> str:
    return str(link_info(ns, ifname)["address"])


def link_local(ns: str, ifname: str) -> str | None:
    for info in addr_info(ns, ifname):
        if info["family"] == "inet6" and info.get("scope") == "link":
            return str(info["local"])
    return None


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def link_local_ready(ns: str, ifname: str) -> bool:
    """A link-local address exists and DAD is over (the kernel sends from it only then)."""
    return any(
        info["family"] == "inet6"
        and info.get("scope") == "link"
        and not info.get("tentative")
        and not info.get("dadfailed")
        for info in addr_info(ns, ifname)
    )


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the body with this thread inside network namespace `ns`, then come back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


@dataclass
class Pair:
    """Namespaces `a` and `b` joined by veth links; `links` maps a-side name to b-side."""

    a: str
    b: str
    links: dict[str, str] = field(default_factory=dict)

    def destroy(self) -> None:
        for ns in (self.a, self.b):
            ip("netns", "del", ns, check=False)


def make_pair(tag: str, links: dict[str, str]) -> Pair:
    """Two fresh namespaces (names unique to this process) and the veth links, all up.

    On any failure everything created so far is deleted before the error propagates.
    """
    pair = Pair(f"vt-{tag}-{os.getpid()}-a", f"vt-{tag}-{os.getpid()}-b", dict(links))
    try:
        for ns in (pair.a, pair.b):
            ip("netns", "add", ns)
            ip("link", "set", "lo", "up", ns=ns)
        for side_a, side_b in links.items():
            # Created inside namespace a, so nothing ever appears on the host.
            ip("link", "add", side_a, "type", "veth", "peer", "name", side_b, "netns", pair.b,
               ns=pair.a)  # fmt: skip
            ip("link", "set", side_a, "up", ns=pair.a)
            ip("link", "set", side_b, "up", ns=pair.b)
    except BaseException:
        pair.destroy()
        raise
    return pair


class Sniffer:
    """Captures Ethernet frames on one interface of a namespace (AF_PACKET, ETH_P_ALL)."""

    def __init__(self, ns: str, ifname: str) -> None:
        with entered(ns):
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self._sock.bind((ifname, ETH_P_ALL))

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Sniffer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def wait(self, match: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
        """The first received (not sent) frame for which match(frame) is true."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self._sock.settimeout(left)
            try:
                frame, address = self._sock.recvfrom(65535)
            except TimeoutError:
                break
            if address[2] != PACKET_OUTGOING and match(frame):
                return frame
        raise AssertionError(f"no matching frame within {timeout} s")
