"""Prometheus metrics: the daemon's metric families on prometheus_client, and how they are fed.

Each DaemonMetrics has a registry of its own (not prometheus_client's global one), so tests
and daemons in one process never share series. Counters export no ``_created`` series:
keepalived-exporter has none, and a scrape is the same text it always was (format 0.0.4).

Names follow mehdy/keepalived-exporter (internal/collector/collector.go) wherever the
concept is the same, so dashboards and alerts written for keepalived keep working. The
exporter's names (labels iname, intf, vrid unless said):
  keepalived_up (no labels), keepalived_vrrp_state (+ ip_address),
  keepalived_advertisements_sent_total, keepalived_advertisements_received_total,
  keepalived_become_master_total, keepalived_release_master_total,
  keepalived_priority_zero_sent_total, keepalived_priority_zero_received_total,
  keepalived_packet_length_errors_total, keepalived_advertisements_interval_errors_total,
  keepalived_ip_ttl_errors_total, keepalived_invalid_type_received_total,
  keepalived_address_list_errors_total, keepalived_script_status (name only).
Ours: vrrpd_probe_success{iname,probe}, vrrpd_probe_duration_seconds{iname,probe},
  vrrpd_effective_priority{iname}, vrrpd_transitions_total{iname,to},
  vrrpd_state_since_seconds{iname}, vrrpd_adverts_dropped_total{iname,reason},
  vrrpd_split_brain{iname}, vrrpd_split_brain_detected_total{iname,evidence}.

keepalived_vrrp_state values are keepalived's own numbers (the exporter's VRRPStates list):
0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT; 4 STOPPED is ours (keepalived drops a stopped instance
from its data dump, so the exporter never shows one). Like the exporter, it has one series
per virtual address. keepalived_script_status is 1 GOOD, 0 BAD (the exporter's
VRRPScriptStatuses list); its ``name`` is qualified by the instance because our probe names
are unique per VirtualIP only, not per node as keepalived's vrrp_script names are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4

# keepalived-exporter shows no <name>_created series; this switch is process-wide, and this
# module is the only user of prometheus_client in the daemon.
disable_created_metrics()  # type: ignore[no-untyped-call]


# --- the daemon's families --------------------------------------------------------------------

# keepalived's numbers for its states (vrrp.h VRRP_STATE_*; the exporter's VRRPStates list).
STATE_VALUES: Final[dict[str, int]] = {
    "INIT": 0,
    "INITIALIZE": 0,
    "BACKUP": 1,
    "MASTER": 2,
    "FAULT": 3,
    "STOP": 4,
    "STOPPED": 4,
}

# Drop reasons (vrrpd.vrrp.packet.DropReason values) that keepalived counts under a metric of
# its own. "auth" is left out on purpose: keepalived splits it into invalid type, type
# mismatch and password failure, and our codec reports all three as one reason.
KEEPALIVED_DROP_COUNTERS: Final[dict[str, tuple[str, str]]] = {
    "length": ("keepalived_packet_length_errors_total", "Packet length errors"),
    "interval": (
        "keepalived_advertisements_interval_errors_total",
        "Advertisement interval errors",
    ),
    "ttl": ("keepalived_ip_ttl_errors_total", "TTL errors"),
    "type": ("keepalived_invalid_type_received_total", "Invalid type errors"),
    "address_list": ("keepalived_address_list_errors_total", "Address list errors"),
}

_VRRP = ("iname", "intf", "vrid")


def state_value(state: str) -> int:
    """keepalived's number for a state name (any case); ValueError for an unknown one."""
    try:
        return STATE_VALUES[str(state).upper()]
    except KeyError:
        raise ValueError(f"unknown VRRP state {state!r}; known: {sorted(STATE_VALUES)}") from None


