"""Tests of vrrpd.spec: the VirtualIP spec, its error messages, and per-node resolution."""

from __future__ import annotations

import ast
import copy
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from vrrpd.config import (
    EmailConfig,
    ExecCheck,
    FileCheck,
    GarpConfig,
    HttpCheck,
    IcmpCheck,
    InstanceConfig,
    InterfaceCheck,
    NotifyConfig,
    ProbeConfig,
    TcpCheck,
    WebhookConfig,
)
from vrrpd.resolve import instances_for_node
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.fields import format_duration_cs, parse_duration_cs
from vrrpd.spec.load import load_file, load_manifests, parse_virtualip
from vrrpd.spec.selectors import LabelSelector, match_labels
from vrrpd.spec.virtualip import Readiness, VirtualIP
from vrrpd.vrrp.fsm import PreemptMode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

BASE: dict[str, Any] = {
    "apiVersion": "kubevrrp.io/v1alpha1",
    "kind": "VirtualIP",
    "metadata": {"name": "web"},
    "spec": {"addresses": ["192.168.77.100/24"], "vrid": 51},
}

PEERS_V4 = [
    {"nodeName": "node-a", "address": "192.168.77.11"},
    {"nodeName": "node-b", "address": "192.168.77.12"},
]


def manifest(spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """BASE with `spec` keys merged in and top-level keys replaced; a value of ... deletes."""
    doc = copy.deepcopy(BASE)
    for key, value in (spec or {}).items():
        if value is ...:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    for key, value in top.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def dump(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def problems_of(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_manifests(text, source="web.yaml", **kwargs)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def one(spec: dict[str, Any] | None = None, **top: Any) -> VirtualIP:
    (vip,) = load_manifests(dump(manifest(spec, **top)))
    return vip


TCP_PROBE: dict[str, Any] = {"name": "haproxy", "tcp": {"port": 443}}
EMAIL: dict[str, Any] = {
    "to": ["ops@example.test"],
    "from": "vrrp@example.test",
    "smtpServer": "127.0.0.1",
}


def probes(*items: dict[str, Any], **spec: Any) -> str:
    """A one-document file with these probes (and other spec keys)."""
    return dump(manifest({"probes": list(items), **spec}))


# --- invalid documents: (id, YAML text, fragments that must all appear in one line) ------

INVALID: list[tuple[str, str, list[str]]] = [
    (
        "vrid-zero",
        dump(manifest({"vrid": 0})),
        ["web.yaml: document 1 (default/web): spec.vrid: 0 is out of range; use 1..255"],
    ),
    ("vrid-256", dump(manifest({"vrid": 256})), ["spec.vrid: 256 is out of range"]),
    (
        "vrid-string",
        dump(manifest({"vrid": "51"})),
        ['spec.vrid: "51" is a string, not a whole number; use 1..255'],
    ),
    (
        "vrid-missing-standalone",
        dump(manifest({"vrid": ...})),
        ["spec.vrid: required", "operator allocates it", "standalone must set it"],
    ),
    (
        "unknown-field-typo",
        dump(manifest({"advertInterva": "1s"})),
        ["spec.advertInterva: unknown field; did you mean advertInterval?"],
    ),
    (
        "unknown-field-snake-case",
        dump(manifest({"advert_interval": "1s"})),
        ["spec.advert_interval: unknown field; did you mean advertInterval?"],
    ),
    (
        "unknown-nested-field",
        dump(manifest({"garp": {"masterRepeats": 3}})),
        ["spec.garp.masterRepeats: unknown field; did you mean masterRepeat?"],
    ),
    (
        "unknown-field-no-suggestion",
        dump(manifest({"zzz": 1})),
        ["spec.zzz: unknown field; known fields here: addresses, vrid"],
    ),
    (
        "unknown-top-level",
        dump(manifest(specs={"vrid": 1})),
        ["specs: unknown field; did you mean spec?"],
    ),
    (
        "api-version",
        dump(manifest(apiVersion="kubevrrp.io/v1")),
        ["apiVersion: kubevrrp.io/v1 is not supported; use kubevrrp.io/v1alpha1"],
    ),
    ("api-version-missing", dump(manifest(apiVersion=...)), ["apiVersion: required", "v1alpha1"]),
    ("kind", dump(manifest(kind="Service")), ["kind: Service is not supported; use VirtualIP"]),
    (
        "name-not-dns",
        dump(manifest(metadata={"name": "Web_VIP"})),
        ["metadata.name: Web_VIP is not a valid name", "lowercase"],
    ),
    ("name-missing", dump(manifest(metadata={"namespace": "x"})), ["metadata.name: required"]),
    (
        "addresses-empty",
        dump(manifest({"addresses": []})),
        ["spec.addresses: is empty; list at least one address"],
    ),
    (
        "addresses-missing",
        dump(manifest({"addresses": ...})),
        ["spec.addresses: required", "192.168.77.100/24"],
    ),
    (
        "addresses-not-a-list",
        dump(manifest({"addresses": "192.168.77.100/24"})),
        ["spec.addresses: 192.168.77.100/24 is a string; write a list: [192.168.77.100/24]"],
    ),
    (
        "address-garbage",
        dump(manifest({"addresses": ["192.168.77.300/24"]})),
        ["spec.addresses[0]: 192.168.77.300/24 is not an IP address"],
    ),
    (
        "address-network",
        dump(manifest({"addresses": ["192.168.77.0/24"]})),
        ["spec.addresses[0]: 192.168.77.0/24 is the network address of 192.168.77.0/24"],
    ),
    (
        "address-broadcast",
        dump(manifest({"addresses": ["192.168.77.255/24"]})),
        ["is the broadcast address of 192.168.77.0/24"],
    ),
    (
        "address-multicast",
        dump(manifest({"addresses": ["224.0.0.18"]})),
        ["spec.addresses[0]: 224.0.0.18 is a multicast address"],
    ),
    ("address-loopback", dump(manifest({"addresses": ["127.0.0.2"]})), ["a loopback address"]),
    (
        "address-link-local-v4",
        dump(manifest({"addresses": ["169.254.1.1/16"]})),
        ["IPv4 link-local"],
    ),
    (
        "address-unspecified",
        dump(manifest({"addresses": ["::"]})),
        ['spec.addresses[0]: "::" is the unspecified address'],
    ),
    (
        "address-v6-subnet-anycast",
        dump(manifest({"addresses": ["fd00:77::/64"]})),
        ["subnet-router anycast address of fd00:77::/64"],
    ),
    (
        "address-duplicate",
        dump(manifest({"addresses": ["192.168.77.100/24", "192.168.77.100/32"]})),
        ["spec.addresses[1]: 192.168.77.100 is listed twice (also at [0])"],
    ),
    (
        "version-4",
        dump(manifest({"version": 4})),
        ["spec.version: 4 is not supported; use 3", "or 2"],
    ),
    (
        "v2-with-ipv6",
        dump(manifest({"version": 2, "addresses": ["192.168.77.100/24", "fd00:77::100/64"]})),
        ["spec.version: 2 (VRRPv2) carries IPv4 only", "fd00:77::100/64"],
    ),
    (
        "v2-sub-second",
        dump(manifest({"version": 2, "advertInterval": "100ms"})),
        ["spec.advertInterval: 100ms is below 1s", "spec.version: 2", "version: 3"],
    ),
    (
        "v2-fractional-seconds",
        dump(manifest({"version": 2, "advertInterval": "1.5s"})),
        ["spec.advertInterval: 1.5s does not fit VRRPv2", "whole seconds"],
    ),
    (
        "v3-not-a-10ms-step",
        dump(manifest({"advertInterval": "15ms"})),
        ["spec.advertInterval: 15ms is not a whole number of centiseconds", "10 ms steps"],
    ),
    (
        "v3-interval-too-long",
        dump(manifest({"advertInterval": "41s"})),
        ["spec.advertInterval: 41s is out of range for VRRPv3", "10ms..40.95s"],
    ),
    ("v3-interval-zero", dump(manifest({"advertInterval": "0s"})), ["0s is out of range"]),
    (
        "interval-no-unit",
        dump(manifest({"advertInterval": "100"})),
        ['spec.advertInterval: "100" has no unit', '"100ms"'],
    ),
    (
        "interval-unknown-unit",
        dump(manifest({"advertInterval": "1sec"})),
        ["spec.advertInterval: 1sec is not a duration", "units: ms, s, m, h"],
    ),
    (
        "priority-zero",
        dump(manifest({"priority": 0})),
        ["spec.priority: 0 is out of range; use 1..255 (255 = address owner)"],
    ),
    (
        "priority-bool",
        dump(manifest({"priority": True})),
        ["spec.priority: true is a boolean, not a whole number"],
    ),
    (
        "node-priority-both",
        dump(
            manifest(
                {
                    "nodePriorities": [
                        {"nodeName": "node-a", "nodeSelector": {}, "priority": 150},
                    ]
                }
            )
        ),
        ["spec.nodePriorities[0]: set exactly one of nodeName or nodeSelector"],
    ),
    (
        "node-priority-neither",
        dump(manifest({"nodePriorities": [{"priority": 150}]})),
        ["spec.nodePriorities[0]: set exactly one of nodeName or nodeSelector"],
    ),
    (
        "node-priority-missing-priority",
        dump(manifest({"nodePriorities": [{"nodeName": "node-a"}]})),
        ["spec.nodePriorities[0].priority: required", "priority: 150"],
    ),
    (
        "node-priority-duplicate-name",
        dump(
            manifest(
                {
                    "nodePriorities": [
                        {"nodeName": "node-a", "priority": 150},
                        {"nodeName": "node-a", "priority": 120},
                    ]
                }
            )
        ),
        ["spec.nodePriorities[1].nodeName: node-a is already at [0]", "never applies"],
    ),
    (
        "selector-bad-operator",
        dump(
            manifest(
                {
                    "nodePriorities": [
                        {
                            "nodeSelector": {
                                "matchExpressions": [{"key": "zone", "operator": "in"}]
                            },
                            "priority": 150,
                        }
                    ]
                }
            )
        ),
        [
            "spec.nodePriorities[0].nodeSelector.matchExpressions[0].operator: in is not "
            "a selector operator; use In, NotIn, Exists or DoesNotExist (did you mean In?)"
        ],
    ),
    (
        "selector-in-without-values",
        dump(
            manifest(
                {
                    "nodePriorities": [
                        {
                            "nodeSelector": {
                                "matchExpressions": [{"key": "zone", "operator": "In"}]
                            },
                            "priority": 150,
                        }
                    ]
                }
            )
        ),
        ["matchExpressions[0].values: operator In needs at least one value"],
    ),
    (
        "selector-exists-with-values",
        dump(
            manifest(
                {
                    "nodePriorities": [
                        {
                            "nodeSelector": {
                                "matchExpressions": [
                                    {"key": "zone", "operator": "Exists", "values": ["a"]}
                                ]
                            },
                            "priority": 150,
                        }
                    ]
                }
            )
        ),
        ["matchExpressions[0].values: operator Exists takes no values"],
    ),
    (
        "selector-label-value-not-string",
        dump(
            manifest(
                {
                    "nodePriorities": [
                        {"nodeSelector": {"matchLabels": {"edge": True}}, "priority": 9}
                    ]
                }
            )
        ),
        ["nodeSelector.matchLabels.edge: true is a boolean; quote it"],
    ),
    (
        "preempt-bad-mode",
        dump(manifest({"preempt": {"mode": "always"}})),
        ["spec.preempt.mode: always is not a preempt mode; use Always, Never or Delay"],
    ),
    (
        "preempt-keepalived-bool",
        dump(manifest({"preempt": False})),
        ["spec.preempt: false: write {mode: Never}"],
    ),
    (
        "preempt-delay-missing",
        dump(manifest({"preempt": {"mode": "Delay"}})),
        ["spec.preempt.delay: required with mode: Delay"],
    ),
    (
        "preempt-delay-forbidden",
        dump(manifest({"preempt": {"mode": "Always", "delay": "30s"}})),
        ["spec.preempt.delay: only applies to mode: Delay (mode is Always)"],
    ),
    (
        "preempt-delay-too-long",
        dump(manifest({"preempt": {"mode": "Delay", "delay": "2h"}})),
        ["spec.preempt.delay: 2h is out of range", "3600s"],
    ),
    (
        "accept-not-bool",
        dump(manifest({"accept": "maybe"})),
        ["spec.accept: maybe is a string; use true or false"],
    ),
    (
        "unicast-without-peers",
        dump(manifest({"unicast": True})),
        ["spec.peers: unicast needs the IPv4 address of every participating node", "found 0"],
    ),
    (
        "unicast-one-peer",
        dump(manifest({"unicast": True, "peers": PEERS_V4[:1]})),
        ["spec.peers: unicast needs", "at least 2 entries, found 1"],
    ),
    (
        "unicast-dual-stack-missing-v6",
        dump(
            manifest(
                {
                    "unicast": True,
                    "addresses": ["192.168.77.100/24", "fd00:77::100/64"],
                    "peers": PEERS_V4,
                }
            )
        ),
        ["spec.peers: unicast needs the IPv6 address"],
    ),
    (
        "peer-duplicate-node",
        dump(manifest({"peers": [*PEERS_V4, {"nodeName": "node-a", "address": "192.168.77.13"}]})),
        ["spec.peers[2].nodeName: node-a already has an IPv4 entry at [0]"],
    ),
    (
        "peer-duplicate-address",
        dump(manifest({"peers": [*PEERS_V4, {"nodeName": "node-c", "address": "192.168.77.11"}]})),
        ["spec.peers[2].address: 192.168.77.11 is already the address of [0]"],
    ),
    (
        "peer-with-prefix",
        dump(manifest({"peers": [{"nodeName": "node-a", "address": "192.168.77.11/24"}]})),
        ["spec.peers[0].address: 192.168.77.11/24: a peer address takes no prefix length"],
    ),
    (
        "peer-wrong-family",
        dump(manifest({"peers": [{"nodeName": "node-a", "address": "fd00:77::11"}]})),
        ["spec.peers[0].address: fd00:77::11 is IPv6, but spec.addresses has no IPv6"],
    ),
    (
        "peer-is-the-vip",
        dump(manifest({"peers": [{"nodeName": "node-a", "address": "192.168.77.100"}]})),
        ["spec.peers[0].address: 192.168.77.100 is a virtual address of this VirtualIP"],
    ),
    (
        "two-address-owners",
        dump(manifest({"priority": 255, "peers": PEERS_V4})),
        ["spec.priority: nodes node-a, node-b would all have priority 255"],
    ),
    (
        "auth-with-v3",
        dump(manifest({"authentication": {"password": "lab-pass"}})),
        ["spec.authentication: VRRPv3 has no authentication", "version: 2"],
    ),
    (
        "auth-password-too-long",
        dump(manifest({"version": 2, "authentication": {"password": "123456789"}})),
        ["spec.authentication.password: 9 bytes is too long; VRRPv2 PASS carries 1..8 bytes"],
    ),
    (
        "auth-password-empty",
        dump(manifest({"version": 2, "authentication": {"password": ""}})),
        ["spec.authentication.password: is empty"],
    ),
    (
        "auth-secret-ref-standalone",
        dump(
            manifest({"version": 2, "authentication": {"secretRef": {"name": "vip", "key": "pw"}}})
        ),
        ["spec.authentication.secretRef:", "standalone", "{password: ...}"],
    ),
    (
        "auth-neither",
        dump(manifest({"version": 2, "authentication": {}})),
        ["spec.authentication: set exactly one of password or secretRef"],
    ),
    (
        "label-not-prefixed-by-interface",
        dump(manifest({"interface": "eth0", "label": "eth1:0"})),
        ["spec.label: eth1:0 must start with the interface name", "eth0:"],
    ),
    (
        "label-too-long",
        dump(manifest({"label": "eth0:very-long-label"})),
        ["spec.label: eth0:very-long-label is not an address label; use 1..15 characters"],
    ),
    (
        "label-without-ipv4",
        dump(manifest({"addresses": ["fd00:77::100/64"], "label": "eth0:0"})),
        ["spec.label: labels apply to IPv4 addresses only"],
    ),
    (
        "interface-bad-name",
        dump(manifest({"interface": "eth0:1"})),
        ["spec.interface: eth0:1 is not a Linux interface name"],
    ),
    (
        "garp-repeat-zero",
        dump(manifest({"garp": {"masterRepeat": 0}})),
        ["spec.garp.masterRepeat: 0 is out of range; use 1..255"],
    ),
    (
        "garp-negative-delay",
        dump(manifest({"garp": {"masterDelay": "-1s"}})),
        ["spec.garp.masterDelay: -1s is negative"],
    ),
    (
        "not-a-mapping",
        "- just\n- a list\n",
        ["web.yaml: document 1: ", "is a list; expected a VirtualIP"],
    ),
    (
        "yaml-syntax",
        "apiVersion: kubevrrp.io/v1alpha1\nspec:\n  addresses: [192.168.77.100/24\n",
        ["web.yaml: line 4", "YAML syntax error"],
    ),
    (
        "yaml-duplicate-key",
        "apiVersion: kubevrrp.io/v1alpha1\nspec:\n  vrid: 51\n  vrid: 52\n",
        ["web.yaml: line 4", "duplicate key vrid (first at line 3)"],
    ),
    (
        "duplicate-name",
        dump(manifest(), manifest({"addresses": ["192.168.77.101/24"], "vrid": 52})),
        ["document 2 (default/web): metadata.name: default/web is already defined in document 1"],
    ),
    (
        "same-vrid-same-interface",
        dump(
            manifest({"interface": "eth0"}),
            manifest(
                {"interface": "eth0", "addresses": ["192.168.77.101/24"]},
                metadata={"name": "api"},
            ),
        ),
        ["document 2 (default/api): spec.vrid: 51 (IPv4) is already used by default/web"],
    ),
    (
        "same-vrid-unknown-interface",
        dump(
            manifest(),
            manifest(
                {"interface": "eth1", "addresses": ["192.168.77.101/24"]},
                metadata={"name": "api"},
            ),
        ),
        ["spec.vrid: 51 (IPv4) is already used by default/web", "possibly the same interface"],
    ),
    (
        "shared-address",
        dump(manifest(), manifest({"vrid": 52}, metadata={"name": "api"})),
        ["spec.addresses: 192.168.77.100 is also a virtual address of default/web (document 1)"],
    ),
    # --- probes, tracking, notifications, operator fields ---------------------------------
    (
        "probe-without-check",
        probes({"name": "haproxy"}),
        ["spec.probes[0]: set one check: exec, tcp, http, icmp, file or interface", "tcp:"],
    ),
    (
        "probe-two-checks",
        probes({"name": "haproxy", "tcp": {"port": 443}, "http": {"port": 8080}}),
        ["spec.probes[0]: has tcp and http; a probe runs exactly one check", "one probe per"],
    ),
    (
        "probe-name-twice",
        probes(TCP_PROBE, {**TCP_PROBE, "tcp": {"port": 80}}),
        ["spec.probes[1].name: haproxy is already the name of [0]; give each probe its own"],
    ),
    (
        "probe-name-not-dns",
        probes({**TCP_PROBE, "name": "HAProxy_TLS"}),
        ["spec.probes[0].name: HAProxy_TLS is not a valid name", "lowercase", "e.g. haproxy"],
    ),
    (
        "probe-name-missing",
        probes({"tcp": {"port": 443}}),
        ["spec.probes[0].name: required field is missing; e.g. name: haproxy"],
    ),
    (
        "probe-timeout-longer-than-interval",
        probes({**TCP_PROBE, "interval": "1s", "timeout": "1.5s"}),
        ["spec.probes[0].timeout: 1.5s is longer than the interval (1s)", "timeout <= interval"],
    ),
    (
        "probe-timeout-longer-than-default-interval",
        probes({**TCP_PROBE, "timeout": "2s"}),
        ["spec.probes[0].timeout: 2s is longer than the interval (1s)"],
    ),
    (
        "probe-interval-zero",
        probes({**TCP_PROBE, "interval": "0s"}),
        ["spec.probes[0].interval: 0s is out of range; use 10ms..3600s"],
    ),
    (
        "probe-interval-no-unit",
        probes({**TCP_PROBE, "interval": "2"}),
        ['spec.probes[0].interval: "2" has no unit; write "2s"'],
    ),
    (
        "probe-rise-zero",
        probes({**TCP_PROBE, "rise": 0}),
        ["spec.probes[0].rise: 0 is out of range; use 1..255"],
    ),
    (
        "probe-fall-too-big",
        probes({**TCP_PROBE, "fall": 256}),
        ["spec.probes[0].fall: 256 is out of range; use 1..255"],
    ),
    (
        "probe-weight-too-big",
        probes({**TCP_PROBE, "weight": 255}),
        ["spec.probes[0].weight: 255 is out of range; use -254..254", "FAULT"],
    ),
    (
        "probe-weight-too-small",
        probes({**TCP_PROBE, "weight": -255}),
        ["spec.probes[0].weight: -255 is out of range; use -254..254"],
    ),
    (
        "probe-weight-string",
        probes({**TCP_PROBE, "weight": "-20"}),
        ['spec.probes[0].weight: "-20" is a string, not a whole number'],
    ),
    (
        "probes-with-address-owner",
        probes(TCP_PROBE, priority=255),
        [
            "spec.probes: not allowed because spec.priority is 255",
            "cannot be demoted",
            "use priorities 1..254",
        ],
    ),
    (
        "probes-with-address-owner-node",
        probes(
            TCP_PROBE,
            nodePriorities=[
                {"nodeName": "node-a", "priority": 150},
                {"nodeSelector": {"matchLabels": {"role": "owner"}}, "priority": 255},
            ],
        ),
        ["spec.probes: not allowed because spec.nodePriorities[1].priority is 255"],
    ),
    (
        "probes-not-a-list",
        dump(manifest({"probes": {"name": "haproxy", "tcp": {"port": 443}}})),
        ["spec.probes: ", "is a mapping; expected a list"],
    ),
    (
        "probe-unknown-field",
        probes({**TCP_PROBE, "weigth": -20}),
        ["spec.probes[0].weigth: unknown field; did you mean weight?"],
    ),
    (
        "probe-check-not-a-mapping",
        probes({"name": "haproxy", "tcp": 443}),
        ["spec.probes[0].tcp: 443 is a number; expected a mapping such as {port: 443}"],
    ),
    (
        "tcp-port-zero",
        probes({"name": "haproxy", "tcp": {"port": 0}}),
        ["spec.probes[0].tcp.port: 0 is out of range; use 1..65535"],
    ),
    (
        "tcp-port-missing",
        probes({"name": "haproxy", "tcp": {"host": "127.0.0.1"}}),
        ["spec.probes[0].tcp.port: required field is missing; e.g. port: 443"],
    ),
    (
        "tcp-host-with-port",
        probes({"name": "haproxy", "tcp": {"host": "127.0.0.1:443", "port": 443}}),
        ["spec.probes[0].tcp.host: 127.0.0.1:443 includes a port; write the host alone"],
    ),
    (
        "tcp-host-url",
        probes({"name": "haproxy", "tcp": {"host": "http://lb.example.test", "port": 80}}),
        ["spec.probes[0].tcp.host: http://lb.example.test is a URL or a path"],
    ),
    (
        "http-scheme-unknown",
        probes({"name": "web", "http": {"scheme": "ftp"}}),
        ["spec.probes[0].http.scheme: ftp is not an HTTP scheme; use http or https"],
    ),
    (
        "http-scheme-case",
        probes({"name": "web", "http": {"scheme": "HTTPS"}}),
        ["spec.probes[0].http.scheme: HTTPS is not an HTTP scheme", "(did you mean https?)"],
    ),
    (
        "http-port-too-big",
        probes({"name": "web", "http": {"port": 70000}}),
        ["spec.probes[0].http.port: 70000 is out of range; use 1..65535"],
    ),
    (
        "http-path-relative",
        probes({"name": "web", "http": {"path": "healthz"}}),
        ["spec.probes[0].http.path: healthz does not start with /; e.g. /healthz"],
    ),
    (
        "http-path-with-space",
        probes({"name": "web", "http": {"path": "/health z"}}),
        ['spec.probes[0].http.path: "/health z" contains spaces', "percent-encode"],
    ),
    (
        "http-status-out-of-range",
        probes({"name": "web", "http": {"expectStatus": [200, 99]}}),
        ["spec.probes[0].http.expectStatus[1]: 99 is out of range; use 100..599"],
    ),
    (
        "http-status-empty",
        probes({"name": "web", "http": {"expectStatus": []}}),
        ["spec.probes[0].http.expectStatus: is empty; list the codes that mean healthy"],
    ),
    (
        "http-status-not-a-list",
        probes({"name": "web", "http": {"expectStatus": 204}}),
        ["spec.probes[0].http.expectStatus: 204 is a number; write a list: [204]"],
    ),
    (
        "http-status-twice",
        probes({"name": "web", "http": {"expectStatus": [200, 204, 200]}}),
        ["spec.probes[0].http.expectStatus[2]: 200 is listed twice (also at [0])"],
    ),
    (
        "http-sha256-not-hex",
        probes({"name": "web", "http": {"bodySha256": "abc123"}}),
        ["spec.probes[0].http.bodySha256: abc123 is not a SHA-256 digest", "64 hex digits"],
    ),
    (
        "http-insecure-without-tls",
        probes({"name": "web", "http": {"insecureSkipVerify": True}}),
        ["spec.probes[0].http.insecureSkipVerify: only applies to scheme: https"],
    ),
    (
        "http-body-contains-empty",
        probes({"name": "web", "http": {"bodyContains": ""}}),
        ["spec.probes[0].http.bodyContains: is empty", "remove it"],
    ),
    (
        "http-host-header-bad",
        probes({"name": "web", "http": {"hostHeader": "example.test:http"}}),
        ["spec.probes[0].http.hostHeader: example.test:http has port http, not 1..65535"],
    ),
    (
        "http-field-typo",
        probes({"name": "web", "http": {"expectedStatus": [200]}}),
        ["spec.probes[0].http.expectedStatus: unknown field; did you mean expectStatus?"],
    ),
    (
        "exec-command-string",
        probes({"name": "check", "exec": {"command": "/usr/local/bin/check --fast"}}),
        [
            'spec.probes[0].exec.command: "/usr/local/bin/check --fast" is a string',
            '["/usr/local/bin/check", "--fast"]',
        ],
    ),
    (
        "exec-command-empty",
        probes({"name": "check", "exec": {"command": []}}),
        ["spec.probes[0].exec.command: is empty; give the program and its arguments"],
    ),
    (
        "exec-command-missing",
        probes({"name": "check", "exec": {"env": {"A": "1"}}}),
        ["spec.probes[0].exec.command: required field is missing", "/usr/local/bin/check"],
    ),
    (
        "exec-argument-number",
        probes({"name": "check", "exec": {"command": ["/usr/local/bin/check", 8080]}}),
        ['spec.probes[0].exec.command[1]: 8080 is a number; quote it: "8080"'],
    ),
    (
        "exec-program-empty",
        probes({"name": "check", "exec": {"command": ["", "x"]}}),
        ["spec.probes[0].exec.command[0]: is empty; the first item is the program"],
    ),
    (
        "exec-env-number",
        probes({"name": "check", "exec": {"command": ["check"], "env": {"PORT": 8080}}}),
        ['spec.probes[0].exec.env.PORT: 8080 is a number; quote it: "8080"'],
    ),
    (
        "exec-env-bad-name",
        probes({"name": "check", "exec": {"command": ["check"], "env": {"A=B": "1"}}}),
        ['spec.probes[0].exec.env["A=B"]: "A=B" is not an environment variable name'],
    ),
    (
        "icmp-bad-address",
        probes({"name": "gateway", "icmp": {"host": "192.168.77.300"}}),
        ["spec.probes[0].icmp.host: 192.168.77.300 is not an IP address"],
    ),
    (
        "icmp-bad-name",
        probes({"name": "gateway", "icmp": {"host": "gate_way!"}}),
        ['spec.probes[0].icmp.host: "gate_way!" is neither an IP address nor a DNS name'],
    ),
    (
        "icmp-host-missing",
        probes({"name": "gateway", "icmp": {}}),
        ["spec.probes[0].icmp.host: required field is missing; e.g. host: 192.168.77.1"],
    ),
    (
        "file-relative-path",
        probes({"name": "maintenance", "file": {"path": "run/maintenance"}}),
        ["spec.probes[0].file.path: run/maintenance is not an absolute path"],
    ),
    (
        "file-probe-rise-fall",
        probes({"name": "maintenance", "file": {"path": "/run/m"}, "rise": 2}),
        [
            "spec.probes[0].rise: 2: a file probe takes each number it reads at once "
            "(keepalived track_file has no rise or fall); remove rise, or use 1",
        ],
    ),
    (
        "group-notify-without-group",
        dump(manifest({"syncGroupNotify": {"master": ["/bin/n"]}})),
        [
            "spec.syncGroupNotify: notifies a sync group, but syncGroup is not set: set "
            "syncGroup (e.g. syncGroup: edge), or move these hooks to notify"
        ],
    ),
    (
        "interface-probe-bad-name",
        probes({"name": "uplink", "interface": {"name": "eth0:1"}}),
        ["spec.probes[0].interface.name: eth0:1 is not a Linux interface name"],
    ),
    (
        "track-interfaces-string",
        dump(manifest({"trackInterfaces": "eth1"})),
        ["spec.trackInterfaces: eth1 is a string; write a list: [eth1]"],
    ),
    (
        "track-interfaces-bad-name",
        dump(manifest({"trackInterfaces": ["eth1", "bond0/1"]})),
        ["spec.trackInterfaces[1]: bond0/1 is not a Linux interface name"],
    ),
    (
        "track-interfaces-twice",
        dump(manifest({"trackInterfaces": ["eth1", "eth2", "eth1"]})),
        ["spec.trackInterfaces[2]: eth1 is listed twice (also at [0])"],
    ),
    (
        "sync-group-not-dns",
        dump(manifest({"syncGroup": "Edge_1"})),
        ["spec.syncGroup: Edge_1 is not a valid name", "(e.g. edge)"],
    ),
    (
        "readiness-case",
        dump(manifest({"readiness": "master"})),
        [
            "spec.readiness: master is not a readiness mode; use Healthy or Master "
            "(did you mean Master?)"
        ],
    ),
    (
        "service-ref-starts-with-digit",
        dump(manifest({"serviceRef": {"name": "1ngress"}})),
        ["spec.serviceRef.name: 1ngress is not a valid Service name", "starting with a letter"],
    ),
    (
        "service-ref-not-a-mapping",
        dump(manifest({"serviceRef": "ingress"})),
        ["spec.serviceRef: ingress is a string; expected a mapping such as {name: ingress}"],
    ),
    (
        "service-ref-name-missing",
        dump(manifest({"serviceRef": {}})),
        ["spec.serviceRef.name: required field is missing; e.g. name: ingress"],
    ),
    (
        "node-selector-bad-expression",
        dump(
            manifest({"nodeSelector": {"matchExpressions": [{"key": "zone", "operator": "Exist"}]}})
        ),
        [
            "spec.nodeSelector.matchExpressions[0].operator: Exist is not a selector operator",
            "(did you mean Exists?)",
        ],
    ),
    (
        "notify-nothing",
        dump(manifest({"notify": {"timeout": "5s"}})),
        ["spec.notify: nothing to notify; set at least one of master, backup, fault, stop"],
    ),
    (
        "notify-relative-script",
        dump(manifest({"notify": {"master": ["notify.sh", "master"]}})),
        [
            "spec.notify.master[0]: notify.sh is not an absolute path",
            "e.g. /usr/local/bin/notify.sh",
        ],
    ),
    (
        "notify-empty-script",
        dump(manifest({"notify": {"backup": []}})),
        ["spec.notify.backup: is empty; give the program and its arguments"],
    ),
    (
        "notify-script-string",
        dump(manifest({"notify": {"fault": "/usr/local/bin/notify.sh fault"}})),
        ['spec.notify.fault: "/usr/local/bin/notify.sh fault" is a string; write a list'],
    ),
    (
        "notify-timeout-zero",
        dump(manifest({"notify": {"all": ["/usr/local/bin/log"], "timeout": "0s"}})),
        ["spec.notify.timeout: 0s is out of range; use 10ms..3600s"],
    ),
    (
        "webhook-url-without-scheme",
        dump(manifest({"notify": {"webhook": {"url": "hooks.example.test/vrrp"}}})),
        ["spec.notify.webhook.url: hooks.example.test/vrrp has no scheme", "http://hooks"],
    ),
    (
        "webhook-url-not-http",
        dump(manifest({"notify": {"webhook": {"url": "ftp://hooks.example.test/"}}})),
        ["spec.notify.webhook.url: ftp://hooks.example.test/ is not an http or https URL"],
    ),
    (
        "webhook-url-without-host",
        dump(manifest({"notify": {"webhook": {"url": "http:///vrrp"}}})),
        ["spec.notify.webhook.url: http:///vrrp has no host"],
    ),
    (
        "webhook-url-bad-port",
        dump(manifest({"notify": {"webhook": {"url": "http://hooks.example.test:99999/"}}})),
        ["spec.notify.webhook.url: http://hooks.example.test:99999/ has port 99999"],
    ),
    (
        "webhook-url-missing",
        dump(manifest({"notify": {"webhook": {"retries": 1}}})),
        ["spec.notify.webhook.url: required field is missing"],
    ),
    (
        "webhook-retries-too-many",
        dump(manifest({"notify": {"webhook": {"url": "http://h.test/", "retries": 11}}})),
        ["spec.notify.webhook.retries: 11 is out of range; use 0..10"],
    ),
    (
        "webhook-timeout-too-long",
        dump(manifest({"notify": {"webhook": {"url": "http://h.test/", "timeout": "10m"}}})),
        ["spec.notify.webhook.timeout: 10m is out of range; use 10ms..300s"],
    ),
    (
        "email-to-empty",
        dump(manifest({"notify": {"email": {**EMAIL, "to": []}}})),
        ["spec.notify.email.to: is empty; list at least one address"],
    ),
    (
        "email-to-string",
        dump(manifest({"notify": {"email": {**EMAIL, "to": "ops@example.test"}}})),
        ["spec.notify.email.to: ops@example.test is a string; write a list"],
    ),
    (
        "email-to-not-an-address",
        dump(manifest({"notify": {"email": {**EMAIL, "to": ["ops"]}}})),
        ["spec.notify.email.to[0]: ops is not an e-mail address"],
    ),
    (
        "email-from-missing",
        dump(manifest({"notify": {"email": {"to": ["ops@example.test"], "smtpServer": "mx"}}})),
        ["spec.notify.email.from: required field is missing; e.g. from: vrrp@example.test"],
    ),
    (
        "email-sender-is-from",
        dump(manifest({"notify": {"email": {**EMAIL, "sender": "vrrp@example.test"}}})),
        ["spec.notify.email.sender: unknown field; did you mean from?"],
    ),
    (
        "email-smtp-port-zero",
        dump(manifest({"notify": {"email": {**EMAIL, "smtpServer": "smtp.example.test:0"}}})),
        ["spec.notify.email.smtpServer: smtp.example.test:0 has port 0, not 1..65535"],
    ),
    (
        "email-smtp-ipv6-unbracketed-port",
        dump(manifest({"notify": {"email": {**EMAIL, "smtpServer": "[fd00::25:25"}}})),
        ['spec.notify.email.smtpServer: "[fd00::25:25" is not host[:port]', "[fd00::25]:25"],
    ),
    (
        "email-connect-timeout-negative",
        dump(manifest({"notify": {"email": {**EMAIL, "connectTimeout": "-1s"}}})),
        ["spec.notify.email.connectTimeout: -1s is negative"],
    ),
]


@pytest.mark.parametrize(
    ("text", "fragments"), [t[1:] for t in INVALID], ids=[t[0] for t in INVALID]
)
def test_invalid_document_names_field_value_and_fix(text: str, fragments: list[str]) -> None:
    problems = problems_of(text)
    assert any(all(f in line for f in fragments) for line in problems), "\n".join(problems)


def test_invalid_table_is_large_and_ids_unique() -> None:
    assert len(INVALID) >= 25
    assert len({t[0] for t in INVALID}) == len(INVALID)


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = dump(
        manifest(
            {
                "vrid": 0,
                "priority": 0,
                "advertInterva": "1s",
                "addresses": ["192.168.77.0/24", "224.0.0.1"],
                "garp": {"masterRepeat": 0},
            },
            kind="Vip",
        )
    )
    problems = problems_of(text)
    for fragment in [
        "kind: Vip",
        "spec.addresses[0]",
        "spec.addresses[1]",
        "spec.vrid: 0",
        "spec.priority: 0",
        "spec.advertInterva: unknown field",
        "spec.garp.masterRepeat: 0",
    ]:
        assert any(fragment in line for line in problems), (fragment, problems)
    assert all(line.startswith("web.yaml: document 1 (default/web): ") for line in problems)


def test_cross_field_problems_reported_with_field_problems() -> None:
    # version / advertInterval / authentication are checked against the fields above
    # them, so they show up together with an unrelated broken field.
    text = dump(
        manifest(
            {
                "version": 2,
                "advertInterval": "100ms",
                "addresses": ["192.168.77.100/24", "fd00:77::100/64"],
                "priority": 999,
            }
        )
    )
    problems = problems_of(text)
    assert any("spec.version: 2 (VRRPv2) carries IPv4 only" in p for p in problems)
    assert any("spec.priority: 999" in p for p in problems)


def test_several_documents_each_reported_with_their_number() -> None:
    text = dump(
        manifest({"vrid": 0}),
        manifest({"vrid": 300, "addresses": ["192.168.77.101/24"]}, metadata={"name": "b"}),
    )
    problems = problems_of(text)
    assert "web.yaml: document 1 (default/web): spec.vrid: 0 is out of range; use 1..255" in (
        problems
    )
    assert "web.yaml: document 2 (default/b): spec.vrid: 300 is out of range; use 1..255" in (
        problems
    )


def test_password_is_never_echoed() -> None:
    text = dump(manifest({"version": 2, "authentication": {"password": "s3cret-too-long"}}))
    assert not any("s3cret" in line for line in problems_of(text))


# --- valid documents -------------------------------------------------------------------


def test_defaults() -> None:
    vip = one()
    spec = vip.spec
    assert vip.key == "default/web"
    assert spec.version == 3
    assert spec.interface is None and spec.label is None
    assert spec.advert_interval_cs == 100
    assert spec.priority == 100
    assert spec.preempt.mode is PreemptMode.ALWAYS and spec.preempt.delay_cs is None
    assert spec.accept is True and spec.unicast is False
    assert spec.peers == () and spec.authentication is None
    assert spec.garp.to_config() == GarpConfig()
    assert spec.addresses == (ip_interface("192.168.77.100/24"),)


def test_prefix_defaults_to_host_route() -> None:
    spec = one({"addresses": ["192.168.77.100", "fd00:77::100"]}).spec
    assert [str(a) for a in spec.addresses] == ["192.168.77.100/32", "fd00:77::100/128"]


def test_null_means_not_set() -> None:
    spec = one({"interface": None, "peers": None, "priority": None}).spec
    assert spec.interface is None and spec.peers == () and spec.priority == 100


def test_multi_document_with_empty_documents() -> None:
    text = (
        "# a comment-only first document\n---\n"
        + dump(manifest())
        + "---\n---\n"
        + dump(manifest({"vrid": 52, "addresses": ["fd00:77::101/64"]}, metadata={"name": "v6"}))
    )
    vips = load_manifests(text)
    assert [v.key for v in vips] == ["default/web", "default/v6"]


def test_empty_file_is_no_virtualips() -> None:
    assert load_manifests("") == []
    assert load_manifests("# nothing yet\n") == []


def test_same_vrid_allowed_on_other_interface_or_other_family() -> None:
    text = dump(
        manifest({"interface": "eth0"}),
        manifest({"interface": "eth1", "addresses": ["10.0.0.1/24"]}, metadata={"name": "b"}),
        manifest({"addresses": ["fd00:77::100/64"]}, metadata={"name": "c"}),
        manifest(
            {"addresses": ["192.168.77.102/24"], "vrid": 99},
            metadata={"name": "web", "namespace": "other"},
        ),
    )
    assert len(load_manifests(text)) == 4


@pytest.mark.parametrize(
    ("text", "cs"),
    [("1s", 100), ("100ms", 10), ("1.5s", 150), ("250ms", 25), ("1.05s", 105), ("40.95s", 4095)],
)
def test_advert_interval_v3(text: str, cs: int) -> None:
    assert one({"advertInterval": text}).spec.advert_interval_cs == cs


def test_advert_interval_number_of_seconds() -> None:
    assert one({"advertInterval": 2}).spec.advert_interval_cs == 200
    assert one({"advertInterval": 0.05}).spec.advert_interval_cs == 5


def test_v2_with_password() -> None:
    vip = one({"version": 2, "advertInterval": "3s", "authentication": {"password": "lab-pass"}})
    (inst,) = instances_for_node([vip], "node-a")
    assert inst.version == 2
    assert inst.advert_interval_cs == 300
    assert inst.auth_password == b"lab-pass"  # not padded: the codec pads to 8 octets


def test_preempt_delay() -> None:
    vip = one({"preempt": {"mode": "Delay", "delay": "1m30s"}})
    (inst,) = instances_for_node([vip], "node-a")
    assert inst.preempt is PreemptMode.DELAY
    assert inst.preempt_delay_cs == 9000


def test_preempt_never_has_no_delay() -> None:
    (inst,) = instances_for_node([one({"preempt": {"mode": "Never"}})], "node-a")
    assert inst.preempt is PreemptMode.NEVER and inst.preempt_delay_cs == 0


def test_garp_settings() -> None:
    garp = {"masterDelay": "2s", "masterRepeat": 3, "interval": "10ms", "masterRefresh": "60s"}
    (inst,) = instances_for_node([one({"garp": garp})], "node-a")
    assert inst.garp == GarpConfig(
        master_delay_cs=200, master_repeat=3, interval_cs=1, master_refresh_cs=6000
    )


# --- resolution for a node ---------------------------------------------------------------


def test_dual_stack_two_instances() -> None:
    vip = one(
        {
            "addresses": ["192.168.77.100/24", "fd00:77::100/64", "192.168.77.101/24"],
            "interface": "eth0",
            "label": "eth0:vip",
            "peers": [
                *PEERS_V4,
                {"nodeName": "node-a", "address": "fd00:77::11"},
                {"nodeName": "node-b", "address": "fd00:77::12"},
            ],
        }
    )
    v4, v6 = instances_for_node([vip], "node-a")
    assert v4 == InstanceConfig(
        name="default/web/ipv4",
        virtualip="default/web",
        family=4,
        vrid=51,
        version=3,
        priority=100,
        advert_interval_cs=100,
        addresses=(ip_interface("192.168.77.100/24"), ip_interface("192.168.77.101/24")),
        interface="eth0",
        label="eth0:vip",
        preempt=PreemptMode.ALWAYS,
        preempt_delay_cs=0,
        accept=True,
        unicast=False,
        source_address=ip_address("192.168.77.11"),
        peers=(ip_address("192.168.77.12"),),
        auth_password=None,
        garp=GarpConfig(),
    )
    assert v6.name == "default/web/ipv6" and v6.family == 6
    assert v6.addresses == (ip_interface("fd00:77::100/64"),)
    assert v6.label is None
    assert v6.source_address == ip_address("fd00:77::11")
    assert v6.peers == (ip_address("fd00:77::12"),)


def test_node_priorities_by_name_first_match_wins() -> None:
    vip = one(
        {
            "priority": 90,
            "nodePriorities": [
                {"nodeName": "node-a", "priority": 150},
                {"nodeSelector": {"matchLabels": {"role": "edge"}}, "priority": 120},
                {"nodeName": "node-b", "priority": 200},  # after a selector node-b matches
            ],
        }
    )

    def prio(node: str, labels: dict[str, str] | None = None) -> int:
        return instances_for_node([vip], node, labels)[0].priority

    assert prio("node-a") == 150
    assert prio("node-a", {"role": "edge"}) == 150
    assert prio("node-b", {"role": "edge"}) == 120
    assert prio("node-b", {"role": "core"}) == 200
    assert prio("node-b") == 200  # labels unknown: selectors never match
    assert prio("node-c", {}) == 90


def test_node_priorities_by_match_expressions() -> None:
    vip = one(
        {
            "nodePriorities": [
                {
                    "nodeSelector": {
                        "matchLabels": {"node-role.kubernetes.io/edge": ""},
                        "matchExpressions": [
                            {"key": "zone", "operator": "In", "values": ["a", "b"]},
                            {"key": "drain", "operator": "DoesNotExist"},
                            {"key": "tier", "operator": "NotIn", "values": ["batch"]},
                        ],
                    },
                    "priority": 140,
                },
            ]
        }
    )
    edge = {"node-role.kubernetes.io/edge": "", "zone": "a"}
    assert vip.spec.priority_for("n", edge) == 140
    assert vip.spec.priority_for("n", edge | {"tier": "web"}) == 140
    assert vip.spec.priority_for("n", edge | {"tier": "batch"}) == 100
    assert vip.spec.priority_for("n", edge | {"drain": "true"}) == 100
    assert vip.spec.priority_for("n", edge | {"zone": "c"}) == 100
    assert vip.spec.priority_for("n", {"zone": "a"}) == 100


def test_unicast_peers_exclude_this_node() -> None:
    peers = [*PEERS_V4, {"nodeName": "node-c", "address": "192.168.77.13"}]
    vip = one({"unicast": True, "peers": peers})
    (inst,) = instances_for_node([vip], "node-b")
    assert inst.unicast is True
    assert inst.source_address == ip_address("192.168.77.12")
    assert inst.peers == (ip_address("192.168.77.11"), ip_address("192.168.77.13"))


def test_unicast_node_missing_from_peers() -> None:
    vip = one({"unicast": True, "peers": PEERS_V4})
    with pytest.raises(ConfigError) as caught:
        instances_for_node([vip], "node-x")
    assert caught.value.problems == [
        "default/web: spec.peers: no entry for node node-x (IPv4); "
        "add {nodeName: node-x, address: ...}"
    ]


def test_multicast_node_missing_from_peers_has_no_source() -> None:
    (inst,) = instances_for_node([one({"peers": PEERS_V4})], "node-x")
    assert inst.source_address is None
    assert inst.peers == (ip_address("192.168.77.11"), ip_address("192.168.77.12"))


def test_instance_configs_compare_equal_for_reload() -> None:
    first = instances_for_node([one()], "node-a")
    again = instances_for_node([one()], "node-a")
    changed = instances_for_node([one({"priority": 101})], "node-a")
    assert first == again and first != changed
    assert hash(first[0]) == hash(again[0])


# --- probes, tracking, notifications, operator fields ----------------------------------


def test_new_fields_default_to_nothing() -> None:
    spec = one().spec
    assert spec.node_selector is None and spec.service_ref is None
    assert spec.readiness is Readiness.HEALTHY
    assert spec.track_interfaces == () and spec.probes == ()
    assert spec.sync_group is None and spec.notify is None
    (inst,) = instances_for_node([one()], "node-a")
    assert (inst.probes, inst.track_interfaces, inst.sync_group, inst.notify) == (
        (),
        (),
        None,
        None,
    )
    assert inst.readiness == "Healthy"


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param(
            {"name": "check", "exec": {"command": ["/usr/local/bin/check", "--fast"]}},
            ProbeConfig(
                name="check",
                check=ExecCheck(command=("/usr/local/bin/check", "--fast")),
                interval_cs=100,
                timeout_cs=100,
                rise=1,
                fall=1,
                weight=0,
            ),
            id="exec-defaults",
        ),
        pytest.param(
            {
                "name": "check",
                "exec": {"command": ["check", ""], "env": {"Z": "1", "A": "x y", "E": ""}},
                "interval": "5s",
                "timeout": "4.5s",
                "rise": 3,
                "fall": 2,
                "weight": 10,
            },
            ProbeConfig(
                name="check",
                # a relative program is looked up in PATH; env sorted so order is no change
                check=ExecCheck(command=("check", ""), env=(("A", "x y"), ("E", ""), ("Z", "1"))),
                interval_cs=500,
                timeout_cs=450,
                rise=3,
                fall=2,
                weight=10,
            ),
            id="exec-env-and-timing",
        ),
        pytest.param(
            {"name": "haproxy", "tcp": {"port": 443}, "weight": -20},
            ProbeConfig("haproxy", TcpCheck(host="127.0.0.1", port=443), 100, 100, 1, 1, -20),
            id="tcp-default-host",
        ),
        pytest.param(
            {"name": "db", "tcp": {"host": "db.example.test", "port": 5432}, "interval": "100ms"},
            ProbeConfig("db", TcpCheck(host="db.example.test", port=5432), 10, 10, 1, 1, 0),
            id="tcp-hostname",
        ),
        pytest.param(
            {"name": "db", "tcp": {"host": "fd00:77::5", "port": 5432}, "weight": 254},
            ProbeConfig("db", TcpCheck(host="fd00:77::5", port=5432), 100, 100, 1, 1, 254),
            id="tcp-ipv6-max-weight",
        ),
        pytest.param(
            {"name": "web", "http": {}, "weight": -254, "rise": 255, "fall": 255},
            ProbeConfig(
                "web",
                HttpCheck(scheme="http", host="127.0.0.1", port=80),
                100,
                100,
                255,
                255,
                -254,
            ),
            id="http-defaults",
        ),
        pytest.param(
            {"name": "web", "http": {"scheme": "https"}},
            ProbeConfig(
                "web", HttpCheck(scheme="https", host="127.0.0.1", port=443), 100, 100, 1, 1, 0
            ),
            id="https-default-port",
        ),
        pytest.param(
            {
                "name": "web",
                "http": {
                    "scheme": "https",
                    "host": "10.0.0.5",
                    "port": 8443,
                    "path": "/healthz?full=1",
                    "hostHeader": "example.test:8443",
                    "expectStatus": [200, 204],
                    "bodyContains": "ok",
                    "bodySha256": "AB" * 32,
                    "insecureSkipVerify": True,
                },
                "interval": "2s",
                "timeout": "1s",
            },
            ProbeConfig(
                "web",
                HttpCheck(
                    scheme="https",
                    host="10.0.0.5",
                    port=8443,
                    path="/healthz?full=1",
                    host_header="example.test:8443",
                    expect_status=(200, 204),
                    body_contains="ok",
                    body_sha256="ab" * 32,  # lowercase, as hexdigest() gives it
                    verify_tls=False,
                ),
                200,
                100,
                1,
                1,
                0,
            ),
            id="https-everything",
        ),
        pytest.param(
            {"name": "web", "http": {"port": 8080, "expectStatus": [503]}},
            ProbeConfig(
                "web",
                HttpCheck(scheme="http", host="127.0.0.1", port=8080, expect_status=(503,)),
                100,
                100,
                1,
                1,
                0,
            ),
            id="http-port-and-status",
        ),
        pytest.param(
            {"name": "gateway", "icmp": {"host": "192.168.77.1"}, "interval": "500ms"},
            ProbeConfig("gateway", IcmpCheck(host="192.168.77.1"), 50, 50, 1, 1, 0),
            id="icmp-ipv4",
        ),
        pytest.param(
            {"name": "gateway", "icmp": {"host": "gw.example.test."}},
            ProbeConfig("gateway", IcmpCheck(host="gw.example.test."), 100, 100, 1, 1, 0),
            id="icmp-fqdn",
        ),
        pytest.param(
            {"name": "maintenance", "file": {"path": "/run/vrrp/maintenance"}},
            ProbeConfig("maintenance", FileCheck(path="/run/vrrp/maintenance"), 100, 100, 1, 1, 0),
            id="file",
        ),
        pytest.param(
            {"name": "uplink", "interface": {"name": "bond0.100"}, "weight": -50, "fall": 3},
            ProbeConfig("uplink", InterfaceCheck(name="bond0.100"), 100, 100, 1, 3, -50),
            id="interface",
        ),
    ],
)
def test_probe_resolves(probe: dict[str, Any], expected: ProbeConfig) -> None:
    vip = one({"probes": [probe]})
    (inst,) = instances_for_node([vip], "node-a")
    assert inst.probes == (expected,)
    assert vip.spec.probes[0].check is getattr(vip.spec.probes[0], _kind(probe))
    # and the dump loads back to the same object
    data = vip.model_dump(mode="json", exclude_none=True)
    assert load_manifests(yaml.safe_dump(data)) == [vip]


def _kind(probe: dict[str, Any]) -> str:
    (kind,) = {"exec", "tcp", "http", "icmp", "file", "interface"} & probe.keys()
    return kind


def test_probes_keep_their_order_and_reach_every_family() -> None:
    vip = one(
        {
            "addresses": ["192.168.77.100/24", "fd00:77::100/64"],
            "probes": [
                {"name": "b", "tcp": {"port": 1}},
                {"name": "a", "file": {"path": "/x"}},
                {"name": "c", "icmp": {"host": "::1"}},
            ],
        }
    )
    v4, v6 = instances_for_node([vip], "node-a")
    assert [p.name for p in v4.probes] == ["b", "a", "c"]
    assert v4.probes == v6.probes


def test_weight_zero_takes_rise_and_fall() -> None:
    (inst,) = instances_for_node(
        [one({"probes": [{**TCP_PROBE, "weight": 0, "rise": 3, "fall": 5}]})], "node-a"
    )
    assert (inst.probes[0].weight, inst.probes[0].rise, inst.probes[0].fall) == (0, 3, 5)


def test_address_owner_may_track_interfaces_but_not_probe() -> None:
    # trackInterfaces only ever means FAULT (a dead link), never a demotion
    (inst,) = instances_for_node([one({"priority": 255, "trackInterfaces": ["eth1"]})], "node-a")
    assert inst.priority == 255 and inst.track_interfaces == ("eth1",)
    assert one({"priority": 254, "probes": [TCP_PROBE]}).spec.priority == 254
    # the owner rule holds in cluster mode too (the operator validates with it)
    with pytest.raises(ConfigError) as caught:
        parse_virtualip(manifest({"priority": 255, "probes": [TCP_PROBE]}))
    assert caught.value.problems[0].startswith("spec.probes: not allowed because spec.priority")


def test_every_probe_problem_is_reported_at_once() -> None:
    text = probes(
        {"name": "haproxy", "tcp": {"port": 0}, "http": {"path": "x"}, "rise": 0},
        {"name": "haproxy", "icmp": {"host": "192.168.77.300"}, "timeout": "2s"},
        {"name": "Bad"},
        priority=255,
        trackInterfaces=["eth1", "eth1"],
        notify={"master": ["notify.sh"], "webhook": {"url": "ftp://x"}},
    )
    problems = problems_of(text)
    for fragment in [
        "spec.probes[0]: has tcp and http",
        "spec.probes[0].tcp.port: 0 is out of range",
        "spec.probes[0].http.path: x does not start with /",
        "spec.probes[0].rise: 0 is out of range",
        "spec.probes[1].name: haproxy is already the name of [0]",
        "spec.probes[1].icmp.host: 192.168.77.300 is not an IP address",
        "spec.probes[1].timeout: 2s is longer than the interval",
        "spec.probes[2].name: Bad is not a valid name",
        "spec.probes[2]: set one check",
        "spec.probes: not allowed because spec.priority is 255",
        "spec.trackInterfaces[1]: eth1 is listed twice",
        "spec.notify.master[0]: notify.sh is not an absolute path",
        "spec.notify.webhook.url: ftp://x is not an http or https URL",
    ]:
        assert any(fragment in line for line in problems), (fragment, problems)
    assert len(problems) == 13, problems


def test_track_interfaces_sync_group_readiness_service_ref() -> None:
    vip = one(
        {
            "trackInterfaces": ["eth1", "bond0.100"],
            "syncGroup": "edge",
            "readiness": "Master",
            "serviceRef": {"name": "ingress"},
        },
        metadata={"name": "web", "namespace": "lb"},
    )
    assert vip.spec.service_ref is not None and vip.spec.service_ref.name == "ingress"
    (inst,) = instances_for_node([vip], "node-a")
    assert inst.track_interfaces == ("eth1", "bond0.100")
    assert inst.sync_group == "lb/edge"  # groups are per namespace, as the objects are
    assert inst.readiness == "Master" and type(inst.readiness) is str


def test_node_selector_picks_the_nodes_that_take_part() -> None:
    edge_only = one(
        {
            "nodeSelector": {
                "matchLabels": {"node-role.kubernetes.io/edge": ""},
                "matchExpressions": [{"key": "drain", "operator": "DoesNotExist"}],
            }
        }
    )
    everywhere = one({"addresses": ["192.168.77.101/24"], "vrid": 52}, metadata={"name": "all"})
    vips = [edge_only, everywhere]

    def names(labels: dict[str, str] | None) -> list[str]:
        return [i.virtualip for i in instances_for_node(vips, "node-a", labels)]

    assert names({"node-role.kubernetes.io/edge": ""}) == ["default/web", "default/all"]
    assert names({"node-role.kubernetes.io/edge": "", "drain": "1"}) == ["default/all"]
    assert names({}) == ["default/all"]
    assert names(None) == ["default/web", "default/all"]  # labels unknown: standalone
    assert edge_only.spec.takes_part({"node-role.kubernetes.io/edge": ""})


def test_node_selector_skips_before_other_checks() -> None:
    # a VirtualIP this node does not take part in cannot fail to run here
    vip = one({"unicast": True, "peers": PEERS_V4, "nodeSelector": {"matchLabels": {"a": "b"}}})
    assert instances_for_node([vip], "node-x", {}) == []
    with pytest.raises(ConfigError, match="no entry for node node-x"):
        instances_for_node([vip], "node-x", {"a": "b"})


WEBHOOK_URL = "http://hooks.example.test/vrrp"


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        pytest.param(
            {"master": ["/usr/local/bin/notify.sh", "master"]},
            NotifyConfig(master=("/usr/local/bin/notify.sh", "master")),
            id="master-script",
        ),
        pytest.param(
            {
                "master": ["/bin/n", "master"],
                "backup": ["/bin/n", "backup"],
                "fault": ["/bin/n", "fault"],
                "stop": ["/bin/n", "stop", ""],
                "timeout": "30s",
            },
            NotifyConfig(
                master=("/bin/n", "master"),
                backup=("/bin/n", "backup"),
                fault=("/bin/n", "fault"),
                stop=("/bin/n", "stop", ""),
                timeout_cs=3000,
            ),
            id="every-state-script",
        ),
        pytest.param(
            {"all": ["/usr/local/bin/notify-all.sh"]},
            NotifyConfig(all=("/usr/local/bin/notify-all.sh",)),
            id="catch-all-script",
        ),
        pytest.param(
            {"webhook": {"url": WEBHOOK_URL}},
            NotifyConfig(webhook=WebhookConfig(url=WEBHOOK_URL)),
            id="webhook-defaults",
        ),
        pytest.param(
            {
                "webhook": {
                    "url": "https://[fd00:77::9]:8443/hook?x=1",
                    "timeout": "1.5s",
                    "retries": 0,
                }
            },
            NotifyConfig(
                webhook=WebhookConfig(
                    url="https://[fd00:77::9]:8443/hook?x=1", timeout_cs=150, retries=0
                )
            ),
            id="webhook-everything",
        ),
        pytest.param(
            {"email": EMAIL},
            NotifyConfig(
                email=EmailConfig(
                    to=("ops@example.test",), sender="vrrp@example.test", smtp_host="127.0.0.1"
                )
            ),
            id="email-defaults",
        ),
        pytest.param(
            {
                "email": {
                    "to": ["ops@example.test", "oncall@example.test"],
                    "from": "vrrp@node-a.example.test",
                    "smtpServer": "smtp.example.test:2525",
                    "connectTimeout": "5s",
                }
            },
            NotifyConfig(
                email=EmailConfig(
                    to=("ops@example.test", "oncall@example.test"),
                    sender="vrrp@node-a.example.test",
                    smtp_host="smtp.example.test",
                    smtp_port=2525,
                    connect_timeout_cs=500,
                )
            ),
            id="email-everything",
        ),
        pytest.param(
            {"email": {**EMAIL, "smtpServer": "[fd00:77::25]:587"}},
            NotifyConfig(
                email=EmailConfig(
                    to=("ops@example.test",),
                    sender="vrrp@example.test",
                    smtp_host="fd00:77::25",
                    smtp_port=587,
                )
            ),
            id="email-ipv6-server-with-port",
        ),
        pytest.param(
            {"email": {**EMAIL, "smtpServer": "fd00:77::25"}},
            NotifyConfig(
                email=EmailConfig(
                    to=("ops@example.test",), sender="vrrp@example.test", smtp_host="fd00:77::25"
                )
            ),
            id="email-ipv6-server-default-port",
        ),
        pytest.param(
            {
                "all": ["/usr/local/bin/log"],
                "webhook": {"url": WEBHOOK_URL},
                "email": EMAIL,
            },
            NotifyConfig(
                all=("/usr/local/bin/log",),
                webhook=WebhookConfig(url=WEBHOOK_URL),
                email=EmailConfig(
                    to=("ops@example.test",), sender="vrrp@example.test", smtp_host="127.0.0.1"
                ),
            ),
            id="all-together",
        ),
    ],
)
def test_notify_resolves(notify: dict[str, Any], expected: NotifyConfig) -> None:
    vip = one({"notify": notify})
    (inst,) = instances_for_node([vip], "node-a")
    assert inst.notify == expected
    data = vip.model_dump(mode="json", exclude_none=True)
    assert load_manifests(yaml.safe_dump(data)) == [vip]


