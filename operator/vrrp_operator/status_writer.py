"""Status writes: each VirtualIP's status follows its inputs and is written when they change.

A VirtualIP's status depends on its object (generation, the status so far), what the last
rendering decided for it (placement, findings, what-if advisory) and the reports of the
daemons on its nodes. Nothing polls. A daemon pod whose report or phase changed wakes the
VirtualIPs it concerns (`status.affected`); a new rendering, once its what-if advisories
are computed (in a worker thread, apart from the reconcile), wakes the VirtualIPs whose
placement, findings or advisories it changed; an update of a VirtualIP wakes it; and
otherwise a VirtualIP sleeps until something of its own is due: a split brain to confirm
(`status.recheck_in`), a lost master to write once its successor's report had time to
arrive (`status.master_lost`), a failed write to retry, or the resync interval.

Each VirtualIP is followed by one kopf daemon (`StatusWriter.follow`): kopf stops it when
the VirtualIP is deleted and while peering pauses the operator, so, like every handler, a
paused replica writes nothing. Writes go through the status subresource, at most one per
`status_interval_s` per VirtualIP (reports arriving sooner are written together, so status
is never further behind a report than that). What was written is remembered: the body kopf
holds may not show our own last patch yet, and re-sending it under load feeds a storm of
watch events.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf

from vrrp_operator import switchover
from vrrp_operator.advisory import advisories
from vrrp_operator.kube import ApiError, KubeClient
from vrrp_operator.objects import Node, PodInfo, plain
from vrrp_operator.render import Rendered, object_key
from vrrp_operator.status import (
    NodeReport,
    affected,
    aggregate_status,
    events,
    master_lost,
    parse_report,
    recheck_in,
    reports_from_pods,
    status_write,
)

RETRY_S = (1.0, 60.0)  # first and longest wait before a failed status write is tried again
RECHECK_MIN_S = 0.05  # a split brain due "now" is looked at this much later: it is then due
# Status writes in flight at once: the client's worker threads stay free for the reconcile
# (a bulk create wakes hundreds of statuses while its ConfigMaps are still to be written).
WRITES_AT_ONCE = 4

log = logging.getLogger("vrrp_operator")


async def _waited(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds (at once when it is <= 0)."""
    if event.is_set():
        return True
    if timeout <= 0:
        return False
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


