"""accept: false (keepalived no_accept) enforced with nftables on real daemons in a lab's
namespaces: the client pings the VIP; the table goes at exit and after a kill -9."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.netns.test_vrrpd import VIP, WEB, manifest, until, write
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab
from vrrpd.noaccept import TABLE

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (apt-get install nftables)"),
]
VIP6 = "fd00:77::100"
DUAL = '["192.168.77.100/24", "fd00:77::100/64"]'


def table(lab: Lab, node: int | str) -> str | None:
    """Our table as nft lists it in the node's namespace, None when there is none."""
    proc = lab.exec(node, ["nft", "list", "table", "inet", TABLE], check=False)
    return proc.stdout if proc.returncode == 0 else None


def start(lab: Lab, accept: bool) -> list[VrrpdProcess]:
    text = manifest(
        addresses=DUAL, priorities=(150, 100), extra=f"  accept: {str(accept).lower()}\n"
    )
    path = write(lab, text)
    daemons = [VrrpdProcess(lab, i, path).start() for i in (1, 2)]
    assert daemons[0].wait_state(WEB, "MASTER", 15), daemons[0].log_text()
    assert daemons[0].wait_state(WEB.replace("ipv4", "ipv6"), "MASTER", 15)
    assert until(lambda: lab.holders(VIP) == [1] and lab.holders(VIP6) == [1])
    return daemons


def test_accept_false_drops_what_is_sent_to_the_vip_on_the_master(lab: Lab) -> None:
    d = start(lab, accept=False)
    assert not lab.ping(lab.client, VIP, count=2)
    assert not lab.ping(lab.client, VIP6, count=2)
    assert lab.ping(lab.client, "192.168.77.11")  # the node's own address still answers
    listed = table(lab, 1)
    assert listed is not None and VIP in listed and VIP6 in listed, listed
    # The backup blocks the same set (it acts only where the VIP is) and VRRP still works:
    # the master's failure moves the VIP, which is as deaf on n2.
    d[0].terminate()
    assert d[1].wait_state(WEB, "MASTER", 15), d[1].log_text()
    assert until(lambda: lab.holders(VIP) == [2])
    assert not lab.ping(lab.client, VIP, count=2)
    assert table(lab, 1) is None  # a clean exit removes it
    assert d[1].terminate() == 0
    assert table(lab, 2) is None


def test_accept_true_answers_and_leaves_no_table(lab: Lab) -> None:
    start(lab, accept=True)
    assert lab.ping(lab.client, VIP)
    assert lab.ping(lab.client, VIP6)
    assert table(lab, 1) is None and table(lab, 2) is None


def test_a_reload_to_accept_true_opens_the_vip(lab: Lab) -> None:
    d = start(lab, accept=False)
    assert not lab.ping(lab.client, VIP)
    write(lab, manifest(addresses=DUAL, priorities=(150, 100), extra="  accept: true\n"))
    for daemon in d:
        daemon.reload()
    assert until(lambda: table(lab, 1) is None, 10), d[0].log_text()
    assert lab.ping(lab.client, VIP) and lab.holders(VIP) == [1]  # no re-election


def test_a_killed_daemons_table_goes_at_the_next_start(lab: Lab) -> None:
    d = start(lab, accept=False)
    d[1].terminate()
    d[0].kill()  # kill -9: no clean-up of its own
    assert table(lab, 1) is not None
    # The next daemon runs an accept: true file: nothing of it would remove the table.
    again = VrrpdProcess(lab, 1, write(lab, manifest(priorities=(150, 100)), "open.yaml")).start()
    assert again.wait_state(WEB, "MASTER", 15), again.log_text()
    assert table(lab, 1) is None
    assert "removed the accept: false table a killed vrrpd left" in again.log_text()
    assert lab.ping(lab.client, VIP)


def test_the_table_lives_in_the_daemons_namespace_only(lab: Lab) -> None:
    start(lab, accept=False)
    assert table(lab, 1) is not None
    assert table(lab, lab.client.netns) is None
    host = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    assert TABLE not in host.stdout  # this test's own namespace, the host's, is untouched
