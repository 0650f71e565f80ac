"""The VirtualIPPool CRD (crds/virtualippools.kubevrrp.io.yaml): its shape, that its
spec.vrrp is the VirtualIP spec's fields unchanged, that the examples are accepted and
what can never work is refused (schema and CEL, as the API server would: cel_support),
and that the operator's own reading of a pool (pools.parse_pool) agrees."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.cel_support import load_crd, normalize, validate, version_schema
from vrrpd.spec.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
from vrrp_operator.pools import VRRP_FIELDS, parse_pool  # noqa: E402

CRD = load_crd(ROOT / "crds" / "virtualippools.kubevrrp.io.yaml")
SCHEMA = version_schema(CRD, "v1alpha1")
SPEC = SCHEMA["properties"]["spec"]
VIRTUALIP_SPEC = version_schema(
    load_crd(ROOT / "crds" / "virtualips.kubevrrp.io.yaml"), "v1alpha1"
)["properties"]["spec"]
EXAMPLES = [
    d
    for d in yaml.safe_load_all((ROOT / "examples" / "loadbalancer" / "pools.yaml").read_text())
    if d
]


def nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), Mapping):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def test_crd_is_a_valid_custom_resource_definition() -> None:
    kubernetes_validate.validate(CRD, "1.31", strict=True)


def test_names_scope_and_version() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "virtualippools.kubevrrp.io"
    assert (spec["group"], spec["scope"]) == ("kubevrrp.io", "Cluster")
    assert spec["names"] == {
        "kind": "VirtualIPPool",
        "listKind": "VirtualIPPoolList",
        "plural": "virtualippools",
        "singular": "virtualippool",
        "shortNames": ["vipp"],
    }
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("AUTO", ".spec.autoAssign"),
        ("SIZE", ".status.size"),
        ("USED", ".status.used"),
        ("FREE", ".status.free"),
        ("READY", '.status.conditions[?(@.type=="Ready")].status'),
        ("AGE", ".metadata.creationTimestamp"),
    ]


def test_every_field_has_a_description() -> None:
    missing = []
    for path, node in nodes(SCHEMA):
        is_field = path and not path.endswith(("[]", "{}"))
        explained = is_field or node.get("type") == "object"
        if explained and path != "metadata" and len(node.get("description", "").strip()) < 10:
            missing.append(path)
    assert missing == []


def test_vrrp_is_the_virtualip_specs_fields_unchanged() -> None:
    vrrp = SPEC["properties"]["vrrp"]["properties"]
    assert tuple(vrrp) == VRRP_FIELDS
    for name, schema in vrrp.items():
        assert schema == VIRTUALIP_SPEC["properties"][name], f"spec.vrrp.{name} drifted"


def test_defaults_pass_their_own_rules() -> None:
    # The API server refuses a CRD whose defaults fail its rules, nested defaults unfilled.
    for path, node in nodes(SCHEMA):
        if "default" in node:
            assert validate(node["default"], node, defaulting=False) == [], path


def pool(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": "p"},
        "spec": copy.deepcopy(dict(spec)),
    }


@pytest.mark.parametrize("doc", EXAMPLES, ids=lambda d: d["metadata"]["name"])
def test_examples_are_accepted_by_the_crd_and_the_operator(doc: dict[str, Any]) -> None:
    assert [str(v) for v in validate(doc, SCHEMA)] == []
    # The API server stores the defaulted object: that is what the operator reads.
    parsed = parse_pool(normalize(doc, SCHEMA))
    assert parsed.name == doc["metadata"]["name"]


# (id, spec, path, message fragment)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("empty", {"addresses": []}, "spec.addresses", "at least 1 items"),
    ("text", {"addresses": ["hello"]}, "spec.addresses[0]", "must be a CIDR"),
    ("host-bits", {"addresses": ["192.168.10.70/27"]}, "spec.addresses[0]", "host bits"),
    (
        "mixed-range",
        {"addresses": ["192.168.10.1-fd00::1"]},
        "spec.addresses[0]",
        "same address family",
    ),
    ("loopback", {"addresses": ["127.0.0.1"]}, "spec.addresses[0]", "unicast addresses"),
    ("multicast-range", {"addresses": ["224.0.0.1-224.0.0.9"]}, "spec.addresses[0]", "unicast"),
    ("link-local-v6", {"addresses": ["fe80::/64"]}, "spec.addresses[0]", "unicast"),
    (
        "interval",
        {"addresses": ["192.168.10.5"], "vrrp": {"advertInterval": "15ms"}},
        "spec.vrrp.advertInterval",
        "10ms..40.95s",
    ),
    (
        "owner-with-probes",
        {
            "addresses": ["192.168.10.5"],
            "vrrp": {"priority": 255, "probes": [{"name": "t", "tcp": {"port": 1}}]},
        },
        "spec.vrrp.priority",
        "priority 255",
    ),
    (
        "vrid",
        {"addresses": ["192.168.10.5"], "vrrp": {"vrid": 5}},
        "spec.vrrp",
        'unknown field "spec.vrrp.vrid"',
    ),
    (
        "auto-assign-string",
        {"addresses": ["192.168.10.5"], "autoAssign": "yes"},
        "spec.autoAssign",
        "boolean",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_what_can_never_work_is_refused(spec: dict[str, Any], path: str, fragment: str) -> None:
    found = validate(pool(spec), SCHEMA)
    assert any(v.path.startswith(path) and fragment in v.message for v in found), [
        str(v) for v in found
    ]
    with pytest.raises(ConfigError):  # the operator refuses it too (never renders it)
        parse_pool(pool(spec))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"addresses": ["192.168.10.9-192.168.10.1"]}, "ends before it starts"),
        ({"addresses": ["192.168.10.0/28", "192.168.10.5-192.168.10.20"]}, "overlap"),
    ],
)
def test_what_cel_cannot_see_the_operator_refuses(spec: dict[str, Any], fragment: str) -> None:
    assert [v for v in validate(pool(spec), SCHEMA) if v.source != "schema"] == []
    with pytest.raises(ConfigError) as caught:
        parse_pool(pool(spec))
    assert fragment in str(caught.value)
