"""Interop with keepalived (Debian's 2.2.7) as a VRRP peer: v2 and v3, both directions.

Each test builds a fresh two-node lab: our daemon runs on n1 (192.168.77.11), keepalived
on n2 (192.168.77.12), both for VRID 51 and the VIP 192.168.77.100/24. VRRPv3 runs at
100 ms adverts, VRRPv2 (with PASS authentication) at 1 s, keepalived's smallest v2 step.
Every wait polls with a generous timeout. The one clock-based check is a loose bound at
1 s adverts, where the outcomes it tells apart (skew vs master-down) are seconds apart.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.keepalived import KeepalivedProcess, render_keepalived_conf, start_keepalived
from vrrpd.lab.netns import Lab, wait_until
from vrrpd.lab.prober import Prober, ProbeResult

pytestmark = [pytest.mark.root, pytest.mark.keepalived]

VIP = "192.168.77.100"
PREFIX = 24
VRID = 51
NAME = "web"
INSTANCE = f"default/{NAME}/ipv4"  # how our daemon names the VirtualIP's IPv4 instance
KA_INSTANCE = "VI_1"
OURS, KA = 1, 2  # lab node indexes: our daemon on n1, keepalived on n2
PASSWORD = "lab-pass"

LabFactory = Callable[..., Lab]


@dataclass(frozen=True)
class Proto:
    """What both peers speak: VRRP version, advert interval, v2 password, unicast."""

    id: str
    version: int
    interval: float  # seconds
    password: str | None = None
    unicast: bool = False

    @property
    def settle(self) -> float:
        """A generous bound for an election or takeover: several master-down intervals."""
        return 6 * self.interval + 4.0

    @property
    def quiet(self) -> float:
        """Long enough for several adverts: a state that holds this long is stable."""
        return max(0.6, 3 * self.interval)


V3 = Proto("v3-multicast-100ms", version=3, interval=0.1)
V2_AUTH = Proto("v2-pass-1s", version=2, interval=1.0, password=PASSWORD)
V3_UNICAST = Proto("v3-unicast-100ms", version=3, interval=0.1, unicast=True)
PROTOS = [pytest.param(p, id=p.id) for p in (V3, V2_AUTH, V3_UNICAST)]


# -- configuration ---------------------------------------------------------------------------


def _interval_text(seconds: float) -> str:
    centis = round(seconds * 100)
    return f"{centis // 100}s" if centis % 100 == 0 else f"{centis * 10}ms"


def our_config(lab: Lab, proto: Proto, priority: int, *, password: str | None = None) -> str:
    """A VirtualIP manifest for our daemon on n1; `password` overrides the shared one."""
    password = password if password is not None else proto.password
    lines = [
        "apiVersion: kubevrrp.io/v1alpha1",
        "kind: VirtualIP",
        f"metadata: {{name: {NAME}}}",
        "spec:",
        f'  addresses: ["{VIP}/{PREFIX}"]',
        f"  vrid: {VRID}",
        f"  version: {proto.version}",
        "  interface: eth0",
        f"  advertInterval: {_interval_text(proto.interval)}",
        "  priority: 1",
        "  nodePriorities:",
        f"    - {{nodeName: {lab.node(OURS).name}, priority: {priority}}}",
        "  preempt: {mode: Always}",
    ]
    if password is not None:
        lines.append(f'  authentication: {{password: "{password}"}}')
    if proto.unicast:
        lines.append("  unicast: true")
    lines.append("  peers:")  # with multicast they only pin each node's source address
    lines += [f"    - {{nodeName: {n.name}, address: {n.address4}}}" for n in lab.nodes]
    return "\n".join(lines) + "\n"


def keepalived_config(lab: Lab, proto: Proto, priority: int, *, state: str = "BACKUP") -> str:
    return render_keepalived_conf(
        vrid=VRID,
        priority=priority,
        version=proto.version,
        advert_interval=proto.interval,
        vips=[f"{VIP}/{PREFIX}"],
        state=state,
        auth_pass=proto.password,
        router_id=lab.node(KA).name,
        unicast_src=lab.node(KA).address4 if proto.unicast else None,
        unicast_peers=[lab.node(OURS).address4] if proto.unicast else [],
    )


# -- the peers -------------------------------------------------------------------------------


@dataclass
class Peers:
    lab: Lab
    proto: Proto
    ours: VrrpdProcess | None = None
    ka: KeepalivedProcess | None = None

    def start_ours(self, priority: int, *, password: str | None = None) -> VrrpdProcess:
        path = self.lab.workdir / "vrrpd.yaml"
        path.write_text(our_config(self.lab, self.proto, priority, password=password))
        self.ours = VrrpdProcess(self.lab, OURS, path).start()
        return self.ours

    def start_keepalived(self, priority: int, *, state: str = "BACKUP") -> KeepalivedProcess:
        conf = keepalived_config(self.lab, self.proto, priority, state=state)
        self.ka = start_keepalived(self.lab, KA, conf)
        self.ka.wait_vrrp_pid()
        return self.ka

    # -- observing ---------------------------------------------------------------------------

    def our_state(self) -> str | None:
        assert self.ours is not None
        return self.ours.state(INSTANCE)

    def ka_state(self) -> str | None:
        assert self.ka is not None
        states = self.ka.states(KA_INSTANCE)
        return states[-1] if states else None

    def holders(self) -> list[int]:
        return self.lab.holders(VIP)

    def converged(self, master: int) -> bool:
        """`master` is MASTER and the only holder of the VIP; the other node is BACKUP."""
        want = {OURS: "BACKUP", KA: "BACKUP"}
        want[master] = "MASTER"
        return (
            self.our_state() == want[OURS]
            and self.ka_state() == want[KA]
            and self.holders() == [master]
        )

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float | None = None) -> None:
        if not wait_until(predicate, self.proto.settle if timeout is None else timeout):
            pytest.fail(f"timed out waiting for {what}\n{self.diagnostics()}", pytrace=False)

    def diagnostics(self) -> str:
        parts = [
            f"our state: {self.our_state() if self.ours else None}; "
            f"keepalived state: {self.ka_state() if self.ka else None}; "
            f"VIP holders: {self.holders()}"
        ]
        if self.ours is not None:
            parts.append("--- vrrpd (n1) log tail ---\n" + self.ours.log_text()[-4000:])
        if self.ka is not None:
            parts.append("--- keepalived (n2) log tail ---\n" + self.ka.log()[-4000:])
        return "\n".join(parts)

    def client_reaches_vip(self) -> bool:
        return self.lab.ping(self.lab.client, VIP, wait=0.5)

    # -- stopping ----------------------------------------------------------------------------

    def stop_keepalived(self, timeout: float = 15.0) -> int:
        assert self.ka is not None
        self.ka.send_signal(signal.SIGTERM)
        return self.ka.wait(timeout)

    def close(self) -> None:
        """Stop whatever still runs: SIGTERM, a short grace, then SIGKILL.

        Our daemon gets a second SIGTERM after a moment: a master with nobody to hand over
        to would otherwise keep the VIP until its handover deadline (seconds at 1 s).
        """
        procs: list[subprocess.Popen[bytes]] = []
        if self.ours is not None and self.ours.proc is not None:
            procs.append(self.ours.proc)
        if self.ka is not None:
            procs.append(self.ka)
        running = [p for p in procs if p.poll() is None]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for p in running:
            if self.ours is not None and p is self.ours.proc:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(0.5)
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(signal.SIGTERM)  # "again: stop at once"
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
            if p.poll() is None:
                p.kill()
                p.wait(5)


@pytest.fixture
def peers_factory(lab_factory: LabFactory) -> Iterator[Callable[[Proto], Peers]]:
    """`make(proto) -> Peers` on a fresh two-node lab; processes stop before the lab goes."""
    made: list[Peers] = []

    def make(proto: Proto) -> Peers:
        peers = Peers(lab_factory(2), proto)
        made.append(peers)
        return peers

    yield make
    for peers in made:
        peers.close()


# What keepalived 2.2.7 logs when it drops or second-guesses an advert (its vrrp.c messages,
# found in the binary): none may appear about ours when both sides are configured alike.
KEEPALIVED_COMPLAINTS = re.compile(
    r"invalid TTL|TTL/HL .* not in range|wrong version|received a \d+ auth|invalid passwd"
    r"|advertisement interval mismatch|advertisement interval updated|Invalid packet type"
    r"|unexpected ip number count|ip_tot_len mismatch|expected \d+ VIPs"
    r"|not present in MASTER advert|not a unicast peer|(?i:checksum)"
    # Never in these scenarios: our daemon does not advertise below keepalived's priority
    # (a BACKUP stays silent; a MASTER that meets a higher priority yields at once).
    r"|lower priority"
)


def assert_keepalived_accepted_ours(peers: Peers) -> None:
    assert peers.ka is not None
    complaints = [
        line for line in peers.ka.log().splitlines() if KEEPALIVED_COMPLAINTS.search(line)
    ]
    assert not complaints, "keepalived objected to our adverts:\n" + "\n".join(complaints)


def assert_ours_accepted_keepalived(peers: Peers) -> None:
    """Our daemon logged no warning or error: it dropped none of keepalived's adverts."""
    assert peers.ours is not None
    bad = [e for e in peers.ours.events() if e.get("level") not in ("debug", "info")]
    assert not bad, "our daemon complained:\n" + "\n".join(str(e) for e in bad)


