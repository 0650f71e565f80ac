"""The lab itself: namespaces, links, the outage prober, keepalived as a peer, and cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from vrrpd.lab.keepalived import (
    keepalived_vrrp_pid,
    render_keepalived_conf,
    start_keepalived,
)
from vrrpd.lab.netns import MARKER, Lab, LabError, Side, list_netns, pid_alive, wait_until
from vrrpd.lab.prober import Prober, summarize

pytestmark = pytest.mark.root

VIP = "192.168.77.100"
LabFactory = Callable[..., Lab]


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    return {link["ifname"] for link in json.loads(out.stdout)}


def _link_flags(lab: Lab, i: int) -> list[str]:
    flags: list[str] = json.loads(lab.ip(i, "-j", "link", "show", "eth0"))[0]["flags"]
    return flags


# -- the lab ----------------------------------------------------------------------------------


def test_lab_builds_and_tears_down_completely(lab_factory: LabFactory) -> None:
    links_before = _host_links()
    lab = lab_factory(3)
    assert set(lab.namespaces) <= set(list_netns())
    assert lab.namespaces == [
        f"{lab.prefix}-br",
        f"{lab.prefix}-n1",
        f"{lab.prefix}-n2",
        f"{lab.prefix}-n3",
        f"{lab.prefix}-client",
    ]
    n2 = lab.node(2)
    assert (n2.address4, n2.address6, n2.mac) == (
        "192.168.77.12",
        "fd00:77::12",
        "02:77:00:00:00:02",
    )
    assert (lab.client.address4, lab.client.address6) == ("192.168.77.200", "fd00:77::200")
    assert lab.client.mac == "02:77:00:00:00:c8"
    assert {"192.168.77.12/24", "fd00:77::12/64"} <= set(lab.addresses(2, with_prefix=True))
    assert any(a.startswith("fe80:") for a in lab.addresses(2)), "link-local usable at once"
    link = json.loads(lab.ip(2, "-j", "link", "show", "eth0"))[0]
    assert link["address"] == n2.mac
    ports = json.loads(lab.ip(lab.bridge_netns, "-j", "link", "show", "master", "br0"))
    assert sorted(p["ifname"] for p in ports) == ["veth-c", "veth-n1", "veth-n2", "veth-n3"]
    dad = lab.exec(1, ["sysctl", "-n", "net.ipv6.conf.eth0.accept_dad"]).stdout.strip()
    assert dad == "0"
    assert _host_links() == links_before, "nothing is created in the host's namespace"

    sleeper = lab.run(1, ["sleep", "600"])
    stray = subprocess.Popen(  # started behind the lab's back: close() must find it too
        lab.command(2, ["sleep", "600"]), start_new_session=True
    )
    lab.close()
    assert sleeper.poll() is not None
    assert stray.wait(5) is not None
    assert not set(lab.namespaces) & set(list_netns())
    assert _host_links() == links_before
    lab.close()  # idempotent


def test_lab_refuses_existing_namespaces(lab_factory: LabFactory) -> None:
    lab = lab_factory(1)
    with pytest.raises(LabError, match="already exist"):
        Lab(1, prefix=lab.prefix, workdir=lab.workdir / "other")
    # The refused lab deleted nothing of the existing one.
    assert set(lab.namespaces) <= set(list_netns())
    assert lab.ping(lab.client, lab.node(1).address4)


def test_cleanup_stale_deletes_only_marked_leftovers_of_dead_owners() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    prefix = f"kvstale{os.getpid()}"
    ours, foreign = f"{prefix}-n1", f"{prefix}-n2"
    try:
        for name in (ours, foreign):
            subprocess.run(["ip", "netns", "add", name], check=True)
        alias = f"{MARKER} pid={dead.pid} prefix={prefix}"
        subprocess.run(["ip", "-n", ours, "link", "set", "lo", "alias", alias], check=True)
        assert Lab.cleanup_stale(prefix) == [ours]
        assert foreign in list_netns() and ours not in list_netns()
    finally:
        for name in (ours, foreign):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def test_nodes_and_client_ping_each_other(lab_factory: LabFactory) -> None:
    lab = lab_factory(3)
    hosts = [*lab.nodes, lab.client]
    for src in hosts:
        for dst in hosts:
            if src is not dst:
                assert lab.ping(src, dst.address4), f"{src.name} -> {dst.address4}"
                assert lab.ping(src, dst.address6), f"{src.name} -> {dst.address6}"


SIDES: list[Side] = ["peer", "node"]


@pytest.mark.parametrize("side", SIDES)
def test_link_down_cuts_and_link_up_restores(lab: Lab, side: Side) -> None:
    n1 = lab.node(1)
    assert lab.ping(lab.client, n1.address4)
    lab.link_down(1, side)
    flags = _link_flags(lab, 1)
    if side == "peer":  # a pulled cable: eth0 still administratively up, without carrier
        assert "UP" in flags and "LOWER_UP" not in flags
    else:
        assert "UP" not in flags
    assert not lab.ping(lab.client, n1.address4, wait=0.3)
    lab.link_up(1, side)
    assert wait_until(lambda: lab.ping(lab.client, n1.address4, wait=0.3), timeout=5)
    assert wait_until(lambda: lab.ping(lab.client, n1.address6, wait=0.3), timeout=5)


# -- the prober -------------------------------------------------------------------------------


def test_summarize_defines_outage_on_send_times() -> None:
    times = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    result = summarize(times, [True, False, False, True, False, True], 0.01)
    assert (result.sent, result.received, result.lost) == (6, 3, 3)
    assert result.gaps == pytest.approx([0.02, 0.01])
    assert result.gap_starts == pytest.approx([0.01, 0.04])
    assert result.max_outage == pytest.approx(0.02)
    assert not result.unrecovered
    open_end = summarize(times, [True, True, True, True, False, False], 0.01)
    assert open_end.unrecovered and open_end.gaps == pytest.approx([0.02])
    assert summarize([], [], 0.01).max_outage == 0.0


@pytest.mark.parametrize("family", [4, 6])
def test_prober_sees_no_loss_from_a_live_node(lab: Lab, family: int) -> None:
    node = lab.node(2)
    target = node.address4 if family == 4 else node.address6
    prober = Prober(lab, target).start()
    time.sleep(0.5)
    result = prober.stop()
    assert result.sent >= 10
    assert (result.lost, result.max_outage, result.gaps) == (0, 0.0, [])
    assert [mac for _, mac in result.answerers] == [node.mac]


def test_prober_measures_a_link_outage(lab: Lab) -> None:
    with Prober(lab, lab.node(1).address4) as prober:
        time.sleep(0.3)
        lab.link_down(1)
        time.sleep(0.5)
        lab.link_up(1)
        time.sleep(0.5)
    result = prober.stop()
    assert result.lost > 0 and not result.unrecovered
    # The link was down for at least 0.5 s of wall-clock time; loose bounds only.
    assert 0.2 < result.max_outage < 2.5, result


# -- keepalived as a peer ------------------------------------------------------------------------


def _keepalived_conf(priority: int, **kwargs: Any) -> str:
    return render_keepalived_conf(
        vrid=51,
        priority=priority,
        version=3,
        advert_interval=0.1,
        vips=[f"{VIP}/24"],
        **kwargs,
    )


def test_render_keepalived_conf_rejects_what_keepalived_would_bend() -> None:
    conf = _keepalived_conf(150, unicast_src="192.168.77.11", unicast_peers=["192.168.77.12"])
    assert "advert_int 0.1" in conf and "version 3" in conf and "unicast_peer {" in conf
    with pytest.raises(ValueError, match="whole seconds"):
        render_keepalived_conf(vrid=1, priority=100, version=2, advert_interval=0.5, vips=[VIP])
    with pytest.raises(ValueError, match="no authentication"):
        _keepalived_conf(100, auth_pass="secret")


@pytest.mark.keepalived
def test_keepalived_pair_fails_over_on_link_down(
    lab: Lab, record_property: Callable[[str, object], None]
) -> None:
    ka = {
        i: start_keepalived(lab, i, _keepalived_conf(prio, router_id=f"n{i}"))
        for i, prio in ((1, 150), (2, 100))
    }
    assert wait_until(lambda: lab.holders(VIP) == [1], timeout=5), ka[1].log()[-2000:]
    assert ka[1].states()[-1] == "MASTER" and ka[2].states()[-1] == "BACKUP"
    vrrp_pids = [ka[i].wait_vrrp_pid() for i in (1, 2)]
    assert vrrp_pids[0] == keepalived_vrrp_pid(ka[1].vrrp_pidfile)

    with Prober(lab, VIP) as prober:
        time.sleep(0.3)
        lab.link_down(1)
        assert wait_until(lambda: lab.holders(VIP) == [2], timeout=5), ka[2].log()[-2000:]
        time.sleep(0.5)
    result = prober.stop()
    record_property("keepalived_v3_100ms_link_down_outage_s", result.max_outage)
    assert result.lost > 0 and not result.unrecovered
    assert 0 < result.max_outage < 2, result
    assert result.answerers[0][1] == lab.node(1).mac
    assert result.answerers[-1][1] == lab.node(2).mac
    assert ka[1].states()[-1] == "FAULT"  # keepalived saw its carrier go

    lab.close()
    assert all(k.poll() is not None for k in ka.values())
    assert not any(pid_alive(pid) for pid in vrrp_pids)
    assert not set(lab.namespaces) & set(list_netns())


@pytest.mark.keepalived
def test_keepalived_vrrp_child_killed_leaves_its_vip_behind(lab: Lab) -> None:
    ka1 = start_keepalived(lab, 1, _keepalived_conf(150), respawn=False)
    start_keepalived(lab, 2, _keepalived_conf(100))
    assert wait_until(lambda: lab.holders(VIP) == [1], timeout=5)
    os.kill(ka1.wait_vrrp_pid(), signal.SIGKILL)
    # Node 2 takes over while the dead child's VIP stays on node 1: both hold it.
    assert wait_until(lambda: lab.holders(VIP) == [1, 2], timeout=5)
    assert ka1.vrrp_pid() is None
