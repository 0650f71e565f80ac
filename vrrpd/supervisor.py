"""Carrying vrrpd.standing's rules out on the running instances: their fault sources,
their probes (one loop each, vrrpd.probes.runners) and what their results do to the
priority, and their sync groups. The rules are pure (vrrpd.standing); this class keeps
them applied as links, probes and transitions change, through the state machines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from vrrpd import standing
from vrrpd.config import InstanceConfig
from vrrpd.instance import Instance
from vrrpd.metrics import DaemonMetrics
from vrrpd.probes.runners import ProbeOutcome, probe_for, run_forever
from vrrpd.probes.tracking import ProbeState, tracker_for
from vrrpd.vrrp.fsm import Action, State, Transition

log = logging.getLogger("vrrpd")


class Supervisor:
    def __init__(
        self,
        metrics: DaemonMetrics,
        *,
        instances: Callable[[], Iterable[Instance]],
        run: Callable[[Instance, list[Action]], None],
        now: Callable[[], float],
    ) -> None:
        """`instances()`: the running instances (sync groups are made of them); `run`
        carries out a state machine's actions; `now` is the loop's clock."""
        self.metrics = metrics
        self._instances = instances
        self._run = run
        self.now = now

    # ---------------------------------------------------------------- probes

    def start_probes(self, inst: Instance) -> None:
        for probe in inst.config.probes:
            inst.tasks[probe.name] = asyncio.create_task(self._probe_loop(inst, probe.name))

    def replace_probes(self, inst: Instance, old: InstanceConfig) -> None:
        """Keep unchanged probes running; a changed one restarts with its state carried over
        (keepalived keeps a script's state over a reload); a new one starts unheard."""
        before = {p.name: p for p in old.probes}
        wanted = {p.name: p for p in inst.config.probes}
        for name, probe in before.items():
            if wanted.get(name) != probe:
                task = inst.tasks.pop(name, None)
                if task is not None:
                    task.cancel()
            if name not in wanted:
                inst.trackers.pop(name, None)
                inst.outcomes.pop(name, None)
        carried = {ProbeState.UP: True, ProbeState.DOWN: False, ProbeState.INIT: None}
        for name, probe in wanted.items():
            if before.get(name) == probe:
                continue
            previous = inst.trackers.get(name)
            inst.trackers[name] = tracker_for(
                probe,
                initially_up=None if previous is None else carried[previous.state],
                value=None if previous is None or not previous.scaled else previous.value,
            )
            inst.tasks[name] = asyncio.create_task(self._probe_loop(inst, name))

    async def _probe_loop(self, inst: Instance, name: str) -> None:
        config = next(p for p in inst.config.probes if p.name == name)
        probe = probe_for(config)
        await run_forever(
            probe.check, config.interval_cs / 100, lambda o: self._on_probe(inst, name, o)
        )

    def _on_probe(self, inst: Instance, name: str, outcome: ProbeOutcome) -> None:
        if inst.router.state == State.STOPPED:
            return
        inst.outcomes[name] = outcome
        self.metrics.record_probe(inst.config.name, name, outcome.ok, outcome.latency_s)
        tracker = inst.trackers[name]
        if not tracker.record(outcome.ok, outcome.value):
            return
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "instance %s: probe %s is %s%s (%s)",
            inst.config.name,
            name,
            tracker.state,
            f", adding {tracker.contribution()}" if tracker.scaled else "",
            outcome.detail,
            extra={"instance": inst.config.name, "probe": name},
        )
        for member in [inst, *self.group(inst)]:
            if self.assess_probes(member):
                self.apply_faults(member, f"probe {name} is {tracker.state}")
        self.sync_faults(inst)

    # ---------------------------------------------------------------- fault sources

    def set_fault(self, inst: Instance, source: str, reason: str | None, cleared: str) -> None:
        """Set (reason) or clear (None) one fault source, then let the FSM know."""
        if not standing.set_fault(inst.faults, source, reason):
            return
        self.apply_faults(inst, cleared)
        if source != standing.SYNC:
            self.sync_faults(inst)

    def apply_faults(self, inst: Instance, cleared: str) -> None:
        reason = standing.fault_reason(inst.faults, cleared)
        self._run(inst, inst.router.set_fault(bool(inst.faults), reason, self.now()))

    def assess_probes(self, inst: Instance) -> bool:
        """The probes' standing (vrrpd.standing.assess_probes) on the instance: True when
        their fault changed (the caller lets the FSM know); a new priority goes at once."""
        changed, effective = standing.assess_probes(inst, self.group(inst))
        if effective is not None:
            self._run(inst, inst.router.set_priority(effective, self.now()))
        return changed

    # ---------------------------------------------------------------- sync groups

    def group(self, inst: Instance) -> list[Instance]:
        """The other members of the instance's sync group ([] outside a group)."""
        return standing.group_of(inst, self._instances())

    def sync_faults(self, inst: Instance) -> None:
        """A member with a fault of its own puts the whole group in FAULT (keepalived)."""
        members = [inst, *self.group(inst)]
        if len(members) < 2:
            return
        for member in members:
            reason = standing.sync_fault(member, members)
            self.set_fault(member, standing.SYNC, reason, standing.sync_cleared(member))

    def hold_group(self, inst: Instance) -> None:
        """While one member yields to a higher master, its siblings do not preempt."""
        members = [inst, *self.group(inst)]
        for m in members:
            m.router.inhibit_preempt(standing.preempt_held(m, members))

    def sync_states(self, inst: Instance, transition: Transition) -> None:
        """Members follow one another into MASTER and back into BACKUP."""
        step = standing.follow(inst, transition)
        if step is None:
            return
        new, why = step
        now = self.now()
        for member in self.group(inst):
            if new == State.MASTER:
                self._run(member, member.router.sync_master(why, now))
            else:
                self._run(member, member.router.sync_backup(why, now))

    def resync(self, inst: Instance, why: str) -> None:
        """Probe faults, weights and sync-group standing again, after a configuration change
        of the instance or of a member of its old or new sync group."""
        self.assess_probes(inst)
        if not self.group(inst):
            inst.faults.pop(standing.SYNC, None)
            inst.router.inhibit_preempt(False)
        self.apply_faults(inst, why)
        self.sync_faults(inst)
        if inst.config.sync_group is not None:
            self.hold_group(inst)
