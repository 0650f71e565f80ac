"""Real keepalived (Debian's /usr/sbin/keepalived, 2.2.7) as a VRRP peer in a lab node.

`render_keepalived_conf(...)` writes the one-instance keepalived.conf the interop tests and
the benchmark need; `start_keepalived(lab, i, conf)` runs it in node i's namespace, in the
foreground, logging to a file of its own, with pid files of its own: nothing under /etc,
/run or syslog is shared, so any number of instances run side by side.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from vrrpd.lab.netns import Lab, LabError, pid_alive
from vrrpd.limits import (
    ADVERT_INTERVAL_V2_MAX_S,
    ADVERT_INTERVAL_V3_MAX_CS,
    PRIORITY_MIN,
    PRIORITY_OWNER,
    VRID_MAX,
    VRID_MIN,
)

KEEPALIVED = "keepalived"
_STATE_RE = re.compile(r"\((?P<instance>[^)]+)\) Entering (?P<state>[A-Z]+) STATE")


def keepalived_path() -> str | None:
    """The keepalived binary, or None when it is not installed."""
    return shutil.which(KEEPALIVED) or (
        "/usr/sbin/keepalived" if os.access("/usr/sbin/keepalived", os.X_OK) else None
    )


def _format_interval(version: int, advert_interval: float) -> str:
    centis = round(advert_interval * 100)
    if abs(centis - advert_interval * 100) > 1e-6:
        raise ValueError(f"advert_interval={advert_interval}: use whole centiseconds")
    if version == 2:
        # keepalived 2.2.7 rejects sub-second v2 intervals (RFC 3768 has whole seconds).
        if centis % 100 or not 1 <= centis // 100 <= ADVERT_INTERVAL_V2_MAX_S:
            raise ValueError(
                f"advert_interval={advert_interval}: VRRPv2 needs whole seconds "
                f"1..{ADVERT_INTERVAL_V2_MAX_S}"
            )
        return str(centis // 100)
    if not 1 <= centis <= ADVERT_INTERVAL_V3_MAX_CS:
        raise ValueError(f"advert_interval={advert_interval}: VRRPv3 takes 0.01..40.95 s")
    return f"{centis / 100:g}"


def render_keepalived_conf(
    *,
    instance: str = "VI_1",
    interface: str = "eth0",
    vrid: int,
    priority: int,
    version: int,
    advert_interval: float,
    vips: Sequence[str],
    state: str = "BACKUP",
    nopreempt: bool = False,
    auth_pass: str | None = None,
    unicast_src: str | None = None,
    unicast_peers: Sequence[str] = (),
    garp_master_delay: int | None = None,
    router_id: str | None = None,
    global_extra: Sequence[str] = (),
    instance_extra: Sequence[str] = (),
) -> str:
    """A keepalived.conf with one vrrp_instance and no scripts, notifications or email.

    `vips` are written as given ("192.168.77.100/24"); `global_extra` / `instance_extra`
    are raw lines appended to global_defs / the instance, for what the arguments lack.
    """
    if version not in (2, 3):
        raise ValueError(f"version={version}: keepalived speaks VRRP 2 or 3")
    if not VRID_MIN <= vrid <= VRID_MAX:
        raise ValueError(f"vrid={vrid}: use {VRID_MIN}..{VRID_MAX}")
    if not PRIORITY_MIN <= priority <= PRIORITY_OWNER:
        raise ValueError(
            f"priority={priority}: use {PRIORITY_MIN}..{PRIORITY_OWNER} "
            f"({PRIORITY_OWNER} = address owner)"
        )
    if state not in ("BACKUP", "MASTER"):
        raise ValueError(f"state={state!r}: use 'BACKUP' or 'MASTER'")
    if not vips:
        raise ValueError("vips is empty: an instance needs at least one virtual address")
    for vip in vips:
        ipaddress.ip_interface(vip)  # raises ValueError naming the bad address
    if auth_pass is not None:
        if version != 2:
            raise ValueError("auth_pass: VRRPv3 has no authentication (RFC 5798 §9)")
        if not 1 <= len(auth_pass) <= 8 or re.search(r"\s", auth_pass):
            raise ValueError("auth_pass: 1..8 characters without spaces (keepalived cuts at 8)")
    interval = _format_interval(version, advert_interval)

    lines = ["# rendered by vrrpd.lab.keepalived", "global_defs {"]
    if router_id:
        lines.append(f"    router_id {router_id}")
    lines += [f"    {line}" for line in global_extra]
    lines += ["}", "", f"vrrp_instance {instance} {{"]
    body = [
        f"state {state}",
        f"interface {interface}",
        f"virtual_router_id {vrid}",
        f"priority {priority}",
        f"advert_int {interval}",
        f"version {version}",
    ]
    if nopreempt:
        body.append("nopreempt")
    if garp_master_delay is not None:
        body.append(f"garp_master_delay {garp_master_delay}")
    if auth_pass is not None:
        body += ["authentication {", "    auth_type PASS", f"    auth_pass {auth_pass}", "}"]
    if unicast_src is not None:
        body.append(f"unicast_src_ip {unicast_src}")
    if unicast_peers:
        body += ["unicast_peer {", *(f"    {peer}" for peer in unicast_peers), "}"]
    body += ["virtual_ipaddress {", *(f"    {vip}" for vip in vips), "}"]
    body += list(instance_extra)
    lines += [f"    {line}" for line in body]
    lines += ["}", ""]
    return "\n".join(lines)


def keepalived_vrrp_pid(pidfile: str | os.PathLike[str]) -> int | None:
    """The PID in keepalived's VRRP pid file (`-r`), or None if absent or empty."""
    try:
        text = Path(pidfile).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class KeepalivedProcess(subprocess.Popen[bytes]):
    """The keepalived parent process (a Popen), with the files of this instance.

    keepalived forks its VRRP child; that child holds the VRRP sockets and the VIPs, so it
    is the one to kill -9 for a crash (`vrrp_pid()`); the parent respawns it unless
    started with `respawn=False`.
    """

    def __init__(
        self, argv: Sequence[str], *, node_index: int, directory: Path, log_path: Path
    ) -> None:
        self.node_index = node_index
        self.directory = directory
        self.conf_path = directory / "keepalived.conf"
        self.pidfile = directory / "keepalived.pid"
        self.vrrp_pidfile = directory / "vrrp.pid"
        self.log_path = log_path
        with open(log_path, "ab") as log:
            super().__init__(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so Lab.close() can kill parent and child as a group
            )

    def vrrp_pid(self) -> int | None:
        """The running VRRP child's PID, or None if there is none (yet)."""
        pid = keepalived_vrrp_pid(self.vrrp_pidfile)
        return pid if pid is not None and pid_alive(pid) else None

    def wait_vrrp_pid(self, timeout: float = 5.0) -> int:
        """Wait for the VRRP child to be up and return its PID."""
        deadline = time.monotonic() + timeout
        while (pid := self.vrrp_pid()) is None:
            if self.poll() is not None or time.monotonic() >= deadline:
                raise LabError(
                    f"keepalived on node {self.node_index} has no VRRP child:\n"
                    + self.log()[-2000:]
                )
            time.sleep(0.02)
        return pid

    def log(self) -> str:
        """Everything this node's keepalived logged so far (all starts on this node)."""
        return self.log_path.read_text(errors="replace")

    def states(self, instance: str = "VI_1") -> list[str]:
        """The states `instance` entered, in order, as logged ("BACKUP", "MASTER", "FAULT")."""
        return [m["state"] for m in _STATE_RE.finditer(self.log()) if m["instance"] == instance]

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Wait until the log matches the regular expression `pattern`; returns the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while (match := regex.search(self.log())) is None:
            if time.monotonic() >= deadline:
                raise LabError(
                    f"keepalived on node {self.node_index} did not log /{pattern}/ within "
                    f"{timeout} s:\n{self.log()[-2000:]}"
                )
            time.sleep(0.02)
        return match


