"""Prometheus metrics: a tiny text-format registry and the daemon's metric families.

No prometheus_client: the daemon needs counters and gauges with labels and the text
exposition format 0.0.4, which is a page of code, not a dependency.

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
  vrrpd_state_since_seconds{iname}, vrrpd_adverts_dropped_total{iname,reason}.

keepalived_vrrp_state values are keepalived's own numbers (the exporter's VRRPStates list):
0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT; 4 STOPPED is ours (keepalived drops a stopped instance
from its data dump, so the exporter never shows one). Like the exporter, it has one series
per virtual address. keepalived_script_status is 1 GOOD, 0 BAD (the exporter's
VRRPScriptStatuses list); its ``name`` is qualified by the instance because our probe names
are unique per VirtualIP only, not per node as keepalived's vrrp_script names are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar, Final, TypeVar

LabelValue = str | int
Labels = tuple[str, ...]

F = TypeVar("F", bound="_Family")

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def escape_help(text: str) -> str:
    """HELP text escapes backslash and newline (exposition format 0.0.4)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(text: str) -> str:
    """Label values also escape the double quote that would end them."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    # Integral values print without ".0" so counters read naturally; 2**53 is where a float
    # stops holding every integer, past which repr() is the honest form.
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


class _Family:
    TYPE: ClassVar[str]

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"metric name {name!r} is not a valid Prometheus name")
        self.name = name
        self.help = help
        self.labelnames: Labels = tuple(labelnames)
        for label in self.labelnames:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"{name}: label name {label!r} is not valid")
        if len(set(self.labelnames)) != len(self.labelnames):
            raise ValueError(f"{name}: duplicate label names in {self.labelnames}")
        self._values: dict[Labels, float] = {}
        if not self.labelnames:
            # An unlabelled series exists from the start, as in prometheus_client: a scrape
            # then shows 0 rather than nothing, which alerts on absence would misread.
            self._values[()] = 0.0

    def _key(self, labels: dict[str, LabelValue]) -> Labels:
        if labels.keys() != set(self.labelnames):
            raise ValueError(
                f"{self.name}: labels {sorted(labels)} given, {list(self.labelnames)} expected"
            )
        return tuple(str(labels[name]) for name in self.labelnames)

    def value(self, **labels: LabelValue) -> float | None:
        """The series' current value, or None if it has never been set."""
        return self._values.get(self._key(labels))

    def remove(self, **labels: LabelValue) -> None:
        """Forget one series (an instance or probe that no longer exists)."""
        self._values.pop(self._key(labels), None)

    def remove_matching(self, **labels: LabelValue) -> int:
        """Forget every series whose labels include these; returns how many went."""
        unknown = labels.keys() - set(self.labelnames)
        if unknown:
            raise ValueError(f"{self.name}: no labels {sorted(unknown)}")
        index = {name: i for i, name in enumerate(self.labelnames)}
        wanted = [(index[name], str(value)) for name, value in labels.items()]
        doomed = [key for key in self._values if all(key[i] == v for i, v in wanted)]
        for key in doomed:
            del self._values[key]
        return len(doomed)

    def clear(self) -> None:
        self._values.clear()
        if not self.labelnames:
            self._values[()] = 0.0

    def samples(self) -> Iterator[tuple[dict[str, str], float]]:
        # Sorted so a scrape is deterministic and diffs between scrapes are readable.
        for key in sorted(self._values):
            yield dict(zip(self.labelnames, key, strict=True)), self._values[key]

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.TYPE}"]
        for labels, value in self.samples():
            if labels:
                text = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
                lines.append(f"{self.name}{{{text}}} {format_value(value)}")
            else:
                lines.append(f"{self.name} {format_value(value)}")
        return "\n".join(lines) + "\n"


class Counter(_Family):
    TYPE = "counter"

    def inc(self, amount: float = 1.0, **labels: LabelValue) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up (inc by {amount})")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(_Family):
    TYPE = "gauge"

    def set(self, value: float, **labels: LabelValue) -> None:
        self._values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: LabelValue) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: LabelValue) -> None:
        self.inc(-amount, **labels)


