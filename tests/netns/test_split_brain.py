"""Split brain for real, in network namespaces: what the daemon hears of another master."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest

from vrrpd.lab.netns import Lab

pytestmark = pytest.mark.root


def test_the_listener_hears_another_macs_arp_and_na_and_not_its_own(
    lab_factory: Callable[..., Lab],
) -> None:
    """The adapter alone: n2 announces two addresses and answers for a third that n1 asks
    about, n1 listens; n1's own announcement is left out."""
    lab = lab_factory(2)
    listen = (
        "import asyncio, json\n"
        "from vrrpd.net.heard import AnnouncementListener\n"
        "from vrrpd.net.announce import Announcer\n"
        "async def main():\n"
        "    heard = AnnouncementListener(); got = []\n"
        "    heard.subscribe(lambda: got.extend(heard.poll()))\n"
        "    Announcer().announce('eth0', __import__('ipaddress').ip_address('192.168.77.111'))\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(1.5)\n"
        "    heard.recheck('eth0', __import__('ipaddress').ip_address('192.168.77.150'))\n"
        "    await asyncio.sleep(1.5)\n"
        "    print(json.dumps(sorted({(h.ifname, str(h.address), h.mac) for h in got})))\n"
        "asyncio.run(main())\n"
    )
    proc = lab.run(lab.node(1).netns, [sys.executable, "-c", listen], stdout=-1, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    announce = (
        "import ipaddress\n"
        "from vrrpd.net.announce import Announcer\n"
        "a = Announcer()\n"
        "for ip in ('192.168.77.100', 'fd00:77::100'):\n"
        "    a.announce('eth0', ipaddress.ip_address(ip))\n"
    )
    lab.exec(2, ["ip", "addr", "add", "fd00:77::100/64", "dev", "eth0", "nodad"])
    lab.exec(2, ["ip", "addr", "add", "192.168.77.150/24", "dev", "eth0"])  # asked, answers
    lab.exec(2, [sys.executable, "-c", announce])
    out, _ = proc.communicate(timeout=10)
    heard = [tuple(h) for h in json.loads(out.splitlines()[-1])]
    mac = lab.node(2).mac
    assert ("eth0", "192.168.77.100", mac) in heard
    assert ("eth0", "fd00:77::100", mac) in heard
    assert ("eth0", "192.168.77.150", mac) in heard  # n2's kernel answered n1's ARP probe
    assert all(h[2] != lab.node(1).mac for h in heard)  # its own GARP for .111 is not there