def start_keepalived(
    lab: Lab,
    node_index: int,
    conf_text: str,
    *,
    respawn: bool = True,
    extra_args: Sequence[str] = (),
) -> KeepalivedProcess:
    """Run keepalived (VRRP only, foreground) with `conf_text` in node `node_index`.

    Files go to `{lab.workdir}/keepalived-n{i}/`: keepalived.conf, keepalived.pid,
    vrrp.pid and keepalived.log (appended to across restarts on the same node).
    The process is tracked by the lab and killed at `lab.close()`.
    """
    binary = keepalived_path()
    if binary is None:
        raise LabError("keepalived is not installed (Debian: apt-get install keepalived)")
    node = lab.node(node_index)
    directory = lab.workdir / f"keepalived-{node.name}"
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "keepalived.log"
    conf_path = directory / "keepalived.conf"
    conf_path.write_text(conf_text)
    argv = [
        binary,
        "--dont-fork",
        "--vrrp",
        "--log-console",
        "--log-detail",
        "--no-syslog",
        "--use-file",
        str(conf_path),
        # Every pid file explicit: the defaults (/run/keepalived*.pid) would make a second
        # instance on this machine believe keepalived is running already.
        "--pid",
        str(directory / "keepalived.pid"),
        "--vrrp_pid",
        str(directory / "vrrp.pid"),
        "--checkers_pid",
        str(directory / "checkers.pid"),
        "--bfd_pid",
        str(directory / "bfd.pid"),
    ]
    if not respawn:
        argv.append("--dont-respawn")
    argv += extra_args
    proc = KeepalivedProcess(
        lab.command(node, argv), node_index=node_index, directory=directory, log_path=log_path
    )
    lab.track(proc)
    return proc