def _check_make_before_break(result: ProbeResult, lab: Lab) -> None:
    assert not result.unrecovered, result
    assert result.lost <= 1, f"a planned handover lost client probes: {result}"
    macs = [mac for _, mac in result.answerers]
    assert macs[0] == lab.node(OURS).mac and macs[-1] == lab.node(KA).mac, result


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOS)
def test_ours_master_over_keepalived_hands_over_on_sigterm(
    peers_factory: Callable[[Proto], Peers],
    proto: Proto,
    record_property: Callable[[str, object], None],
) -> None:
    peers = peers_factory(proto)
    lab = peers.lab
    peers.start_keepalived(100)
    peers.start_ours(150)

    peers.wait(lambda: peers.converged(master=OURS), "our daemon (150) MASTER over keepalived")
    time.sleep(proto.quiet)  # several adverts later: still so, keepalived accepts us
    assert peers.converged(master=OURS), peers.diagnostics()
    peers.wait(peers.client_reaches_vip, "the client to reach the VIP on our node")

    assert peers.ours is not None and peers.ka is not None
    with Prober(lab, VIP) as prober:
        time.sleep(0.3)
        code = peers.ours.terminate(timeout=max(15.0, proto.settle))
        peers.wait(lambda: peers.ka_state() == "MASTER", "keepalived to take over")
        peers.wait(lambda: peers.holders() == [KA], "the VIP to be on keepalived's node only")
        time.sleep(0.3)
    result = prober.stop()
    record_property(f"ours_to_keepalived_{proto.id}_lost", result.lost)
    record_property(f"ours_to_keepalived_{proto.id}_max_outage_s", result.max_outage)

    assert code == 0, peers.diagnostics()
    assert VIP not in lab.addresses(OURS)
    # keepalived understood our priority-0 advert, and we let the VIP go only once we had
    # heard keepalived advertise as master (not at the handover deadline).
    assert re.search(rf"\({KA_INSTANCE}\) Backup received priority 0", peers.ka.log()), (
        peers.diagnostics()
    )
    last = peers.ours.transitions(INSTANCE)[-1]
    assert last["state"] == "STOPPED", peers.diagnostics()
    assert f"{lab.node(KA).address4} took over" in last["reason"], peers.diagnostics()
    _check_make_before_break(result, lab)
    assert_keepalived_accepted_ours(peers)
    assert_ours_accepted_keepalived(peers)


