"""Real vrrpd daemons in the lab using keepalived's network-side options: an address on
another interface than the instance's (spec.addressInterfaces), routes and rules that follow
the VIP (spec.routes, spec.rules)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, wait_until

pytestmark = pytest.mark.root

WEB = "default/web/ipv4"
VIP = "192.168.77.100"
OTHER = "10.99.0.1"  # goes on eth1, a veth inside each node's namespace


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    return wait_until(predicate, timeout, 0.02)


def on(lab: Lab, i: int, ifname: str) -> list[str]:
    """Node i's IPv4 addresses on `ifname`, as address/prefix."""
    out = lab.ip(i, "-j", "-4", "addr", "show", "dev", ifname)
    return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link["addr_info"]]


def start(lab: Lab, extra: str) -> list[VrrpdProcess]:
    config = Path(lab.workdir) / "vip.yaml"
    config.write_text(
        f"""\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: web}}
spec:
  addresses: [{VIP}/24, {OTHER}/24]
  vrid: 51
  interface: eth0
  label: eth0:vip
  advertInterval: 100ms
  nodePriorities: [{{nodeName: n1, priority: 150}}, {{nodeName: n2, priority: 100}}]
{extra}"""
    )
    return [VrrpdProcess(lab, i, config).start() for i in (1, 2)]