class DaemonMetrics:
    """Every metric the daemon exports, with helpers that keep related series consistent.

    The daemon calls the ``record_*`` helpers where things happen and ``forget_instance``
    when an instance is removed, so a scrape never shows series of an instance that is gone.
    Values cheaper to read at scrape time than to push on every change (effective priority)
    come from callbacks given to ``on_scrape``, run before each ``render``.
    """

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._on_scrape: list[Callable[[], None]] = []
        self.up = Gauge("keepalived_up", "Status: 1 while the daemon serves metrics", registry=r)
        self.up.set(1)
        self.vrrp_state = Gauge(
            "keepalived_vrrp_state",
            "State of vrrp: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT, 4 STOPPED; one series per VIP",
            (*_VRRP, "ip_address"),
            registry=r,
        )
        self.adverts_sent = Counter(
            "keepalived_advertisements_sent_total", "Advertisements sent", _VRRP, registry=r
        )
        self.adverts_received = Counter(
            "keepalived_advertisements_received_total", "Advertisements received", _VRRP,
            registry=r,
        )  # fmt: skip
        self.become_master = Counter(
            "keepalived_become_master_total", "Became master", _VRRP, registry=r
        )
        self.release_master = Counter(
            "keepalived_release_master_total", "Released master", _VRRP, registry=r
        )
        self.priority_zero_sent = Counter(
            "keepalived_priority_zero_sent_total", "Priority zero sent", _VRRP, registry=r
        )
        self.priority_zero_received = Counter(
            "keepalived_priority_zero_received_total", "Priority zero received", _VRRP,
            registry=r,
        )  # fmt: skip
        self.drop_errors = {
            reason: Counter(name, help, _VRRP, registry=r)
            for reason, (name, help) in KEEPALIVED_DROP_COUNTERS.items()
        }
        self.script_status = Gauge(
            "keepalived_script_status",
            "Tracker script (probe) status: 1 GOOD, 0 BAD; name is <instance>/<probe>",
            ("name",),
            registry=r,
        )
        self.probe_success = Gauge(
            "vrrpd_probe_success", "1 if the probe's last check passed, else 0",
            ("iname", "probe"), registry=r,
        )  # fmt: skip
        self.probe_duration = Gauge(
            "vrrpd_probe_duration_seconds", "How long the probe's last check took",
            ("iname", "probe"), registry=r,
        )  # fmt: skip
        self.effective_priority = Gauge(
            "vrrpd_effective_priority",
            "Priority advertised now: base plus probe weights, clamped to 1..254",
            ("iname",),
            registry=r,
        )
        self.transitions = Counter(
            "vrrpd_transitions_total", "State transitions, by the state entered",
            ("iname", "to"), registry=r,
        )  # fmt: skip
        self.state_since = Gauge(
            "vrrpd_state_since_seconds",
            "Unix time of the instance's last state change (time in state: time() - this)",
            ("iname",),
            registry=r,
        )
        self.adverts_dropped = Counter(
            "vrrpd_adverts_dropped_total",
            "Advertisements not accepted, by the codec's drop reason",
            ("iname", "reason"),
            registry=r,
        )
        self.split_brain = Gauge(
            "vrrpd_split_brain",
            "1 while this MASTER hears another master for its VRID or VIP, else 0",
            ("iname",),
            registry=r,
        )
        self.split_brain_detected = Counter(
            "vrrpd_split_brain_detected_total",
            "Split brains detected, by evidence: advert, mismatch, announcement",
            ("iname", "evidence"),
            registry=r,
        )
        # Every family labelled by instance, for forget_instance.
        self._per_instance: tuple[Counter | Gauge, ...] = (
            self.vrrp_state, self.adverts_sent, self.adverts_received, self.become_master,
            self.release_master, self.priority_zero_sent, self.priority_zero_received,
            *self.drop_errors.values(), self.probe_success, self.probe_duration,
            self.effective_priority, self.transitions, self.state_since, self.adverts_dropped,
            self.split_brain, self.split_brain_detected,
        )  # fmt: skip

    def on_scrape(self, collect: Callable[[], None]) -> None:
        """Run ``collect`` before every render: it sets gauges from live state."""
        self._on_scrape.append(collect)

    def render(self) -> bytes:
        """The text exposition (format 0.0.4, see CONTENT_TYPE) of every metric."""
        for collect in self._on_scrape:
            collect()
        return generate_latest(self.registry)

    def set_state(
        self, iname: str, intf: str, vrid: int, addresses: Iterable[str], state: str
    ) -> None:
        """One keepalived_vrrp_state series per address; stale addresses are dropped."""
        value = state_value(state)
        self.vrrp_state.remove_by_labels({"iname": iname})
        # The exporter's ip_address is the bare address, without its prefix length.
        for address in addresses:
            bare = str(address).split("/", 1)[0]
            self.vrrp_state.labels(iname, intf, vrid, bare).set(value)

    def record_transition(
        self, iname: str, intf: str, vrid: int, old: str, new: str, at_unix: float
    ) -> None:
        """Count a state change; keepalived counts become/release master on MASTER edges."""
        old_u, new_u = str(old).upper(), str(new).upper()
        self.transitions.labels(iname, new_u).inc()
        if new_u == "MASTER" and old_u != "MASTER":
            self.become_master.labels(iname, intf, vrid).inc()
        if old_u == "MASTER" and new_u != "MASTER":
            self.release_master.labels(iname, intf, vrid).inc()
        self.state_since.labels(iname).set(at_unix)

    def record_drop(self, iname: str, intf: str, vrid: int, reason: str) -> None:
        self.adverts_dropped.labels(iname, str(reason)).inc()
        counter = self.drop_errors.get(str(reason))
        if counter is not None:
            counter.labels(iname, intf, vrid).inc()

    def record_split_brain(self, iname: str, evidence: str | None) -> None:
        """A split brain seen (evidence: what showed it) or over (None)."""
        self.split_brain.labels(iname).set(0 if evidence is None else 1)
        if evidence is not None:
            self.split_brain_detected.labels(iname, evidence).inc()

    def record_probe(self, iname: str, probe: str, ok: bool, duration_s: float) -> None:
        self.probe_success.labels(iname, probe).set(1 if ok else 0)
        self.probe_duration.labels(iname, probe).set(duration_s)
        self.script_status.labels(f"{iname}/{probe}").set(1 if ok else 0)

    def forget_instance(self, iname: str) -> None:
        """Drop every series of a removed instance."""
        for family in self._per_instance:
            family.remove_by_labels({"iname": iname})
        for metric in self.script_status.collect():
            for sample in metric.samples:
                if sample.labels["name"].startswith(f"{iname}/"):
                    self.script_status.remove(sample.labels["name"])
