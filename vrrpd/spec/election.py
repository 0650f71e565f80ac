"""Who takes part and how they elect: per-node priorities, preemption, peers, VRRPv2
authentication, and what a new master announces (gratuitous ARP / unsolicited NA)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from vrrpd.config import GarpConfig
from vrrpd.limits import (
    GARP_INTERVAL_MAX_CS,
    GARP_MASTER_DELAY_MAX_CS,
    GARP_MASTER_REFRESH_MAX_CS,
    GARP_REPEAT_MAX,
    GARP_REPEAT_MIN,
    PASSWORD_MAX_BYTES,
    PREEMPT_DELAY_MAX_CS,
    PRIORITY_MIN,
    PRIORITY_OWNER,
)
from vrrpd.spec.addresses import PeerAddress
from vrrpd.spec.errors import fail, show, type_name
from vrrpd.spec.fields import (
    DnsSubdomain,
    DurationRange,
    IntRange,
    SpecModel,
    as_string,
    enum_value,
    format_duration_cs,
    is_standalone,
)
from vrrpd.spec.openapi import Crd, Rule
from vrrpd.spec.selectors import LabelSelector, match_labels
from vrrpd.vrrp.fsm import PreemptMode

_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")


BasePriority = Annotated[
    int, BeforeValidator(IntRange(PRIORITY_MIN, PRIORITY_OWNER, " (255 = address owner)"))
]


class NodePriority(SpecModel):
    """A per-node priority override: exactly one of nodeName or nodeSelector."""

    crd = Crd(
        description="A priority for the nodes picked by exactly one of nodeName or nodeSelector.",
        rules=[
            Rule(
                "has(self.nodeName) != has(self.nodeSelector)",
                "set exactly one of nodeName or nodeSelector, e.g. {nodeName: node-a, priority: "
                "150} or {nodeSelector: {matchLabels: {role: edge}}, priority: 120}",
            )
        ],
    )

    node_name: DnsSubdomain | None = Field(
        default=None, description="The name of one Node (as in `kubectl get nodes`)."
    )
    node_selector: LabelSelector | None = Field(
        default=None,
        description="A label selector over Node labels: every matchLabels pair and every "
        "matchExpressions requirement must hold. An empty selector matches every node.",
    )
    priority: BasePriority = Field(
        description="The base priority of the matched nodes, 1..255 (255 = address owner; not "
        "with probes)."
    )

    @model_validator(mode="after")
    def _one_way_to_pick(self) -> Self:
        if (self.node_name is None) == (self.node_selector is None):
            raise fail(
                "set exactly one of nodeName or nodeSelector, e.g. "
                "{nodeName: node-a, priority: 150} or "
                "{nodeSelector: {matchLabels: {role: edge}}, priority: 120}"
            )
        return self

    def matches(self, node: str, node_labels: Mapping[str, str] | None) -> bool:
        """True when this entry applies to `node`; selectors never match unknown labels."""
        if self.node_name is not None:
            return self.node_name == node
        assert self.node_selector is not None
        return node_labels is not None and match_labels(self.node_selector, node_labels)


class Preempt(SpecModel):
    """RFC 5798 Preempt_Mode, the same on every node: Always, Never, or Delay by `delay`."""

    example = "{mode: Always}"
    crd = Crd(
        rules=[
            Rule(
                "self.mode != 'Delay' || has(self.delay)",
                "mode: Delay needs a delay, e.g. {mode: Delay, delay: 30s}",
                field_path=".delay",
            ),
            Rule(
                "self.mode == 'Delay' || !has(self.delay)",
                "delay only applies to mode: Delay; remove it or set mode: Delay",
                field_path=".delay",
            ),
        ]
    )

    mode: Annotated[PreemptMode, BeforeValidator(enum_value(PreemptMode, "a preempt mode"))] = (
        Field(default=PreemptMode.ALWAYS, description="Always (default), Never or Delay.")
    )
    delay_cs: (
        Annotated[
            int,
            BeforeValidator(
                DurationRange(1, PREEMPT_DELAY_MAX_CS, " for mode: Delay", example="30s")
            ),
        ]
        | None
    ) = Field(
        default=None,
        alias="delay",
        description="With mode Delay: how long a higher-priority node waits before it takes "
        "over (keepalived preempt_delay), a duration of 10ms..1h in 10 ms steps, e.g. 30s. "
        "Required with Delay, not allowed otherwise.",
    )

    @field_serializer("delay_cs")
    def _delay_text(self, cs: int | None) -> str | None:
        return None if cs is None else format_duration_cs(cs)

    @model_validator(mode="after")
    def _delay_fits_mode(self) -> Self:
        if self.mode is PreemptMode.DELAY and self.delay_cs is None:
            raise fail("required with mode: Delay; e.g. {mode: Delay, delay: 30s}", ".delay")
        if self.mode is not PreemptMode.DELAY and self.delay_cs is not None:
            raise fail(
                f"only applies to mode: Delay (mode is {self.mode.value}); "
                "remove it or set mode: Delay",
                ".delay",
            )
        return self


class Peer(SpecModel):
    """A participating node and its address for one family (a node may appear once per family)."""

    crd = Crd(description="A node and its own (not virtual) address for one family.")

    node_name: DnsSubdomain = Field(description="The node's name (the Node name in a cluster).")
    address: PeerAddress = Field(
        description="The node's own IPv4 or IPv6 address, without a prefix length, e.g. "
        "192.168.77.11."
    )


class SecretKeyRef(SpecModel):
    example = "{name: vip-auth, key: password}"

    name: DnsSubdomain = Field(description="The Secret's name.")
    key: Annotated[
        str,
        BeforeValidator(lambda v: as_string(v, '"password"')),
        Crd(maxLength=253, pattern=f"^{_SECRET_KEY.pattern}$"),
    ] = Field(description="The key within the Secret's data, e.g. password.")

    @field_validator("key")
    @classmethod
    def _key_syntax(cls, key: str) -> str:
        if len(key) > 253 or not _SECRET_KEY.fullmatch(key):
            raise fail(f"{show(key)} is not a Secret key; use letters, digits, '-', '_', '.'")
        return key


class Authentication(SpecModel):
    """VRRPv2 simple password (PASS): inline, or from a Secret (cluster mode only)."""

    example = "{password: lab-pass}"
    crd = Crd(
        rules=[
            Rule(
                "has(self.password) != has(self.secretRef)",
                "set exactly one of password (standalone files) or secretRef (a Secret in this "
                "namespace; use it in a cluster); they are mutually exclusive",
            )
        ]
    )

    password: (
        Annotated[
            str,
            Crd(
                minLength=1,
                maxLength=PASSWORD_MAX_BYTES,
                rules=[
                    Rule(
                        f"bytes(self).size() <= {PASSWORD_MAX_BYTES}",
                        f"a VRRPv2 PASS password is 1..{PASSWORD_MAX_BYTES} bytes",
                    )
                ],
            ),
        ]
        | None
    ) = Field(
        default=None,
        description="The password inline, 1..8 bytes (keepalived auth_pass). For standalone "
        "files; discouraged in a cluster (use secretRef).",
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="A key of a Secret in the VirtualIP's namespace that holds the password "
        "(1..8 bytes), e.g. created with `kubectl create secret generic vip-auth "
        "--from-literal=password=...`. Cluster only.",
    )

    @field_validator("password", mode="before")
    @classmethod
    def _password_bytes(cls, value: Any) -> Any:
        if not isinstance(value, str):
            # The value is not echoed: it is a secret.
            raise fail(f"is {type_name(value)}; a password is a string: quote it")
        size = len(value.encode())
        if not 1 <= size <= PASSWORD_MAX_BYTES:
            what = f"{size} bytes is too long" if size else "is empty"
            raise fail(f"{what}; VRRPv2 PASS carries 1..{PASSWORD_MAX_BYTES} bytes")
        return value

    @field_validator("secret_ref")
    @classmethod
    def _secret_in_cluster_only(
        cls, ref: SecretKeyRef | None, info: ValidationInfo
    ) -> SecretKeyRef | None:
        if ref is not None and is_standalone(info):
            raise fail(
                "a Secret can only be read by the operator in a cluster; a standalone "
                "file sets the password inline: authentication: {password: ...}"
            )
        return ref

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.password is None) == (self.secret_ref is None):
            raise fail("set exactly one of password or secretRef, e.g. {password: lab-pass}")
        return self


class Garp(SpecModel):
    """Gratuitous ARP / unsolicited NA on becoming MASTER, as keepalived's vrrp_garp_*."""

    example = "{masterDelay: 5s}"

    master_delay_cs: Annotated[
        int,
        BeforeValidator(DurationRange(0, GARP_MASTER_DELAY_MAX_CS, " (0s: no second burst)")),
    ] = Field(
        default=500,
        alias="masterDelay",
        description="When to send a second burst after takeover (keepalived "
        "vrrp_garp_master_delay), 0s..1h; 0s: no second burst. Default 5s.",
    )
    master_repeat: Annotated[int, BeforeValidator(IntRange(GARP_REPEAT_MIN, GARP_REPEAT_MAX))] = (
        Field(
            default=5,
            description="Messages per burst (keepalived vrrp_garp_master_repeat), 1..255. "
            "Default 5.",
        )
    )
    interval_cs: Annotated[int, BeforeValidator(DurationRange(0, GARP_INTERVAL_MAX_CS))] = Field(
        default=0,
        alias="interval",
        description="The pause between the messages of one burst (keepalived "
        "vrrp_garp_interval), 0s..10s. Default 0s.",
    )
    master_refresh_cs: Annotated[
        int, BeforeValidator(DurationRange(0, GARP_MASTER_REFRESH_MAX_CS, " (0s: no refresh)"))
    ] = Field(
        default=0,
        alias="masterRefresh",
        description="Repeat a burst this often while master (keepalived "
        "vrrp_garp_master_refresh), 0s..24h; 0s (the default): never.",
    )

    @field_serializer("master_delay_cs", "interval_cs", "master_refresh_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> GarpConfig:
        return GarpConfig(
            master_delay_cs=self.master_delay_cs,
            master_repeat=self.master_repeat,
            interval_cs=self.interval_cs,
            master_refresh_cs=self.master_refresh_cs,
        )
