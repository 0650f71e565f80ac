"""The VRRP virtual router state machine (RFC 5798 §6), sans-I/O.

`VirtualRouter` takes events with an explicit `now` (seconds, any monotonic origin) and
returns the actions the caller must carry out, in order. It owns no timer: the caller
asks `next_deadline()` and calls `handle_timer(now)` once that time has come. Intervals
are kept in centiseconds, as the RFC specifies them.

Decisions beyond the letter of the RFC (each one also explained where it is made):

- Arithmetic. Skew_Time keeps its fraction: ``(256 - Priority) * Master_Adver_Interval
  / 256`` is computed as a float, which is exact because the divisor is a power of two
  and the numerator is a small integer. keepalived (the peer we interoperate with) keeps
  the same value at microsecond resolution; FRR truncates to whole centiseconds, which
  makes neighbouring priorities share a skew (at 10 cs, priorities 100 and 101 both get
  6 cs) and gives every backup a skew of 0 at a 1 cs interval, so backups would collide
  after a priority-0 advertisement. Deadlines are ``now + cs / 100``.
- Preempt Always takes over from a lower-priority master at once, instead of discarding
  its advertisements and waiting Master_Down_Interval (RFC 5798 §6.4.2): the lower master
  sees our higher advertisement and yields (§6.4.3). This is what makes a probe-driven
  priority drop fail over within one network round trip.
- Preempt Delay starts a deadline at the first sighting of a lower-priority master and
  keeps accepting that master until then; it takes over when the deadline passes (on a
  timer, or on a lower advertisement that arrives after it) if the master is still lower.
  An advertisement with priority >= ours, or priority 0, cancels the pending preempt.
- Preempt Never is the same on every node and in every state: a backup never takes over
  from a live master (it still takes over when the master falls silent or resigns). The
  address owner (priority 255) always preempts, as RFC 5798 §6.1 requires.
- Shutdown is make-before-break: a master sends priority 0 and keeps the addresses until
  another router advertises or until a handover deadline (see `shutdown`) passes.
- FAULT is a state of its own (keepalived's, not the RFC's): no timers, no addresses.
  The caller aggregates its fault sources (links, tracked interfaces, weight-0 probes,
  sync groups) into one boolean.
- A hold (planned switchover, `hold`) makes this router MASTER at once and keeps it
  there: it advertises priority 254 (`HOLD_PRIORITY`, the highest a non-owner has), so
  the old master yields on hearing it (§6.4.3: a master yields to a higher priority
  whatever its preempt mode) and no backup preempts it, Never, Delay or Always. The
  holder's own preempt mode does not matter: it was asked. Make before break comes from
  `_become_master`'s order (addresses, gratuitous ARP, then the advertisement that makes
  the old master let go). The hold ends on `release`, or when the router fails or
  leaves MASTER: FAULT, a drop of its own effective priority (a failing weighted probe),
  shutdown, a sync-group sibling falling back, or a higher advertisement (an address
  owner, another hold with a higher address); then the ordinary rules apply again. A
  hold is refused while an address owner, or another holder that would win the tie, is
  the master: taking the addresses only to yield them would leave clients pointed at us.
- A new priority, interval, preempt mode or password is applied in place
  (`reconfigure`): the router keeps its state and the election takes its ordinary
  course from the next advertisement; only a new VRID, version, address list or primary
  address makes another router.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from vrrpd.limits import (
    ADVERT_INTERVAL_MAX_CS,
    PRIORITY_BACKUP_MAX,
    PRIORITY_MIN,
    PRIORITY_OWNER,
    PRIORITY_RESIGN,
    VRID_MAX,
    VRID_MIN,
    IPAddress,
    clamp_priority,
)
from vrrpd.vrrp.packet import AUTH_NONE, Advertisement


class State(StrEnum):
    INITIALIZE = "INITIALIZE"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"  # a fault source holds it: link, tracked interface, weight-0 probe, sync group
    STOPPED = "STOPPED"  # after shutdown() has completed its handover


class HoldRefused(ValueError):
    """This router cannot take a planned switchover now; the message says why."""


class PreemptMode(StrEnum):
    ALWAYS = "Always"
    NEVER = "Never"
    DELAY = "Delay"


@dataclass(frozen=True, slots=True)
class RouterConfig:
    vrid: int
    version: int  # 2 or 3
    priority: int  # 1..255; 255 = address owner
    advert_interval_cs: int
    addresses: tuple[IPAddress, ...]  # the virtual addresses, as advertised
    primary_address: IPAddress  # our source address; the tie-breaker
    preempt: PreemptMode = PreemptMode.ALWAYS
    preempt_delay_cs: int = 0
    accept: bool = True
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""


# Actions, returned in the order the caller must carry them out.


@dataclass(frozen=True, slots=True)
class SendAdvertisement:
    advertisement: Advertisement


@dataclass(frozen=True, slots=True)
class AddAddresses:
    """Put the virtual addresses on the interface."""


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    """Take the virtual addresses off the interface."""


@dataclass(frozen=True, slots=True)
class Announce:
    """Send gratuitous ARP / unsolicited NA for the virtual addresses (the caller repeats)."""


@dataclass(frozen=True, slots=True)
class Transition:
    old: State
    new: State
    reason: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The shutdown handover is complete: the caller may exit."""

    reason: str


