"""A sync group's own notifications (keepalived's notify_* inside vrrp_sync_group): one
`Notifier` per group on this node, told when the group's state changes.

As keepalived's vrrp_sync.c, the group takes the state one of its members enters first
(the others follow it there), so a group notifies once per change, not once per member:
``GROUP <group> <state> 0`` to `notify.all` and the FIFO. A member that stops (a reload
that removes it) does not stop the group; the daemon's exit does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from vrrpd.config import InstanceConfig, NotifyConfig
from vrrpd.notify import Notifier, normalize_state

log = logging.getLogger("vrrpd.notify")


@dataclass
class _Group:
    notifier: Notifier
    state: str | None = None  # the state last notified


class GroupNotifiers:
    def __init__(self, node: str) -> None:
        self.node = node
        self._groups: dict[str, _Group] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def update(self, configs: Iterable[InstanceConfig]) -> None:
        """After a (re)load: a notifier for each group a member gives syncGroupNotify to (the
        first member by name, when they differ); a group's state survives a new config."""
        chosen: dict[str, NotifyConfig] = {}
        for config in sorted(configs, key=lambda c: c.name):
            group, notify = config.sync_group, config.sync_group_notify
            if group is None or notify is None:
                continue
            first = chosen.setdefault(group, notify)
            if first != notify:
                log.warning(
                    "sync group %s: %s sets another syncGroupNotify than the member before "
                    "it; the first one by name is used: set the same on every member",
                    group,
                    config.name,
                )
        for group, current in list(self._groups.items()):
            wanted = chosen.get(group)
            if wanted == current.notifier.config:
                continue
            del self._groups[group]
            if wanted is None and current.state is not None:
                current.notifier.notify("STOP", 0, "no member notifies the group any more")
            self._close(current.notifier)
            if wanted is not None:
                self._groups[group] = _Group(self._notifier(group, wanted), current.state)
        for group, wanted in chosen.items():
            if group not in self._groups:
                self._groups[group] = _Group(self._notifier(group, wanted))

    def member_changed(self, group: str, state: str, reason: str) -> None:
        """A member of `group` entered `state`: the group's too, if it was not already."""
        entry = self._groups.get(group)
        word = normalize_state(state)
        if entry is None or word is None or word == "STOP" or word == entry.state:
            return
        entry.state = word
        entry.notifier.notify(word, 0, reason)

    async def aclose(self) -> None:
        """The daemon stops: every group that notified a state notifies STOP, then the
        notifications still queued get their time (Notifier.aclose)."""
        for entry in self._groups.values():
            if entry.state is not None:
                entry.notifier.notify("STOP", 0, "daemon stopping")
            self._close(entry.notifier)
        self._groups.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _notifier(self, group: str, config: NotifyConfig) -> Notifier:
        return Notifier(config, instance=group, group=group, kind="GROUP", node=self.node)

    def _close(self, notifier: Notifier) -> None:
        task = asyncio.ensure_future(notifier.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
