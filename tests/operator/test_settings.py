"""Operator settings from the environment: defaults, values, readable errors."""

from __future__ import annotations

import pytest
from vrrp_operator.objects import Toleration
from vrrp_operator.settings import OperatorSettings, SettingsError


def test_defaults() -> None:
    s = OperatorSettings.from_env({})
    assert s.namespace == "kube-vrrp"
    assert s.peering == "mandatory" and s.peering_priority is None
    assert s.daemon.http_port == 9641
    assert s.render.exclude_cordoned is True
    assert s.log_level == "info"


def test_values() -> None:
    s = OperatorSettings.from_env(
        {
            "POD_NAMESPACE": "vrrp",
            "KUBEVRRP_DAEMON_IMAGE": "registry.example/vrrpd:1",
            "KUBEVRRP_DAEMON_HTTP_PORT": "9000",
            "KUBEVRRP_DAEMON_TOLERATIONS": '[{"key": "dedicated", "operator": "Exists"}]',
            "KUBEVRRP_DAEMON_PRIORITY_CLASS": "system-node-critical",
            "KUBEVRRP_DAEMON_IMAGE_PULL_SECRETS": "a, b",
            "KUBEVRRP_EXCLUDE_CORDONED": "false",
            "KUBEVRRP_PEERING": "standalone",
            "KUBEVRRP_PEERING_PRIORITY": "7",
            "KUBEVRRP_STATUS_INTERVAL": "0.5",
            "KUBEVRRP_LOG_LEVEL": "DEBUG",
        }
    )
    assert s.namespace == "vrrp"
    assert s.daemon.image == "registry.example/vrrpd:1" and s.daemon.http_port == 9000
    assert s.daemon.tolerations == (Toleration("dedicated", "Exists"),)
    assert s.render.tolerations == s.daemon.tolerations
    assert s.daemon.image_pull_secrets == ("a", "b")
    assert s.render.exclude_cordoned is False
    assert (s.peering, s.peering_priority, s.status_interval_s) == ("standalone", 7, 0.5)
    assert s.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KUBEVRRP_DAEMON_HTTP_PORT": "http"}, "KUBEVRRP_DAEMON_HTTP_PORT='http': use 1..65535"),
        (
            {"KUBEVRRP_PEERING": "maybe"},
            "KUBEVRRP_PEERING='maybe': use mandatory, standalone, auto",
        ),
        ({"KUBEVRRP_STATUS_INTERVAL": "-1"}, "must be more than 0"),
        ({"KUBEVRRP_EXCLUDE_CORDONED": "perhaps"}, "use true or false"),
        ({"KUBEVRRP_DAEMON_TOLERATIONS": "{"}, "KUBEVRRP_DAEMON_TOLERATIONS is not JSON"),
        ({"KUBEVRRP_DAEMON_RESOURCES": "[]"}, "must be a JSON dict"),
        ({"KUBEVRRP_PEERING_PRIORITY": "high"}, "not a whole number"),
        ({"KUBEVRRP_LOG_LEVEL": "loud"}, "KUBEVRRP_LOG_LEVEL='loud': use debug, info, warning"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        OperatorSettings.from_env(env)
