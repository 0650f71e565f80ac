"""Planned switchover, the daemon's side of it, pure: which instances a request names, and
the request and answer documents of the control socket (`vrrpd switchover`).

A request names instances (none: all of this node's); a sync group moves as one, so a
named member brings its siblings (holding one member alone would let the other node's
siblings preempt ours and drag the held one back down). The state machine does the rest
(`VirtualRouter.hold` / `release`, vrrpd/vrrp/fsm.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# On a VirtualIP: the node that should take its VIP and hold it (a planned switchover);
# removing it releases the hold. Standalone files may carry it too.
SWITCHOVER_TO = "kubevrrp.io/switchover-to"


class SwitchoverError(ValueError):
    """A request that cannot be carried out as asked; the message says why for a person."""


class UnknownInstance(SwitchoverError):
    """The request names an instance this node does not run."""


@dataclass(frozen=True, slots=True)
class Request:
    instances: tuple[str, ...] = ()  # empty: every instance of this node
    release: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"instances": list(self.instances), "release": self.release}

    @classmethod
    def from_json(cls, data: object) -> Request:
        if not isinstance(data, Mapping):
            raise SwitchoverError('the request must be a JSON object {"instances": [...], '
                                  '"release": false}')  # fmt: skip
        unknown = sorted(set(data) - {"instances", "release"})
        if unknown:
            raise SwitchoverError(f"unknown field(s) {', '.join(unknown)}: use instances, release")
        names = data.get("instances", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SwitchoverError(f"instances: {names!r}: use a list of instance names")
        release = data.get("release", False)
        if not isinstance(release, bool):
            raise SwitchoverError(f"release: {release!r}: use true or false")
        return cls(tuple(names), release)


def select(names: Sequence[str], groups: Mapping[str, str | None]) -> list[str]:
    """The instances a request acts on, in name order: `names` (all of `groups` when empty)
    and the other members of their sync groups. `groups`: every instance of this node and
    its sync group (None: in none). SwitchoverError names what is not known."""
    if not groups:
        raise UnknownInstance("this node runs no VRRP instance")
    missing = [n for n in names if n not in groups]
    if missing:
        raise UnknownInstance(
            f"no instance {', '.join(map(repr, missing))} on this node; it runs "
            + ", ".join(sorted(groups))
        )
    chosen = set(names or groups)
    wanted_groups = {groups[n] for n in chosen} - {None}
    chosen |= {n for n, g in groups.items() if g is not None and g in wanted_groups}
    return sorted(chosen)
