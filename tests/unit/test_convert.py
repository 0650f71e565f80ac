"""Tests of vrrpd.convert: keepalived.conf -> VirtualIP, field by field, warning by warning."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from vrrpd.convert import (
    INSTANCE_ANNOTATION,
    INSTANCE_UNSUPPORTED,
    SHELL_CHANGED,
    TOP_UNSUPPORTED,
    Conversion,
    ParseError,
    Warning,
    cli,
    convert_file,
    convert_text,
    dns_label,
    parse,
    shell_use,
)
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests, parse_virtualip
from vrrpd.vrrp.fsm import PreemptMode

# Production-shaped keepalived configurations carried by the repository (tests/data/README.md);
# KEEPALIVED_TESTDATA points at another folder of them.
TESTDATA = Path(
    os.environ.get(
        "KEEPALIVED_TESTDATA", Path(__file__).resolve().parents[1] / "data" / "keepalived-conf"
    )
)
FILES = sorted(TESTDATA.glob("*.conf"))


def get(obj: Any, path: str) -> Any:
    """obj at a path: "spec.probes[0].exec.command", 'metadata.annotations["a.b/c"]'."""
    for key, index, name in re.findall(r'\["([^"]+)"\]|\[(\d+)\]|([^.\[\]]+)', path):
        obj = obj[int(index)] if index else obj[key or name]
    return obj


def convert(text: str, **kwargs: Any) -> Conversion:
    return convert_text(textwrap.dedent(text), source="<test>", **kwargs)


def spec_of(text: str, **kwargs: Any) -> dict[str, Any]:
    conversion = convert(text, **kwargs)
    assert len(conversion.documents) == 1
    spec: dict[str, Any] = conversion.documents[0]["spec"]
    return spec


def warned(conversion: Conversion) -> set[tuple[int, str]]:
    return {(w.line, w.directive) for w in conversion.warnings}


def find(
    conversion: Conversion, directive: str, line: int | None = None, *, says: str = ""
) -> Warning:
    """The first warning about `directive` (at `line`, whose message contains `says`)."""
    found = [
        w
        for w in conversion.warnings
        if w.directive == directive and line in (None, w.line) and says in w.message
    ]
    assert found, f"no warning for {directive} (line {line}, {says!r}): {conversion.warnings}"
    return found[0]


# --- the keepalived configurations of tests/data, field by field ----------------------------

# (file, node) -> {document index: {path: expected}}; a path absent from the table must be
# absent from the document (checked by EXPECTED_KEYS below).
EXPECTED: dict[tuple[str, str | None], dict[int, dict[str, Any]]] = {
    ("master-backup-tracked.conf", "node-a"): {
        0: {
            "metadata.name": "vi-web",
            "metadata.namespace": "default",
            f'metadata.annotations["{INSTANCE_ANNOTATION}"]': "VI_WEB",
            "spec.addresses": ["192.168.77.100/24"],
            "spec.vrid": 51,
            "spec.version": 2,
            "spec.interface": "eth0",
            "spec.label": "eth0:0",
            "spec.advertInterval": "1s",
            "spec.nodePriorities": [{"nodeName": "node-a", "priority": 150}],
            "spec.authentication": {"password": "s3cret42"},
            "spec.garp": {"masterDelay": "3s"},
            "spec.trackInterfaces": ["eth0"],
            "spec.probes": [
                {
                    "name": "chk-proxy",
                    "exec": {"command": ["/usr/local/bin/check-proxy.sh"]},
                    "interval": "2s",
                    "timeout": "1s",
                    "rise": 1,
                    "fall": 2,
                    "weight": -10,
                }
            ],
            "spec.notify": {
                "email": {
                    "to": ["ops@example.test"],
                    "from": "vrrp@example.test",
                    "smtpServer": "127.0.0.1:25",
                    "connectTimeout": "30s",
                }
            },
        }
    },
    ("backup-backup-nopreempt.conf", None): {
        0: {
            "metadata.name": "vi-api",
            f'metadata.annotations["{INSTANCE_ANNOTATION}"]': "VI_API",
            "spec.addresses": ["10.20.0.10/24"],
            "spec.vrid": 83,
            "spec.version": 2,
            "spec.interface": "eth1",
            "spec.advertInterval": "2s",
            "spec.priority": 99,
            "spec.preempt": {"mode": "Never"},
            "spec.authentication": {"password": "apipass"},
            # `script "</dev/tcp/127.0.0.1/443"` is a TCP connect: a tcp probe.
            "spec.probes": [
                {
                    "name": "chk-port",
                    "tcp": {"host": "127.0.0.1", "port": 443},
                    "interval": "3s",
                    "weight": -2,
                }
            ],
        }
    },
    ("dual-master-notify.conf", "node-b"): {
        0: {
            "metadata.name": "vi-1",
            "spec.addresses": ["172.30.25.10/16"],
            "spec.vrid": 125,
            "spec.version": 2,
            "spec.interface": "eth0",
            "spec.label": "eth0:0",
            "spec.nodePriorities": [{"nodeName": "node-b", "priority": 100}],
            "spec.authentication": {"password": "1a2b3c4d"},
            "spec.garp": {"masterDelay": "1s"},
            "spec.trackInterfaces": ["eth0"],
            "spec.probes": [
                {
                    "name": "chk-haproxy",
                    "exec": {"command": ["killall", "-0", "haproxy"]},
                    "interval": "1s",
                    "weight": 2,
                },
                {
                    "name": "chk-maint",
                    "exec": {"command": ["/bin/sh", "-c", "[ ! -f /etc/keepalived/down ]"]},
                    "interval": "1s",
                    "weight": 2,
                },
            ],
            "spec.notify": {
                "master": ["/etc/keepalived/notify.sh", "master", "172.30.25.10"],
                "backup": ["/etc/keepalived/notify.sh", "backup", "172.30.25.10"],
                "fault": ["/etc/keepalived/notify.sh", "fault", "172.30.25.10"],
            },
        },
        1: {
            "metadata.name": "vi-2",
            "spec.addresses": ["172.30.25.11/16"],
            "spec.vrid": 126,
            "spec.version": 2,
            "spec.interface": "eth0",
            "spec.label": "eth0:1",
            "spec.nodePriorities": [{"nodeName": "node-b", "priority": 99}],
            "spec.authentication": {"password": "5e6f7a8b"},
            "spec.garp": {"masterDelay": "1s"},
            "spec.trackInterfaces": ["eth0"],
            "spec.probes[0].name": "chk-haproxy",
            "spec.probes[1].name": "chk-maint",
            "spec.notify.master": ["/etc/keepalived/notify.sh", "master", "172.30.25.11"],
            "spec.notify.backup": ["/etc/keepalived/notify.sh", "backup", "172.30.25.11"],
            "spec.notify.fault": ["/etc/keepalived/notify.sh", "fault", "172.30.25.11"],
        },
    },
    ("sync-group-routes.conf", "edge-a"): {
        0: {
            "metadata.name": "inside",
            f'metadata.annotations["{INSTANCE_ANNOTATION}"]': "INSIDE",
            "spec.addresses": ["10.210.214.253/24"],
            "spec.vrid": 10,
            "spec.version": 2,
            "spec.interface": "eth0",
            "spec.advertInterval": "1s",
            "spec.nodePriorities": [{"nodeName": "edge-a", "priority": 120}],
            "spec.preempt": {"mode": "Delay", "delay": "30s"},
            "spec.syncGroup": "vg-edge",
            "spec.routes": [{"to": "172.16.0.0/12", "via": "10.210.214.1"}],
            # The group's own notify, once per change of the group (as keepalived's).
            "spec.syncGroupNotify": {
                "master": ["/usr/local/bin/edge-notify.sh", "master"],
                "backup": ["/usr/local/bin/edge-notify.sh", "backup"],
                "fault": ["/usr/local/bin/edge-notify.sh", "fault"],
                "all": ["/usr/local/bin/edge-notify-all.sh"],
            },
        },
        1: {
            "metadata.name": "outside",
            "spec.addresses": ["192.168.1.11/24"],
            "spec.vrid": 11,
            "spec.version": 2,
            "spec.interface": "eth1",
            "spec.advertInterval": "1s",
            "spec.nodePriorities": [{"nodeName": "edge-a", "priority": 120}],
            "spec.preempt": {"mode": "Delay", "delay": "30s"},
            "spec.syncGroup": "vg-edge",
            "spec.routes": [{"to": "0.0.0.0/0", "interface": "eth1", "via": "192.168.1.1"}],
            "spec.syncGroupNotify.master": ["/usr/local/bin/edge-notify.sh", "master"],
            "spec.syncGroupNotify.all": ["/usr/local/bin/edge-notify-all.sh"],
            "spec.syncGroupNotify.backup": ["/usr/local/bin/edge-notify.sh", "backup"],
            "spec.syncGroupNotify.fault": ["/usr/local/bin/edge-notify.sh", "fault"],
        },
    },
    ("unicast-v3-subsecond.conf", "lb-3"): {
        0: {
            "metadata.name": "vi-fast",
            "spec.addresses": ["10.0.0.100/24"],
            "spec.vrid": 200,
            "spec.version": 3,  # global_defs vrrp_version 3
            "spec.interface": "ens3",
            "spec.advertInterval": "100ms",  # advert_int 0.1
            "spec.nodePriorities": [{"nodeName": "lb-3", "priority": 110}],
            "spec.unicast": True,
            "spec.peers": [
                {"nodeName": "lb-3", "address": "10.0.0.3"},
                {"nodeName": "peer-10-0-0-4", "address": "10.0.0.4"},
                {"nodeName": "peer-10-0-0-5", "address": "10.0.0.5"},
            ],
            "spec.probes": [
                {
                    "name": "chk-http",
                    "exec": {
                        "command": [
                            "/usr/bin/curl",
                            "-fsS",
                            "--max-time",
                            "1",
                            "http://127.0.0.1:8080/healthz",
                        ]
                    },
                    "interval": "1s",
                    "timeout": "1s",  # keepalived's 2 s is longer than the interval
                    "rise": 2,
                    "fall": 3,
                    "weight": 0,
                }
            ],
            "spec.notify": {"all": ["/usr/local/bin/vip-notify.sh"]},
        }
    },
}

ROWS = [
    pytest.param(file, node, index, path, value, id=f"{file}:{index}:{path}")
    for (file, node), docs in EXPECTED.items()
    for index, table in docs.items()
    for path, value in table.items()
]


def test_every_testdata_file_has_a_table() -> None:
    assert FILES, f"no keepalived configurations in {TESTDATA}"
    assert {f.name for f in FILES} == {file for file, _ in EXPECTED}


@pytest.mark.parametrize(("file", "node", "index", "path", "value"), ROWS)
def test_testdata_field(file: str, node: str | None, index: int, path: str, value: Any) -> None:
    conversion = convert_file(TESTDATA / file, node=node)
    assert get(conversion.documents[index], path) == value


@pytest.mark.parametrize(("file", "node"), list(EXPECTED))
def test_testdata_has_no_other_fields(file: str, node: str | None) -> None:
    conversion = convert_file(TESTDATA / file, node=node)
    docs = EXPECTED[file, node]
    assert len(conversion.documents) == len(docs)
    for index, table in docs.items():
        doc = conversion.documents[index]
        assert doc["apiVersion"] == "kubevrrp.io/v1alpha1"
        assert doc["kind"] == "VirtualIP"
        expected = {p.split(".")[1].split("[")[0] for p in table if p.startswith("spec.")}
        assert set(doc["spec"]) == expected


@pytest.mark.parametrize("file", [f.name for f in FILES])
@pytest.mark.parametrize("standalone", [False, True])
def test_testdata_validates_with_the_model(file: str, standalone: bool) -> None:
    node = next(n for f, n in EXPECTED if f == file)
    conversion = convert_file(TESTDATA / file, node=node)
    vips = load_manifests(conversion.yaml(), source=file, standalone=standalone)
    assert [v.metadata.name for v in vips] == [d["metadata"]["name"] for d in conversion.documents]


def test_master_backup_tracked_resolves_for_its_node() -> None:
    vips = load_manifests(convert_file(TESTDATA / "master-backup-tracked.conf", node="a").yaml())
    (instance,) = instances_for_node(vips, "a")
    assert (instance.vrid, instance.version, instance.priority) == (51, 2, 150)
    assert instance.auth_password == b"s3cret42"
    assert instance.garp.master_delay_cs == 300
    assert instance.track_interfaces == ("eth0",)
    (probe,) = instance.probes
    assert (probe.interval_cs, probe.timeout_cs, probe.rise, probe.fall, probe.weight) == (
        200,
        100,
        1,
        2,
        -10,
    )
    assert instance.notify is not None and instance.notify.email is not None
    assert instance.notify.email.smtp_host == "127.0.0.1"
    assert instance.notify.email.connect_timeout_cs == 3000
    # Another node gets the base priority: the other keepalived file sets its own.
    (other,) = instances_for_node(vips, "b")
    assert other.priority == 100


def test_unicast_resolves_source_and_peers() -> None:
    vips = load_manifests(convert_file(TESTDATA / "unicast-v3-subsecond.conf", node="lb-3").yaml())
    (instance,) = instances_for_node(vips, "lb-3")
    assert str(instance.source_address) == "10.0.0.3"
    assert [str(p) for p in instance.peers] == ["10.0.0.4", "10.0.0.5"]
    assert instance.advert_interval_cs == 10
    assert instance.preempt is PreemptMode.ALWAYS


def test_sync_group_members_share_the_group() -> None:
    vips = load_manifests(convert_file(TESTDATA / "sync-group-routes.conf", node="edge-a").yaml())
    instances = instances_for_node(vips, "edge-a")
    assert {i.sync_group for i in instances} == {"default/vg-edge"}
    assert {i.preempt for i in instances} == {PreemptMode.DELAY}


# --- the configurations' warnings ------------------------------------------------------

WARNINGS: dict[str, set[tuple[int, str, str]]] = {
    # (line, directive, severity) of every warning
    "master-backup-tracked.conf": {
        (9, "router_id", "info"),
        (21, "vrrp_instance", "info"),  # version 2 written out
        (22, "state", "info"),
        (25, "priority", "info"),  # nodePriorities: other nodes need their own file converted
        (30, "auth_pass", "info"),  # inline password: use a Secret in a cluster
    },
    "backup-backup-nopreempt.conf": {
        (3, "script", "info"),  # /dev/tcp -> tcp probe
        (8, "vrrp_instance", "info"),
        (9, "state", "info"),
        (10, "nopreempt", "info"),
        (17, "auth_pass", "info"),
    },
    "dual-master-notify.conf": {
        (13, "vrrp_instance", "info"),
        (15, "state", "info"),
        (16, "priority", "info"),
        (21, "auth_pass", "info"),
        (40, "state", "info"),
    },
    "sync-group-routes.conf": {
        (7, "notify_master", "info"),  # the group's notify -> syncGroupNotify
        (8, "notify_backup", "info"),
        (9, "notify_fault", "info"),
        (10, "notify", "info"),
        (13, "vrrp_instance", "info"),
        (14, "state", "info"),
        (17, "priority", "info"),
        (19, "preempt_delay", "info"),
        (21, "10.210.214.253/24 brd 10.210.214.255", "warning"),
        (29, "state", "info"),
        (34, "preempt_delay", "info"),
        (36, "192.168.1.11/24 brd 192.168.1.255", "warning"),
    },
    "unicast-v3-subsecond.conf": {
        (3, "router_id", "info"),
        (10, "timeout", "warning"),  # 2 s timeout > 1 s interval
        (17, "state", "info"),
        (20, "priority", "info"),
        (23, "unicast_peer", "info"),  # peers named peer-<address>
    },
}


@pytest.mark.parametrize("file", sorted(WARNINGS))
def test_testdata_warnings(file: str) -> None:
    node = next(n for f, n in EXPECTED if f == file)
    conversion = convert_file(TESTDATA / file, node=node)
    assert {(w.line, w.directive, w.severity) for w in conversion.warnings} == WARNINGS[file]
    lines = [w.line for w in conversion.warnings]
    assert lines == sorted(lines)


def test_virtual_routes_become_routes() -> None:
    conversion = convert_file(TESTDATA / "sync-group-routes.conf", node="edge-a")
    inside, outside = conversion.documents
    assert inside["spec"]["routes"] == [{"to": "172.16.0.0/12", "via": "10.210.214.1"}]
    assert outside["spec"]["routes"] == [
        {"to": "0.0.0.0/0", "interface": "eth1", "via": "192.168.1.1"}
    ]


@pytest.mark.parametrize(
    ("entry", "route", "warning"),
    [
        (
            "src 10.0.0.1 10.9.0.0/24 via 10.0.0.254 dev eth1 table 100 metric 7",
            {
                "to": "10.9.0.0/24",
                "interface": "eth1",
                "metric": 7,
                "source": "10.0.0.1",
                "table": 100,
                "via": "10.0.0.254",
            },
            None,
        ),
        (
            "0.0.0.0/0 gw 10.0.0.1 table main",
            {"to": "0.0.0.0/0", "table": 254, "via": "10.0.0.1"},
            None,
        ),
        ("blackhole 10.7.0.1", {"to": "10.7.0.1/32", "type": "Blackhole"}, None),
        ("10.8.0.0/16 dev eth2 scope link", {"to": "10.8.0.0/16", "interface": "eth2"}, None),
        (
            "10.8.0.0/16 dev eth2 scope site",
            {"to": "10.8.0.0/16", "interface": "eth2"},
            "scope site",
        ),
        (
            "10.6.0.0/16 via 10.0.0.2 or 10.0.0.3",
            {"to": "10.6.0.0/16", "via": "10.0.0.2"},
            "or 10.0.0.3",
        ),
        ("10.5.0.0/16 via 10.0.0.2 mtu 1400", {"to": "10.5.0.0/16", "via": "10.0.0.2"}, "mtu 1400"),
        ("10.5.0.0/16 nexthop via 10.0.0.2 nexthop via 10.0.0.3", None, "multipath"),
        ("10.4.0.0/16", None, "a route needs via or dev"),
        ("10.4.0.0/16 via fd00::1", None, "is IPv6, but to (10.4.0.0/16) is IPv4"),
        ("fd00:4::/64 dev eth1", None, "no IPv6 address"),
        ("10.3.0.0./16 via 10.0.0.1", None, "not a destination network"),
    ],
)
def test_virtual_routes_entries(
    entry: str, route: dict[str, Any] | None, warning: str | None
) -> None:
    conversion = instance(f"virtual_routes {{\n {entry}\n}}")
    spec = conversion.documents[0]["spec"]
    assert spec.get("routes") == ([route] if route else None)
    problems = [f"{w.directive}: {w.message}" for w in conversion.warnings if w.line == 8]
    if warning is None:
        assert problems == []
    else:
        assert [p for p in problems if warning in p], problems
    parse_virtualip(conversion.documents[0], standalone=False)


@pytest.mark.parametrize(
    ("entry", "rule", "warning"),
    [
        ("from 10.0.0.0/24 table 2", {"from": "10.0.0.0/24", "table": 2}, None),
        (
            "from all to 10.9.0.0/16 lookup 100 preference 90",
            {"to": "10.9.0.0/16", "table": 100, "priority": 90},
            None,
        ),
        ("from 10.0.0.0/24 fwmark 3 table 2", None, "fwmark 3"),
        ("from 10.0.0.0/24 goto 100", None, "goto 100"),
        ("to 10.0.0./24 table 2", None, "is not valid"),
        ("table 2", None, "a rule needs from or to"),
    ],
)
def test_virtual_rules_entries(
    entry: str, rule: dict[str, Any] | None, warning: str | None
) -> None:
    conversion = instance(f"virtual_rules {{\n {entry}\n}}")
    spec = conversion.documents[0]["spec"]
    assert spec.get("rules") == ([rule] if rule else None)
    problems = [f"{w.directive}: {w.message}" for w in conversion.warnings if w.line == 8]
    if warning is None:
        assert problems == []
    else:
        assert [p for p in problems if warning in p], problems
    parse_virtualip(conversion.documents[0], standalone=False)


def test_sync_group_notify_names_the_members() -> None:
    conversion = convert_file(TESTDATA / "sync-group-routes.conf", node="edge-a")
    note = find(conversion, "notify", 10)
    assert note.severity == "info"
    assert note.message.startswith("syncGroupNotify.all of INSIDE, OUTSIDE: it runs once per")


def test_brd_is_reported_as_ignored() -> None:
    conversion = convert_file(TESTDATA / "sync-group-routes.conf")
    assert "ignored" in find(conversion, "10.210.214.253/24 brd 10.210.214.255").message


def test_without_node_priority_is_the_base_priority() -> None:
    conversion = convert_file(TESTDATA / "dual-master-notify.conf")
    assert [d["spec"]["priority"] for d in conversion.documents] == [100, 99]
    assert all("nodePriorities" not in d["spec"] for d in conversion.documents)


def test_without_node_unicast_source_is_this_node() -> None:
    conversion = convert_file(TESTDATA / "unicast-v3-subsecond.conf")
    assert get(conversion.documents[0], "spec.peers[0]") == {
        "nodeName": "this-node",
        "address": "10.0.0.3",
    }
    assert find(conversion, "unicast_src_ip", 22).severity == "info"


def test_namespace_is_set() -> None:
    conversion = convert_file(TESTDATA / "master-backup-tracked.conf", namespace="edge")
    assert conversion.documents[0]["metadata"]["namespace"] == "edge"


# --- the tokenizer and block parser -----------------------------------------------------------


def keywords(statements: list[Any]) -> list[Any]:
    return [
        (s.keyword, s.args, s.line, keywords(s.block) if s.block is not None else None)
        for s in statements
    ]


def test_comments_quotes_and_nested_blocks() -> None:
    text = textwrap.dedent(
        """\
        ! a comment
        # another
        vrrp_script chk {          # trailing comment
            script "[ ! -f /x ] # not a comment"
            weight -2 ! comment
        }
        global_defs { router_id a\\#b }
        """
    )
    statements, warnings = parse(text)
    assert warnings == []
    assert keywords(statements) == [
        (
            "vrrp_script",
            ["chk"],
            3,
            [("script", ["[ ! -f /x ] # not a comment"], 4, None), ("weight", ["-2"], 5, None)],
        ),
        ("global_defs", [], 7, [("router_id", ["a#b"], 7, None)]),
    ]


def test_brace_on_the_next_line_and_directives_after_a_brace() -> None:
    text = "vrrp_instance A\n{\n  virtual_ipaddress { 10.0.0.1/24\n 10.0.0.2/24 } priority 5\n}\n"
    statements, _ = parse(text)
    assert keywords(statements) == [
        (
            "vrrp_instance",
            ["A"],
            1,
            [
                (
                    "virtual_ipaddress",
                    [],
                    3,
                    [("10.0.0.1/24", [], 3, None), ("10.0.0.2/24", [], 4, None)],
                ),
                ("priority", ["5"], 4, None),
            ],
        )
    ]


def test_quoted_string_keeps_spaces_braces_and_escaped_quotes() -> None:
    statements, _ = parse('notify "/bin/n.sh {a} \\"b c\\"" root\n')
    (notify,) = statements
    assert notify.args == ['/bin/n.sh {a} "b c"', "root"]
    assert notify.words[1].quoted and not notify.words[2].quoted


def test_line_continuation() -> None:
    statements, _ = parse("notify_master \\\n  /bin/x.sh\npriority 5\n")
    assert keywords(statements) == [
        ("notify_master", ["/bin/x.sh"], 1, None),
        ("priority", ["5"], 3, None),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("vrrp_instance A {\n  priority 5\n}\n}\n", 4, "unbalanced '}'"),
        ("global_defs {\n}\nvrrp_instance A {\n  track_script {\n  x\n}\n", 3, "never closed"),
        ('vrrp_script a {\n  script "/bin/x\n}\n', 2, "unterminated quote"),
        ("priority 1\n\n{\n", 3, "never closed"),
        ("{\n}\n", 1, "without a directive"),
    ],
)
def test_parse_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        convert_text(text, source="k.conf")
    assert caught.value.line == line
    assert message in caught.value.message
    assert caught.value.format("k.conf").startswith(f"k.conf:{line}: error: ")


def test_conditional_lines_follow_the_node() -> None:
    text = textwrap.dedent(
        """\
        vrrp_instance A {
            virtual_ipaddress { 10.0.0.1/24 }
            virtual_router_id 7
        @node-a priority 150
        @node-b\tpriority 100
        @^node-a nopreempt
        }
        """
    )
    spec = spec_of(text, node="node-a")
    assert spec["nodePriorities"] == [{"nodeName": "node-a", "priority": 150}]
    assert "preempt" not in spec
    assert spec_of(text, node="node-b")["preempt"] == {"mode": "Never"}
    without = convert(text)
    assert "priority" not in without.documents[0]["spec"]
    assert {(4, "@node-a"), (5, "@node-b"), (6, "@^node-a")} <= warned(without)


def test_parameters_are_substituted() -> None:
    spec = spec_of(
        """\
        $VIP=10.0.0.9/24
        $ID=42
        vrrp_instance A {
            virtual_ipaddress { $VIP }
            virtual_router_id ${ID}
        }
        """
    )
    assert (spec["addresses"], spec["vrid"]) == (["10.0.0.9/24"], 42)


def test_include_is_inlined_relative_to_the_source(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "vi.conf").write_text(
        "vrrp_instance INC {\n  virtual_ipaddress { 10.0.0.5/24 }\n  virtual_router_id 5\n"
        "  bogus_option 1\n}\n"
    )
    main = tmp_path / "keepalived.conf"
    main.write_text("global_defs {\n  vrrp_version 3\n}\ninclude conf.d/*.conf\n")
    conversion = convert_file(main)
    assert get(conversion.documents[0], "spec.vrid") == 5
    assert get(conversion.documents[0], "spec.version") == 3
    included = str(tmp_path / "conf.d" / "vi.conf")
    bogus = find(conversion, "bogus_option")
    assert (bogus.line, bogus.file) == (4, included)
    assert bogus.format(str(main)).startswith(f"{included}:4: warning: bogus_option")
    assert find(conversion, "include", 4).severity == "info"


def test_missing_include_is_a_warning(tmp_path: Path) -> None:
    main = tmp_path / "keepalived.conf"
    main.write_text("include /nonexistent/kv-*.conf\n")
    conversion = convert_file(main)
    assert conversion.documents == []
    assert "no such file" in find(conversion, "include", 1).message
    text = convert_text("include other.conf\n", source="<stdin>")
    assert "cannot be resolved" in find(text, "include", 1).message


def test_include_cycle_is_reported(tmp_path: Path) -> None:
    main = tmp_path / "keepalived.conf"
    main.write_text("include keepalived.conf\n")
    assert "includes itself" in find(convert_file(main), "include").message


# --- directive by directive -------------------------------------------------------------------

MINIMAL = """\
vrrp_instance VI {
    interface eth0
    virtual_router_id 9
    virtual_ipaddress {
        10.0.0.1/24
    }
%s
}
"""


def instance(body: str, *, before: str = "", **kwargs: Any) -> Conversion:
    lines = textwrap.indent(textwrap.dedent(body), "    ")
    return convert_text(before + MINIMAL % lines, source="<test>", **kwargs)


def test_names_are_dns_labels_and_unique() -> None:
    assert dns_label("VI_WEB") == "vi-web"
    assert dns_label("__Edge..Router__") == "edge-router"
    assert dns_label("___") == "vrrp"
    assert len(dns_label("x" * 80)) == 63
    text = "vrrp_instance VI_1 { virtual_router_id 1\n virtual_ipaddress { 10.0.0.1/24 } }\n"
    text += "vrrp_instance vi-1 { virtual_router_id 2\n virtual_ipaddress { 10.0.0.2/24 } }\n"
    conversion = convert_text(text, source="<t>")
    assert [d["metadata"]["name"] for d in conversion.documents] == ["vi-1", "vi-1-2"]
    assert [d["metadata"]["annotations"][INSTANCE_ANNOTATION] for d in conversion.documents] == [
        "VI_1",
        "vi-1",
    ]


@pytest.mark.parametrize(
    ("version", "advert", "expected", "rounded"),
    [
        (3, "0.1", "100ms", False),
        (3, "1", "1s", False),
        (3, "1.5", "1500ms", False),
        (3, "0.015", "20ms", True),  # keepalived rounds to 10 ms steps, half up
        (2, "3", "3s", False),
        (2, "0.4", "1s", True),  # v2 counts whole seconds, at least 1
        (2, "1.5", "2s", True),
        (2, "300", "255s", True),
    ],
)
def test_advert_int(version: int, advert: str, expected: str, rounded: bool) -> None:
    conversion = instance(f"version {version}\nadvert_int {advert}")
    assert get(conversion.documents[0], "spec.advertInterval") == expected
    assert any(w.directive == "advert_int" for w in conversion.warnings) == rounded


def test_version_defaults_to_keepalived_2_and_ipv6_is_3() -> None:
    assert get(instance("").documents[0], "spec.version") == 2
    conversion = instance("", before="global_defs {\n vrrp_version 3\n}\n")
    assert get(conversion.documents[0], "spec.version") == 3
    assert get(instance("version 3").documents[0], "spec.version") == 3
    v6 = convert_text(
        "vrrp_instance V6 {\n virtual_router_id 3\n virtual_ipaddress {\n fd00::10/64\n }\n}\n",
        source="<t>",
    )
    assert get(v6.documents[0], "spec.version") == 3


def test_state_is_dropped_with_an_explanation() -> None:
    conversion = instance("state MASTER")
    assert "state" not in conversion.documents[0]["spec"]
    w = find(conversion, "state")
    assert w.severity == "info" and "not a priority hint" in w.message


@pytest.mark.parametrize(
    ("body", "preempt"),
    [
        ("nopreempt", {"mode": "Never"}),
        ("preempt_delay 30", {"mode": "Delay", "delay": "30s"}),
        ("preempt_delay 2.5", {"mode": "Delay", "delay": "2500ms"}),
        ("nopreempt\npreempt_delay 30", {"mode": "Never"}),
        ("preempt_delay 0", None),
        ("preempt", None),
    ],
)
def test_preempt(body: str, preempt: dict[str, str] | None) -> None:
    spec = instance(body).documents[0]["spec"]
    assert spec.get("preempt") == preempt


def test_nopreempt_with_state_master_warns_that_ours_applies_everywhere() -> None:
    conversion = instance("state MASTER\nnopreempt")
    assert get(conversion.documents[0], "spec.preempt") == {"mode": "Never"}
    w = find(conversion, "nopreempt")
    assert w.severity == "warning" and "every node" in w.message


@pytest.mark.parametrize(
    ("body", "accept"),
    [("accept", True), ("no_accept", False), ("strict_mode", False), ("", None)],
)
def test_accept(body: str, accept: bool | None) -> None:
    assert instance(body).documents[0]["spec"].get("accept") == accept


def test_authentication() -> None:
    long = instance("authentication {\n auth_type PASS\n auth_pass 123456789abc\n}")
    assert get(long.documents[0], "spec.authentication") == {"password": "12345678"}
    assert "first 8" in find(long, "auth_pass").message
    ah = instance("authentication {\n auth_type AH\n auth_pass secret\n}")
    assert "authentication" not in ah.documents[0]["spec"]
    assert "AH" in find(ah, "auth_type").message
    v3 = instance("version 3\nauthentication {\n auth_type PASS\n auth_pass secret\n}")
    assert "authentication" not in v3.documents[0]["spec"]
    assert "VRRPv3" in find(v3, "auth_pass").message


def test_addresses_and_their_options() -> None:
    conversion = instance(
        """\
        virtual_ipaddress_excluded {
            10.0.1.1/24 dev eth0 label eth0:9 scope link
            10.0.1.2 brd + no_track
        }
        """
    )
    spec = conversion.documents[0]["spec"]
    assert spec["addresses"] == ["10.0.0.1/24", "10.0.1.1/24", "10.0.1.2/32"]
    assert spec["label"] == "eth0:9"
    assert {
        (7, "virtual_ipaddress_excluded"),
        (8, "10.0.1.1/24 scope link"),
        (9, "10.0.1.2"),  # no prefix: /32 written out
        (9, "10.0.1.2 brd +"),
        (9, "10.0.1.2 no_track"),
    } <= warned(conversion)


def test_dev_on_another_interface_becomes_an_address_interface() -> None:
    conversion = instance(
        "virtual_ipaddress {\n 10.0.2.1/24 dev eth1 label eth1:x\n 10.0.3.1/24 dev eth0\n}"
    )
    spec = conversion.documents[0]["spec"]
    assert spec["interface"] == "eth0"
    assert spec["addressInterfaces"] == [{"address": "10.0.2.1", "interface": "eth1"}]
    assert "label" not in spec
    assert "carries no label" in find(conversion, "10.0.2.1/24 label eth1:x").message
    assert not [w for w in conversion.warnings if "dev eth1" in w.directive]
    parse_virtualip(conversion.documents[0], standalone=False)


def test_use_vmac() -> None:
    plain = instance("use_vmac")
    assert plain.documents[0]["spec"]["useVmac"] is True
    assert not [w for w in plain.warnings if w.directive == "use_vmac"]
    named = instance("use_vmac vrrp_web\nvirtual_ipaddress {\n 10.0.0.2/24 label eth0:v\n}")
    spec = named.documents[0]["spec"]
    assert spec["useVmac"] is True and "label" not in spec
    assert "named vrrp.9, not vrrp_web" in find(named, "use_vmac").message
    assert any("label eth0:v dropped" in w.message for w in named.warnings)
    parse_virtualip(named.documents[0], standalone=False)
    v6 = instance("use_vmac\nvirtual_ipaddress {\n fd00::2/64\n}")
    assert "useVmac" not in v6.documents[0]["spec"]
    assert "IPv4 addresses only" in find(v6, "use_vmac").message
    parse_virtualip(v6.documents[0], standalone=False)


def test_unicast() -> None:
    spec = instance("unicast_src_ip 10.0.0.3\nunicast_peer {\n 10.0.0.4\n fd00::4\n}").documents[0][
        "spec"
    ]
    assert spec["unicast"] is True
    assert spec["peers"] == [
        {"nodeName": "this-node", "address": "10.0.0.3"},
        {"nodeName": "peer-10-0-0-4", "address": "10.0.0.4"},
        {"nodeName": "peer-fd00--4", "address": "fd00::4"},
    ]
    no_src = instance("unicast_peer {\n 10.0.0.4 min_ttl 250\n}")
    assert get(no_src.documents[0], "spec.peers") == [
        {"nodeName": "peer-10-0-0-4", "address": "10.0.0.4"}
    ]
    assert "this node's address" in find(no_src, "unicast_peer").message
    assert (8, "10.0.0.4 min_ttl 250") in warned(no_src)


def test_garp_instance_and_global() -> None:
    spec = instance(
        "garp_master_delay 2\ngarp_master_refresh 60",
        before="global_defs {\n vrrp_garp_master_repeat 3\n vrrp_garp_master_delay 9\n"
        " vrrp_garp_interval 0.05\n}\n",
    ).documents[0]["spec"]
    assert spec["garp"] == {
        "masterDelay": "2s",
        "masterRepeat": 3,
        "interval": "50ms",
        "masterRefresh": "60s",
    }


def test_track_interface_weights_become_interface_probes() -> None:
    conversion = instance("track_interface {\n eth0\n eth1 weight -20\n eth2 weight 5 reverse\n}")
    spec = conversion.documents[0]["spec"]
    assert spec["trackInterfaces"] == ["eth0"]
    assert spec["probes"] == [{"name": "if-eth1", "interface": {"name": "eth1"}, "weight": -20}]
    assert find(conversion, "eth1 weight -20").severity == "info"
    assert "reverse" in find(conversion, "eth2 weight 5 reverse").message


SCRIPTS = """\
vrrp_script chk_a {
    script "/usr/bin/pgrep -x haproxy"
    interval 2
    weight -5
    fall 3
    user nobody
    init_fail
}
vrrp_script chk_pipe {
    script "ss -ltn | grep -q :443"
}
vrrp_script chk_env {
    script "/bin/check $HOST"
    timeout 0.5
}
vrrp_script unused {
    script /bin/true
}
"""


def test_track_script_entries() -> None:
    conversion = instance(
        "track_script {\n chk_a weight 10\n chk_pipe\n chk_env\n missing\n}", before=SCRIPTS
    )
    probes = conversion.documents[0]["spec"]["probes"]
    assert probes == [
        {
            "name": "chk-a",
            "exec": {"command": ["/usr/bin/pgrep", "-x", "haproxy"]},
            "interval": "2s",
            "fall": 3,
            "weight": 10,  # the track_script entry's weight wins over the script's
        },
        {"name": "chk-pipe", "exec": {"command": ["/bin/sh", "-c", "ss -ltn | grep -q :443"]}},
        {
            "name": "chk-env",
            "exec": {"command": ["/bin/sh", "-c", "/bin/check $HOST"]},
            "timeout": "500ms",
        },
    ]
    assert {(6, "user"), (7, "init_fail"), (16, "vrrp_script")} <= warned(conversion)
    # keepalived execs scripts without a shell: a pipe or $VAR never worked there.
    assert find(conversion, "script", 10).message == SHELL_CHANGED
    assert find(conversion, "script", 13).message == SHELL_CHANGED
    assert "no vrrp_script missing" in find(conversion, "missing").message


@pytest.mark.parametrize(
    ("command", "use"),
    [
        ("killall -0 haproxy", "none"),
        ("/usr/bin/curl -fsS 'http://127.0.0.1/a b'", "none"),
        ("/bin/echo '$HOME'", "none"),
        ("[ ! -f /etc/keepalived/down ]", "test"),
        ("test -f /run/ok", "test"),
        ("ss -ltn | grep -q :443", "shell"),
        ("/bin/check && /bin/other", "shell"),
        ('/bin/check "$HOST"', "shell"),
        ("/bin/ls /etc/*.conf", "shell"),
        ("FOO=1 /bin/check", "shell"),
        ("[[ -f /x ]]", "shell"),
        ("</dev/tcp/127.0.0.1/443", "shell"),
        ("/bin/check 'unbalanced", "shell"),
    ],
)
def testshell_use(command: str, use: str) -> None:
    assert shell_use(command) == use


def test_track_file() -> None:
    conversion = instance(
        "track_file {\n maint\n other weight -3\n}",
        before='track_file maint {\n file "/run/maint"\n}\n'
        'vrrp_track_file other {\n file "/run/other"\n weight 2\n init_file 0\n}\n',
    )
    assert conversion.documents[0]["spec"]["probes"] == [
        {"name": "maint", "file": {"path": "/run/maint"}, "weight": 1},
        {"name": "other", "file": {"path": "/run/other"}, "weight": -3},
    ]
    assert (4, "vrrp_track_file") in warned(conversion)
    assert find(conversion, "init_file", 7).severity == "info"  # a missing file is 0 here too


@pytest.mark.parametrize(
    ("line", "severity", "says"),
    [
        ("init_file", "info", "reads as 0 here too"),
        ("init_file 0x0", "info", "reads as 0 here too"),
        ("init_file 1", "warning", "Write 1 to it before the daemon starts"),
        ("init_file overwrite", "warning", "Write 0 to it before the daemon starts (overwrite"),
        ("init_file 0 overwrite", "warning", "(overwrite: whatever it holds)"),
    ],
)
def test_track_file_init_file(line: str, severity: str, says: str) -> None:
    conversion = instance(
        "track_file {\n maint\n}", before=f'track_file maint {{\n file "/run/m"\n {line}\n}}\n'
    )
    warning = find(conversion, "init_file", 3)
    assert (warning.severity, says in warning.message) == (severity, True), warning.message


def test_address_owner_cannot_keep_probes() -> None:
    conversion = instance("priority 255\ntrack_interface {\n eth1 weight 5\n}")
    assert "probes" not in conversion.documents[0]["spec"]
    assert "255" in find(conversion, "priority").message


@pytest.mark.parametrize(
    ("directive", "key", "argv"),
    [
        ("notify_master", "master", ["/bin/n.sh", "master"]),
        ("notify_backup", "backup", ["/bin/n.sh", "master"]),
        ("notify_fault", "fault", ["/bin/n.sh", "master"]),
        ("notify_stop", "stop", ["/bin/n.sh", "master"]),
        ("notify", "all", ["/bin/n.sh", "master"]),
    ],
)
def test_notify_scripts(directive: str, key: str, argv: list[str]) -> None:
    spec = instance(f'{directive} "/bin/n.sh master"').documents[0]["spec"]
    assert spec["notify"] == {key: argv}


def test_notify_shell_and_path_search() -> None:
    spec = instance('notify "/bin/log >> /tmp/vrrp.log"\nnotify_master "n.sh x"').documents[0][
        "spec"
    ]
    # The appended INSTANCE name state priority reach the shell command through "$@".
    assert spec["notify"]["all"] == ["/bin/sh", "-c", '/bin/log >> /tmp/vrrp.log "$@"', "sh"]
    assert spec["notify"]["master"] == ["/usr/bin/env", "n.sh", "x"]


def test_notify_fifo_goes_to_every_instance() -> None:
    conversion = instance(
        "priority 100",
        before="global_defs {\n vrrp_notify_fifo /run/keepalived.fifo\n"
        " notify_fifo_script /usr/local/bin/read-fifo\n}\n",
    )
    assert conversion.documents[0]["spec"]["notify"] == {"fifo": "/run/keepalived.fifo"}
    assert "vrrp_notify_fifo" not in {w.directive for w in conversion.warnings}
    assert "runs no reader; start the script" in find(conversion, "notify_fifo_script").message
    owned = instance("priority 100", before="global_defs {\n notify_fifo /run/f root root\n}\n")
    assert "make it yourself with that owner" in find(owned, "notify_fifo").message
    relative = instance("priority 100", before="global_defs {\n notify_fifo run/f\n}\n")
    assert "not an absolute path" in find(relative, "notify_fifo").message
    assert "notify" not in relative.documents[0]["spec"]


def test_smtp_alert_global_and_display_names() -> None:
    conversion = instance(
        "",
        before="global_defs {\n notification_email {\n"
        ' "Ops <ops@example.test>"\n }\n smtp_server mail.example.test 587\n'
        " smtp_alert true\n}\n",
    )
    assert get(conversion.documents[0], "spec.notify.email") == {
        "to": ["ops@example.test"],
        "from": "keepalived@localhost",
        "smtpServer": "mail.example.test:587",
    }
    assert "display name dropped" in find(conversion, "Ops <ops@example.test>", 3).message
    assert find(conversion, "vrrp_instance", says="keepalived@<hostname>").severity == "info"
    missing = instance("smtp_alert")
    assert "notify" not in missing.documents[0]["spec"]
    assert find(missing, "vrrp_instance", says="notification_email").severity == "warning"


def test_sync_group_member_keeps_its_own_notify_beside_the_groups() -> None:
    text = textwrap.dedent(
        """\
        vrrp_sync_group G {
            group {
                A
                NOPE
            }
            notify_master /bin/group-master.sh
            notify_backup /bin/group-backup.sh
            track_interface {
                eth9 weight 10
            }
        }
        vrrp_instance A {
            virtual_router_id 1
            virtual_ipaddress { 10.0.0.1/24 }
            notify_master /bin/own-master.sh
        }
        """
    )
    conversion = convert_text(text, source="<t>")
    spec = conversion.documents[0]["spec"]
    assert spec["syncGroup"] == "g"
    # Both run, as in keepalived: the instance's for it, the group's for the group.
    assert spec["notify"] == {"master": ["/bin/own-master.sh"]}
    assert spec["syncGroupNotify"] == {
        "master": ["/bin/group-master.sh"],
        "backup": ["/bin/group-backup.sh"],
    }
    assert "probes" not in spec  # keepalived ignores weighted trackers in a sync group
    assert find(conversion, "notify_master", 6).severity == "info"
    assert "no vrrp_instance NOPE" in find(conversion, "NOPE").message
    assert "sync_group_tracking_weight" in find(conversion, "eth9 weight 10").message


def test_a_script_tracked_by_instance_and_group_is_one_probe() -> None:
    text = textwrap.dedent(
        """\
        vrrp_script chk {
            script /bin/true
        }
        vrrp_sync_group G {
            group {
                A
            }
            track_script {
                chk
            }
        }
        vrrp_instance A {
            virtual_router_id 1
            virtual_ipaddress { 10.0.0.1/24 }
            track_script {
                chk
            }
        }
        """
    )
    conversion = convert_text(text, source="<t>")
    assert conversion.documents[0]["spec"]["probes"] == [
        {"name": "chk", "exec": {"command": ["/bin/true"]}}
    ]
    assert "kept once" in find(conversion, "chk", 9).message
    assert find(conversion, "track_script", 8).severity == "info"


def test_unsupported_directives_are_listed_never_dropped() -> None:
    conversion = instance(
        """\
        dont_track_primary
        debug 2
        vmac_xmit_base
        mcast_src_ip 10.0.0.3
        no_such_directive 1
        use_ipvlan
        """,
        before="global_defs {\n enable_traps\n}\n",
    )
    assert {
        (2, "enable_traps"),
        (10, "dont_track_primary"),
        (11, "debug"),
        (12, "vmac_xmit_base"),
        (13, "mcast_src_ip"),
        (14, "no_such_directive"),
        (15, "use_ipvlan"),
    } <= warned(conversion)


def test_unknown_blocks_get_one_warning_each() -> None:
    conversion = convert_text(
        textwrap.dedent(
            """\
            virtual_server 10.0.0.1 80 {
                delay_loop 6
                real_server 10.0.0.2 80 {
                    weight 1
                }
            }
            static_routes {
                10.9.0.0/16 via 10.0.0.254
            }
            mystery_block {
                x 1
            }
            """
        ),
        source="<t>",
    )
    assert conversion.documents == []
    assert warned(conversion) == {
        (1, "virtual_server"),
        (7, "static_routes"),
        (10, "mystery_block"),
    }


# --- output: YAML, CLI ------------------------------------------------------------------------


def test_yaml_has_the_warnings_as_comments_and_round_trips() -> None:
    conversion = convert_file(TESTDATA / "sync-group-routes.conf", node="edge-a")
    text = conversion.yaml()
    head = text.split("\n---\n")[0].splitlines()
    assert all(line.startswith("#") for line in head)
    assert any(":21: warning: 10.210.214.253/24 brd" in line for line in head)
    assert [d for d in yaml.safe_load_all(text) if d is not None] == conversion.documents


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(TESTDATA / "sync-group-routes.conf")
    assert cli([path, "--node", "edge-a", "--namespace", "net"]) == 0
    out, err = capsys.readouterr()
    docs = [d for d in yaml.safe_load_all(out) if d is not None]
    assert [d["metadata"]["namespace"] for d in docs] == ["net", "net"]
    assert f"{path}:21: warning: 10.210.214.253/24 brd" in err

    broken = tmp_path / "broken.conf"
    broken.write_text("vrrp_instance A {\n  priority 1\n")
    assert cli([str(broken)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{broken}:1: error:")

    assert cli([str(tmp_path / "absent.conf")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli([path, "--node", "Node_A"]) == 2
    assert "--node" in capsys.readouterr().err


def test_vrrpd_convert_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    """`vrrpd convert` takes its options anywhere, as `vrrpd.convert`, and has a --help."""
    from vrrpd.cli import main

    with pytest.raises(SystemExit) as exit_help:
        main(["convert", "--help"])
    assert exit_help.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: vrrpd convert")
    assert "--node" in shown and "--namespace" in shown

    path = str(TESTDATA / "sync-group-routes.conf")
    assert main(["convert", "--node", "edge-a", "--namespace", "net", path]) == 0
    out = capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all(out) if d is not None]
    assert [d["metadata"]["namespace"] for d in docs] == ["net", "net"]
    assert "# Converted from" in out and "node edge-a" in out
    assert main(["convert", path, "--node", "Node_A"]) == 2
    assert "--node 'Node_A'" in capsys.readouterr().err


# --- the migration guide stays true ------------------------------------------------------------

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "keepalived-migration.md"


def test_guide_worked_example_is_the_real_output() -> None:
    guide = GUIDE.read_text()
    shown = guide.split("`vrrpd convert master-backup-tracked.conf --node node-a`:")[1]
    shown = shown.split("```yaml\n")[1].split("```")[0]
    source = "master-backup-tracked.conf"
    text = (TESTDATA / source).read_text()
    assert convert_text(text, source=source, node="node-a").yaml() == shown


def test_guide_sync_group_warnings_are_the_real_ones() -> None:
    shown = GUIDE.read_text().split("shows the warnings for what has no\nequivalent:\n\n```\n")[1]
    source = "sync-group-routes.conf"
    text = (TESTDATA / source).read_text()
    real = {w.format(source) for w in convert_text(text, source=source).warnings}
    lines = shown.split("```")[0].splitlines()
    assert lines and set(lines) <= real


def test_guide_lists_every_unsupported_directive() -> None:
    guide = GUIDE.read_text()
    named = {*INSTANCE_UNSUPPORTED, *TOP_UNSUPPORTED} - {
        "garp_lower_prio_delay",  # listed as garp_lower_prio_*
        "garp_lower_prio_repeat",
        "thread_timer_expired",  # a keepalived alias of timer_expired_backup
        "vmac_garp_intvl",  # a deprecated keepalived alias of garp_extra_if
    }
    assert [d for d in sorted(named) if f"`{d}`" not in guide] == []
