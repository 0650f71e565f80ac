"""A vrrp_instance's tracking: track_interface, track_script and track_file blocks (its own
and its sync group's) become spec.trackInterfaces and spec.probes."""

from __future__ import annotations

from typing import Any

from vrrpd.convert.definitions import KEEPALIVED_WEIGHT_MAX, Definitions
from vrrpd.convert.reader import Statement
from vrrpd.convert.report import Severity
from vrrpd.convert.values import dns_label, duration, unique_name
from vrrpd.limits import PROBE_WEIGHT_MAX


class Tracking:
    """What one instance tracks, gathered block by block; keepalived tracks each name once."""

    def __init__(self, defs: Definitions, iname: str) -> None:
        self.defs = defs
        self.report = defs.report
        self.iname = iname
        self.track_interfaces: list[str] = []
        self.probes: list[dict[str, Any]] = []
        self.probe_names: set[str] = set()
        self.tracked: set[tuple[str, str]] = set()  # (kind, name)

    def track(self, st: Statement, group: str | None = None) -> None:
        """A track_interface, track_script or track_file block (`group`: the name of the sync
        group it comes from)."""
        {
            "track_interface": self._track_interface,
            "track_script": self._track_script,
            "track_file": self._track_file,
        }[st.keyword](st, group)

    def _track_interface(self, st: Statement, group: str | None) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of interfaces; ignored")
            return
        for entry in st.block:
            ifname, args = entry.keyword, entry.args
            weight = 0
            if args[:1] == ["weight"] and len(args) >= 2:
                parsed = self.defs.values.read_weight(entry, args[1], KEEPALIVED_WEIGHT_MAX)
                weight = parsed or 0
                if "reverse" in args[2:]:
                    self._entry_warning(
                        entry, "weight reverse is not supported; this interface is not tracked"
                    )
                    continue
            elif args:
                self._entry_warning(entry, f"unknown option {' '.join(args)!r}; ignored")
            if weight == 0:
                if ifname not in self.track_interfaces:
                    self.track_interfaces.append(ifname)
                continue
            if self._ignored_in_group(entry, group) or self._tracked_twice("interface", entry):
                continue
            name = unique_name(dns_label(f"if-{ifname}"), self.probe_names)
            self.probes.append({"name": name, "interface": {"name": ifname}, "weight": weight})
            self._entry_warning(
                entry,
                f"a weighted interface becomes an interface probe {name!r} with weight "
                f"{weight} (spec.trackInterfaces has no weights)",
                severity="info",
            )

    def _ignored_in_group(self, entry: Statement, group: str | None) -> bool:
        """keepalived ignores weighted trackers of sync-group members (keepalived.conf(5))."""
        sync = self.defs.groups.get(self.iname)
        if sync is None or sync.tracking_weight:
            return False
        where = f"of sync group {group}" if group else f"of {self.iname}, a sync-group member,"
        self._entry_warning(
            entry,
            f"a weighted tracker {where} is ignored by keepalived unless the group sets "
            "sync_group_tracking_weight; not converted, to keep that behaviour",
        )
        return True

    def _entry_warning(
        self, entry: Statement, message: str, severity: Severity = "warning"
    ) -> None:
        directive = " ".join([entry.keyword, *entry.args])
        self.report.at(entry.line, directive, message, severity=severity, file=entry.file)

    def _track_script(self, st: Statement, group: str | None) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of vrrp_script names; ignored")
            return
        for entry in st.block:
            name, args = entry.keyword, entry.args
            self.defs.used_scripts.add(name)
            script = self.defs.scripts.get(name)
            if script is None:
                self._entry_warning(entry, f"no vrrp_script {name} is defined; ignored")
                continue
            if script.check is None:
                continue  # reported at the vrrp_script
            weight = script.weight
            reverse = script.reverse
            if args[:1] == ["weight"] and len(args) >= 2:
                parsed = self.defs.values.read_weight(entry, args[1], KEEPALIVED_WEIGHT_MAX)
                weight = weight if parsed is None else parsed
                reverse = "reverse" in args[2:] or (reverse and "noreverse" not in args[2:])
            elif args:
                self._entry_warning(entry, f"unknown option {' '.join(args)!r}; ignored")
            if reverse:
                self._entry_warning(
                    entry,
                    "weight reverse is not supported; the probe is not converted (converted "
                    "without reverse it would act the other way round)",
                )
                continue
            if weight and self._ignored_in_group(entry, group):
                continue
            if self._tracked_twice("script", entry):
                continue
            probe: dict[str, Any] = {
                "name": unique_name(dns_label(name, "probe"), self.probe_names)
            }
            probe.update(script.check)
            if script.interval_cs is not None:
                probe["interval"] = duration(script.interval_cs)
            if script.timeout_cs is not None:
                probe["timeout"] = duration(script.timeout_cs)
            if script.rise is not None:
                probe["rise"] = script.rise
            if script.fall is not None:
                probe["fall"] = script.fall
            if weight is not None:
                probe["weight"] = weight
            self.probes.append(probe)

    def _tracked_twice(self, kind: str, entry: Statement) -> bool:
        if (kind, entry.keyword) in self.tracked:
            self._entry_warning(entry, f"{entry.keyword} is already tracked here; kept once")
            return True
        self.tracked.add((kind, entry.keyword))
        return False

    def _track_file(self, st: Statement, group: str | None) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of track_file names; ignored")
            return
        for entry in st.block:
            name, args = entry.keyword, entry.args
            track = self.defs.track_files.get(name)
            if track is None:
                self._entry_warning(entry, f"no track_file {name} is defined; ignored")
                continue
            if track.path is None:
                continue
            weight, reverse = track.weight, track.reverse
            if args[:1] == ["weight"] and len(args) >= 2:
                parsed = self.defs.values.read_weight(entry, args[1], PROBE_WEIGHT_MAX)
                weight = weight if parsed is None else parsed
                reverse = "reverse" in args[2:] or (reverse and "noreverse" not in args[2:])
            elif args:
                self._entry_warning(entry, f"unknown option {' '.join(args)!r}; ignored")
            if reverse:
                self._entry_warning(entry, "weight reverse is not supported; not converted")
                continue
            if weight and self._ignored_in_group(entry, group):
                continue
            if self._tracked_twice("file", entry):
                continue
            probe_name = unique_name(dns_label(name, "file"), self.probe_names)
            self.probes.append({"name": probe_name, "file": {"path": track.path}, "weight": weight})