def test_notify_dump_uses_manifest_names() -> None:
    vip = one({"notify": {"timeout": "1500ms", "email": EMAIL}})
    notify = vip.model_dump(mode="json", exclude_none=True)["spec"]["notify"]
    assert notify == {
        "timeout": "1500ms",
        "email": {**EMAIL, "connectTimeout": "30s"},
    }


def test_instance_config_with_tracking_is_hashable_and_compares() -> None:
    spec = {
        "probes": [{**TCP_PROBE, "weight": -20}],
        "trackInterfaces": ["eth1"],
        "syncGroup": "edge",
        "notify": {"all": ["/bin/n"], "email": EMAIL},
    }
    (first,) = instances_for_node([one(spec)], "node-a")
    (again,) = instances_for_node([one(spec)], "node-a")
    (changed,) = instances_for_node(
        [one({**spec, "probes": [{**TCP_PROBE, "weight": -30}]})], "node-a"
    )
    assert first == again and hash(first) == hash(again)
    assert first != changed
    assert len({first, again, changed}) == 2


def test_dump_round_trip_with_every_new_field() -> None:
    vip = one(
        {
            "addresses": ["192.168.77.100/24", "fd00:77::100/64"],
            "nodeSelector": {"matchLabels": {"role": "edge"}},
            "serviceRef": {"name": "ingress"},
            "readiness": "Master",
            "trackInterfaces": ["eth1"],
            "probes": [
                {"name": "x", "exec": {"command": ["/bin/true"], "env": {"A": "1"}}},
                {"name": "t", "tcp": {"port": 443}, "interval": "2s", "timeout": "1050ms"},
                {"name": "h", "http": {"scheme": "https", "bodySha256": "F" * 64}},
                {"name": "i", "icmp": {"host": "192.168.77.1"}},
                {"name": "f", "file": {"path": "/run/m"}},
                {"name": "n", "interface": {"name": "eth1"}, "weight": 10},
            ],
            "syncGroup": "edge",
            "notify": {
                "master": ["/bin/n", "master"],
                "all": ["/bin/a"],
                "webhook": {"url": WEBHOOK_URL, "retries": 5},
                "email": {**EMAIL, "smtpServer": "[fd00::25]:25"},
            },
        }
    )
    data = vip.model_dump(mode="json", exclude_none=True)
    spec = data["spec"]
    assert spec["readiness"] == "Master"
    assert spec["probes"][1]["timeout"] == "1050ms"
    assert "timeout" not in spec["probes"][0]  # unset: the interval
    assert spec["probes"][2]["http"]["bodySha256"] == "f" * 64
    assert spec["notify"]["email"]["from"] == "vrrp@example.test"
    assert load_manifests(yaml.safe_dump(data)) == [vip]
    assert instances_for_node(load_manifests(yaml.safe_dump(data)), "n", {"role": "edge"}) == (
        instances_for_node([vip], "n", {"role": "edge"})
    )