Action = SendAdvertisement | AddAddresses | RemoveAddresses | Announce | Transition | Stopped


def skew_time_cs(priority: int, master_adver_interval_cs: int) -> float:
    """RFC 5798 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256.

    Kept exact (see the module docstring): the fraction orders backups strictly by
    priority even at the shortest intervals.
    """
    return (256 - priority) * master_adver_interval_cs / 256


def master_down_interval_cs(priority: int, master_adver_interval_cs: int) -> float:
    """RFC 5798 §6.1: Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time."""
    return 3 * master_adver_interval_cs + skew_time_cs(priority, master_adver_interval_cs)


def _address_key(address: IPAddress) -> tuple[int, int]:
    # RFC 5798 §6.4.3 compares primary addresses as unsigned integers. One instance
    # speaks one family, so the family term only matters for a misconfigured peer; it
    # keeps the order total so that one of two such masters still yields.
    return (address.version, int(address))


def _seconds(cs: float) -> float:
    return cs / 100


def _check(config: RouterConfig) -> None:
    problems = []
    if not VRID_MIN <= config.vrid <= VRID_MAX:
        problems.append(f"vrid {config.vrid}: must be {VRID_MIN}..{VRID_MAX}")
    if config.version not in (2, 3):
        problems.append(f"version {config.version}: must be 2 or 3")
    if not PRIORITY_MIN <= config.priority <= PRIORITY_OWNER:
        problems.append(f"priority {config.priority}: must be {PRIORITY_MIN}..{PRIORITY_OWNER}")
    max_cs = ADVERT_INTERVAL_MAX_CS.get(config.version, 0)
    if max_cs and not 1 <= config.advert_interval_cs <= max_cs:
        problems.append(
            f"advert_interval_cs {config.advert_interval_cs}: must be 1..{max_cs}"
            f" for VRRPv{config.version}"
        )
    if config.preempt_delay_cs < 0:
        problems.append(f"preempt_delay_cs {config.preempt_delay_cs}: must be >= 0")
    if problems:
        raise ValueError("invalid RouterConfig: " + "; ".join(problems))


# What a held router advertises: the highest priority short of the address owner's.
HOLD_PRIORITY = PRIORITY_BACKUP_MAX


# What identifies a router on the wire: changing any of these is a different router (the
# caller restarts it). Everything else `reconfigure` applies in place.
IDENTITY_FIELDS = ("vrid", "version", "addresses", "primary_address")