class Registry:
    """Families in registration order; collectors run before each render.

    A collector is for values that are cheaper to read at scrape time than to push on
    every change (effective priority, time in state): it sets gauges from live state.
    """

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._collectors: list[Callable[[], None]] = []

    def register(self, family: F) -> F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Counter:
        return self.register(Counter(name, help, labelnames))

    def gauge(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Gauge:
        return self.register(Gauge(name, help, labelnames))

    def get(self, name: str) -> _Family:
        return self._families[name]

    def families(self) -> list[_Family]:
        return list(self._families.values())

    def add_collector(self, collect: Callable[[], None]) -> None:
        self._collectors.append(collect)

    def render(self) -> str:
        for collect in self._collectors:
            collect()
        return "".join(family.render() for family in self._families.values())


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
    """

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry or Registry()
        self.up = r.gauge("keepalived_up", "Status: 1 while the daemon serves metrics")
        self.up.set(1)
        self.vrrp_state = r.gauge(
            "keepalived_vrrp_state",
            "State of vrrp: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT, 4 STOPPED; one series per VIP",
            (*_VRRP, "ip_address"),
        )
        self.adverts_sent = r.counter(
            "keepalived_advertisements_sent_total", "Advertisements sent", _VRRP
        )
        self.adverts_received = r.counter(
            "keepalived_advertisements_received_total", "Advertisements received", _VRRP
        )
        self.become_master = r.counter("keepalived_become_master_total", "Became master", _VRRP)
        self.release_master = r.counter("keepalived_release_master_total", "Released master", _VRRP)
        self.priority_zero_sent = r.counter(
            "keepalived_priority_zero_sent_total", "Priority zero sent", _VRRP
        )
        self.priority_zero_received = r.counter(
            "keepalived_priority_zero_received_total", "Priority zero received", _VRRP
        )
        self.drop_errors = {
            reason: r.counter(name, help, _VRRP)
            for reason, (name, help) in KEEPALIVED_DROP_COUNTERS.items()
        }
        self.script_status = r.gauge(
            "keepalived_script_status",
            "Tracker script (probe) status: 1 GOOD, 0 BAD; name is <instance>/<probe>",
            ("name",),
        )
        self.probe_success = r.gauge(
            "vrrpd_probe_success", "1 if the probe's last check passed, else 0", ("iname", "probe")
        )
        self.probe_duration = r.gauge(
            "vrrpd_probe_duration_seconds",
            "How long the probe's last check took",
            ("iname", "probe"),
        )
        self.effective_priority = r.gauge(
            "vrrpd_effective_priority",
            "Priority advertised now: base plus probe weights, clamped to 1..254",
            ("iname",),
        )
        self.transitions = r.counter(
            "vrrpd_transitions_total", "State transitions, by the state entered", ("iname", "to")
        )
        self.state_since = r.gauge(
            "vrrpd_state_since_seconds",
            "Unix time of the instance's last state change (time in state: time() - this)",
            ("iname",),
        )
        self.adverts_dropped = r.counter(
            "vrrpd_adverts_dropped_total",
            "Advertisements not accepted, by the codec's drop reason",
            ("iname", "reason"),
        )

    def render(self) -> str:
        return self.registry.render()

    def set_state(
        self, iname: str, intf: str, vrid: int, addresses: Iterable[str], state: str
    ) -> None:
        """One keepalived_vrrp_state series per address; stale addresses are dropped."""
        value = state_value(state)
        self.vrrp_state.remove_matching(iname=iname)
        # The exporter's ip_address is the bare address, without its prefix length.
        for address in addresses:
            bare = str(address).split("/", 1)[0]
            self.vrrp_state.set(value, iname=iname, intf=intf, vrid=vrid, ip_address=bare)

    def record_transition(
        self, iname: str, intf: str, vrid: int, old: str, new: str, at_unix: float
    ) -> None:
        """Count a state change; keepalived counts become/release master on MASTER edges."""
        old_u, new_u = str(old).upper(), str(new).upper()
        self.transitions.inc(iname=iname, to=new_u)
        if new_u == "MASTER" and old_u != "MASTER":
            self.become_master.inc(iname=iname, intf=intf, vrid=vrid)
        if old_u == "MASTER" and new_u != "MASTER":
            self.release_master.inc(iname=iname, intf=intf, vrid=vrid)
        self.state_since.set(at_unix, iname=iname)

    def record_drop(self, iname: str, intf: str, vrid: int, reason: str) -> None:
        self.adverts_dropped.inc(iname=iname, reason=str(reason))
        counter = self.drop_errors.get(str(reason))
        if counter is not None:
            counter.inc(iname=iname, intf=intf, vrid=vrid)

    def record_probe(self, iname: str, probe: str, ok: bool, duration_s: float) -> None:
        self.probe_success.set(1 if ok else 0, iname=iname, probe=probe)
        self.probe_duration.set(duration_s, iname=iname, probe=probe)
        self.script_status.set(1 if ok else 0, name=f"{iname}/{probe}")

    def forget_instance(self, iname: str) -> None:
        """Drop every series of a removed instance."""
        for family in self.registry.families():
            if "iname" in family.labelnames:
                family.remove_matching(iname=iname)
        for labels, _ in list(self.script_status.samples()):
            if labels["name"].startswith(f"{iname}/"):
                self.script_status.remove(name=labels["name"])