# --- cluster mode (what the operator validates) -----------------------------------------


def test_cluster_mode_allows_unset_vrid_and_secret_ref() -> None:
    doc = manifest(
        {"vrid": ..., "version": 2, "authentication": {"secretRef": {"name": "vip", "key": "pw"}}},
        metadata={"name": "web", "uid": "1234", "resourceVersion": "7"},
        status={"master": "node-a"},
    )
    (vip,) = load_manifests(dump(doc), standalone=False)
    assert vip.spec.vrid is None
    assert VirtualIP.model_validate(doc) == vip  # no context: cluster rules
    with pytest.raises(ConfigError) as caught:
        instances_for_node([vip], "node-a")
    assert "spec.vrid: not set" in caught.value.problems[0]
    with_vrid = vip.model_copy(update={"spec": vip.spec.model_copy(update={"vrid": 9})})
    with pytest.raises(ConfigError, match="secretRef: not resolved"):
        instances_for_node([with_vrid], "node-a")


def test_parse_virtualip_for_api_objects() -> None:
    doc = manifest({"vrid": ..., "priority": 0}, metadata={"name": "web", "uid": "1"})
    with pytest.raises(ConfigError) as caught:
        parse_virtualip(doc)
    assert caught.value.problems == [
        "spec.priority: 0 is out of range; use 1..255 (255 = address owner)"
    ]
    assert parse_virtualip(manifest()).spec.vrid == 51


