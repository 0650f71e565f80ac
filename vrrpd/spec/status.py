"""The status of a VirtualIP, as the operator writes it: the schema the CRD gives it.

Nothing here validates: the operator builds the status (vrrp_operator.status) and the API
server checks it against what these models generate.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vrrpd.limits import PRIORITY_OWNER, PRIORITY_RESIGN, VRID_MAX, VRID_MIN
from vrrpd.spec.fields import SpecModel
from vrrpd.spec.openapi import Crd
from vrrpd.vrrp.fsm import State

_GENERATION = Crd(format="int64", minimum=0)
_TIME = Crd(format="date-time")
_PRIORITY = Crd(minimum=PRIORITY_RESIGN, maximum=PRIORITY_OWNER)
_NODE_NAME = Crd(maxLength=253)


class Condition(SpecModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    crd = Crd(description="A standard Kubernetes condition (metav1.Condition).")

    type: Annotated[
        str,
        Crd(
            maxLength=316,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        ),
    ] = Field(description="The condition type, e.g. Ready.")
    status: Annotated[str, Crd(enum=["True", "False", "Unknown"])] = Field(
        description="True, False or Unknown."
    )
    observed_generation: Annotated[int, _GENERATION] | None = Field(
        default=None, description="The metadata.generation the condition was computed from."
    )
    last_transition_time: Annotated[str, _TIME] = Field(
        description="When the status last changed (RFC 3339)."
    )
    reason: Annotated[
        str, Crd(minLength=1, maxLength=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    ] = Field(description="A CamelCase reason for the last transition, e.g. MasterElected.")
    message: Annotated[str, Crd(maxLength=32768)] = Field(
        description="A human-readable message about the transition."
    )


class NodeStatus(SpecModel):
    """What one node's daemon reports for a VirtualIP."""

    crd = Crd(description="The state one node's daemon reports for this VirtualIP.")

    name: Annotated[str, _NODE_NAME] = Field(description="The Node's name.")
    state: Annotated[str, Crd(enum=[*(s.value for s in State), "Unknown"])] | None = Field(
        default=None,
        description="The VRRP state (of the address family in the worst state): INITIALIZE, "
        "BACKUP, MASTER, FAULT or STOPPED; Unknown when the node has not reported.",
    )
    base_priority: Annotated[int, _PRIORITY] | None = Field(
        default=None, description="The node's priority from spec (nodePriorities or priority)."
    )
    effective_priority: Annotated[int, _PRIORITY] | None = Field(
        default=None,
        description="The priority the node advertises: the base priority changed by probe "
        "weights (0 while it stops).",
    )
    healthy: bool | None = Field(
        default=None,
        description="True when the node is a healthy candidate: its probes pass and no "
        "instance is in FAULT.",
    )
    since: Annotated[str, _TIME] | None = Field(
        default=None, description="When the node entered its current state (RFC 3339)."
    )
    reason: Annotated[str, Crd(maxLength=1024)] | None = Field(
        default=None,
        description='Why the node is in this state, e.g. "probe haproxy failing" or "interface '
        'eth1 down".',
    )


class VirtualIPStatus(SpecModel):
    """status of a VirtualIP."""

    crd = Crd(
        description="What the nodes report, aggregated by the operator. Written by the "
        "operator only (status subresource)."
    )

    vrid: Annotated[int, Crd(minimum=VRID_MIN, maximum=VRID_MAX)] | None = Field(
        default=None,
        description="The virtual router ID in use: spec.vrid, or the one the operator allocated.",
    )
    master: Annotated[str, _NODE_NAME] | None = Field(
        default=None, description="The node that holds the addresses; empty while none does."
    )
    nodes: Annotated[
        tuple[NodeStatus, ...],
        Crd(maxItems=5000, x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]),
    ] = Field(default=(), description="One entry per participating node.")
    conditions: Annotated[
        tuple[Condition, ...],
        Crd(maxItems=16, x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["type"]),
    ] = Field(
        default=(),
        description="Ready (a master holds the addresses), Degraded (a node is in FAULT or not "
        "reporting), SplitBrain (two nodes have reported MASTER for longer than two adverts "
        "and 2 s), VRIDConflict (another VirtualIP uses this vrid on the same segment; this "
        "one is not rendered), Advisory (what a failure would do: a probe whose weight can "
        "never move the VIP, ties, ... as `vrrpd explain` says it; True when there is "
        "something to read).",
    )
    transitions: Annotated[int, _GENERATION] | None = Field(
        default=None,
        description="How many times the master has changed since the VirtualIP was created.",
    )
    observed_generation: Annotated[int, _GENERATION] | None = Field(
        default=None, description="The metadata.generation the operator last acted on."
    )
