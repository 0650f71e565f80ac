"""Probe failover: from a health check's failure on the master to the VIP answering on the backup.

Each run builds a fresh two-node lab, as `bench.failover` does (n1 priority 150, n2 100,
VRRPv3, VRID 51, VIP 192.168.77.100/24), and gives n1 one health probe (interval 1 s,
fall 1, weight -60, so a failing probe leaves n1 at 90, below n2). Two kinds:

    file  a `file` probe on a file in the lab's workdir ("0" healthy); the benchmark
          writes "1" into it (keepalived: a vrrp_script `sh -c 'exit $(cat FILE)'`)
    tcp   a `tcp` probe of 127.0.0.1:8080 in n1's namespace, where a small listener runs;
          the benchmark kills it with SIGKILL, as when haproxy dies (keepalived: a
          vrrp_script `bash -c '</dev/tcp/127.0.0.1/8080'`)

Once the pair is settled and a client sees no loss, the client probes the VIP every 10 ms
(`vrrpd.lab.prober`), the benchmark waits for one of the master's adverts and then a
uniformly random part of the probe interval (`--phase random`, the default), or for one
of n1's checks (`--phase after-check`: the failure then waits a whole interval to be
seen, the worst case), and breaks the check. It records, from that moment, when n1's first
check failed (an inotify IN_ACCESS on the file; the RST refusing the check's connect on
n1's loopback), when the client's first echo reply came from n2's MAC, the outage the
client saw, and when the VIP moved (`ip monitor address`). See
`python -m bench.probe_failover --help` for the options; a benchmark prints figures, it
never fails on them.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from bench.common import align_columns, figures, fmt_ms, median, percentile
from bench.failover import (
    ADVERTS,
    BACKUP,
    IMPLS,
    MASTER,
    PACKET_OUTGOING,
    PRE_FAULT,
    PRIORITY,
    PROBE_INTERVAL,
    SETTLE,
    VIP,
    HolderWatch,
    Pair,
    Run,
    clean_window,
    master_down_interval,
    next_advert,
    packet_socket_in,
    render_keepalived_config,
    score_probes,
)
from bench.harness import (
    add_choices,
    add_output,
    failover_cells,
    load_json,
    machine_info,
    prepare_lab_bench,
    print_report,
    run_matrix,
    save_json,
)
from vrrpd.lab.netns import Lab, LabError, wait_until
from vrrpd.lab.prober import Prober

LAB_PREFIX = "kvprobe"
CASES = ("file", "tcp")
PHASES = ("random", "after-check")
DEFAULT_RUNS = 5
CHECK_INTERVAL = 1.0  # the health probe's interval, seconds (keepalived: interval 1)
FALL = 1
WEIGHT = -60  # 150 - 60 = 90 < 100: a failing probe hands the VIP to n2
TCP_PORT = 8080
TARGET_MARGIN = 0.05

IN_ACCESS = 0x1  # <sys/inotify.h>: the file was read
_INOTIFY_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
IPPROTO_TCP = 6
TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10

# The "haproxy" of the tcp case: accepts and closes, so the backlog never fills.
LISTENER = """\
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""


def target_s(advert_s: float) -> float:
    """Issue 3's bound on failure -> VIP answering on the backup: interval + one advert + 50 ms."""
    return CHECK_INTERVAL + advert_s + TARGET_MARGIN


# -- the health check n1 probes, which the benchmark breaks -----------------------------------


