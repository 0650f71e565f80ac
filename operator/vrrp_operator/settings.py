"""Operator settings: read once from environment variables (the chart sets them), pure.

Every variable is optional; `from_env` raises SettingsError naming the variable, its value
and what would work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vrrp_operator.manifests import DaemonSettings
from vrrp_operator.objects import Toleration
from vrrp_operator.render import RenderOptions

PEERING_MODES = ("mandatory", "standalone", "auto")
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class OperatorSettings:
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    render: RenderOptions = field(default_factory=RenderOptions)
    status_interval_s: float = 2.0  # the shortest time between two writes of one status
    resync_interval_s: float = 60.0  # a full reconcile at least this often (Secret rotation)
    delete_timeout_s: float = 30.0  # how long a deletion waits for daemons to drop the VIP
    # mandatory: two replicas never both act (kopf peering; the chart installs the
    # ClusterKopfPeering object). standalone: tests and single-replica installs.
    peering: str = "mandatory"
    peering_name: str = "kube-vrrp"
    peering_priority: int | None = None  # None: random, so two replicas never tie
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    # LoadBalancer Services without spec.loadBalancerClass get pool addresses too.
    default_load_balancer_class: bool = False
    # info: changes and problems. debug adds every handler kopf runs and what a reconcile
    # waits for (a person debugging, and the test that counts the work of an idle operator).
    log_level: str = "info"

    @property
    def namespace(self) -> str:
        return self.daemon.namespace

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorSettings:
        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else default

        def number(name: str, default: float) -> float:
            text = get(name)
            if text is None:
                return default
            try:
                value = float(text)
            except ValueError:
                raise SettingsError(f"{name}={text!r} is not a number of seconds") from None
            if value <= 0:
                raise SettingsError(f"{name}={text!r} must be more than 0")
            return value

        def flag(name: str, default: bool) -> bool:
            text = get(name)
            if text is None:
                return default
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise SettingsError(f"{name}={text!r} is not a boolean; use true or false")

        def json_value(name: str, default: Any, kind: type) -> Any:
            text = get(name)
            if text is None:
                return default
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise SettingsError(f"{name} is not JSON: {exc}") from None
            if not isinstance(value, kind):
                raise SettingsError(f"{name} must be a JSON {kind.__name__}")
            return value

        tolerations = tuple(
            Toleration.from_dict(t)
            for t in json_value("KUBEVRRP_DAEMON_TOLERATIONS", [], list)
            if isinstance(t, Mapping)
        )
        port_text = get("KUBEVRRP_DAEMON_HTTP_PORT", "9641") or "9641"
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise SettingsError(f"KUBEVRRP_DAEMON_HTTP_PORT={port_text!r}: use 1..65535")
        base = DaemonSettings()
        daemon = DaemonSettings(
            namespace=get("POD_NAMESPACE", get("KUBEVRRP_NAMESPACE", base.namespace))
            or base.namespace,
            image=get("KUBEVRRP_DAEMON_IMAGE", base.image) or base.image,
            image_pull_policy=get("KUBEVRRP_DAEMON_IMAGE_PULL_POLICY", base.image_pull_policy)
            or base.image_pull_policy,
            image_pull_secrets=tuple(
                s.strip()
                for s in (get("KUBEVRRP_DAEMON_IMAGE_PULL_SECRETS", "") or "").split(",")
                if s.strip()
            ),
            http_port=int(port_text),
            service_account=get("KUBEVRRP_DAEMON_SERVICE_ACCOUNT", base.service_account)
            or base.service_account,
            priority_class_name=get("KUBEVRRP_DAEMON_PRIORITY_CLASS"),
            tolerations=tolerations,
            resources=json_value("KUBEVRRP_DAEMON_RESOURCES", dict(base.resources), dict),
            log_format=get("KUBEVRRP_DAEMON_LOG_FORMAT", base.log_format) or base.log_format,
        )
        peering = (get("KUBEVRRP_PEERING", "mandatory") or "mandatory").lower()
        if peering not in PEERING_MODES:
            raise SettingsError(f"KUBEVRRP_PEERING={peering!r}: use {', '.join(PEERING_MODES)}")
        log_level = (get("KUBEVRRP_LOG_LEVEL", "info") or "info").lower()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"KUBEVRRP_LOG_LEVEL={log_level!r}: use {', '.join(LOG_LEVELS)}")
        priority_text = get("KUBEVRRP_PEERING_PRIORITY")
        try:
            priority = int(priority_text) if priority_text is not None else None
        except ValueError:
            raise SettingsError(
                f"KUBEVRRP_PEERING_PRIORITY={priority_text!r} is not a whole number"
            ) from None
        return cls(
            daemon=daemon,
            render=RenderOptions(
                exclude_cordoned=flag("KUBEVRRP_EXCLUDE_CORDONED", True), tolerations=tolerations
            ),
            status_interval_s=number("KUBEVRRP_STATUS_INTERVAL", 2.0),
            resync_interval_s=number("KUBEVRRP_RESYNC_INTERVAL", 60.0),
            delete_timeout_s=number("KUBEVRRP_DELETE_TIMEOUT", 30.0),
            peering=peering,
            peering_name=get("KUBEVRRP_PEERING_NAME", "kube-vrrp") or "kube-vrrp",
            peering_priority=priority,
            liveness_endpoint=_endpoint(get("KUBEVRRP_LIVENESS_ENDPOINT")),
            default_load_balancer_class=flag("KUBEVRRP_LOADBALANCER_DEFAULT_CLASS", False),
            log_level=log_level,
        )


def _endpoint(value: str | None) -> str | None:
    """kopf's liveness endpoint; "none" turns it off (several operators on one host)."""
    if value is None:
        return "http://0.0.0.0:8080/healthz"
    return None if value.lower() in ("none", "off") else value
