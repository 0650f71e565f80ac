"""The icmp probe (icmplib) between lab namespaces: a raw socket as root, the unprivileged ping
socket where a node's net.ipv4.ping_group_range allows it, and what it says when neither can
be had. Each check runs in a node's namespace as its own process, so a node can lose
CAP_NET_RAW (setpriv) without the test run losing it."""

from __future__ import annotations

import json
import sys

import pytest

from vrrpd.lab.netns import Lab

pytestmark = pytest.mark.root

CHECK = """
import asyncio, json, sys
from vrrpd.probes.runners import IcmpProbe
outcome = asyncio.run(IcmpProbe(sys.argv[1], float(sys.argv[2])).check())
print(json.dumps([outcome.ok, outcome.detail]))
"""


def ping(lab: Lab, node: int, host: str, *, raw: bool = True, timeout: float = 2) -> list[object]:
    """The probe's (ok, detail) from inside node ``node``; without ``raw``, no CAP_NET_RAW."""
    argv = [sys.executable, "-c", CHECK, host, str(timeout)]
    if not raw:  # root without CAP_NET_RAW in its bounding set: no raw socket after exec
        argv = ["setpriv", "--bounding-set", "-net_raw", *argv]
    result: list[object] = json.loads(lab.exec(node, argv).stdout)
    return result


def ping_group_range(lab: Lab, node: int, value: str) -> None:
    # A per-namespace sysctl: the host's own setting is untouched.
    lab.exec(node, ["sysctl", "-qw", f"net.ipv4.ping_group_range={value}"])


@pytest.mark.parametrize("host", ["192.168.77.12", "fd00:77::12"])
def test_raw_socket_as_root(lab: Lab, host: str) -> None:
    ping_group_range(lab, 1, "1 0")  # no ping sockets: the raw one must do it
    assert ping(lab, 1, host) == [True, f"echo reply from {host}"]


@pytest.mark.parametrize("host", ["192.168.77.12", "fd00:77::12"])
def test_ping_socket_without_cap_net_raw(lab: Lab, host: str) -> None:
    ping_group_range(lab, 1, "0 0")
    assert ping(lab, 1, host, raw=False) == [True, f"echo reply from {host}"]


def test_neither_socket_says_what_would_work(lab: Lab) -> None:
    ping_group_range(lab, 1, "1 0")
    assert ping(lab, 1, "192.168.77.12", raw=False) == [
        False,
        "no ICMP socket: needs CAP_NET_RAW, or net.ipv4.ping_group_range covering group 0",
    ]


def test_no_reply_within_the_timeout(lab: Lab) -> None:
    lab.exec(2, ["ip", "link", "set", "eth0", "down"])  # node 2 stops answering
    ok, detail = ping(lab, 1, "192.168.77.12", timeout=0.5)
    assert ok is False
    # Whichever fires first: icmplib's own wait or the probe's timeout.
    assert detail in ("no echo reply from 192.168.77.12 within 0.5s", "timed out after 0.5s")