def test_cluster_mode_unicast_peers_filled_by_operator() -> None:
    (vip,) = load_manifests(dump(manifest({"unicast": True})), standalone=False)
    assert vip.spec.unicast and vip.spec.peers == ()


def test_standalone_rejects_server_metadata() -> None:
    doc = manifest(metadata={"name": "web", "uid": "1234"})
    assert any("metadata.uid: unknown field" in p for p in problems_of(dump(doc)))


# --- serialisation round trip ------------------------------------------------------------


def test_dump_round_trip() -> None:
    vip = one(
        {
            "addresses": ["192.168.77.100/24", "fd00:77::100/64"],
            "advertInterval": "1.05s",
            "nodePriorities": [
                {"nodeName": "node-a", "priority": 150},
                {
                    "nodeSelector": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
                    "priority": 120,
                },
            ],
            "preempt": {"mode": "Delay", "delay": "45s"},
            "peers": PEERS_V4,
            "garp": {"interval": "20ms"},
        }
    )
    data = vip.model_dump(mode="json", exclude_none=True)
    assert data["spec"]["advertInterval"] == "1050ms"
    assert data["spec"]["preempt"] == {"mode": "Delay", "delay": "45s"}
    assert load_manifests(yaml.safe_dump(data)) == [vip]


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cs"),
    [
        ("1s", 100),
        ("100ms", 10),
        ("1.5s", 150),
        ("250ms", 25),
        ("1.05s", 105),
        ("0.01s", 1),
        ("1m", 6000),
        ("1m30s", 9000),
        ("1h", 360000),
        ("0", 0),
        ("0s", 0),
        (" 2s ", 200),
        (3, 300),
        (1.05, 105),
        (0.1, 10),
    ],
)
def test_parse_duration_cs(value: object, cs: int) -> None:
    assert parse_duration_cs(value) == cs


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("15ms", "15ms is not a whole number of centiseconds"),
        ("1.005s", "not a whole number of centiseconds"),
        ("10", 'has no unit; write "10s"'),
        ("1 s", "is not a duration"),
        ("1sec", "is not a duration"),
        ("-1s", "is negative"),
        (-1, "is negative"),
        (True, "true is not a duration"),
        (None, "null is not a duration"),
        ([1], "is not a duration"),
        (float("nan"), "is not a duration"),
        ("", "is not a duration"),
    ],
)
def test_parse_duration_cs_errors(value: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration_cs(value)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_parse_duration_round_trip(cs: int) -> None:
    assert parse_duration_cs(format_duration_cs(cs)) == cs


@given(st.integers(min_value=0, max_value=10**6))
def test_float_seconds_are_exact(cs: int) -> None:
    # cs / 100 as a float is never exact in binary; the parser must still give cs back.
    assert parse_duration_cs(cs / 100) == cs
    assert parse_duration_cs(f"{cs // 100}.{cs % 100:02d}s") == cs


# --- label selectors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchLabels": {"a": "1"}}, {}, False),
        ({"matchLabels": {"a": ""}}, {"a": ""}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        (
            {
                "matchLabels": {"role": "edge"},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}],
            },
            {"role": "edge", "zone": "y"},
            False,
        ),
    ],
)
def test_match_labels(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert match_labels(selector, labels) is expected
    assert match_labels(LabelSelector.model_validate(selector), labels) is expected


def test_match_labels_rejects_invalid_selector() -> None:
    with pytest.raises(ConfigError) as caught:
        match_labels({"matchExpressions": [{"key": "a", "operator": "Maybe"}]}, {})
    assert caught.value.problems == [
        "matchExpressions[0].operator: Maybe is not a selector operator; "
        "use In, NotIn, Exists or DoesNotExist"
    ]


# --- files and examples ------------------------------------------------------------------


def test_load_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert caught.value.problems == [f"{path}: no such file"]


def test_load_file_names_the_file_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(dump(manifest({"vrid": 0})))
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert caught.value.problems == [
        f"{path}: document 1 (default/web): spec.vrid: 0 is out of range; use 1..255"
    ]


def test_examples_present() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "two-node-v3.yaml",
        "unicast-v3-fast.yaml",
        "keepalived-v2-auth.yaml",
        "dual-stack.yaml",
        "tracked-haproxy.yaml",
        "sync-group.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_loads_and_resolves_for_each_peer(path: Path) -> None:
    vips = load_file(path)
    assert vips
    nodes = sorted({p.node_name for vip in vips for p in vip.spec.peers})
    assert nodes, "examples list their nodes in spec.peers"
    for node in nodes:
        instances = instances_for_node(vips, node, {"role": "edge", "zone": "lab-1"})
        assert len(instances) == sum(len(v.spec.families) for v in vips)
        for inst in instances:
            assert inst.source_address is not None, (node, inst.name)
            assert inst.source_address not in inst.peers
            assert all(str(a.ip).startswith(("192.168.77.", "fd00:77::")) for a in inst.addresses)
    # and what the model dumps loads again to the same objects
    data = [v.model_dump(mode="json", exclude_none=True) for v in vips]
    assert load_manifests(yaml.safe_dump_all(data)) == vips


def test_two_node_example_priorities() -> None:
    vips = load_file(ROOT / "examples" / "two-node-v3.yaml")
    a, b = (instances_for_node(vips, n)[0] for n in ("node-a", "node-b"))
    assert (a.vrid, a.priority, b.priority, a.advert_interval_cs) == (51, 150, 100, 100)
    assert a.addresses == (ip_interface("192.168.77.100/24"),)
    assert a.unicast is False and a.version == 3


def test_unicast_example_is_fast() -> None:
    (inst,) = instances_for_node(load_file(ROOT / "examples" / "unicast-v3-fast.yaml"), "node-c")
    assert inst.unicast and inst.advert_interval_cs == 10 and len(inst.peers) == 2


def test_keepalived_example_is_v2_pass() -> None:
    (inst,) = instances_for_node(load_file(ROOT / "examples" / "keepalived-v2-auth.yaml"), "node-c")
    assert (inst.version, inst.auth_password, inst.label) == (2, b"lab-pass", "eth0:vip")


def test_dual_stack_example_has_both_families() -> None:
    vips = load_file(ROOT / "examples" / "dual-stack.yaml")
    assert [i.family for i in instances_for_node(vips, "node-a")] == [4, 6]


def test_tracked_haproxy_example() -> None:
    vips = load_file(ROOT / "examples" / "tracked-haproxy.yaml")
    a, b = (instances_for_node(vips, n)[0] for n in ("node-a", "node-b"))
    assert (a.priority, b.priority) == (150, 100)
    assert a.probes == b.probes
    tls, backends = a.probes
    assert tls == ProbeConfig(
        name="haproxy-tls",
        check=TcpCheck(host="127.0.0.1", port=443),
        interval_cs=200,
        timeout_cs=100,
        rise=2,
        fall=2,
        weight=-60,
    )
    assert backends.check == HttpCheck(scheme="http", host="127.0.0.1", port=8404, path="/healthz")
    assert (backends.timeout_cs, backends.fall, backends.weight) == (200, 3, -60)
    # what the header comment promises: one failing probe moves the VIP to node-b
    assert a.priority + tls.weight < b.priority < a.priority
    assert a.notify is not None and a.notify.webhook == WebhookConfig(
        url="http://hooks.example.test/vrrp", timeout_cs=500, retries=3
    )
    assert a.notify.master == ("/usr/local/bin/vip-notify", "master")
    assert a.notify.all == ("/usr/local/bin/vip-log",) and a.notify.stop == ()
    assert a.notify.timeout_cs == 1000 and a.notify.email is None


def test_sync_group_example() -> None:
    vips = load_file(ROOT / "examples" / "sync-group.yaml")
    for node in ("node-a", "node-b"):
        outside, inside = instances_for_node(vips, node)
        assert (outside.virtualip, inside.virtualip) == (
            "default/gateway-outside",
            "default/gateway-inside",
        )
        assert outside.sync_group == inside.sync_group == "default/edge"
        assert outside.track_interfaces == inside.track_interfaces == ("eth0",)
        assert outside.vrid != inside.vrid and outside.priority == inside.priority
        assert outside.notify == NotifyConfig(all=("/usr/local/bin/gateway-notify",))
        assert inside.notify is None


# --- purity ------------------------------------------------------------------------------


def test_model_imports_no_io() -> None:
    paths = [ROOT / "vrrpd" / "config.py", ROOT / "vrrpd" / "resolve.py"]
    source = "\n".join(
        p.read_text() for p in [*sorted((ROOT / "vrrpd" / "spec").glob("*.py")), *paths]
    )
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    forbidden = {"socket", "asyncio", "pyroute2", "time", "scapy", "select", "subprocess"}
    assert imported.isdisjoint(forbidden), imported & forbidden


def test_address_interfaces_resolve_per_family_and_are_tracked() -> None:
    spec = {
        "addresses": ["192.168.77.100/24", "10.99.0.1/24", "fd00:99::1/64"],
        "interface": "eth0",
        "label": "eth0:vip",
        "trackInterfaces": ["eth2"],
        "addressInterfaces": [
            {"address": "10.99.0.1", "interface": "eth1"},
            {"address": "fd00:99::1", "interface": "eth1"},
        ],
    }
    v4, v6 = instances_for_node([one(spec)], "node-a")
    assert v4.address_interfaces == ((ip_address("10.99.0.1"), "eth1"),)
    assert v4.track_interfaces == ("eth2", "eth1")
    assert v6.address_interfaces == ((ip_address("fd00:99::1"), "eth1"),)
    other, own = ip_interface("10.99.0.1/24"), ip_interface("192.168.77.100/24")
    assert (v4.interface_of(other, "eth0"), v4.interface_of(own, "eth0")) == ("eth1", "eth0")
    assert (v4.label_for(other, "eth0"), v4.label_for(own, "eth0")) == (None, "eth0:vip")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [{"address": "10.1.2.3", "interface": "eth1"}],
            "spec.addressInterfaces[0].address: 10.1.2.3 is not in spec.addresses",
        ),
        (
            [{"address": "192.168.77.100/24", "interface": "eth1"}],
            "without its prefix length: 192.168.77.100",
        ),
        (
            [{"address": "192.168.77.100", "interface": "eth1"}] * 2,
            "spec.addressInterfaces[1].address: 192.168.77.100 already has an interface at [0]",
        ),
        (
            [{"address": "192.168.77.100", "interface": "eth/1"}],
            "spec.addressInterfaces[0].interface: eth/1 is not a Linux interface name",
        ),
    ],
)
def test_address_interfaces_refused(entries: list[dict[str, str]], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        one({"addressInterfaces": entries})
    assert message in str(exc.value)


def test_use_vmac_resolves_and_is_ipv4_without_label() -> None:
    (inst,) = instances_for_node([one({"useVmac": True})], "node-a")
    assert inst.use_vmac is True
    with pytest.raises(ConfigError) as exc:
        one({"useVmac": True, "addresses": ["192.168.77.100/24", "fd00:77::100/64"]})
    assert "spec.useVmac: true is for IPv4 addresses only" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        one({"useVmac": True, "interface": "eth0", "label": "eth0:vip"})
    assert "spec.useVmac: true puts the addresses on the virtual MAC interface" in str(exc.value)
