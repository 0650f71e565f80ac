"""Split brain for real, in network namespaces: what the daemon hears of another master, and
the gateway-ping recipe (an icmp probe with weight 0) that keeps an isolated node from
holding the VIP at all. nftables drops the packets, inside the lab's namespaces."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import pytest

from tests.netns.test_vrrpd import VIP, WEB, manifest, start_all, until, write
from tests.netns.test_vrrpd_tracking import get
from vrrpd.lab.netns import Lab

pytestmark = pytest.mark.root


TABLE = "kvsplit"


def nft(lab: Lab, node: int, script: str) -> None:
    """Run an nft script in node `node`'s namespace (the rules go with the namespace)."""
    lab.exec(node, ["nft", "-f", "-"], input=script)


def drop_vrrp(lab: Lab, node: int) -> None:
    """What a host firewall without a VRRP rule does: adverts in and out are dropped."""
    nft(lab, node, f"""
table inet {TABLE} {{
  chain in {{ type filter hook input priority 0; meta l4proto 112 drop; }}
  chain out {{ type filter hook output priority 0; meta l4proto 112 drop; }}
}}
""")  # fmt: skip


def isolate(lab: Lab, node: int) -> None:
    """Every IP packet in or out of eth0 dropped; ARP (not IP) still passes, as a broken
    uplink or a wrong firewall would leave it."""
    nft(lab, node, f"""
table inet {TABLE} {{
  chain in {{ type filter hook input priority 0; iifname "eth0" drop; }}
  chain out {{ type filter hook output priority 0; oifname "eth0" drop; }}
}}
""")  # fmt: skip


def lift(lab: Lab, node: int) -> None:
    nft(lab, node, f"delete table inet {TABLE}\n")


def status_row(lab: Lab, node: int) -> dict[str, object]:
    row: dict[str, object] = json.loads(get(lab, node, "/status")[1])["instances"][0]
    return row


def test_protocol_112_dropped_gives_two_masters_and_the_old_one_reports_it(lab: Lab) -> None:
    d = start_all(lab, write(lab, manifest(priorities=(150, 100))))
    assert d[0].wait_state(WEB, "MASTER", 15) and d[1].wait_state(WEB, "BACKUP", 15)
    assert d[0].wait_http(15) and d[1].wait_http(15)
    transitions = len(d[0].transitions(WEB))
    for node in (1, 2):
        drop_vrrp(lab, node)
    t0 = time.monotonic()
    assert d[1].wait_state(WEB, "MASTER", 5), d[1].log_text()
    assert until(lambda: status_row(lab, 1)["splitBrain"] is not None, 5), d[0].log_text()
    seen_after = time.monotonic() - t0
    assert lab.holders(VIP) == [1, 2]
    split = status_row(lab, 1)["splitBrain"]
    assert isinstance(split, dict)
    assert (split["evidence"], split["peer"]) == ("announcement", lab.node(2).mac)
    assert f"announces {VIP}" in str(split["detail"])
    metrics = get(lab, 1, "/metrics")[1]
    assert 'vrrpd_split_brain{iname="default/web/ipv4"} 1.0' in metrics
    assert "vrrpd_split_brain_detected_total{" in metrics
    warning = next(e for e in d[0].events() if "split brain:" in e.get("msg", ""))
    assert warning["level"] in ("WARNING", "warning") and lab.node(2).mac in warning["msg"]
    print(f"partition -> n2 MASTER and n1 reporting the split brain: {seen_after:.2f} s")

    for node in (1, 2):
        lift(lab, node)
    assert d[1].wait_state(WEB, "BACKUP", 5)
    assert until(lambda: lab.holders(VIP) == [1] and status_row(lab, 1)["splitBrain"] is None)
    assert len(d[0].transitions(WEB)) == transitions  # n1 held the VIP throughout: no flap
    assert 'vrrpd_split_brain{iname="default/web/ipv4"} 0.0' in get(lab, 1, "/metrics")[1]


GATEWAY_PROBE = """\
  probes:
    - {name: gateway, icmp: {host: 192.168.77.200}, interval: 200ms, timeout: 150ms, fall: 2,
       rise: 2, weight: 0}
"""


@pytest.mark.parametrize("recipe", [True, False], ids=["gateway-probe", "plain-vrrp"])
def test_the_gateway_probe_recipe_keeps_an_isolated_node_from_the_vip(
    lab: Lab, recipe: bool
) -> None:
    """The lab's client stands for the gateway. n1 (the master) loses its uplink: without
    the recipe it stays MASTER beside n2 (split brain); with it, n1 goes FAULT and drops
    the VIP, n2 keeps it and the gateway reaches the VIP through n2."""
    extra = GATEWAY_PROBE if recipe else ""
    d = start_all(lab, write(lab, manifest(priorities=(150, 100), extra=extra)))
    assert d[0].wait_state(WEB, "MASTER", 15) and d[1].wait_state(WEB, "BACKUP", 15)
    assert d[0].wait_http(15)
    isolate(lab, 1)
    assert d[1].wait_state(WEB, "MASTER", 5)
    if not recipe:  # two masters; n1 at least hears n2's gratuitous ARP and says so
        assert until(lambda: status_row(lab, 1)["splitBrain"] is not None, 5)
        assert lab.holders(VIP) == [1, 2] and d[0].state(WEB) == "MASTER"
        return
    assert d[0].wait_state(WEB, "FAULT", 5), d[0].log_text()
    assert until(lambda: lab.holders(VIP) == [2], 5)
    assert "probe gateway failing" in str(status_row(lab, 1)["faults"])
    time.sleep(1)  # and it stays that way
    assert lab.holders(VIP) == [2] and d[0].state(WEB) == "FAULT"
    assert lab.ping(lab.client, VIP)
    lift(lab, 1)  # the uplink is back: n1 rejoins and, highest, takes the VIP back
    assert d[0].wait_state(WEB, "MASTER", 10)
    assert until(lambda: lab.holders(VIP) == [1], 5)


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