class VirtualRouter:
    """One VRRP router for one VRID and one address family (RFC 5798 §6)."""

    def __init__(self, config: RouterConfig) -> None:
        _check(config)
        self._config = config
        self._state = State.INITIALIZE
        self._effective_priority = config.priority
        # RFC 5798 §6.1 Master_Adver_Interval: the master's interval as learned (v3) or
        # our own (v2, where check_instance drops advertisements with another interval).
        self._master_adver_interval_cs = config.advert_interval_cs
        self._master_address: IPAddress | None = None
        self._master_priority: int | None = None  # the current master's, as last advertised
        self._master_since: float | None = None
        # Deadlines in seconds; None when the timer is not running.
        self._adver_timer: float | None = None  # RFC Adver_Timer (MASTER)
        self._master_down_timer: float | None = None  # RFC Master_Down_Timer (BACKUP)
        self._preempt_deadline: float | None = None  # Delay mode, BACKUP
        self._preempt_inhibited = False
        self._resigned: IPAddress | None = None  # who sent priority 0 (BACKUP)
        self._handover_deadline: float | None = None  # shutdown, MASTER
        self._stopping = False
        # A planned switchover (`hold`): the priority we had before it, and why the last
        # hold ended. While held, `_effective_priority` is the raised one.
        self._held = False
        self._unheld_priority = config.priority
        self._hold_ended: str | None = None

    def set_addresses(self, addresses: tuple[IPAddress, ...]) -> None:
        """Advertise another address list from now on, keeping the state: the caller puts
        the new addresses on (and takes the old ones off) the interface if we hold them."""
        if not addresses:
            raise ValueError("a virtual router carries at least one address")
        self._config = replace(self._config, addresses=tuple(addresses))

    # Read-only status -------------------------------------------------------------

    @property
    def config(self) -> RouterConfig:
        return self._config

    @property
    def state(self) -> State:
        return self._state

    @property
    def effective_priority(self) -> int:
        return self._effective_priority

    @property
    def master_address(self) -> IPAddress | None:
        """The last known master: ours when MASTER, None when unknown."""
        return self._master_address

    @property
    def master_adver_interval_cs(self) -> int:
        return self._master_adver_interval_cs

    @property
    def master_since(self) -> float | None:
        """When we became master (the caller's clock), None unless MASTER."""
        return self._master_since

    @property
    def skew_time_cs(self) -> float:
        return skew_time_cs(self._effective_priority, self._master_adver_interval_cs)

    @property
    def master_down_interval_cs(self) -> float:
        return master_down_interval_cs(self._effective_priority, self._master_adver_interval_cs)

    @property
    def stopping(self) -> bool:
        """True while a shutdown handover is under way (state is still MASTER)."""
        return self._stopping

    @property
    def held(self) -> bool:
        """A planned switchover holds this router MASTER (see `hold`)."""
        return self._held

    @property
    def hold_ended(self) -> str | None:
        """Why the last hold ended (None: no hold has ended since the last `hold`)."""
        return self._hold_ended

    @property
    def preempt_deadline(self) -> float | None:
        """When a pending Delay preempt falls due, None when none is pending."""
        return self._preempt_deadline

    # Events -----------------------------------------------------------------------

    def start(self, now: float, *, fault: bool = False) -> list[Action]:
        """Startup event (§6.4.1). With fault=True (tracked link down) go to FAULT instead.

        Only acts in INITIALIZE: a second start is a no-op, and so is a start after
        set_fault(True) already moved an unstarted router to FAULT.
        """
        if self._state is not State.INITIALIZE:
            return []
        if fault:
            return self._enter_fault("fault at startup")
        return self._join(now, "startup")

    def receive(self, advert: Advertisement, source: IPAddress, now: float) -> list[Action]:
        """An advertisement for this VRID that passed decode() and check_instance()."""
        if self._state is State.BACKUP:
            return self._receive_as_backup(advert, source, now)
        if self._state is State.MASTER:
            return self._receive_as_master(advert, source, now)
        return []  # INITIALIZE, FAULT and STOPPED take no part in the election

    def handle_timer(self, now: float) -> list[Action]:
        """Fire whatever deadline has passed; a call before any deadline returns []."""
        if self._state is State.MASTER:
            if self._stopping:
                if self._handover_deadline is not None and now >= self._handover_deadline:
                    return self._finish_stop(
                        f"handover timed out after {self._handover_wait_s():.3f} s:"
                        " no other router advertised"
                    )
                return []
            if self._adver_timer is not None and now >= self._adver_timer:
                # §6.4.3: "Send an ADVERTISEMENT; Reset the Adver_Timer to
                # Advertisement_Interval". Re-armed from now, so a late caller gets one
                # advertisement, not a burst of the missed ones.
                return self._advertise(now)
            return []
        if self._state is State.BACKUP:
            if self._preempt_deadline is not None and now >= self._preempt_deadline:
                self._preempt_deadline = None
                if self._master_is_lower() and self._may_preempt():
                    return self._become_master(now, self._preempt_reason(delayed=True))
            if self._master_down_timer is not None and now >= self._master_down_timer:
                if self._resigned is not None:
                    # A planned handover, told apart from a dead master in the logs.
                    reason = f"master {self._resigned} resigned (priority 0)"
                else:
                    reason = "master down timer expired"
                return self._become_master(now, reason)
        return []

    def next_deadline(self) -> float | None:
        """The earliest pending deadline (seconds), or None when no timer runs."""
        pending = [
            t
            for t in (
                self._adver_timer,
                self._master_down_timer,
                self._preempt_deadline,
                self._handover_deadline,
            )
            if t is not None
        ]
        return min(pending) if pending else None

    def set_fault(self, fault: bool, reason: str, now: float) -> list[Action]:
        """Enter FAULT (fault=True) from any state, or leave it as a fresh startup would.

        `fault` is the aggregate of the caller's fault sources. A fault during a shutdown
        handover completes the shutdown at once: the addresses go, and STOPPED stays final.
        """
        if self._state is State.STOPPED:
            return []
        if fault:
            if self._state is State.FAULT:
                return []
            if self._stopping:
                return self._finish_stop(f"shutdown cut short: {reason}")
            return self._enter_fault(reason)
        if self._state is not State.FAULT:
            return []
        return self._join(now, reason)

    def set_priority(self, effective: int, now: float) -> list[Action]:
        """The effective priority (base adjusted by probe weights), clamped to 1..254.

        The address owner (base 255) keeps 255. A master advertises a change at once, so
        backups learn it without waiting an interval; a backup's new skew applies from the
        next reset of its Master_Down_Timer, as RFC 5798 §6.4.2 recomputes it there.
        """
        clamped = clamp_priority(self._config.priority, effective)
        if self._held:
            if clamped >= self._unheld_priority:
                self._unheld_priority = clamped  # a rise keeps the hold
                return []
            self._end_hold(f"effective priority fell {self._unheld_priority} -> {clamped}")
            self._unheld_priority = self._effective_priority = clamped
            return self._advertise(now)
        if clamped == self._effective_priority:
            return []
        self._effective_priority = clamped
        if self._state is State.MASTER and not self._stopping:
            return self._advertise(now)
        return []

    def hold(self, now: float, reason: str = "switchover requested") -> list[Action]:
        """Planned switchover: become MASTER now and stay until `release` or a failure.

        A BACKUP takes over at once (addresses, gratuitous ARP, then an advertisement at
        `HOLD_PRIORITY`, which makes the old master yield); a MASTER raises what it
        advertises so that nobody preempts it. HoldRefused when this router cannot take
        the addresses (not BACKUP or MASTER, stopping) or could not keep them (the master
        it hears outranks `HOLD_PRIORITY`). A second hold is a no-op.
        """
        if self._stopping or self._state not in (State.BACKUP, State.MASTER):
            what = "stopping" if self._stopping else str(self._state)
            raise HoldRefused(f"this router is {what}; only a BACKUP or MASTER can take over")
        raised = clamp_priority(self._config.priority, max(HOLD_PRIORITY, self._effective_priority))
        master = self._master_priority
        if (
            self._state is State.BACKUP
            and master is not None
            and self._master_address is not None
            and (
                master > raised
                or (
                    master == raised
                    and _address_key(self._master_address)
                    > _address_key(self._config.primary_address)
                )
            )
        ):
            raise HoldRefused(
                f"master {self._master_address} advertises priority {master}, which a"
                f" switchover to priority {raised} cannot outrank"
            )
        if self._held:
            return []
        self._held = True
        self._hold_ended = None
        self._unheld_priority = self._effective_priority
        self._effective_priority = raised
        if self._state is State.BACKUP:
            return self._become_master(now, reason)
        return self._advertise(now)

    def release(self, now: float, reason: str = "released") -> list[Action]:
        """End a hold: advertise the priority we would have without it, and let the
        ordinary rules (preemption by a higher backup, or not) take their course."""
        if not self._held:
            return []
        self._end_hold(reason)
        if self._state is State.MASTER and not self._stopping:
            return self._advertise(now)
        return []

    def reconfigure(
        self, config: RouterConfig, now: float, *, effective: int | None = None
    ) -> list[Action]:
        """A new configuration for the same router, applied in place: no re-election.

        Priority, advertisement interval, preempt mode and delay, accept mode and
        authentication may change; `effective` is the new effective priority (default: the
        new base priority). The IDENTITY_FIELDS may not (ValueError: the caller restarts
        the router). RFC 5798 lets a router advertise a new priority at any time, and the
        election then runs its ordinary course:

        - A master advertises at once whenever what it advertises changed, and re-arms
          its Adver_Timer from now. So backups learn a longer interval (v3: §6.4.2 sets
          Master_Adver_Interval from the advertisement) before their Master_Down_Timer,
          computed from the shorter one, runs out; and a master whose priority fell below
          a backup's is preempted by that backup on this advertisement (preempt Always),
          or after its delay (Delay), or kept (Never), as for a probe-driven drop.
        - A backup keeps its Master_Down_Timer (recomputed at the next advertisement, as
          §6.4.2 does for a priority change) and acts on the master's next advertisement:
          a raised priority preempts a lower master under Always. A pending Delay preempt
          starts again from that advertisement when the mode or the delay changed.
        - A router in INITIALIZE, FAULT or STOPPED only takes the configuration, which
          applies when it joins.
        """
        changed = [f for f in IDENTITY_FIELDS if getattr(config, f) != getattr(self._config, f)]
        if changed:
            raise ValueError(
                f"reconfigure: {', '.join(changed)} changed; that is another router: restart it"
            )
        _check(config)
        old = self._config
        before = self._advertisement(self._effective_priority)
        self._config = config
        self._effective_priority = clamp_priority(
            config.priority, config.priority if effective is None else effective
        )
        if self._held:  # a new configuration is no failure: the hold stays
            self._unheld_priority = self._effective_priority
            self._effective_priority = clamp_priority(
                config.priority, max(HOLD_PRIORITY, self._unheld_priority)
            )
        if (config.preempt, config.preempt_delay_cs) != (old.preempt, old.preempt_delay_cs):
            self._preempt_deadline = None
        if self._state is State.BACKUP and (
            config.version == 2 or (self._master_address is None and self._resigned is None)
        ):
            # v2 checks that every advertisement carries our own interval; with no master
            # heard yet, ours is the one Master_Down_Interval counts on (§6.4.1).
            self._master_adver_interval_cs = config.advert_interval_cs
        if self._state is State.MASTER:
            self._master_adver_interval_cs = config.advert_interval_cs
            if not self._stopping and self._advertisement(self._effective_priority) != before:
                return self._advertise(now)
        return []

    @property
    def master_priority(self) -> int | None:
        """The priority the known master last advertised (None: unknown, or we are it)."""
        return self._master_priority

    def inhibit_preempt(self, inhibited: bool) -> None:
        """Hold back preemption while a sync-group member yields to a higher master.

        Without it, a group whose members prefer different nodes livelocks: one member
        yields, its sibling steps down with it and at once preempts the other node's
        sibling, which drags the first member back up. A master that stops advertising
        is still taken over when Master_Down_Timer runs out.
        """
        self._preempt_inhibited = inhibited

    def sync_master(self, reason: str, now: float) -> list[Action]:
        """Another member of our sync group became MASTER on this node: a BACKUP follows.

        keepalived's vrrp_sync_group: the members move together, so the addresses that
        belong together (inside and outside of a router) are never split across nodes.
        """
        if self._state is not State.BACKUP or self._stopping:
            return []
        return self._become_master(now, reason)

    def sync_backup(self, reason: str, now: float) -> list[Action]:
        """Another member of our sync group fell back to BACKUP on this node: a MASTER
        follows, resigning (priority 0) so that the peer's member takes over after its
        Skew_Time instead of a Master_Down_Interval."""
        if self._state is not State.MASTER or self._stopping:
            return []
        self._end_hold(reason)
        self._state = State.BACKUP
        self._adver_timer = None
        self._master_since = None
        self._master_address = None
        self._master_priority = None
        self._reset_master_down_timer(now)
        return [
            SendAdvertisement(self._advertisement(PRIORITY_RESIGN)),
            Transition(State.MASTER, State.BACKUP, reason),
            RemoveAddresses(),
        ]

    def shutdown(self, now: float) -> list[Action]:
        """Shutdown event (§6.4.3), made make-before-break.

        A master cancels its Adver_Timer, sends priority 0 and keeps the addresses until
        another router advertises (it has taken over) or until the handover deadline:
        the Master_Down_Interval of a priority-1 backup at our interval,
        ``3 * Advertisement_Interval + (255 * Advertisement_Interval) / 256``. Even a
        backup that lost our priority-0 advertisement times out by then, since our last
        periodic advertisement was sent less than one interval before; so the addresses
        are only removed once every backup has had its chance. With no backup at all
        the shutdown takes that long. Any other state stops at once: a backup does not
        advertise. A second shutdown is a no-op.
        """
        if self._state is State.STOPPED or self._stopping:
            return []
        self._end_hold("shutdown")
        if self._state is State.MASTER:
            self._stopping = True
            self._adver_timer = None  # no periodic adverts: they would reset backups
            self._handover_deadline = now + self._handover_wait_s()
            return [SendAdvertisement(self._advertisement(PRIORITY_RESIGN))]
        old = self._state
        self._clear_timers()
        self._state = State.STOPPED
        self._master_address = None
        return [Transition(old, State.STOPPED, "shutdown"), Stopped("shutdown")]

    # Per-state advertisement handling ---------------------------------------------

    def _receive_as_backup(
        self, advert: Advertisement, source: IPAddress, now: float
    ) -> list[Action]:
        if advert.priority == PRIORITY_RESIGN:
            # §6.4.2: "If the Priority in the ADVERTISEMENT is zero, then: Set the
            # Master_Down_Timer to Skew_Time". The master resigns: the best backup (the
            # shortest skew) takes over first, without waiting 3 intervals.
            self._master_down_timer = now + _seconds(self.skew_time_cs)
            self._preempt_deadline = None
            self._resigned = source
            if self._master_address in (None, source):
                self._master_address = None
                self._master_priority = None
            return []
        if self._config.version == 3:
            # §6.4.2: "Set Master_Adver_Interval to Adver Interval contained in the
            # ADVERTISEMENT; Recompute the Master_Down_Interval". A 0 interval (no sane
            # sender) counts as 1 cs so that every deadline lies in the future.
            self._master_adver_interval_cs = max(1, advert.advert_interval_cs)
        self._master_address = source
        self._master_priority = advert.priority
        self._resigned = None
        if not self._may_preempt() or advert.priority >= self._effective_priority:
            # §6.4.2: "If Preempt_Mode is False, or if the Priority in the ADVERTISEMENT
            # is greater than or equal to the local Priority: ... Reset the
            # Master_Down_Timer to Master_Down_Interval".
            self._preempt_deadline = None
            self._reset_master_down_timer(now)
            return []
        # A live master with a lower priority than ours. The RFC discards its adverts
        # and lets Master_Down_Timer run out; we act at once (module docstring).
        if self._config.preempt is not PreemptMode.DELAY or self._is_owner():
            return self._become_master(now, self._preempt_reason(delayed=False))
        if self._preempt_deadline is None:
            self._preempt_deadline = now + _seconds(self._config.preempt_delay_cs)
        if now >= self._preempt_deadline:
            self._preempt_deadline = None
            return self._become_master(now, self._preempt_reason(delayed=True))
        # Until the delay is over the lower master is accepted as master.
        self._reset_master_down_timer(now)
        return []

    def _receive_as_master(
        self, advert: Advertisement, source: IPAddress, now: float
    ) -> list[Action]:
        if self._stopping:
            # Another router advertising with a real priority has taken over: now the
            # addresses may go. Our own looped-back priority-0 advert does not count.
            if advert.priority != PRIORITY_RESIGN and source != self._config.primary_address:
                return self._finish_stop(f"{source} took over (priority {advert.priority})")
            return []
        if advert.priority == PRIORITY_RESIGN:
            # §6.4.3: "If the Priority in the ADVERTISEMENT is zero, then: Send an
            # ADVERTISEMENT; Reset the Adver_Timer to Advertisement_Interval". A resigning
            # second master must not make its backups take over from us.
            return self._advertise(now)
        ours = self._effective_priority
        if advert.priority > ours:
            reason = f"higher priority {advert.priority} > {ours} from {source}"
        elif advert.priority == ours and _address_key(source) > _address_key(
            self._config.primary_address
        ):
            reason = (
                f"equal priority {ours} and higher address {source}"
                f" > {self._config.primary_address}"
            )
        else:
            # §6.4.3: "Otherwise: Discard the ADVERTISEMENT". Our next advertisement makes
            # the other master yield.
            return []
        # §6.4.3: "Cancel Adver_Timer; Set Master_Adver_Interval to Adver Interval
        # contained in the ADVERTISEMENT; Recompute the Skew_Time; Recompute the
        # Master_Down_Interval; Set Master_Down_Timer to Master_Down_Interval; Transition
        # to the {Backup} state".
        if self._config.version == 3:
            self._master_adver_interval_cs = max(1, advert.advert_interval_cs)
        self._end_hold(reason)
        self._state = State.BACKUP
        self._adver_timer = None
        self._master_since = None
        self._master_address = source
        self._master_priority = advert.priority
        self._reset_master_down_timer(now)
        return [Transition(State.MASTER, State.BACKUP, reason), RemoveAddresses()]

    # Helpers ----------------------------------------------------------------------

    def _join(self, now: float, reason: str) -> list[Action]:
        """§6.4.1 Startup, from INITIALIZE or FAULT."""
        if self._is_owner():
            return self._become_master(now, f"{reason}: address owner (priority 255)")
        # §6.4.1: "Set Master_Adver_Interval to Advertisement_Interval; Set the
        # Master_Down_Timer to Master_Down_Interval; Transition to the {Backup} state".
        old = self._state
        self._state = State.BACKUP
        self._resigned = None
        self._master_adver_interval_cs = self._config.advert_interval_cs
        self._master_address = None
        self._master_priority = None
        self._reset_master_down_timer(now)
        return [Transition(old, State.BACKUP, reason)]

    def _become_master(self, now: float, reason: str) -> list[Action]:
        # §6.4.1 / §6.4.2: "Send an ADVERTISEMENT; Broadcast a gratuitous ARP ...; Set the
        # Adver_Timer to Advertisement_Interval; Transition to the {Master} state". The
        # addresses go on the interface first, so that the traffic our advertisement
        # and announcement attract finds them.
        old = self._state
        self._state = State.MASTER
        self._resigned = None
        self._clear_timers()
        self._master_since = now
        self._master_address = self._config.primary_address
        self._master_priority = None
        self._master_adver_interval_cs = self._config.advert_interval_cs
        self._adver_timer = now + _seconds(self._config.advert_interval_cs)
        # The gratuitous ARP goes before the advertisement: a master handing over lets go
        # of the addresses when it hears our advertisement, and by then the clients must
        # already have been told where the addresses went (make before break).
        return [
            Transition(old, State.MASTER, reason),
            AddAddresses(),
            Announce(),
            SendAdvertisement(self._advertisement(self._effective_priority)),
        ]

    def _enter_fault(self, reason: str) -> list[Action]:
        self._end_hold(reason)
        old = self._state
        actions: list[Action] = []
        if old is State.MASTER:
            # Resign first, as at shutdown, so backups take over after Skew_Time rather
            # than Master_Down_Interval (useful when the fault is a probe, not the link).
            actions.append(SendAdvertisement(self._advertisement(PRIORITY_RESIGN)))
        self._state = State.FAULT
        self._clear_timers()
        self._master_since = None
        self._master_address = None
        self._master_priority = None
        actions.append(Transition(old, State.FAULT, reason))
        if old is State.MASTER:
            actions.append(RemoveAddresses())
        return actions

    def _finish_stop(self, reason: str) -> list[Action]:
        self._stopping = False
        self._state = State.STOPPED
        self._clear_timers()
        self._master_since = None
        self._master_address = None
        return [RemoveAddresses(), Transition(State.MASTER, State.STOPPED, reason), Stopped(reason)]

    def _end_hold(self, reason: str) -> None:
        if self._held:
            self._held = False
            self._hold_ended = reason
            self._effective_priority = self._unheld_priority

    def _advertise(self, now: float) -> list[Action]:
        self._adver_timer = now + _seconds(self._config.advert_interval_cs)
        return [SendAdvertisement(self._advertisement(self._effective_priority))]

    def _advertisement(self, priority: int) -> Advertisement:
        c = self._config
        return Advertisement(
            version=c.version,
            vrid=c.vrid,
            priority=priority,
            advert_interval_cs=c.advert_interval_cs,
            addresses=c.addresses,
            auth_type=c.auth_type,
            auth_data=c.auth_data,
        )

    def _reset_master_down_timer(self, now: float) -> None:
        self._master_down_timer = now + _seconds(self.master_down_interval_cs)

    def _clear_timers(self) -> None:
        self._adver_timer = None
        self._master_down_timer = None
        self._preempt_deadline = None
        self._handover_deadline = None

    def _handover_wait_s(self) -> float:
        return _seconds(master_down_interval_cs(PRIORITY_MIN, self._config.advert_interval_cs))

    def _is_owner(self) -> bool:
        return self._config.priority == PRIORITY_OWNER

    def _may_preempt(self) -> bool:
        # RFC 5798 §6.1 Preempt_Mode: "the VRRP Router that owns the IPvX address
        # associated with the VRID always preempts, independent of the setting".
        if self._is_owner():
            return True
        return self._config.preempt is not PreemptMode.NEVER and not self._preempt_inhibited

    def _master_is_lower(self) -> bool:
        return (
            self._master_priority is not None and self._master_priority < self._effective_priority
        )

    def _preempt_reason(self, *, delayed: bool) -> str:
        reason = (
            f"preempting lower priority master {self._master_priority}"
            f" < {self._effective_priority} from {self._master_address}"
        )
        if delayed:
            reason += f" after {self._config.preempt_delay_cs / 100:g} s preempt delay"
        return reason
