"""What a keepalived.conf defines for all its instances: global_defs, vrrp_script,
track_file and vrrp_sync_group blocks, read into `Definitions` before any vrrp_instance
(keepalived resolves names over the whole file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vrrpd.convert.reader import Statement
from vrrpd.convert.report import Report
from vrrpd.convert.values import (
    DEV_TCP,
    Values,
    dns_label,
    duration,
    integer,
    script_argv,
)
from vrrpd.limits import (
    PROBE_INTERVAL_MAX_CS,
    PROBE_RISE_FALL_MAX,
    PROBE_WEIGHT_MAX,
    SMTP_CONNECT_TIMEOUT_MAX_CS,
    SMTP_PORT,
)

KEEPALIVED_WEIGHT_MAX = 253  # keepalived's vrrp_script and track_interface weights: -253..253


@dataclass(slots=True)
class Script:
    """A vrrp_script, resolved once (its warnings are given once, at its own lines)."""

    name: str
    check: dict[str, Any] | None
    interval_cs: int | None = None
    timeout_cs: int | None = None
    weight: int | None = None
    reverse: bool = False
    rise: int | None = None
    fall: int | None = None


@dataclass(slots=True)
class TrackFile:
    name: str
    path: str | None
    weight: int = 1  # keepalived: a track_file's weight defaults to 1
    reverse: bool = False


@dataclass(slots=True)
class Globals:
    version: int | None = None
    garp: dict[str, Any] = field(default_factory=dict)
    garp_interval_cs: int | None = None
    gna_interval_cs: int | None = None
    email_to: list[str] = field(default_factory=list)
    email_from: str | None = None
    smtp_server: str | None = None
    smtp_timeout_cs: int | None = None
    smtp_alert: bool = False
    strict: bool = False
    fifo: str | None = None  # notify_fifo / vrrp_notify_fifo: every instance's notify.fifo
    garp_line: dict[str, Statement] = field(default_factory=dict)


@dataclass(slots=True)
class SyncGroup:
    st: Statement
    name: str  # sanitized
    members: list[str] = field(default_factory=list)
    notify: dict[str, tuple[list[str], Statement]] = field(default_factory=dict)
    smtp_alert: bool = False
    tracking: list[Statement] = field(default_factory=list)
    tracking_weight: bool = False
    copied: dict[str, list[str]] = field(default_factory=dict)  # notify kind -> members


NOTIFY_FIELDS = {
    "notify_master": "master",
    "notify_backup": "backup",
    "notify_fault": "fault",
    "notify_stop": "stop",
    "notify": "all",
}
NOTIFY_ORDER = ("master", "backup", "fault", "stop", "all")


_GLOBAL_VALUED = {
    "notification_email_from",
    "smtp_server",
    "smtp_connect_timeout",
    "vrrp_version",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
}

_GLOBAL_INFO = {
    "router_id": "not needed: each node is identified by its Kubernetes node name",
    "script_user": "not supported: probes and notify scripts run as the daemon's user",
    "enable_script_security": "not supported: probes and notify scripts run as the daemon's "
    "user; keep scripts root-owned",
}


class Definitions:
    """The file's definitions, and what every instance's conversion shares: the report,
    the node, the value readers, advice given once per file."""

    def __init__(self, report: Report, node: str | None) -> None:
        self.report = report
        self.node = node
        self.values = Values(report)
        self.globals = Globals()
        self.scripts: dict[str, Script] = {}
        self.track_files: dict[str, TrackFile] = {}
        self.groups: dict[str, SyncGroup] = {}  # by instance name
        self.used_scripts: set[str] = set()
        self.noted: set[str] = set()  # advice given once per file, not once per instance

    def note_once(self, key: str, st: Statement, message: str) -> None:
        if key not in self.noted:
            self.noted.add(key)
            self.report.on(st, message, severity="info")

    # --- global_defs

    def global_defs(self, block: Statement) -> None:
        g = self.globals
        for st in block.block or []:
            kw, args = st.keyword, st.args
            if kw in _GLOBAL_VALUED and not args:
                self.report.on(st, "no value given; ignored")
            elif kw == "notification_email":
                if st.block is None:
                    self.report.on(st, "expects a { } block of addresses; ignored")
                    continue
                for entry in st.block:
                    address = self.values.email(entry, " ".join(t.text for t in entry.words))
                    if address is not None:
                        g.email_to.append(address)
            elif kw == "notification_email_from":
                g.email_from = self.values.email(st, " ".join(args))
            elif kw == "smtp_server":
                host = args[0]
                port = args[1] if len(args) > 1 else str(SMTP_PORT)
                g.smtp_server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            elif kw == "smtp_connect_timeout":
                g.smtp_timeout_cs = self.values.read_duration(st, args[0])
                if (
                    g.smtp_timeout_cs is not None
                    and g.smtp_timeout_cs > SMTP_CONNECT_TIMEOUT_MAX_CS
                ):
                    self.report.on(st, "above the 5m maximum; using 5m")
                    g.smtp_timeout_cs = SMTP_CONNECT_TIMEOUT_MAX_CS
            elif kw in ("notify_fifo", "vrrp_notify_fifo"):
                self._notify_fifo(st, g)
            elif kw in ("notify_fifo_script", "vrrp_notify_fifo_script"):
                self.report.on(
                    st,
                    "not converted: the daemon writes the FIFO (notify.fifo) but runs no "
                    "reader; start the script beside it, with the FIFO's path as its last "
                    "argument as keepalived does",
                )
            elif kw in ("smtp_alert", "smtp_alert_vrrp"):
                value = self.values.read_bool(st)
                if value is not None:
                    g.smtp_alert = value
            elif kw == "vrrp_version":
                version = integer(args[0])
                if version not in (2, 3):
                    self.report.on(st, f"{args[0]!r} is not 2 or 3; ignored")
                else:
                    g.version = version
            elif kw == "vrrp_garp_master_delay":
                self.values.garp_value(st, g.garp, "masterDelay", args[0], whole=True)
            elif kw == "vrrp_garp_master_repeat":
                self.values.garp_value(st, g.garp, "masterRepeat", args[0])
            elif kw == "vrrp_garp_master_refresh":
                self.values.garp_value(st, g.garp, "masterRefresh", args[0], whole=True)
            elif kw == "vrrp_garp_interval":
                g.garp_interval_cs = self.values.read_interval(st, args[0])
                g.garp_line["interval"] = st
            elif kw == "vrrp_gna_interval":
                g.gna_interval_cs = self.values.read_interval(st, args[0])
                g.garp_line["gna"] = st
            elif kw == "vrrp_strict":
                g.strict = True
                self.report.on(
                    st,
                    "strict mode is not a setting here; converted as `accept: false` on every "
                    "instance (its effect on accept mode); its other checks do not apply",
                )
            elif kw in _GLOBAL_INFO:
                self.report.on(st, _GLOBAL_INFO[kw], severity="info")
            else:
                self.report.on(st, "not supported by kube-vrrp; ignored")

    # --- vrrp_script, track_file

    def vrrp_script(self, block: Statement) -> None:
        name = block.args[0]
        script = Script(name=name, check=None)
        timeout_st: Statement | None = None
        for st in block.block or []:
            kw, args = st.keyword, st.args
            if kw in ("script", "interval", "timeout", "weight", "rise", "fall") and not args:
                self.report.on(st, "no value given; ignored")
            elif kw == "script":
                script.check = self._script_check(st)
            elif kw == "interval":
                script.interval_cs = self.values.read_interval(st, args[0], minimum=1)
                if script.interval_cs is not None and script.interval_cs > PROBE_INTERVAL_MAX_CS:
                    self.report.on(st, "above the 1h maximum of a probe interval; using 1h")
                    script.interval_cs = PROBE_INTERVAL_MAX_CS
            elif kw == "timeout":
                script.timeout_cs = self.values.read_interval(st, args[0], minimum=1)
                timeout_st = st
            elif kw == "weight":
                script.weight = self.values.read_weight(st, args[0], KEEPALIVED_WEIGHT_MAX)
                if len(args) > 1 and args[1] == "reverse":
                    script.reverse = True
            elif kw in ("rise", "fall"):
                count = integer(args[0])
                if count is None or count < 1:
                    self.report.on(st, f"{args[0]!r} is not a count >= 1; using 1")
                    count = 1
                elif count > PROBE_RISE_FALL_MAX:
                    self.report.on(
                        st,
                        f"{count} is above {PROBE_RISE_FALL_MAX}, the most a probe counts; "
                        f"using {PROBE_RISE_FALL_MAX}",
                    )
                    count = PROBE_RISE_FALL_MAX
                setattr(script, kw, count)
            elif kw == "user":
                self.report.on(st, "not supported: probes run as the daemon's user; dropped")
            elif kw == "init_fail":
                self.report.on(
                    st,
                    "not supported: a probe counts as neither up nor down until its first "
                    "result; dropped",
                )
            else:
                self.report.on(st, "unknown vrrp_script option; ignored")
        interval = script.interval_cs if script.interval_cs is not None else 100
        if script.timeout_cs is not None and script.timeout_cs > interval and timeout_st:
            self.report.on(
                timeout_st,
                f"timeout {duration(script.timeout_cs)} is longer than the interval "
                f"{duration(interval)}; a probe's timeout must be <= its interval, so it "
                f"becomes {duration(interval)} (or raise the interval to keep the timeout)",
            )
            script.timeout_cs = interval
        if script.check is None:
            self.report.on(block, f"{name} has no script; not converted")
        self.scripts[name] = script

    def _script_check(self, st: Statement) -> dict[str, Any] | None:
        command = st.args[0]
        if len(st.args) > 1:
            self.report.on(
                st,
                f"user {' '.join(st.args[1:])!r} not supported: probes run as the daemon's "
                "user (quote the script if those words were its arguments)",
            )
        if (match := DEV_TCP.fullmatch(command)) is not None:
            host, port = match.group(1), int(match.group(2))
            self.report.on(
                st,
                f"{command!r} (a bash /dev/tcp connect) becomes a tcp probe {host}:{port}. "
                "keepalived runs a script starting with '</' through /bin/sh, which has no "
                "/dev/tcp where sh is dash (Debian, Ubuntu): there the check always failed",
                severity="info",
            )
            return {"tcp": {"host": host, "port": port}}
        if "/dev/tcp/" in command or "/dev/udp/" in command:
            self.values.shell_note(st, command)
            self.report.on(
                st,
                "uses bash's /dev/tcp: runs with /bin/bash -c; the daemon's image must have bash",
            )
            return {"exec": {"command": ["/bin/bash", "-c", command]}}
        self.values.shell_note(st, command)
        try:
            return {"exec": {"command": script_argv(command)}}
        except ValueError as exc:
            self.report.on(st, f"cannot split {command!r} into arguments ({exc}); not converted")
            return None

    def track_file(self, block: Statement) -> None:
        name = block.args[0]
        if block.keyword == "vrrp_track_file":
            self.report.on(block, "deprecated keepalived name of track_file", severity="info")
        track = TrackFile(name=name, path=None)
        for st in block.block or []:
            kw, args = st.keyword, st.args
            if kw == "file" and args:
                track.path = args[0]
                if not track.path.startswith("/"):
                    self.report.on(st, "not an absolute path; not converted")
                    track.path = None
            elif kw == "weight" and args:
                weight = self.values.read_weight(st, args[0], PROBE_WEIGHT_MAX)
                if weight is not None:
                    track.weight = weight
                if len(args) > 1 and args[1] == "reverse":
                    track.reverse = True
            elif kw == "init_file":
                self._init_file(st)
            else:
                self.report.on(st, "unknown track_file option; ignored")
        if track.path is None:
            self.report.on(block, f"{name} has no file; not converted")
        self.track_files[name] = track

    def _notify_fifo(self, st: Statement, g: Globals) -> None:
        path = st.args[0] if st.args else ""
        if not path.startswith("/"):
            self.report.on(st, f"{path!r} is not an absolute path; not converted")
            return
        if g.fifo is not None and g.fifo != path:
            # keepalived writes both; one VirtualIP names one FIFO
            self.report.on(st, f"a second FIFO; only {g.fifo} is converted")
            return
        g.fifo = path
        if len(st.args) > 1:
            self.report.on(
                st,
                f"the FIFO is made by the daemon's user, not {' '.join(st.args[1:])}; make it "
                "yourself with that owner before the daemon starts",
            )

    def _init_file(self, st: Statement) -> None:
        """keepalived writes VALUE (default 0) to a missing file, or to any with overwrite.
        A missing file reads as 0 here too, so only 0 without overwrite carries over."""
        value = st.args[0] if st.args and st.args[0] != "overwrite" else "0"
        if "overwrite" not in st.args and _is_zero(value):
            self.report.on(
                st,
                "a missing file reads as 0 here too, so nothing needs creating",
                severity="info",
            )
            return
        self.report.on(
            st,
            "not converted: the daemon does not write the file. Write "
            f"{value} to it before the daemon starts"
            + (" (overwrite: whatever it holds)" if "overwrite" in st.args else ""),
        )

    # --- vrrp_sync_group

    def sync_group(self, block: Statement, instance_names: list[str]) -> None:
        group = SyncGroup(st=block, name=dns_label(block.args[0], "sync-group"))
        for st in block.block or []:
            kw = st.keyword
            if kw == "group":
                if st.block is None:
                    self.report.on(st, "expects a { } block of vrrp_instance names; ignored")
                    continue
                for member in st.block:
                    name = member.keyword
                    if name not in instance_names:
                        self.report.on(member, f"no vrrp_instance {name}; ignored")
                    elif name in self.groups:
                        self.report.on(
                            member,
                            f"{name} is already in sync group {self.groups[name].st.args[0]}; "
                            "an instance belongs to one group",
                        )
                    else:
                        group.members.append(name)
                        self.groups[name] = group
            elif kw in NOTIFY_FIELDS:
                argv = self.values.notify_argv(st)
                if argv is not None:
                    group.notify[NOTIFY_FIELDS[kw]] = (argv, st)
            elif kw == "smtp_alert":
                group.smtp_alert = bool(self.values.read_bool(st))
            elif kw in ("track_interface", "track_script", "track_file"):
                group.tracking.append(st)
            elif kw == "sync_group_tracking_weight":
                group.tracking_weight = True
            elif kw == "global_tracking":
                self.report.on(
                    st,
                    "deprecated in keepalived; the members' own tracking applies to each member",
                    severity="info",
                )
            else:
                self.report.on(st, "not supported in a sync group; ignored")

    # --- after the instances

    def report_unused_scripts(self, statements: list[Statement]) -> None:
        for st in statements:
            if st.keyword == "vrrp_script" and st.args and st.args[0] not in self.used_scripts:
                self.report.on(
                    st,
                    f"{st.args[0]} is not used by any track_script; not converted",
                    severity="info",
                )

    def report_sync_groups(self, blocks: list[Statement]) -> None:
        """After the instances: group notifications given to members, groups left empty."""
        for group in {id(g): g for g in self.groups.values()}.values():
            self._group_notify_report(group)
        for st in blocks:
            if not any(g.st is st for g in self.groups.values()):
                self.report.on(st, "has no member instances; ignored")

    def _group_notify_report(self, group: SyncGroup) -> None:
        for kind, (_, st) in group.notify.items():
            members = group.copied.get(kind)
            if members:
                self.report.on(
                    st,
                    f"syncGroupNotify.{kind} of {', '.join(members)}: it runs once per change "
                    "of the group's state, as in keepalived",
                    severity="info",
                )


def _is_zero(text: str) -> bool:
    try:
        return int(text, 0) == 0
    except ValueError:
        return False