class ReportCache:
    """The daemons' reports, each parsed once: they are read far more often than they
    change. Holds only what the pods showed at the last `reports` call."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str, str | None], NodeReport] = {}
        self._used: dict[tuple[str, str, str | None], NodeReport] = {}

    def parse(self, node: str, text: str | None, *, pod_phase: str = "Running") -> NodeReport:
        key = (node, pod_phase, text)
        report = self._parsed.get(key)
        if report is None:
            report = self._parsed[key] = parse_report(node, text, pod_phase=pod_phase)
        self._used[key] = report
        return report

    def reports(self, pods: Iterable[PodInfo]) -> dict[str, NodeReport]:
        """One report per node (status.reports_from_pods); forgets the ones no pod shows."""
        self._used = {}
        out = reports_from_pods(pods, parse=self.parse)
        self._parsed = self._used
        return out


class StatusWriter:
    """Writes VirtualIP statuses; `publish` and `wake` say when to look again."""

    def __init__(
        self, client: KubeClient, cache: ReportCache, *, interval_s: float, resync_s: float
    ) -> None:
        self.client = client
        self.cache = cache
        self.interval_s = interval_s
        self.resync_s = resync_s
        self.rendered: Rendered | None = None
        self.advice: Mapping[str, tuple[str, ...] | None] = {}
        self.written: dict[str, tuple[dict[str, Any], float]] = {}  # key -> (status, epoch s)
        self._wake: dict[str, asyncio.Event] = {}
        self._failures: dict[str, int] = {}  # key -> failed writes in a row
        self._master_lost_at: dict[str, float] = {}  # key -> loop time (status.master_lost)
        self._next: Rendered | None = None  # the rendering to analyse next
        self._analysing: asyncio.Task[None] | None = None
        self._writes = asyncio.Semaphore(WRITES_AT_ONCE)
        # The wall clock of status times and of reports' `since` (a test's may follow its
        # event loop's fake time).
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        # The nodes as the reconcile knows them, for the Switchover condition.
        self.nodes: Callable[[], Sequence[Node]] = list

    def analyse(self, rendered: Rendered) -> None:
        """A new rendering: its what-if advisories are computed in a worker thread, apart
        from the reconcile (the first analysis of a VirtualIP costs milliseconds of CPU),
        then published. A rendering still waiting is superseded by a newer one."""
        self._next = rendered
        if self._analysing is None or self._analysing.done():
            self._analysing = asyncio.create_task(self._analyse())

    async def _analyse(self) -> None:
        while self._next is not None:
            rendered, self._next = self._next, None
            self.publish(rendered, await asyncio.to_thread(advisories, rendered))

    def publish(self, rendered: Rendered, advice: Mapping[str, tuple[str, ...] | None]) -> None:
        """A rendering and its advisories: the VirtualIPs that fare differently in it look
        again (all of them after the first)."""
        before, advised = self.rendered, self.advice
        self.rendered, self.advice = rendered, advice
        if before is None:
            self.wake(self._wake)
            return
        self.wake(
            key
            for key in list(self._wake)
            if before.placements.get(key) != rendered.placements.get(key)
            or before.findings(key) != rendered.findings(key)
            or advised.get(key) != advice.get(key)
        )

    def wake(self, keys: Iterable[str]) -> None:
        for key in keys:
            event = self._wake.get(key)
            if event is not None:
                event.set()

    def pod_changed(self, before: PodInfo | None, after: PodInfo | None) -> None:
        """A daemon pod appeared, changed or went (None): wake the VirtualIPs whose status
        its report or phase can change."""
        pods = [p for p in (before, after) if p is not None]
        if len(pods) == 2 and (pods[0].report, pods[0].lifecycle) == (
            pods[1].report,
            pods[1].lifecycle,
        ):
            return
        before_report, after_report = (
            None if p is None else self.cache.parse(p.node, p.report, pod_phase=p.lifecycle)
            for p in (before, after)
        )
        placements = self.rendered.placements if self.rendered is not None else {}
        self.wake(affected(pods[0].node, before_report, after_report, placements))

    def forget(self, key: str) -> None:
        self.written.pop(key, None)
        self._failures.pop(key, None)
        self._master_lost_at.pop(key, None)

    async def follow(
        self,
        body: kopf.Body,
        stopped: kopf.DaemonStopped,
        reports: Callable[[], Mapping[str, NodeReport]],
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        """Keep the status of VirtualIP `body` (kopf's live view of it) up to date until
        kopf stops this (deletion, operator pause or exit). `resync` runs at every resync
        interval without a wake (the periodic reconcile)."""
        key = object_key(body)
        wake = self._wake[key] = asyncio.Event()
        wake.set()  # a first look, as soon as a rendering knows it
        stop = asyncio.Event()

        async def on_stop() -> None:
            await stopped.wait()
            stop.set()
            wake.set()

        # Returning when stopped, rather than being cancelled, spares a warning per object.
        stop_watch = asyncio.create_task(on_stop())
        loop = asyncio.get_running_loop()
        last_write = -self.interval_s
        # Resyncs of different VirtualIPs spread over the interval instead of coinciding.
        next_resync = loop.time() + random.uniform(0, self.resync_s)
        due: float | None = None  # loop time of a look no wake asks for
        try:
            while not stop.is_set():
                deadline = next_resync if due is None else min(due, next_resync)
                if not await _waited(wake, deadline - loop.time()) and loop.time() >= next_resync:
                    next_resync = loop.time() + self.resync_s
                    await resync()
                # What arrives before the interval ends goes into the same write.
                if await _waited(stop, last_write + self.interval_s - loop.time()):
                    break
                wake.clear()
                after, wrote = await self._look(key, body, reports())
                log.debug("status of %s looked at: %s", key, "written" if wrote else "unchanged")
                due = None if after is None else loop.time() + max(after, RECHECK_MIN_S)
                if wrote:
                    last_write = loop.time()
        finally:
            stop_watch.cancel()
            if self._wake.get(key) is wake:
                del self._wake[key]

    async def _look(
        self, key: str, body: kopf.Body, reports: Mapping[str, NodeReport]
    ) -> tuple[float | None, bool]:
        """Aggregate, write what changed and post its Events: (seconds until the next look
        no wake asks for, or None; whether it wrote)."""
        rendered = self.rendered
        if rendered is None or (key not in rendered.placements and not rendered.findings(key)):
            return None, False  # no rendering knows it yet: the reconcile after it wakes us
        obj = plain(body)
        seen = obj.get("status") or {}
        written, written_at = self.written.get(key, (None, 0.0))
        old = written if written is not None else seen
        obj["status"] = old  # transition times and counts continue from what we wrote
        now = self.clock()
        placement = rendered.placements.get(key)
        new = aggregate_status(
            obj,
            reports,
            now,
            placement=placement,
            findings=rendered.findings(key),
            advisory=self.advice.get(key),
        )
        new = switchover.with_condition(obj, new, placement, self.nodes(), old)
        lost_for_s = None
        if not master_lost(old, new):
            self._master_lost_at.pop(key, None)
        else:
            moment = asyncio.get_running_loop().time()
            lost_for_s = moment - self._master_lost_at.setdefault(key, moment)
        changes, wait_s = status_write(
            seen, written, new,
            written_age_s=now.timestamp() - written_at, lost_for_s=lost_for_s,
            resync_s=self.resync_s,
        )  # fmt: skip
        if wait_s is not None:
            return wait_s, False  # the new master's report may be coming
        if changes:
            try:
                async with self._writes:
                    await self.client.patch(
                        "VirtualIP", obj["metadata"].get("namespace"), obj["metadata"]["name"],
                        {"status": changes}, subresource="status",
                    )  # fmt: skip
            except ApiError as exc:
                if exc.status == 404:
                    return None, False  # deleted meanwhile: kopf stops this follower
                return self._failed(key, exc), False
            except OSError as exc:  # ApiUnreachable: no answer from the API server
                return self._failed(key, exc), False
            self._failures.pop(key, None)
        if changes or written is None:
            self.written[key] = (new, now.timestamp())
        for reason, kind, message in [*events(old, new), *switchover.events(old, new)]:
            kopf.event(body, type=kind, reason=reason, message=message)
        return recheck_in(key, reports, now, placement), bool(changes)

    def _failed(self, key: str, exc: Exception) -> float:
        count = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(RETRY_S[0] * 2.0 ** (count - 1), RETRY_S[1])
        log.warning("status of %s not written, tried again in %.0f s: %s", key, delay, exc)
        return delay