@pytest.mark.parametrize("proto", PROTOS)
def test_keepalived_master_over_ours_hands_over_on_sigterm(
    peers_factory: Callable[[Proto], Peers],
    proto: Proto,
    record_property: Callable[[str, object], None],
) -> None:
    peers = peers_factory(proto)
    lab = peers.lab
    peers.start_keepalived(150, state="MASTER")  # the usual keepalived master config
    peers.start_ours(100)

    peers.wait(lambda: peers.converged(master=KA), "keepalived (150) MASTER over our daemon")
    time.sleep(proto.quiet)  # several adverts later, past our own master-down interval
    assert peers.converged(master=KA), peers.diagnostics()
    assert peers.ours is not None
    assert "MASTER" not in [t["state"] for t in peers.ours.transitions(INSTANCE)]
    peers.wait(peers.client_reaches_vip, "the client to reach the VIP on keepalived's node")

    with Prober(lab, VIP) as prober:
        time.sleep(0.3)
        peers.stop_keepalived()
        peers.wait(lambda: peers.our_state() == "MASTER", "our daemon to take over")
        peers.wait(lambda: peers.holders() == [OURS], "the VIP to be on our node only")
        peers.wait(peers.client_reaches_vip, "the client to reach the VIP on our node")
    result = prober.stop()
    record_property(f"keepalived_to_ours_{proto.id}_max_outage_s", result.max_outage)
    assert not result.unrecovered, result
    assert result.answerers[-1][1] == lab.node(OURS).mac, result
    assert peers.ka is not None
    assert re.search(rf"\({KA_INSTANCE}\) sent 0 priority", peers.ka.log()), peers.diagnostics()
    if proto.interval >= 1.0:
        # We took over after our skew time (0.61 s) on keepalived's priority 0, not after a
        # master-down interval (>= 2 intervals after its last periodic advert). At 100 ms
        # the two are too close to tell apart by the clock; at 1 s they are seconds apart.
        assert result.max_outage < 2 * proto.interval, result
    assert_keepalived_accepted_ours(peers)
    assert_ours_accepted_keepalived(peers)