def add_eth1(lab: Lab) -> None:
    # Inside the lab's namespaces: deleted with them.
    for i in (1, 2):
        lab.ip(i, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
        lab.ip(i, "link", "set", "eth1p", "up")
        lab.ip(i, "link", "set", "eth1", "up")


def test_an_address_goes_on_its_own_interface_and_moves_with_the_vip(lab: Lab) -> None:
    add_eth1(lab)
    d = start(lab, f"  addressInterfaces: [{{address: {OTHER}, interface: eth1}}]\n")
    assert d[0].wait_state(WEB, "MASTER", 15), d[0].log_text()
    assert until(lambda: f"{OTHER}/24" in on(lab, 1, "eth1")), on(lab, 1, "eth1")
    assert f"{OTHER}/24" not in on(lab, 1, "eth0")
    assert f"{VIP}/24" in on(lab, 1, "eth0")
    # The label stays on the instance's interface: Linux refuses eth0:vip on eth1.
    labels = json.loads(lab.ip(1, "-j", "addr", "show", "dev", "eth1"))[0]["addr_info"]
    assert [a.get("label") for a in labels if a["local"] == OTHER] == ["eth1"]
    assert on(lab, 2, "eth1") == []
    # The other interface is tracked: down on the master moves both addresses.
    lab.ip(1, "link", "set", "eth1", "down")
    assert d[0].wait_state(WEB, "FAULT", 15), d[0].log_text()
    assert until(lambda: f"{OTHER}/24" in on(lab, 2, "eth1") and lab.holders(VIP) == [2])
    assert f"{OTHER}/24" not in on(lab, 1, "eth1")
    lab.ip(1, "link", "set", "eth1", "up")
    assert d[0].wait_state(WEB, "MASTER", 15)
    assert until(lambda: on(lab, 2, "eth1") == [] and f"{OTHER}/24" in on(lab, 1, "eth1"))
    # A stop takes it off too.
    assert d[0].terminate() == 0
    assert until(lambda: f"{OTHER}/24" in on(lab, 2, "eth1"))
    assert f"{OTHER}/24" not in on(lab, 1, "eth1")
    assert d[1].terminate() == 0
    assert on(lab, 2, "eth1") == []


def test_a_killed_daemons_address_on_another_interface_is_removed_at_start(lab: Lab) -> None:
    add_eth1(lab)
    d = start(lab, f"  addressInterfaces: [{{address: {OTHER}, interface: eth1}}]\n")
    assert d[0].wait_state(WEB, "MASTER", 15)
    assert until(lambda: f"{OTHER}/24" in on(lab, 1, "eth1"))
    d[0].kill()
    assert until(lambda: d[1].state(WEB) == "MASTER")
    restarted = VrrpdProcess(lab, 1, d[0].config).start()
    assert restarted.wait_state(WEB, "MASTER", 15), restarted.log_text()
    log = restarted.log_text()
    # Removed before it joined as BACKUP, then put back when it took the VIP over.
    assert log.index(f"removed {OTHER}/24 from eth1") < log.index("INITIALIZE -> BACKUP")
    time.sleep(0.3)
    assert f"{OTHER}/24" in on(lab, 1, "eth1")
    assert on(lab, 2, "eth1") == []


ROUTING = f"""\
  routes:
  - {{to: 10.50.0.0/16, via: 192.168.77.1}}
  - {{to: 10.51.0.0/16, interface: eth0, source: {VIP}, table: 100, metric: 5}}
  - {{to: 10.52.0.0/16, type: Blackhole}}
  rules:
  - {{from: {VIP}/32, table: 100, priority: 1000}}
"""
OUR_ROUTES = {
    ("10.50.0.0/16", "main", "unicast"),
    ("10.51.0.0/16", "100", "unicast"),
    ("10.52.0.0/16", "main", "blackhole"),
}


def routes(lab: Lab, i: int) -> set[tuple[str, str, str]]:
    """Node i's routes with our mark: (destination, table, type)."""
    found = json.loads(lab.ip(i, "-j", "route", "show", "table", "all", "proto", "86"))
    return {(r["dst"], str(r.get("table", "main")), r.get("type", "unicast")) for r in found}


def rules(lab: Lab, i: int) -> list[tuple[int, str, str]]:
    """Node i's rules with our mark: (priority, from, table)."""
    found = json.loads(lab.ip(i, "-j", "rule", "show"))
    return [
        (r["priority"], f"{r['src']}/{r.get('srclen', 32)}", str(r["table"]))
        for r in found
        if r.get("protocol") == "86"
    ]


def test_routes_and_rules_follow_the_vip(lab: Lab) -> None:
    d = start(lab, ROUTING)
    assert d[0].wait_state(WEB, "MASTER", 15), d[0].log_text()
    assert until(lambda: routes(lab, 1) == OUR_ROUTES), routes(lab, 1)
    assert rules(lab, 1) == [(1000, f"{VIP}/32", "100")]
    assert (routes(lab, 2), rules(lab, 2)) == (set(), [])
    # The route out of eth0 carries the VIP as its source.
    table = json.loads(lab.ip(1, "-j", "route", "show", "table", "100"))
    assert [(r["dst"], r.get("prefsrc"), r.get("metric")) for r in table] == [
        ("10.51.0.0/16", VIP, 5)
    ]
    assert d[0].terminate() == 0  # leaving MASTER takes them off; the new master adds them
    assert until(lambda: routes(lab, 2) == OUR_ROUTES and len(rules(lab, 2)) == 1)
    assert (routes(lab, 1), rules(lab, 1)) == (set(), [])
    assert d[1].terminate() == 0
    assert (routes(lab, 2), rules(lab, 2)) == (set(), [])
    assert "ERROR" not in d[0].log_text() + d[1].log_text()


def test_a_killed_daemons_routes_and_rules_are_removed_at_start(lab: Lab) -> None:
    d = start(lab, ROUTING)
    assert d[0].wait_state(WEB, "MASTER", 15)
    assert until(lambda: routes(lab, 1) == OUR_ROUTES and len(rules(lab, 1)) == 1)
    d[0].kill()
    assert until(lambda: d[1].state(WEB) == "MASTER")
    assert until(lambda: routes(lab, 2) == OUR_ROUTES)
    # A route someone else put there with another protocol is not ours: it stays.
    lab.ip(1, "route", "add", "10.53.0.0/16", "via", "192.168.77.1", "proto", "static")
    restarted = VrrpdProcess(lab, 1, d[0].config).start()
    # It joins as BACKUP and may preempt n2 a few milliseconds later: its log, not its
    # current state, says it joined.
    assert until(lambda: "INITIALIZE -> BACKUP" in restarted.log_text(), 15), restarted.log_text()
    assert until(lambda: "left behind" in restarted.log_text())
    log = restarted.log_text()
    joined = log.index("INITIALIZE -> BACKUP")
    # 10.51.0.0/16 went with its source address, the VIP (the kernel drops such routes).
    for removed in ("route 10.50.0.0/16 table 254", "route 10.52.0.0/16", "rule pref 1000"):
        assert log.index(f"removed {removed}") < joined, log
    assert restarted.wait_state(WEB, "MASTER", 15)  # preempts n2, adds them again
    assert until(lambda: routes(lab, 1) == OUR_ROUTES and routes(lab, 2) == set())
    assert rules(lab, 1) == [(1000, f"{VIP}/32", "100")] and rules(lab, 2) == []
    assert lab.ip(1, "route", "show", "10.53.0.0/16").strip()


VMAC = "00:00:5e:00:01:33"  # RFC 5798 §7.3 for VRID 51


def neighbour(lab: Lab, address: str) -> str | None:
    """The client's neighbour entry (MAC) for `address`, if it has one."""
    found = json.loads(lab.ip(lab.client, "-j", "neigh", "show", address))
    return found[0].get("lladdr") if found else None


def vmac_links(lab: Lab, i: int) -> list[tuple[str, str]]:
    return [
        (link["ifname"], link["address"])
        for link in json.loads(lab.ip(i, "-j", "-d", "link", "show", "type", "macvlan"))
    ]


def test_use_vmac_keeps_the_clients_neighbour_entry_across_a_failover(lab: Lab) -> None:
    config = Path(lab.workdir) / "vip.yaml"
    config.write_text(
        f"""\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: web}}
spec:
  addresses: [{VIP}/24]
  vrid: 51
  interface: eth0
  useVmac: true
  advertInterval: 100ms
  nodePriorities: [{{nodeName: n1, priority: 150}}, {{nodeName: n2, priority: 100}}]
"""
    )
    d = [VrrpdProcess(lab, i, config).start() for i in (1, 2)]
    assert d[0].wait_state(WEB, "MASTER", 15), d[0].log_text()
    assert d[1].wait_state(WEB, "BACKUP", 15), d[1].log_text()
    # Both nodes have the macvlan; only the master has the VIP, on it.
    assert vmac_links(lab, 1) == [("vrrp.51", VMAC)] == vmac_links(lab, 2)
    assert until(lambda: f"{VIP}/24" in on(lab, 1, "vrrp.51"))
    assert f"{VIP}/24" not in on(lab, 1, "eth0") and on(lab, 2, "vrrp.51") == []
    assert lab.ping(lab.client, VIP)
    assert neighbour(lab, VIP) == VMAC  # and not n1's eth0 MAC: eth0 stays quiet
    time.sleep(1.0)
    assert d[1].state(WEB) == "BACKUP", (  # it hears n1's adverts, sent from the macvlan
        d[1].log_text()[-3000:]
        + "\n----\n"
        + d[0].log_text()[-3000:]
        + lab.exec(2, ["ip", "-s", "-d", "link", "show", "vrrp.51"]).stdout
        + lab.exec(2, ["ip", "addr"]).stdout
    )
    d[0].kill()
    assert d[1].wait_state(WEB, "MASTER", 15)
    assert until(lambda: f"{VIP}/24" in on(lab, 2, "vrrp.51"))
    # n1 is dead: its interface must not answer. Until n2's next advert the bridge may
    # still send the virtual MAC to n1's port (n1's kernel answered from it meanwhile).
    lab.ip(1, "link", "del", "vrrp.51")
    assert until(lambda: lab.ping(lab.client, VIP, wait=0.5))
    assert neighbour(lab, VIP) == VMAC
    # The restarted daemon removes its predecessor's macvlan before anything else ...
    lab.ip(1, "link", "add", "vrrp.51", "link", "eth0", "address", VMAC, "type", "macvlan")
    lab.ip(1, "link", "set", "vrrp.51", "alias", "kube-vrrp vmac")
    lab.ip(1, "link", "add", "mv-other", "link", "eth0", "type", "macvlan")  # not ours
    restarted = VrrpdProcess(lab, 1, config).start()
    assert restarted.wait_state(WEB, "MASTER", 15), restarted.log_text()
    log = restarted.log_text()
    assert log.index("removed virtual MAC interface vrrp.51") < log.index("INITIALIZE -> BACKUP")
    assert "mv-other" in [name for name, _ in vmac_links(lab, 1)]
    lab.ip(1, "link", "del", "mv-other")
    assert until(lambda: on(lab, 2, "vrrp.51") == [] and f"{VIP}/24" in on(lab, 1, "vrrp.51")), (
        d[1].log_text()[-3000:] + "\n----\n" + restarted.log_text()[-3000:]
    )
    # ... and a stop deletes it.
    assert restarted.terminate() == 0
    assert d[1].wait_state(WEB, "MASTER", 15)
    assert vmac_links(lab, 1) == []
    assert d[1].terminate() == 0
    assert vmac_links(lab, 2) == []
