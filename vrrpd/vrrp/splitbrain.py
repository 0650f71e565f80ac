"""Split brain as one master sees it: another router claims our VRID or our VIPs (sans-I/O).

Only a master advertises, so a MASTER that keeps hearing adverts for its VRID is not alone:

- `advert`: a valid advert we keep winning against (lower priority, or equal priority and a
  lower address). A master we preempt sends one or two of those before it hears us and
  yields; one that keeps sending them does not hear us (a one-way loss, a filter).
- `mismatch`: an advert for our VRID that we must not accept (another password, address
  list, interval or version, an unknown unicast peer): two routers that cannot agree are
  both master. Priority-0 adverts (a resigning master) are no evidence.
- `announcement`: a gratuitous ARP / unsolicited NA for one of our VIPs from another MAC.
  A backup never announces; a master that takes over from us announces, then advertises,
  and we yield, so an announcement is only evidence once we are still MASTER
  `PERSIST_ADVERTS` of our intervals later. This is the one that sees a partition of VRRP
  alone (IP protocol 112 filtered, ARP passing): there no advert arrives at all.

The caller feeds evidence only while it is MASTER, calls `left_master` when it leaves, and
`evaluate(now)` at its advert ticks and after evidence; `evaluate` says when the verdict
changed. A verdict lasts while the evidence is fresh: adverts until they have not been heard
for `STALE_ADVERTS` intervals (theirs or ours, the longer); an announcement the caller can
re-check (`rechecks`: it asks who has the address at each advert tick, an ARP request, and
the holder's answer is one more announcement) for as long: the other master has let go
once nobody answers. One it cannot re-check (IPv6 here) holds `ANNOUNCEMENT_HOLD_S` after
the last one (a master announces at takeover and garp.masterDelay later, then only every
garp.masterRefresh if one is set). An advert we accept ends what announcements said: the
routers hear each other again, and VRRP settles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ADVERT: Final = "advert"
MISMATCH: Final = "mismatch"
ANNOUNCEMENT: Final = "announcement"

PERSIST_ADVERTS: Final = 2  # evidence spanning this many of our advert intervals
STALE_ADVERTS: Final = 4  # advert evidence not renewed for this many intervals is gone
ANNOUNCEMENT_HOLD_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Conflict:
    """Another master, as one kind of evidence shows it."""

    evidence: str  # ADVERT | MISMATCH | ANNOUNCEMENT
    peer: str  # its address (adverts) or MAC (announcements)
    detail: str  # for a person: what was heard
    since: float  # the first sighting, on the caller's clock

    @property
    def key(self) -> tuple[str, str]:
        return (self.evidence, self.peer)

    def describe(self) -> str:
        return f"another master for this VRID: {self.detail}"


@dataclass(slots=True)
class _Sighting:
    first: float
    last: float
    count: int
    detail: str
    interval_cs: int  # how often it repeats (its advert interval; 0 for announcements)
    address: str = ""  # announcements: the address claimed
    rechecked: bool = False  # announcements: the caller asks who has it at each tick


class SplitBrainDetector:
    """The evidence of one instance and the verdict drawn from it."""

    def __init__(self) -> None:
        self._sightings: dict[tuple[str, str], _Sighting] = {}
        self._conflict: Conflict | None = None

    @property
    def conflict(self) -> Conflict | None:
        """The verdict as of the last `evaluate`."""
        return self._conflict

    def advert(
        self, source: str, priority: int, interval_cs: int, now: float, *, mismatch: str | None
    ) -> None:
        """An advert for our VRID while we are MASTER that did not make us yield: accepted
        (mismatch None) or refused for the reason `mismatch`."""
        if priority == 0:
            return  # a resigning master is leaving
        if mismatch is None:
            # The routers hear each other: what only an announcement said is settled by VRRP.
            self._forget(ANNOUNCEMENT)
            self._see(ADVERT, source, now, f"{source} advertises priority {priority}", interval_cs)
        else:
            self._see(MISMATCH, source, now, f"{source} advertises ({mismatch})", interval_cs)

    def announcement(self, mac: str, address: str, now: float, *, rechecked: bool) -> None:
        """A gratuitous ARP / ARP reply / unsolicited NA for our VIP `address` from `mac` (not
        ours); `rechecked`: the caller can ask again who has it (see `rechecks`)."""
        self._see(ANNOUNCEMENT, mac, now, f"{mac} announces {address}", 0)
        s = self._sightings[(ANNOUNCEMENT, mac)]
        s.address, s.rechecked = address, rechecked

    def rechecks(self) -> list[str]:
        """The addresses to ask about now (the caller's advert tick): another MAC claimed
        them, and its answer, or silence, says whether it still does."""
        return sorted(
            {s.address for (kind, _), s in self._sightings.items() if kind == ANNOUNCEMENT
             and s.rechecked}
        )  # fmt: skip

    def left_master(self) -> Conflict | None:
        """We are no longer MASTER: no split brain on our side. Returns the verdict it ends."""
        ended, self._conflict = self._conflict, None
        self._sightings.clear()
        return ended

    def evaluate(self, now: float, advert_interval_cs: int) -> tuple[Conflict | None, bool]:
        """The verdict now, at our advert interval, and whether it differs from the previous
        one (the caller logs and counts the edges)."""
        ours = advert_interval_cs / 100
        for key, s in list(self._sightings.items()):
            if key[0] == ANNOUNCEMENT and not s.rechecked:
                stale = now - s.last > ANNOUNCEMENT_HOLD_S
            else:
                stale = now - s.last > STALE_ADVERTS * max(ours, s.interval_cs / 100)
            if stale:
                del self._sightings[key]
        confirmed = sorted(
            (Conflict(kind, peer, s.detail, s.first) for (kind, peer), s in self._sightings.items()
             if self._confirmed(kind, s, now, ours)),
            key=lambda c: c.since,
        )  # fmt: skip
        before = self._conflict
        # The verdict in force stays while its evidence does: no flapping between peers.
        same = [c for c in confirmed if before is not None and c.key == before.key]
        self._conflict = next(iter(same or confirmed), None)
        after = self._conflict
        return after, (None if before is None else before.key) != (
            None if after is None else after.key
        )

    def _confirmed(self, kind: str, s: _Sighting, now: float, ours: float) -> bool:
        span = PERSIST_ADVERTS * ours
        if kind == ANNOUNCEMENT:
            # One burst is no master (keepalived's delayed gratuitous ARPs arrive after it
            # stepped down): a rechecked claim counts once it answered a later recheck.
            answered = not s.rechecked or s.last - s.first >= ours
            return now - s.first >= span and answered
        # Adverts repeat: several, over more than a preemption's overlap.
        return s.count > PERSIST_ADVERTS and s.last - s.first >= span

    def _see(self, kind: str, peer: str, now: float, detail: str, interval_cs: int) -> None:
        s = self._sightings.get((kind, peer))
        if s is None:
            self._sightings[(kind, peer)] = _Sighting(now, now, 1, detail, interval_cs)
        else:
            s.last, s.count, s.detail, s.interval_cs = now, s.count + 1, detail, interval_cs

    def _forget(self, kind: str) -> None:
        for key in [k for k in self._sightings if k[0] == kind]:
            del self._sightings[key]