def test_v2_wrong_password_is_dropped_both_ways(peers_factory: Callable[[Proto], Peers]) -> None:
    """The observable proof that we check PASS authentication: keepalived (150) outranks
    us (100), yet with a different password we ignore its adverts and become MASTER too,
    so both nodes hold the VIP. keepalived, for its part, logs our adverts as bad."""
    peers = peers_factory(V2_AUTH)
    peers.start_keepalived(150)
    ours = peers.start_ours(100, password="wrong")
    ka = peers.ka
    assert ka is not None

    peers.wait(
        lambda: peers.our_state() == "MASTER" and peers.ka_state() == "MASTER",
        "both to become MASTER (each ignores the other)",
    )
    peers.wait(lambda: peers.holders() == [OURS, KA], "both nodes to hold the VIP")
    time.sleep(V2_AUTH.quiet)  # several adverts each way, still two masters
    assert peers.our_state() == "MASTER" and peers.ka_state() == "MASTER", peers.diagnostics()
    assert peers.holders() == [OURS, KA]
    # A higher-priority advert that passed the check would have kept us BACKUP.
    assert [t["state"] for t in ours.transitions(INSTANCE)] == ["BACKUP", "MASTER"]

    # We said why we dropped keepalived's adverts (the first drop is a warning)...
    ka_addr = peers.lab.node(KA).address4
    assert any(
        e["level"] == "warning" and f"dropped advert (auth) from {ka_addr}" in e["msg"]
        for e in ours.events()
    ), peers.diagnostics()
    # ...and keepalived says it got adverts with a bad password (ours).
    ka.wait_for_log(rf"\({KA_INSTANCE}\) received an invalid passwd", timeout=V2_AUTH.settle)


def test_link_down_of_our_master_fails_over_to_keepalived_and_back(
    peers_factory: Callable[[Proto], Peers],
) -> None:
    """Carrier loss on our master's port: keepalived takes over; when the link returns our
    daemon preempts back (keepalived has no nopreempt), and only one node holds the VIP."""
    peers = peers_factory(V3)
    lab = peers.lab
    peers.start_keepalived(100)
    ours = peers.start_ours(150)
    peers.wait(lambda: peers.converged(master=OURS), "our daemon (150) MASTER over keepalived")

    lab.link_down(OURS)  # the bridge side: eth0 stays up but loses carrier
    peers.wait(lambda: peers.our_state() == "FAULT", "our daemon to see the carrier go")
    peers.wait(lambda: peers.ka_state() == "MASTER", "keepalived to take over")
    peers.wait(lambda: peers.holders() == [KA], "the VIP to leave our node for keepalived's")
    peers.wait(peers.client_reaches_vip, "the client to reach the VIP on keepalived's node")

    lab.link_up(OURS)
    peers.wait(lambda: peers.converged(master=OURS), "our daemon to preempt back")
    time.sleep(V3.quiet)
    assert peers.converged(master=OURS), peers.diagnostics()
    states = [t["state"] for t in ours.transitions(INSTANCE)]
    assert states[-3:] == ["FAULT", "BACKUP", "MASTER"], peers.diagnostics()
    peers.wait(peers.client_reaches_vip, "the client to reach the VIP on our node again")
    assert_keepalived_accepted_ours(peers)
    assert_ours_accepted_keepalived(peers)
