"""Carrying out what one instance's state machine decided, in its order: the VIPs through
rtnetlink, adverts, gratuitous ARP / unsolicited NA bursts, the instance's one timer.

`Daemon` owns the instances and decides whom to ask; `Effects.run` takes the actions a
`VirtualRouter` returned and does them, then tells the daemon what settled (the
transitions of a batch, or that the instance stopped) so that sync groups follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vrrpd.instance import Instance
from vrrpd.limits import IPInterface
from vrrpd.metrics import DaemonMetrics
from vrrpd.ports import Ports
from vrrpd.vrrp.fsm import (
    Action,
    AddAddresses,
    Announce,
    RemoveAddresses,
    SendAdvertisement,
    State,
    Stopped,
    Transition,
)
from vrrpd.vrrp.packet import Advertisement

log = logging.getLogger("vrrpd")


class Effects:
    def __init__(
        self,
        ports: Ports,
        metrics: DaemonMetrics,
        *,
        send: Callable[[Instance, Advertisement], None],
        settled: Callable[[Instance, list[Transition], bool], None],
        before_add: Callable[[Instance], Awaitable[None]] | None = None,
        transitioned: Callable[[Instance, Transition], None] | None = None,
        ticked: Callable[[Instance], None] | None = None,
    ) -> None:
        """`send` puts an advert on the wire; `settled(inst, transitions, stopped)` is called
        once a batch is done: with its transitions, or stopped=True when the instance's
        shutdown completed. `before_add(inst)`, if given, runs before an instance's VIPs are
        added (the accept: false firewall: blocked before the address exists, never after)."""
        self.ports = ports
        self._before_add = before_add
        self._transitioned = transitioned  # told of each transition, after its notify
        self._ticked = ticked  # told after each timer the state machine handled
        self.metrics = metrics
        self._send = send
        self._settled = settled
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    def run(self, inst: Instance, actions: list[Action]) -> None:
        """Carry out what the state machine decided, in its order.

        Address changes are kernel round trips (coroutines): what follows one waits for it
        (the gratuitous ARP and the first advert come after the VIP is on the interface,
        the stop after it is off), and so does every later batch of the same instance, so
        its effects never overtake one another. Batches without address changes (adverts,
        nearly all of them) run at once when nothing of the instance is pending.
        """
        for action in actions:
            if isinstance(action, Transition):
                inst.since = time.time()
                inst.last_reason = action.reason
                inst.transitions += 1
                if action.new != State.MASTER:
                    self._cancel_announcements(inst)
        if inst.effects is None and not any(self._waits(inst, a) for a in actions):
            self._carry_out(inst, actions)
            return
        if inst.timer is not None:  # re-armed from the FSM's deadline once the batch is done
            inst.timer.cancel()
            inst.timer = None
        inst.effects = self.loop.create_task(self._carry_out_later(inst, actions, inst.effects))
        inst.effects.add_done_callback(_report_failure)

    def _waits(self, inst: Instance, action: Action) -> bool:
        return isinstance(action, AddAddresses | RemoveAddresses) or (
            isinstance(action, Stopped) and inst.holds_addresses
        )

    async def _carry_out_later(
        self, inst: Instance, actions: list[Action], before: asyncio.Task[None] | None
    ) -> None:
        if before is not None:
            await asyncio.wait([before])
        start = 0
        for k, action in enumerate(actions):
            if self._waits(inst, action):
                self._carry_out(inst, actions[start:k], last=False)
                start = k if isinstance(action, Stopped) else k + 1
                if isinstance(action, AddAddresses):
                    await self._add_addresses(inst)
                else:  # the FSM removes them before it stops; this guards against a leak
                    await self.remove_addresses(inst)
        if inst.effects is asyncio.current_task():
            inst.effects = None
        earlier = [a for a in actions[:start] if isinstance(a, Transition)]
        self._carry_out(inst, actions[start:], earlier=earlier)

    def _carry_out(
        self,
        inst: Instance,
        actions: list[Action],
        *,
        last: bool = True,
        earlier: list[Transition] | None = None,
    ) -> None:
        """Actions other than address changes. `last`: the end of the batch, whose
        transitions (`earlier` ones included) are recorded here."""
        moved = list(earlier or ())
        # A batch that waited for the kernel may find its state already left (the link went
        # down while the VIP was being added): no advert or GARP for a mastership now over.
        ended = [a.new for a in (*moved, *actions) if isinstance(a, Transition)]
        stale = bool(ended) and ended[-1] != inst.router.state
        stopped = False
        for action in actions:
            if isinstance(action, SendAdvertisement | Announce) and stale:
                continue
            if isinstance(action, SendAdvertisement):
                self._send(inst, action.advertisement)
            elif isinstance(action, Transition):
                moved.append(action)
                if action.new != State.MASTER:  # again: an earlier batch may have announced
                    self._cancel_announcements(inst)
            elif isinstance(action, Announce):
                self._schedule_announcements(inst)
            elif isinstance(action, Stopped):
                stopped = True
                break
        if not last:
            return
        if not stopped:
            self._rearm(inst)
        # Bookkeeping after the packets and addresses: a takeover is not slowed by logging.
        for transition in moved:
            self._record(inst, transition)
        self._settled(inst, moved, stopped)

    def _record(self, inst: Instance, t: Transition) -> None:
        name, intf, vrid = inst.config.name, inst.ifname, inst.config.vrid
        self.metrics.record_transition(name, intf, vrid, t.old, t.new, time.time())
        self.metrics.set_state(name, intf, vrid, (str(a) for a in inst.config.addresses), t.new)
        if inst.notifier is not None:
            inst.notifier.notify(t.new, inst.router.effective_priority, t.reason)
        if self._transitioned is not None:
            self._transitioned(inst, t)
        log.info(
            "instance %s: %s -> %s (%s)",
            name,
            t.old,
            t.new,
            t.reason,
            extra={"instance": name, "state": str(t.new), "old_state": str(t.old),
                   "reason": t.reason},
        )  # fmt: skip

    def _rearm(self, inst: Instance) -> None:
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        deadline = inst.router.next_deadline()
        if deadline is not None:
            inst.timer = self.loop.call_at(deadline, self._on_timer, inst, deadline)

    def _on_timer(self, inst: Instance, deadline: float) -> None:
        inst.timer = None
        # The loop may fire a hair before the deadline; the FSM must see it as due.
        self.run(inst, inst.router.handle_timer(max(self.now(), deadline)))
        if self._ticked is not None:
            self._ticked(inst)

    def cancel_timers(self, inst: Instance) -> None:
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        self._cancel_announcements(inst)
        for task in inst.tasks.values():
            task.cancel()
        inst.tasks.clear()

    async def _add_addresses(self, inst: Instance) -> None:
        if self._before_add is not None:
            await self._before_add(inst)
        inst.holds_addresses = True  # first: an add cut short may still reach the kernel
        for address in inst.config.addresses:
            try:
                await self.ports.addresses.add(
                    inst.where(address), address, inst.config.label_for(address, inst.ifname)
                )
            except OSError as exc:
                log.error(
                    "instance %s: cannot add %s to %s: %s",
                    inst.config.name,
                    address,
                    inst.where(address),
                    exc,
                )
        await self._route(inst, install=True)

    async def remove_addresses(self, inst: Instance) -> None:
        await self._route(inst, install=False)
        for address in inst.config.addresses:
            try:
                await self.ports.addresses.remove(inst.where(address), address)
            except OSError as exc:
                log.error(
                    "instance %s: cannot remove %s from %s: %s",
                    inst.config.name,
                    address,
                    inst.where(address),
                    exc,
                )
        inst.holds_addresses = False

    async def _route(self, inst: Instance, *, install: bool) -> None:
        """The instance's routes and rules (after its addresses, which a route's source
        or gateway may need), or off again (before the addresses, rules first)."""
        port, config = self.ports.routes, inst.config
        if port is None:
            return
        changes: list[tuple[Callable[[Any], Awaitable[bool]], Any]] = (
            [(port.add_route, r) for r in config.routes]
            + [(port.add_rule, r) for r in config.rules]
            if install
            else [(port.remove_rule, r) for r in config.rules]
            + [(port.remove_route, r) for r in config.routes]
        )
        for change, what in changes:
            try:
                await change(what)
            except OSError as exc:
                log.error("instance %s: %s", config.name, exc)

    def _schedule_announcements(self, inst: Instance) -> None:
        """keepalived's schedule: a burst now, another after garp master delay, then refreshes."""
        self._cancel_announcements(inst)
        garp = inst.config.garp
        now = self.now()
        starts = [now]
        if garp.master_delay_cs:
            starts.append(now + garp.master_delay_cs / 100)
        for start in starts:
            for k in range(garp.master_repeat):
                at = start + k * garp.interval_cs / 100
                if at <= now:
                    self._announce(inst)
                else:
                    inst.announcements.append(self.loop.call_at(at, self._announce, inst))
        if garp.master_refresh_cs:
            inst.announcements.append(
                self.loop.call_at(now + garp.master_refresh_cs / 100, self._refresh, inst)
            )

    def _refresh(self, inst: Instance) -> None:
        if inst.state != State.MASTER:
            return
        for _ in range(max(1, inst.config.garp.master_repeat)):
            self._announce(inst)
        inst.announcements.append(
            self.loop.call_later(inst.config.garp.master_refresh_cs / 100, self._refresh, inst)
        )

    def _announce(self, inst: Instance) -> None:
        for address in inst.config.addresses:
            try:
                self.ports.announcer.announce(inst.where(address), address.ip)
            except OSError as exc:
                log.warning(
                    "instance %s: announcing %s failed: %s", inst.config.name, address.ip, exc
                )

    def _cancel_announcements(self, inst: Instance) -> None:
        for handle in inst.announcements:
            handle.cancel()
        inst.announcements.clear()

    def readdress(self, inst: Instance, gone: list[IPInterface], new: list[IPInterface]) -> None:
        """Take `gone` off and put `new` on (and announce them) if the instance holds its
        VIPs, after whatever address change of the instance is still under way."""
        inst.effects = self.loop.create_task(self._readdress(inst, gone, new, inst.effects))
        inst.effects.add_done_callback(_report_failure)

    async def _readdress(
        self,
        inst: Instance,
        gone: list[IPInterface],
        new: list[IPInterface],
        before: asyncio.Task[None] | None,
    ) -> None:
        # Adding or removing what is (not) there already is a no-op: a pending AddAddresses
        # of the instance adds the new list itself.
        if before is not None:
            await asyncio.wait([before])
        try:
            if not inst.holds_addresses:
                return
            for address in gone:
                try:
                    await self.ports.addresses.remove(inst.where(address), address)
                except OSError as exc:
                    log.error("instance %s: cannot remove %s: %s", inst.config.name, address, exc)
            for address in new:
                try:
                    await self.ports.addresses.add(
                        inst.where(address), address, inst.config.label_for(address, inst.ifname)
                    )
                except OSError as exc:
                    log.error("instance %s: cannot add %s: %s", inst.config.name, address, exc)
            if inst.state == State.MASTER:
                for _ in range(max(1, inst.config.garp.master_repeat)):
                    for address in new:
                        try:
                            self.ports.announcer.announce(inst.where(address), address.ip)
                        except OSError as exc:
                            log.warning(
                                "instance %s: announcing %s failed: %s",
                                inst.config.name,
                                address,
                                exc,
                            )
        finally:
            if inst.effects is asyncio.current_task():
                inst.effects = None


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("carrying out state changes failed", exc_info=exc)