class HealthCheck:
    """What n1's probe checks (a file, or a TCP listener in n1), how to break it, and a
    record of n1's checks against it, stamped with time.monotonic() as they happen.

    file: inotify IN_ACCESS on the file: each check reads it once (the benchmark's own
    write is IN_MODIFY), and a read after the write fails. tcp, on n1's loopback: the SYN
    of each connect is a check; the RST that refuses one (seq 0, RFC 793's reply to a
    SYN) is a check that failed. A dying listener may take some ms to close its socket,
    and a connect in that time still succeeds: the RST, not the first SYN, is the failure
    seen.
    """

    def __init__(self, lab: Lab, case: str) -> None:
        if case not in CASES:
            raise ValueError(f"case={case!r}: use one of {', '.join(CASES)}")
        self.lab = lab
        self.case = case
        self.path = lab.workdir / "health"
        self.checks: list[float] = []
        self.refused: list[float] = []  # tcp: connects refused
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None  # file: the health file, open for the failure's write
        self._watch_fd: int | None = None  # file: the inotify instance
        self._sock: socket.socket | None = None  # tcp: AF_PACKET on n1's lo
        self._listener: subprocess.Popen[str] | None = None

    # -- what the daemons are told ---------------------------------------------------------

    def vrrpd_probe(self) -> str:
        """The probe, as one flow-style item of the VirtualIP's spec.probes."""
        check = (
            f"file: {{path: {self.path}}}" if self.case == "file" else f"tcp: {{port: {TCP_PORT}}}"
        )
        return (
            f"{{name: health, {check}, interval: {CHECK_INTERVAL:g}s, fall: {FALL}, "
            f"weight: {WEIGHT}}}"
        )

    def keepalived_script(self) -> list[str]:
        """The equivalent vrrp_script block (its name: health)."""
        if self.case == "file":
            command = f"/bin/sh -c 'exit $(cat {self.path})'"
        else:
            command = f"/bin/bash -c '</dev/tcp/127.0.0.1/{TCP_PORT}'"
        interval = f"{CHECK_INTERVAL:g}"
        return [
            "vrrp_script health {",
            f'    script "{command}"',
            f"    interval {interval}",
            f"    timeout {interval}",
            "    rise 1",
            f"    fall {FALL}",
            f"    weight {WEIGHT}",
            "}",
        ]

    # -- running ---------------------------------------------------------------------------

    def start(self) -> HealthCheck:
        """Make the check pass and start recording checks; before the daemons start."""
        parse: Callable[[], tuple[int, int]]
        if self.case == "file":
            self.path.write_text("0\n")
            self._fd = os.open(self.path, os.O_WRONLY)
            libc = ctypes.CDLL(None, use_errno=True)
            self._watch_fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if (
                self._watch_fd < 0
                or libc.inotify_add_watch(self._watch_fd, os.fsencode(self.path), IN_ACCESS) < 0
            ):
                err = ctypes.get_errno()
                raise LabError(f"inotify on {self.path}: {os.strerror(err)}")
            fd, parse = self._watch_fd, self._read_inotify
        else:
            self._listener = self.lab.run(
                MASTER,
                [sys.executable, "-c", LISTENER, str(TCP_PORT)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._listener.stdout is not None
            ready, _, _ = select.select([self._listener.stdout], [], [], 10)
            if not ready or self._listener.stdout.readline().strip() != "ready":
                raise LabError(f"the listener on n1:{TCP_PORT} did not start")
            self._sock = packet_socket_in(self.lab.node(MASTER).netns, "lo")
            fd, parse = self._sock.fileno(), self._read_tcp
        self._thread = threading.Thread(target=self._watch, args=(fd, parse), daemon=True)
        self._thread.start()
        return self

    def fail(self) -> None:
        """Break the check: "1" over the file's "0" (one byte, in place, so no reader sees
        an empty file and the inotify watch keeps its inode), or SIGKILL to the listener."""
        if self.case == "file":
            assert self._fd is not None
            os.pwrite(self._fd, b"1", 0)
        else:
            assert self._listener is not None
            self._listener.kill()

    def _watch(self, fd: int, parse: Callable[[], tuple[int, int]]) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([fd], [], [], 0.05)
            if not readable:
                continue
            now = time.monotonic()
            checks, refused = parse()
            if checks or refused:
                with self._cond:
                    self.checks += [now] * checks
                    self.refused += [now] * refused
                    self._cond.notify_all()

    def _read_inotify(self) -> tuple[int, int]:
        assert self._watch_fd is not None
        count = 0
        with contextlib.suppress(BlockingIOError):
            data = os.read(self._watch_fd, 4096)
            offset = 0
            while offset + _INOTIFY_EVENT.size <= len(data):
                _, mask, _, length = _INOTIFY_EVENT.unpack_from(data, offset)
                count += bool(mask & IN_ACCESS)
                offset += _INOTIFY_EVENT.size + length
        return count, 0

    def _read_tcp(self) -> tuple[int, int]:
        assert self._sock is not None
        syns = refused = 0
        while True:
            try:
                data, addr = self._sock.recvfrom(256)
            except BlockingIOError:
                return syns, refused
            # A socket bound to ETH_P_IP sees the received copy of a loopback packet only
            # (sent copies go to ETH_P_ALL taps); skip a sent one all the same.
            if addr[2] == PACKET_OUTGOING or len(data) < 20 or data[9] != IPPROTO_TCP:
                continue
            ihl = (data[0] & 0x0F) * 4
            if len(data) < ihl + 14:
                continue
            source, dest = struct.unpack_from("!HH", data, ihl)
            seq, flags = int.from_bytes(data[ihl + 4 : ihl + 8], "big"), data[ihl + 13]
            syns += dest == TCP_PORT and flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            refused += source == TCP_PORT and bool(flags & TCP_RST) and seq == 0

    def wait_check(self, after: float, timeout: float, *, failed: bool = False) -> float | None:
        """The time of the first check (`failed`: failed check) at or after `after`; None if
        none within `timeout`. A file check after the failure is a failed one."""
        deadline = time.monotonic() + timeout
        events = self.refused if failed and self.case == "tcp" else self.checks
        with self._cond:
            while (found := next((t for t in events if t >= after), None)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return found

    def last_check_before(self, t: float) -> float | None:
        with self._cond:
            return next((c for c in reversed(self.checks) if c < t), None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for fd in (self._fd, self._watch_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._watch_fd = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._listener is not None and self._listener.poll() is None:
            self._listener.kill()
            self._listener.wait(5)


class ProbedPair(Pair):
    """`Pair` with the health probe on n1 (n2 runs none: its priority stays 100)."""

    def __init__(self, lab: Lab, impl: str, advert_s: float, health: HealthCheck) -> None:
        self.health = health
        super().__init__(lab, impl, advert_s)

    def vrrpd_config(self, i: int) -> str:
        text = super().vrrpd_config(i)
        if i == MASTER:
            text += f"  probes: [{self.health.vrrpd_probe()}]\n"
        return text

    def keepalived_config(self, i: int) -> str:
        if i != MASTER:
            return super().keepalived_config(i)
        conf = render_keepalived_config(
            self.advert_s,
            PRIORITY[i],
            global_extra=["script_user root"],
            instance_extra=["track_script {", "    health", "}"],
        )
        # keepalived resolves track_script names as it parses: the script comes first.
        head, instance, rest = conf.partition("vrrp_instance")
        return head + "\n".join(self.health.keepalived_script()) + "\n\n" + instance + rest


# -- one run ----------------------------------------------------------------------------------


@dataclass
class ProbeRun(Run):
    """One failed check on a freshly started pair (`case` is file / tcp). Times in ms from
    the failure; restart_ms, restart_cleanup_ms and exit_code of `Run` stay None."""

    phase: str = "random"
    since_check_ms: float | None = None  # n1's last check before the failure -> failure
    detect_ms: float | None = None  # n1's first check that failed
    reaction_ms: float | None = None  # that check -> the first echo reply from n2


def run_once(impl: str, case: str, advert: str, index: int, *, phase: str = "random") -> ProbeRun:
    """Build a lab, start a probed pair, break n1's health check, measure; tear it all down."""
    advert_s = ADVERTS[advert]
    run = ProbeRun(impl=impl, case=case, advert=advert, run=index, phase=phase)
    mdi = master_down_interval(advert_s)
    with Lab(2, prefix=LAB_PREFIX, unique=True, kill_grace=0.5) as lab:
        watch = HolderWatch(lab).start()
        health = HealthCheck(lab, case)
        pair = ProbedPair(lab, impl, advert_s, health)
        try:
            health.start()
            pair.start()
            if not wait_until(
                lambda: pair.established() and watch.holders() == {MASTER}, 2 * mdi + 10
            ):
                run.error = (
                    f"no settled pair: states n1={pair.states(MASTER)} n2={pair.states(BACKUP)}, "
                    f"VIP on {sorted(watch.holders())}"
                )
                return run
            if not health.checks:
                run.error = "n1 never ran its health check"
                return run
            if not clean_window(lab):
                run.error = "the client never saw a clean window before the failure"
                return run
            prober = Prober(lab, VIP, PROBE_INTERVAL).start()
            origin = time.monotonic()
            time.sleep(PRE_FAULT)
            sock = packet_socket_in(lab.client.netns)
            try:
                t_advert = next_advert(sock, lab.node(MASTER).address4, 3 * advert_s + 1)
                if phase == "random":
                    time.sleep(random.uniform(0, CHECK_INTERVAL))
                elif health.wait_check(time.monotonic(), CHECK_INTERVAL + 1) is None:
                    run.error = "no health check within an interval"
                t_fault = time.monotonic()
                health.fail()
            finally:
                sock.close()  # after the failure: closing waits for an RCU grace period
            if t_advert is not None:
                run.since_advert_ms = 1000 * (t_fault - t_advert)
            if (t_before := health.last_check_before(t_fault)) is not None:
                run.since_check_ms = 1000 * (t_fault - t_before)
            t_detect = health.wait_check(t_fault, CHECK_INTERVAL + 1, failed=True)
            t_takeover = watch.wait(BACKUP, True, t_fault, CHECK_INTERVAL + mdi + 5)
            if t_takeover is None:
                run.error = (
                    run.error or f"n2 did not take the VIP within {CHECK_INTERVAL + mdi + 5:.1f} s"
                )
            time.sleep(SETTLE)
            result = prober.stop()
            score_probes(run, result, t_fault - origin, lab.node(BACKUP).mac)
            if t_detect is not None:
                run.detect_ms = 1000 * (t_detect - t_fault)
                if run.client_switch_ms is not None:
                    run.reaction_ms = run.client_switch_ms - run.detect_ms
            watch.record_handover(run, t_fault, t_takeover, time.monotonic())
        finally:
            watch.stop()
            health.stop()
            pair.kill_all()
    return run


# -- statistics and the table -----------------------------------------------------------------


@dataclass
class Row:
    """The summary of the runs of one (case, advert, impl)."""

    case: str
    advert: str
    impl: str
    runs: int
    failed: int
    switch_median_ms: float  # failure -> first echo reply from n2
    switch_p95_ms: float
    switch_max_ms: float
    outage_median_ms: float
    outage_p95_ms: float
    lost_max: float
    detect_median_ms: float  # failure -> n1's first failing check
    reaction_median_ms: float  # that check -> first echo reply from n2
    reaction_max_ms: float
    takeover_median_ms: float
    worst_ms: float  # CHECK_INTERVAL + the slowest reaction: a failure right after a check
    target: str = ""


def summarize_runs(runs: Sequence[ProbeRun]) -> list[Row]:
    rows: list[Row] = []
    for case in CASES:
        for advert in ADVERTS:
            for impl in IMPLS:
                mine = [r for r in runs if (r.case, r.advert, r.impl) == (case, advert, impl)]
                if not mine:
                    continue
                switch = figures(mine, "client_switch_ms")
                outages = figures(mine, "outage_ms")
                reaction = figures(mine, "reaction_ms")
                row = Row(
                    case=case,
                    advert=advert,
                    impl=impl,
                    runs=len(mine),
                    failed=sum(1 for r in mine if r.error),
                    switch_median_ms=median(switch),
                    switch_p95_ms=percentile(switch, 95),
                    switch_max_ms=percentile(switch, 100),
                    outage_median_ms=median(outages),
                    outage_p95_ms=percentile(outages, 95),
                    lost_max=percentile(figures(mine, "lost"), 100),
                    detect_median_ms=median(figures(mine, "detect_ms")),
                    reaction_median_ms=median(reaction),
                    reaction_max_ms=percentile(reaction, 100),
                    takeover_median_ms=median(figures(mine, "takeover_ms")),
                    worst_ms=1000 * CHECK_INTERVAL + percentile(reaction, 100),
                )
                if impl == "vrrpd":
                    row.target = _target(row, ADVERTS[advert])
                rows.append(row)
    return rows


def _target(row: Row, advert_s: float) -> str:
    limit = 1000 * target_s(advert_s)

    def verdict(value: float) -> str:
        return "-" if math.isnan(value) else "ok" if value <= limit else "MISS"

    return f"≤ {limit:.0f} ms: p95 {verdict(row.switch_p95_ms)}, worst {verdict(row.worst_ms)}"


def format_table(rows: Sequence[Row], *, phase: str = "random") -> str:
    lines = [
        (
            "probe",
            "advert",
            "impl",
            "runs",
            "fail→n2 med ms",
            "p95 ms",
            "outage med ms",
            "p95 ms",
            "check med ms",
            "reaction med ms",
            "max ms",
            "worst ms",
            "target (vrrpd)",
        )
    ]
    for row in rows:
        lines.append(
            (
                row.case,
                row.advert,
                row.impl,
                f"{row.runs}" + (f" ({row.failed} failed)" if row.failed else ""),
                fmt_ms(row.switch_median_ms),
                fmt_ms(row.switch_p95_ms),
                fmt_ms(row.outage_median_ms),
                fmt_ms(row.outage_p95_ms),
                fmt_ms(row.detect_median_ms),
                fmt_ms(row.reaction_median_ms),
                fmt_ms(row.reaction_max_ms),
                fmt_ms(row.worst_ms),
                row.target,
            )
        )
    out = align_columns(lines, numeric=range(3, 12))
    limits = ", ".join(f"{name}: {1000 * target_s(s):.0f} ms" for name, s in ADVERTS.items())
    when = (
        "a uniformly random part of the probe interval after one of n1's adverts"
        if phase == "random"
        else "right after one of n1's checks (it waits a whole interval to be seen)"
    )
    interval = f"{CHECK_INTERVAL:g} s"
    out += [
        "",
        f"n1's probe: interval {interval}, fall {FALL}, weight {WEIGHT} (150 -> 90 < n2's 100). "
        f"The failure comes {when}. Medians over the runs.",
        "fail→n2: failure made (file written / listener killed) -> first echo reply from n2's MAC "
        "(the VIP answering on the backup).",
        "outage: longest run of unanswered 10 ms echoes after the failure, as a client sees it.",
        "check: failure -> n1's first failing check (file: read; tcp: connect refused). "
        "reaction: that check -> first reply from n2.",
        f"worst: {interval} + the slowest reaction, for a failure right after a check.",
        f"target (issue 3): fail→n2 ≤ interval + one advert + 50 ms ({limits}), "
        "on the p95 and on the worst case.",
    ]
    return "\n".join(out)


# -- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.probe_failover",
        description="Time from a failing health probe on the master to the VIP answering on "
        "the backup, vrrpd vs keepalived, in network namespaces (root). Prints a table; never "
        "fails on the figures.",
    )
    add_choices(parser, "--cases", CASES)
    add_choices(parser, "--impls", IMPLS)
    add_choices(parser, "--adverts", ADVERTS)
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help=f"repetitions per case ({DEFAULT_RUNS})"
    )
    parser.add_argument("--quick", action="store_true", help="one repetition per case")
    parser.add_argument(
        "--phase",
        choices=PHASES,
        default="random",
        help="when the check breaks: a random part of the probe interval (default), or right "
        "after one of n1's checks (the worst case)",
    )
    add_output(parser, "every run and the summary")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        saved = load_json(args.report)
        runs = [ProbeRun(**r) for r in saved["runs"]]
        report(runs, saved["machine"], saved.get("phase", "random"), out)
        return 0
    if (code := prepare_lab_bench("bench.probe_failover", args.impls, LAB_PREFIX)) is not None:
        return code
    info = machine_info()
    count = 1 if args.quick else args.runs
    runs = run_matrix(
        failover_cells(args.cases, args.adverts, args.impls, lambda advert: count),
        lambda c: run_once(c.impl, c.case, c.advert, c.run, phase=args.phase),
        lambda c, error: ProbeRun(**asdict(c), error=error),
        _progress,
    )
    info["loadavg_end"] = os.getloadavg()
    rows = report(runs, info, args.phase, out)
    if args.json:
        save_json(args.json, info, phase=args.phase, runs=runs, summary=rows)
    return 0


def report(runs: Sequence[ProbeRun], info: dict[str, Any], phase: str, out: TextIO) -> list[Row]:
    """Print the machine line, the table and the failed runs; returns the table's rows."""
    rows = summarize_runs(runs)
    print_report("probe failover benchmark", info, format_table(rows, phase=phase), runs, out)
    return rows


def _progress(run: ProbeRun) -> str:
    text = (
        f"{run.case:4} {run.advert:5} {run.impl:10} #{run.run}: "
        f"check {fmt_ms(run.detect_ms)} ms, fail→n2 {fmt_ms(run.client_switch_ms)} ms "
        f"(reaction {fmt_ms(run.reaction_ms)}), outage {fmt_ms(run.outage_ms)} ms, "
        f"lost {run.lost}, takeover {fmt_ms(run.takeover_ms)} ms, "
        f"released {fmt_ms(run.released_ms)} ms, since advert {fmt_ms(run.since_advert_ms)} ms, "
        f"since check {fmt_ms(run.since_check_ms)} ms"
    )
    if run.prefault_lost:
        text += f", {run.prefault_lost} lost BEFORE the failure"
    if run.unrecovered:
        text += ", UNRECOVERED"
    if run.error:
        text += f" ERROR {run.error}"
    return text


if __name__ == "__main__":
    sys.exit(main())
