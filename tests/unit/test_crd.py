"""Tests of the VirtualIP CRD (crds/virtualips.kubevrrp.io.yaml): its shape, that every
example is accepted and what can never work is refused with a readable message (schema
and CEL rules, evaluated as the API server would: see cel_support), and that it
describes the same fields, defaults and refusals as vrrpd.spec."""

from __future__ import annotations

import copy
import functools
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import celpy
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from tests.unit.cel_support import (
    CEL_SKIPPED,
    Violation,
    compile_rule,
    evaluate,
    load_crd,
    normalize,
    rules,
    validate,
    version_schema,
)
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.load import parse_virtualip
from vrrpd.spec.virtualip import VirtualIPSpec

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "virtualips.kubevrrp.io.yaml"
CRD = load_crd(CRD_PATH)
SCHEMA = version_schema(CRD, "v1alpha1")
SPEC_SCHEMA = SCHEMA["properties"]["spec"]
STANDALONE_EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CLUSTER_EXAMPLES = sorted((ROOT / "examples" / "cluster").glob("*.yaml"))


def documents(paths: list[Path]) -> list[Any]:
    """Every document of these files, as pytest params named <file>#<number>."""
    found = []
    for path in paths:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        for number, doc in enumerate(docs, start=1):
            name = f"{path.relative_to(ROOT / 'examples')}#{number}"
            found.append(pytest.param(doc, id=name))
    return found


def nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its path; list items as "[]", map values as "{}"."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), Mapping):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


# --- shape ------------------------------------------------------------------------------


def test_crd_is_a_valid_custom_resource_definition() -> None:
    # The apiextensions.k8s.io/v1 schema of a CRD object (kubectl's own client-side check).
    kubernetes_validate.validate(CRD, "1.31", strict=True)


def test_names_scope_and_version() -> None:
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["kind"] == "CustomResourceDefinition"
    assert CRD["metadata"]["name"] == "virtualips.kubevrrp.io"
    spec = CRD["spec"]
    assert spec["group"] == "kubevrrp.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "VirtualIP",
        "listKind": "VirtualIPList",
        "plural": "virtualips",
        "singular": "virtualip",
        "shortNames": ["vip"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    (version,) = CRD["spec"]["versions"]
    columns = [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("VIP", "string", ".spec.addresses[0]"),
        ("VRID", "integer", ".status.vrid"),
        ("MASTER", "string", ".status.master"),
        ("READY", "string", '.status.conditions[?(@.type=="Ready")].status'),
        ("AGE", "date", ".metadata.creationTimestamp"),
    ]


def test_every_field_has_a_description() -> None:
    # What `kubectl explain virtualip.spec...` shows; object-typed list items and map
    # values are explained too.
    missing = []
    for path, node in nodes(SCHEMA):
        is_field = path and not path.endswith(("[]", "{}"))
        explained = is_field or node.get("type") == "object"
        if explained and path != "metadata" and len(node.get("description", "").strip()) < 10:
            missing.append(path)
    assert missing == []


def test_descriptions_state_defaults() -> None:
    # A field with a schema default says so in its description (kubectl explain shows
    # the description, not the default).
    silent = [
        path
        for path, node in nodes(SCHEMA)
        if "default" in node
        and node["default"] != {}
        and "default" not in node.get("description", "").lower()
    ]
    assert silent == []


def test_descriptions_name_keepalived_equivalents() -> None:
    # keepalived users look for the directive they know.
    properties = SPEC_SCHEMA["properties"]
    for field, directive in {
        "addresses": "virtual_ipaddress",
        "vrid": "virtual_router_id",
        "version": "vrrp_version",
        "advertInterval": "advert_int",
        "priority": "priority",
        "preempt": "nopreempt",
        "accept": "no_accept",
        "unicast": "unicast_peer",
        "authentication": "auth_pass",
        "trackInterfaces": "track_interface",
        "addressInterfaces": "dev",
        "routes": "virtual_routes",
        "useVmac": "use_vmac",
        "rules": "virtual_rules",
        "probes": "vrrp_script",
        "syncGroup": "vrrp_sync_group",
        "notify": "notify_master",
    }.items():
        assert directive in properties[field]["description"], field


def test_schema_is_structural() -> None:
    # kube-apiserver refuses a CRD whose schema nodes lack a type (x-kubernetes-int-or-
    # string excepted) or mix properties with additionalProperties.
    problems = []
    for path, node in nodes(SCHEMA):
        if node.get("x-kubernetes-int-or-string"):
            if node.get("anyOf") != [{"type": "integer"}, {"type": "string"}]:
                problems.append(f"{path}: int-or-string needs anyOf integer | string")
        elif "type" not in node:
            problems.append(f"{path}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties and additionalProperties")
        if node.get("x-kubernetes-list-type") == "map":
            required = set(node["items"].get("required", []))
            if not set(node["x-kubernetes-list-map-keys"]) <= required:
                problems.append(f"{path}: list-map keys must be required")
    assert problems == []


def test_spec_values_are_bounded_for_cel_cost() -> None:
    # The API server estimates each rule's worst-case cost from these bounds and refuses
    # a CRD whose rules could cost too much; unbounded lists, maps and strings make that
    # estimate explode.
    unbounded = []
    for path, node in nodes(SPEC_SCHEMA, "spec"):
        kind = node.get("type")
        if kind == "array" and "maxItems" not in node:
            unbounded.append(f"{path}: maxItems")
        elif kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(f"{path}: maxProperties")
        elif (kind == "string" or node.get("x-kubernetes-int-or-string")) and not (
            "maxLength" in node or "enum" in node
        ):
            unbounded.append(f"{path}: maxLength")
    assert unbounded == []


def test_lists_checked_pairwise_stay_small() -> None:
    # A rule that compares every item with every other (duplicates) costs n^2: the API
    # server refuses a rule whose worst case exceeds its per-rule budget, and a request
    # whose rules exceed the per-call limit (1,000,000 cost units). 64 items keep the
    # worst case near 64^2 x ~25 = 100,000.
    pairwise = [
        (path, node["maxItems"])
        for path, node, rule in rules(SCHEMA)
        if node.get("type") == "array"
        and rule["rule"].count("self.") >= 2
        and re.search(r"\.(all|exists|exists_one)\(.*self\.(all|exists|exists_one)\(", rule["rule"])
    ]
    assert [p for p, _ in pairwise] == ["spec.addresses", "spec.nodePriorities"]
    assert all(limit <= 64 for _, limit in pairwise)


# --- the CEL rules themselves ------------------------------------------------------------

ALL_RULES = list(rules(SCHEMA))
RULE_IDS = [f"{path or 'root'}#{i}" for i, (path, _, _) in enumerate(ALL_RULES)]


@pytest.mark.parametrize(("path", "node", "rule"), ALL_RULES, ids=RULE_IDS)
def test_rule_compiles_and_has_a_message(
    path: str, node: Mapping[str, Any], rule: Mapping[str, Any]
) -> None:
    assert set(rule) <= {"rule", "message", "fieldPath"}, "reason / messageExpression untested"
    assert len(rule.get("message", "")) > 20
    assert "oldSelf" not in rule["rule"], "transition rules are not emulated"
    compile_rule(rule["rule"])  # raises on a syntax error


@pytest.mark.parametrize(("path", "node", "rule"), ALL_RULES, ids=RULE_IDS)
def test_rule_names_only_fields_of_the_schema(
    path: str, node: Mapping[str, Any], rule: Mapping[str, Any]
) -> None:
    # The API server type-checks rules; cel-python does not, and has(self.typo) would
    # silently hold. So: every self.a.b chain names fields at the rule's place.
    for chain in re.findall(r"\bself((?:\.\w+)+)(\(?)", rule["rule"]):
        names, call = chain[0].lstrip(".").split("."), chain[1]
        if call:
            names = names[:-1]  # self.x.startsWith(...): a method
        if path == "" and names[:1] == ["metadata"]:
            # At the root a rule sees metadata.name and metadata.generateName only.
            assert names[1:] in (["name"], ["generateName"]), names
            continue
        here = node
        for name in names:
            assert name in here.get("properties", {}), f"{path}: self.{'.'.join(names)}"
            here = here["properties"][name]
    if "fieldPath" in rule:
        target = rule["fieldPath"].lstrip(".")
        assert target in node.get("properties", {}), rule["fieldPath"]


# Constructs whose cost kube-apiserver's estimator cannot bound: it then assumes the worst
# (sizes up to 2^64) and refuses the whole CRD ("estimated rule cost exceeds budget").
# cel-python does not estimate costs, so these are checked by reading the rules.
COST_PITFALLS = {
    r"\bstring\(": "string(x) has no size bound: a concatenation or match on it has none",
    r"\.(split|filter|map)\(": "the items of a computed list may have no size bound",
    r"(ip|cidr)\(.*!=|!=.*(ip|cidr)\(": "!= on IP / CIDR values is costed as on unbounded "
    "strings (only == is special-cased): write !(a == b)",
}


@pytest.mark.parametrize(("path", "node", "rule"), ALL_RULES, ids=RULE_IDS)
def test_rule_avoids_unbounded_cost_estimates(
    path: str, node: Mapping[str, Any], rule: Mapping[str, Any]
) -> None:
    for pattern, why in COST_PITFALLS.items():
        assert not re.search(pattern, rule["rule"]), why
    # Map keys have no maxLength, so a rule that iterates a map's keys has no bound.
    if "additionalProperties" in node:
        assert not re.search(r"self\.(all|exists|exists_one)\(", rule["rule"]), path


def test_no_int_or_string_fields() -> None:
    # The estimator sizes an x-kubernetes-int-or-string value at the largest request
    # (3 MB) whatever its maxLength, so any string function on it costs millions.
    assert [p for p, n in nodes(SCHEMA) if n.get("x-kubernetes-int-or-string")] == []


def test_defaults_pass_their_own_rules() -> None:
    # The API server checks every default against the schema and the rules at its place,
    # as written: nested defaults are not filled in first (`preempt: default: {}` once made
    # every real cluster refuse the CRD, since `self.mode` was missing).
    for path, node in nodes(SCHEMA):
        if "default" in node:
            assert validate(node["default"], node, defaulting=False) == [], path


# --- the Kubernetes CEL functions emulated for cel-python -------------------------------


@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [
        ("isIP(self)", "192.168.77.1", True),
        ("isIP(self)", "fd00:77::1", True),
        ("isIP(self)", "192.168.77.1/24", False),
        ("isIP(self)", "192.168.077.1", False),  # leading zeros
        ("isIP(self)", "::ffff:192.168.77.1", False),  # IPv4-mapped
        ("isIP(self)", "fe80::1%eth0", False),  # zone
        ("isCIDR(self)", "192.168.77.100/24", True),  # host bits may be set
        ("isCIDR(self)", "192.168.77.100", False),
        ("isCIDR(self)", "192.168.77.100/024", False),
        ("isCIDR(self)", "192.168.77.100/255.255.255.0", False),
        ("isCIDR(self)", "192.168.77.100/33", False),
        ("cidr(self).ip() == ip('fd00::1')", "fd00::1/64", True),
        ("cidr(self).prefixLength()", "fd00::1/64", 64),
        ("cidr(self).masked() == cidr('10.0.0.0/8')", "10.1.2.3/8", True),
        ("cidr(self).containsIP('10.9.9.9')", "10.0.0.0/8", True),
        ("ip(self).family()", "fd00::1", 6),
        ("ip(self).isGlobalUnicast()", "10.0.0.1", True),  # Go counts private as global
        ("ip(self).isGlobalUnicast()", "255.255.255.255", False),
        ("ip(self).isGlobalUnicast()", "169.254.1.1", False),
        ("ip(self).isGlobalUnicast()", "ff02::12", False),
        ("ip(self).isLinkLocalUnicast()", "fe80::1", True),
        ("ip(self).isLinkLocalMulticast()", "224.0.0.18", True),
        ("ip(self).isLoopback()", "::1", True),
        ("ip(self).isUnspecified()", "0.0.0.0", True),
        ("duration(self) == duration('0s')", "0", True),  # Go accepts a bare 0
        ("duration(self).getMilliseconds()", "1m30.25s", 90250),  # total, as cel-go
        ("duration(self).getMilliseconds()", "40.95s", 40950),  # exact, no float rounding
        ("duration(self).getSeconds()", "1h", 3600),
        ("duration(self) < duration('1ms')", "999us", True),
        ("ip(self) == ip('fd00:0::1')", "fd00::1", True),  # values, not strings
    ],
)
def test_kubernetes_cel_functions(expression: str, value: Any, expected: Any) -> None:
    assert evaluate(expression, value) == expected


def test_invalid_duration_is_an_evaluation_error() -> None:
    with pytest.raises(celpy.CELEvalError):
        evaluate("duration(self) > duration('0s')", "1x")


# --- examples ---------------------------------------------------------------------------


def test_there_are_examples_of_both_kinds() -> None:
    assert len(STANDALONE_EXAMPLES) >= 4
    assert len(CLUSTER_EXAMPLES) >= 3


@pytest.mark.parametrize("doc", documents(STANDALONE_EXAMPLES + CLUSTER_EXAMPLES))
def test_example_is_accepted_by_the_crd(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "kubevrrp.io/v1alpha1"
    assert doc["kind"] == "VirtualIP"
    assert [str(v) for v in validate(doc, SCHEMA)] == []


@pytest.mark.parametrize("doc", documents(CLUSTER_EXAMPLES))
def test_cluster_example_is_written_for_a_cluster(doc: dict[str, Any]) -> None:
    spec = doc["spec"]
    assert "peers" not in spec, "the operator renders peers from the Nodes"
    assert "password" not in spec.get("authentication", {}), "use secretRef in a cluster"
    assert "namespace" in doc["metadata"]


@pytest.mark.parametrize("doc", documents(CLUSTER_EXAMPLES))
def test_cluster_example_is_accepted_by_the_model(doc: dict[str, Any]) -> None:
    # What the operator does with it: vrrpd.spec without the standalone rules.
    parse_virtualip(doc, standalone=False)


@pytest.mark.parametrize("doc", documents(STANDALONE_EXAMPLES + CLUSTER_EXAMPLES))
def test_api_server_defaults_change_nothing_the_model_sees(doc: dict[str, Any]) -> None:
    # Objects read from the API carry the CRD's defaults; the model must read them as it
    # reads the same object without them (the two sets of defaults agree).
    as_written = parse_virtualip(doc, standalone=False)
    as_stored = parse_virtualip(normalize(doc, SCHEMA), standalone=False)
    assert as_stored == as_written


# --- the CRD and the model describe the same fields -------------------------------------


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside Annotated / Optional / tuple[...] / dict[str, ...]."""
    while True:
        origin = get_origin(annotation)
        args = [a for a in get_args(annotation) if a is not type(None) and a is not Ellipsis]
        if origin in (Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
        elif origin is not None and args:
            annotation = args[-1] if origin is dict else args[0]
        else:
            break
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _models_and_schemas(
    model: type[BaseModel], schema: Mapping[str, Any], path: str
) -> Iterator[tuple[str, type[BaseModel], Mapping[str, Any]]]:
    """(path, model, CRD schema) for the spec and every model below it (list items too)."""
    yield path, model, schema
    properties = schema.get("properties", {})
    for name, info in model.model_fields.items():
        alias = info.alias or name
        sub_model = _model_of(info.annotation)
        if sub_model is None or alias not in properties:
            continue
        sub_schema = properties[alias]
        while sub_schema.get("type") == "array":
            sub_schema = sub_schema["items"]
        yield from _models_and_schemas(sub_model, sub_schema, f"{path}.{alias}")


MODELS_AND_SCHEMAS = list(_models_and_schemas(VirtualIPSpec, SPEC_SCHEMA, "spec"))


def _aliases(model: type[BaseModel], required_only: bool = False) -> set[str]:
    return {
        info.alias or name
        for name, info in model.model_fields.items()
        if info.is_required() or not required_only
    }


def test_spec_fields_are_the_models_fields() -> None:
    # The model has the tracking, notify and operator fields (docs/virtualip.md) too.
    assert set(SPEC_SCHEMA["properties"]) == _aliases(VirtualIPSpec)


def test_nested_models_are_all_compared() -> None:
    paths = {path for path, _, _ in MODELS_AND_SCHEMAS}
    assert {
        "spec.preempt",
        "spec.nodePriorities.nodeSelector.matchExpressions",
        "spec.authentication.secretRef",
        "spec.probes.http",
        "spec.notify.email",
        "spec.garp",
        "spec.serviceRef",
    } <= paths


@pytest.mark.parametrize(
    ("path", "model", "schema"), MODELS_AND_SCHEMAS, ids=[p for p, _, _ in MODELS_AND_SCHEMAS]
)
def test_crd_and_model_have_the_same_fields(
    path: str, model: type[BaseModel], schema: Mapping[str, Any]
) -> None:
    assert set(schema.get("properties", {})) == _aliases(model)
    assert set(schema.get("required", [])) == _aliases(model, required_only=True)


# --- what can never work is refused -----------------------------------------------------

BASE: dict[str, Any] = {
    "apiVersion": "kubevrrp.io/v1alpha1",
    "kind": "VirtualIP",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"addresses": ["192.168.77.100/24"]},
}
TCP = {"name": "haproxy", "tcp": {"port": 443}}
V4, V6 = "192.168.77.100/24", "fd00:77::100/64"


def virtualip(spec: Mapping[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["spec"].update(copy.deepcopy(dict(spec or {})))
    doc["metadata"].update(metadata)
    return doc


# (id, object, path of the violation, fragment of its message)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("vrid-0", virtualip({"vrid": 0}), "spec.vrid", "vrid must be 1..255"),
    ("vrid-0-schema", virtualip({"vrid": 0}), "spec.vrid", "greater than or equal to 1"),
    ("vrid-256", virtualip({"vrid": 256}), "spec.vrid", "vrid must be 1..255"),
    ("vrid-string", virtualip({"vrid": "51"}), "spec.vrid", "must be of type integer"),
    ("priority-0", virtualip({"priority": 0}), "spec.priority", "greater than or equal to 1"),
    ("priority-256", virtualip({"priority": 256}), "spec.priority", "less than or equal to 255"),
    (
        "owner-with-probes",
        virtualip({"priority": 255, "probes": [TCP]}),
        "spec.priority",
        "priority 255 (address owner) cannot be combined with probes",
    ),
    (
        "node-owner-with-probes",
        virtualip({"nodePriorities": [{"nodeName": "node-a", "priority": 255}], "probes": [TCP]}),
        "spec.nodePriorities",
        "nodePriorities with priority 255 (address owner) cannot be combined with probes",
    ),
    ("version-4", virtualip({"version": 4}), "spec.version", "Unsupported value: 4"),
    (
        "v2-with-ipv6",
        virtualip({"version": 2, "addresses": [V4, V6]}),
        "spec.version",
        "version 2 (VRRPv2) carries IPv4 addresses only",
    ),
    (
        "v2-sub-second",
        virtualip({"version": 2, "advertInterval": "500ms"}),
        "spec.advertInterval",
        "below 1s, the VRRPv2 minimum",
    ),
    (
        "v2-zero-seconds",
        virtualip({"version": 2, "advertInterval": "0"}),
        "spec.advertInterval",
        "below 1s, the VRRPv2 minimum",
    ),
    (
        "v2-fractional-seconds",
        virtualip({"version": 2, "advertInterval": "1500ms"}),
        "spec.advertInterval",
        "whole number of seconds for version 2",
    ),
    (
        "v2-over-255s",
        virtualip({"version": 2, "advertInterval": "256s"}),
        "spec.advertInterval",
        "whole number of seconds for version 2 (VRRPv2): 1s..255s",
    ),
    (
        "v3-not-10ms-steps",
        virtualip({"advertInterval": "15ms"}),
        "spec.advertInterval",
        "10ms..40.95s in 10 ms steps",
    ),
    (
        "v3-sub-millisecond",
        virtualip({"advertInterval": "1.0001s"}),
        "spec.advertInterval",
        "should match",
    ),
    (
        "v3-over-40.95s",
        virtualip({"advertInterval": "41s"}),
        "spec.advertInterval",
        "10ms..40.95s in 10 ms steps",
    ),
    (
        "interval-as-number",
        virtualip({"advertInterval": 1}),
        "spec.advertInterval",
        "must be of type string",
    ),
    (
        "interval-without-unit",
        virtualip({"advertInterval": "1"}),
        "spec.advertInterval",
        "should match",
    ),
    (
        "interval-boolean",
        virtualip({"advertInterval": True}),
        "spec.advertInterval",
        "must be of type string",
    ),
    (
        "delay-mode-without-delay",
        virtualip({"preempt": {"mode": "Delay"}}),
        "spec.preempt.delay",
        "mode: Delay needs a delay",
    ),
    (
        "delay-without-delay-mode",
        virtualip({"preempt": {"mode": "Never", "delay": "30s"}}),
        "spec.preempt.delay",
        "delay only applies to mode: Delay",
    ),
    (
        "delay-with-default-mode",
        virtualip({"preempt": {"delay": "30s"}}),
        "spec.preempt.delay",
        "delay only applies to mode: Delay",
    ),
    (
        "delay-over-an-hour",
        virtualip({"preempt": {"mode": "Delay", "delay": "2h"}}),
        "spec.preempt.delay",
        "delay must be 10ms..1h",
    ),
    (
        "preempt-mode-lowercase",
        virtualip({"preempt": {"mode": "never"}}),
        "spec.preempt.mode",
        'Unsupported value: "never"',
    ),
    (
        "preempt-keepalived-boolean",
        virtualip({"preempt": False}),
        "spec.preempt",
        "must be of type object",
    ),
    (
        "duplicate-address",
        virtualip({"addresses": [V4, "192.168.77.100/32"]}),
        "spec.addresses",
        "an address is listed twice",
    ),
    (
        "duplicate-address-spelled-differently",
        virtualip({"addresses": ["fd00::1/64", "FD00:0::1"]}),
        "spec.addresses",
        "an address is listed twice",
    ),
    (
        "no-address",
        virtualip({"addresses": []}),
        "spec.addresses",
        "should have at least 1 items",
    ),
    (
        "address-out-of-range",
        virtualip({"addresses": ["192.168.77.300/24"]}),
        "spec.addresses[0]",
        "must be an IP address with an optional prefix length",
    ),
    (
        "address-loopback",
        virtualip({"addresses": ["127.0.0.10/8"]}),
        "spec.addresses[0]",
        "must be a unicast host address",
    ),
    (
        "address-multicast",
        virtualip({"addresses": ["224.0.0.18"]}),
        "spec.addresses[0]",
        "must be a unicast host address",
    ),
    (
        "address-network",
        virtualip({"addresses": ["192.168.77.0/24"]}),
        "spec.addresses[0]",
        "is the network address of its subnet",
    ),
    (
        "address-subnet-router-anycast",
        virtualip({"addresses": ["fd00:77::/64"]}),
        "spec.addresses[0]",
        "is the network address of its subnet",
    ),
    (
        "address-ipv4-link-local",
        virtualip({"addresses": ["169.254.10.10/16"]}),
        "spec.addresses[0]",
        "must be a unicast host address",
    ),
    (
        "probe-two-checks",
        virtualip({"probes": [{**TCP, "icmp": {"host": "192.168.77.1"}}]}),
        "spec.probes[0]",
        "a probe runs exactly one check",
    ),
    (
        "probe-no-check",
        virtualip({"probes": [{"name": "haproxy", "interval": "2s"}]}),
        "spec.probes[0]",
        "a probe runs exactly one check",
    ),
    (
        "probe-timeout-over-interval",
        virtualip({"probes": [{**TCP, "interval": "1s", "timeout": "2s"}]}),
        "spec.probes[0].timeout",
        "timeout must not exceed interval",
    ),
    (
        "probe-timeout-over-default-interval",
        virtualip({"probes": [{**TCP, "timeout": "1500ms"}]}),
        "spec.probes[0].timeout",
        "timeout must not exceed interval",
    ),
    (
        "probe-interval-not-10ms-steps",
        virtualip({"probes": [{**TCP, "interval": "1005ms"}]}),
        "spec.probes[0].interval",
        "interval must be 10ms..1h in 10 ms steps",
    ),
    (
        "probe-timeout-zero",
        virtualip({"probes": [{**TCP, "timeout": "0"}]}),
        "spec.probes[0].timeout",
        "timeout must be 10ms..1h",
    ),
    (
        "file-probe-fall",
        virtualip({"probes": [{"name": "m", "file": {"path": "/run/m"}, "fall": 3}]}),
        "spec.probes[0]",
        "keepalived track_file has no rise or fall",
    ),
    (
        "group-notify-without-group",
        virtualip({"syncGroupNotify": {"master": ["/bin/n"]}}),
        "spec.syncGroupNotify",
        "syncGroupNotify notifies a sync group, but syncGroup is not set",
    ),
    (
        "probe-names-twice",
        virtualip({"probes": [TCP, {"name": "haproxy", "file": {"path": "/run/x"}}]}),
        "spec.probes[1]",
        'Duplicate value: {"name":"haproxy"}',
    ),
    (
        "probe-name-not-dns-label",
        virtualip({"probes": [{**TCP, "name": "HAProxy"}]}),
        "spec.probes[0].name",
        "should match",
    ),
    (
        "probe-weight-255",
        virtualip({"probes": [{**TCP, "weight": -255}]}),
        "spec.probes[0].weight",
        "greater than or equal to -254",
    ),
    (
        "probe-tcp-without-port",
        virtualip({"probes": [{"name": "haproxy", "tcp": {"host": "127.0.0.1"}}]}),
        "spec.probes[0].tcp.port",
        "Required value",
    ),
    (
        "probe-host-is-a-url",
        virtualip({"probes": [{"name": "web", "tcp": {"host": "http://web", "port": 80}}]}),
        "spec.probes[0].tcp.host",
        "must be an IP address or a DNS name",
    ),
    (
        "probe-insecure-skip-verify-with-http",
        virtualip({"probes": [{"name": "web", "http": {"insecureSkipVerify": True}}]}),
        "spec.probes[0].http.insecureSkipVerify",
        "insecureSkipVerify only applies to scheme: https",
    ),
    (
        "probe-expect-status-99",
        virtualip({"probes": [{"name": "web", "http": {"expectStatus": [99]}}]}),
        "spec.probes[0].http.expectStatus[0]",
        "greater than or equal to 100",
    ),
    (
        "probe-exec-empty-program",
        virtualip({"probes": [{"name": "check", "exec": {"command": [""]}}]}),
        "spec.probes[0].exec.command",
        "the first item is the program",
    ),
    (
        "authentication-with-v3",
        virtualip({"authentication": {"secretRef": {"name": "vip-auth", "key": "password"}}}),
        "spec.authentication",
        "authentication applies to version 2 only",
    ),
    (
        "authentication-password-and-secret",
        virtualip(
            {
                "version": 2,
                "authentication": {
                    "password": "lab-pass",
                    "secretRef": {"name": "vip-auth", "key": "password"},
                },
            }
        ),
        "spec.authentication",
        "they are mutually exclusive",
    ),
    (
        "authentication-empty",
        virtualip({"version": 2, "authentication": {}}),
        "spec.authentication",
        "set exactly one of password",
    ),
    (
        "password-over-8-bytes",
        virtualip({"version": 2, "authentication": {"password": "pässwört"}}),
        "spec.authentication.password",
        "a VRRPv2 PASS password is 1..8 bytes",
    ),
    (
        "secret-ref-without-key",
        virtualip({"version": 2, "authentication": {"secretRef": {"name": "vip-auth"}}}),
        "spec.authentication.secretRef.key",
        "Required value",
    ),
    (
        "node-priority-name-and-selector",
        virtualip(
            {
                "nodePriorities": [
                    {"nodeName": "node-a", "nodeSelector": {"matchLabels": {}}, "priority": 150}
                ]
            }
        ),
        "spec.nodePriorities[0]",
        "set exactly one of nodeName or nodeSelector",
    ),
    (
        "node-priority-neither",
        virtualip({"nodePriorities": [{"priority": 150}]}),
        "spec.nodePriorities[0]",
        "set exactly one of nodeName or nodeSelector",
    ),
    (
        "node-priority-twice",
        virtualip(
            {
                "nodePriorities": [
                    {"nodeName": "node-a", "priority": 150},
                    {"nodeName": "node-a", "priority": 120},
                ]
            }
        ),
        "spec.nodePriorities",
        "a nodeName is listed twice",
    ),
    (
        "selector-in-without-values",
        virtualip({"nodeSelector": {"matchExpressions": [{"key": "zone", "operator": "In"}]}}),
        "spec.nodeSelector.matchExpressions[0]",
        "operators In and NotIn need at least one value",
    ),
    (
        "selector-exists-with-values",
        virtualip(
            {
                "nodeSelector": {
                    "matchExpressions": [{"key": "zone", "operator": "Exists", "values": ["a"]}]
                }
            }
        ),
        "spec.nodeSelector.matchExpressions[0]",
        "operators Exists and DoesNotExist take no values",
    ),
    (
        "label-without-ipv4",
        virtualip({"addresses": [V6], "label": "eth0:vip"}),
        "spec.label",
        "label applies to IPv4 addresses only",
    ),
    (
        "label-not-on-interface",
        virtualip({"interface": "eth0", "label": "eth1:vip"}),
        "spec.label",
        "label must start with the interface name",
    ),
    (
        "interface-too-long",
        virtualip({"interface": "enp0s31f6.100-vip"}),
        "spec.interface",
        "Too long: may not be more than 15 bytes",
    ),
    ("interface-with-colon", virtualip({"interface": "eth0:1"}), "spec.interface", "should match"),
    ("interface-dot", virtualip({"interface": "."}), "spec.interface", "should match"),
    (
        "peer-with-prefix",
        virtualip({"peers": [{"nodeName": "node-a", "address": "192.168.77.11/24"}]}),
        "spec.peers[0].address",
        "must be an IP address without a prefix length",
    ),
    (
        "address-interface-with-prefix",
        virtualip({"addressInterfaces": [{"address": "192.168.77.100/24", "interface": "eth1"}]}),
        "spec.addressInterfaces[0].address",
        "must be an IP address of spec.addresses without its prefix length",
    ),
    (
        "address-interface-twice",
        virtualip(
            {
                "addressInterfaces": [
                    {"address": "192.168.77.100", "interface": "eth1"},
                    {"address": "192.168.77.100", "interface": "eth2"},
                ]
            }
        ),
        "spec.addressInterfaces[1]",
        "Duplicate value",
    ),
    (
        "vmac-with-ipv6",
        virtualip({"useVmac": True, "addresses": [V4, V6]}),
        "spec.useVmac",
        "useVmac is for IPv4 addresses only",
    ),
    (
        "vmac-with-label",
        virtualip({"useVmac": True, "interface": "eth0", "label": "eth0:vip"}),
        "spec.useVmac",
        "where label cannot go",
    ),
    (
        "route-to-an-address",
        virtualip({"routes": [{"to": "10.1.0.1", "via": "192.168.77.1"}]}),
        "spec.routes[0].to",
        "must be a network with a prefix length",
    ),
    (
        "route-via-a-network",
        virtualip({"routes": [{"to": "10.1.0.0/16", "via": "192.168.77.1/24"}]}),
        "spec.routes[0].via",
        "must be an IP address without a prefix length",
    ),
    (
        "rule-matching-nothing",
        virtualip({"rules": [{"table": 2}]}),
        "spec.rules[0]",
        "a rule needs from, to or both",
    ),
    (
        "route-type-unknown",
        virtualip({"routes": [{"to": "10.1.0.0/16", "type": "blackhole"}]}),
        "spec.routes[0].type",
        "Unsupported value",
    ),
    (
        "track-interface-twice",
        virtualip({"trackInterfaces": ["eth1", "eth1"]}),
        "spec.trackInterfaces[1]",
        'Duplicate value: "eth1"',
    ),
    ("readiness-ready", virtualip({"readiness": "Ready"}), "spec.readiness", "Unsupported value"),
    ("sync-group-uppercase", virtualip({"syncGroup": "Edge"}), "spec.syncGroup", "should match"),
    (
        "service-name-starts-with-digit",
        virtualip({"serviceRef": {"name": "1ngress"}}),
        "spec.serviceRef.name",
        "should match",
    ),
    (
        "notify-nothing",
        virtualip({"notify": {"timeout": "5s"}}),
        "spec.notify",
        "nothing to notify",
    ),
    (
        "notify-relative-script",
        virtualip({"notify": {"master": ["notify.sh", "master"]}}),
        "spec.notify.master",
        "the first item is the program's absolute path",
    ),
    (
        "notify-script-as-string",
        virtualip({"notify": {"master": "/usr/local/bin/notify.sh master"}}),
        "spec.notify.master",
        "must be of type array",
    ),
    (
        "webhook-not-http",
        virtualip({"notify": {"webhook": {"url": "ftp://hooks.example.test/"}}}),
        "spec.notify.webhook.url",
        "url must be an http:// or https:// URL",
    ),
    (
        "webhook-without-host",
        virtualip({"notify": {"webhook": {"url": "http:///vrrp"}}}),
        "spec.notify.webhook.url",
        "url must be an http:// or https:// URL with a host",
    ),
    (
        "webhook-retries-11",
        virtualip({"notify": {"webhook": {"url": "http://h.test/", "retries": 11}}}),
        "spec.notify.webhook.retries",
        "less than or equal to 10",
    ),
    (
        "webhook-timeout-10m",
        virtualip({"notify": {"webhook": {"url": "http://h.test/", "timeout": "10m"}}}),
        "spec.notify.webhook.timeout",
        "timeout must be 10ms..5m",
    ),
    (
        "notify-timeout-2h",
        virtualip({"notify": {"all": ["/bin/true"], "timeout": "2h"}}),
        "spec.notify.timeout",
        "timeout must be 10ms..1h",
    ),
    (
        "email-connect-timeout-10m",
        virtualip(
            {
                "notify": {
                    "email": {
                        "to": ["ops@example.test"],
                        "from": "vrrp@example.test",
                        "smtpServer": "127.0.0.1",
                        "connectTimeout": "10m",
                    }
                }
            }
        ),
        "spec.notify.email.connectTimeout",
        "connectTimeout must be 10ms..5m",
    ),
    (
        "garp-repeat-0",
        virtualip({"garp": {"masterRepeat": 0}}),
        "spec.garp.masterRepeat",
        "greater than or equal to 1",
    ),
    (
        "garp-delay-2h",
        virtualip({"garp": {"masterDelay": "2h"}}),
        "spec.garp.masterDelay",
        "masterDelay must be 0s..1h",
    ),
    (
        "garp-interval-11s",
        virtualip({"garp": {"interval": "11s"}}),
        "spec.garp.interval",
        "interval must be 0s..10s",
    ),
    (
        "garp-refresh-25h",
        virtualip({"garp": {"masterRefresh": "25h"}}),
        "spec.garp.masterRefresh",
        "masterRefresh must be 0s..24h",
    ),
    (
        "unknown-field",
        virtualip({"advertInterva": "1s"}),
        "spec",
        'unknown field "spec.advertInterva"',
    ),
    (
        "unknown-nested-field",
        virtualip({"preempt": {"mode": "Never", "nopreempt": True}}),
        "spec.preempt",
        'unknown field "spec.preempt.nopreempt"',
    ),
    (
        "name-not-dns-label",
        virtualip(name="web.vip"),
        "",
        "metadata.name must be a DNS-1123 label",
    ),
]


@functools.cache
def refusals(case: str) -> list[Violation]:
    """What the API server says about INVALID[case] (computed once: CEL in Python is slow)."""
    (obj,) = [c[1] for c in INVALID if c[0] == case]
    return validate(obj, SCHEMA)


@pytest.mark.parametrize(
    ("case", "path", "fragment"), [(c[0], *c[2:]) for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_object_is_refused_with_a_readable_message(
    case: str, path: str, fragment: str
) -> None:
    found = refusals(case)
    assert [v for v in found if v.source == "cel-error"] == []
    assert any(v.path == path and fragment in v.message for v in found), [str(v) for v in found]


# Where the API is deliberately stricter than vrrpd.spec (which also reads standalone
# files written with keepalived habits). strict xfail: when the model catches up, the
# entry must go.
STRICTER_THAN_THE_MODEL = {
    "interval-as-number": "API durations are strings; the model also takes seconds as numbers",
}


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(
            c[1],
            id=c[0],
            marks=[pytest.mark.xfail(strict=True, reason=STRICTER_THAN_THE_MODEL[c[0]])]
            if c[0] in STRICTER_THAN_THE_MODEL
            else [],
        )
        for c in INVALID
    ],
)
def test_invalid_object_is_refused_by_the_model_too(obj: dict[str, Any]) -> None:
    # Whatever the API server refuses, the operator's model refuses too (and so does the
    # daemon): one definition of a valid VirtualIP.
    with pytest.raises(ConfigError):
        parse_virtualip(obj, standalone=False)


# What only the model checks: rules the API server's CEL cost estimator cannot bound
# (map keys), or that CEL cannot express simply (broadcast addresses). The API server
# accepts these; vrrpd.spec refuses them when the operator reads the object.
LEFT_TO_THE_MODEL = [
    ("label-key", virtualip({"nodeSelector": {"matchLabels": {"-role": "edge"}}})),
    (
        "label-key-in-node-priority",
        virtualip(
            {"nodePriorities": [{"nodeSelector": {"matchLabels": {"a b": "x"}}, "priority": 9}]}
        ),
    ),
    (
        "environment-name",
        virtualip({"probes": [{"name": "c", "exec": {"command": ["true"], "env": {"A=B": "1"}}}]}),
    ),
    ("broadcast-address", virtualip({"addresses": ["192.168.77.255/24"]})),
    (
        "route-host-bits",
        virtualip({"routes": [{"to": "10.1.0.1/16", "via": "192.168.77.1"}]}),
    ),
    (
        "route-of-a-family-without-addresses",
        virtualip({"routes": [{"to": "fd00:1::/64", "interface": "eth1"}]}),
    ),
    ("route-going-nowhere", virtualip({"routes": [{"to": "10.1.0.0/16"}]})),
    (
        "rule-of-two-families",
        virtualip({"rules": [{"from": "10.0.0.0/8", "to": "fd00::/8", "table": 2}]}),
    ),
    (
        "address-interface-not-listed",
        virtualip({"addressInterfaces": [{"address": "192.168.77.9", "interface": "eth1"}]}),
    ),
]


@pytest.mark.parametrize("obj", [pytest.param(o, id=i) for i, o in LEFT_TO_THE_MODEL])
def test_left_to_the_model(obj: dict[str, Any]) -> None:
    accepted = validate(obj, SCHEMA)
    with pytest.raises(ConfigError):
        parse_virtualip(obj, standalone=False)
    assert accepted == []


def test_invalid_table_is_large_and_ids_unique() -> None:
    ids = [c[0] for c in INVALID]
    assert len(ids) >= 20
    assert len(set(ids)) == len(ids)


def test_every_rule_is_exercised_by_the_invalid_table() -> None:
    fired = {v.message for case, *_ in INVALID for v in refusals(case)}
    never = {rule["message"] for _, _, rule in ALL_RULES} - fired
    assert never == set()


def test_a_valid_object_with_every_field_is_accepted() -> None:
    # The opposite of the table: the same fields, with values that work.
    doc = virtualip(
        {
            "addresses": [V4, V6, "fe80::100/64", "10.0.0.0/31", "192.168.78.1"],
            "vrid": 51,
            "advertInterval": "40.95s",
            "interface": "eth0",
            "label": "eth0:vip",
            "priority": 254,
            "nodePriorities": [
                {"nodeName": "node-a", "priority": 1},
                {"nodeSelector": {"matchLabels": {"kubernetes.io/os": "linux"}}, "priority": 9},
            ],
            "preempt": {"mode": "Delay", "delay": "1m30s"},
            "accept": False,
            "unicast": True,
            "garp": {"masterDelay": "0", "masterRepeat": 255, "interval": "10ms"},
            "nodeSelector": {
                "matchLabels": {"node-role.kubernetes.io/edge": ""},
                "matchExpressions": [
                    {"key": "zone", "operator": "NotIn", "values": ["a"]},
                    {"key": "gpu", "operator": "DoesNotExist"},
                ],
            },
            "serviceRef": {"name": "ingress"},
            "readiness": "Master",
            "trackInterfaces": ["eth1", "bond0.100"],
            "addressInterfaces": [{"address": "192.168.78.1", "interface": "eth2"}],
            "routes": [
                {"to": "0.0.0.0/0", "via": "192.168.77.1", "table": 100, "metric": 5},
                {"to": "fd00:99::/64", "interface": "eth1", "source": "fd00:77::100"},
                {"to": "10.9.0.0/16", "type": "Blackhole"},
            ],
            "rules": [
                {"from": "192.168.77.0/24", "to": "10.0.0.0/8", "table": 100, "priority": 100},
                {"to": "fd00:99::/64", "table": 4294967295},
            ],
            "probes": [
                {**TCP, "interval": "10ms", "timeout": "10ms", "rise": 255, "weight": 254},
                {"name": "exec", "exec": {"command": ["check"], "env": {"PORT": "8080"}}},
                {
                    "name": "web",
                    "http": {
                        "scheme": "https",
                        "host": "backend.example.test",
                        "port": 8443,
                        "path": "/healthz?full=1",
                        "hostHeader": "[fd00::1]:8443",
                        "expectStatus": [200, 204],
                        "bodyContains": "ok",
                        "bodySha256": "A" * 64,
                        "insecureSkipVerify": True,
                    },
                },
                {"name": "gateway", "icmp": {"host": "fd00:77::1"}},
                {"name": "drain", "file": {"path": "/run/vrrp/maintenance"}},
                {"name": "uplink", "interface": {"name": "eth1"}, "weight": -10},
            ],
            "syncGroup": "edge",
            "notify": {
                "master": ["/usr/local/bin/notify.sh", "master"],
                "backup": ["/bin/true"],
                "fault": ["/bin/true"],
                "stop": ["/bin/true"],
                "all": ["/bin/true"],
                "timeout": "1h",
                "webhook": {"url": "https://hooks.example.test:8443/vrrp?x=1", "retries": 0},
                "email": {
                    "to": ["ops@example.test", "noc@example.test"],
                    "from": "vrrp@example.test",
                    "smtpServer": "[fd00::25]:25",
                    "connectTimeout": "5m",
                },
            },
        }
    )
    assert [str(v) for v in validate(doc, SCHEMA)] == []
    parse_virtualip(doc, standalone=False)


def test_version_2_accepts_whole_seconds() -> None:
    for interval in ("1s", "255s", "4m15s", "2000ms", "1.000s"):
        doc = virtualip({"version": 2, "advertInterval": interval})
        assert validate(doc, SCHEMA) == [], interval


def test_status_is_accepted_as_the_operator_writes_it() -> None:
    doc = virtualip()
    doc["status"] = {
        "vrid": 51,
        "master": "node-a",
        "nodes": [
            {
                "name": "node-a",
                "state": "MASTER",
                "basePriority": 150,
                "effectivePriority": 150,
                "healthy": True,
                "since": "2026-01-02T03:04:05Z",
                "reason": "",
            },
            {"name": "node-b", "state": "BACKUP", "basePriority": 100, "effectivePriority": 40},
        ],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "reason": "MasterElected",
                "message": "node-a holds 192.168.77.100",
            }
        ],
        "transitions": 7,
        "observedGeneration": 3,
    }
    assert validate(doc, SCHEMA) == []
    doc["status"]["nodes"][1]["name"] = "node-a"
    assert [v.message for v in validate(doc, SCHEMA)] == ['Duplicate value: {"name":"node-a"}']


def test_null_means_absent_and_defaults_fill_in() -> None:
    doc = virtualip({"vrid": None, "preempt": None, "probes": [{**TCP, "timeout": None}]})
    stored = normalize(doc, SCHEMA)["spec"]
    assert "vrid" not in stored
    assert stored["preempt"] == {"mode": "Always"}
    assert stored["version"] == 3
    assert stored["advertInterval"] == "1s"
    assert stored["probes"][0] == {**TCP, "tcp": {"host": "127.0.0.1", "port": 443}} | {
        "interval": "1s",
        "rise": 1,
        "fall": 1,
        "weight": 0,
    }
    assert validate(doc, SCHEMA) == []


def test_violation_reads_as_kubectl_prints_it() -> None:
    found, skipped = validate(virtualip({"vrid": "x"}), SCHEMA)
    assert str(found) == 'spec.vrid: spec.vrid in body must be of type integer: "x"'
    assert found == Violation(
        "spec.vrid", 'spec.vrid in body must be of type integer: "x"', "schema"
    )
    # A type error keeps the rules from running, as in kube-apiserver.
    assert skipped == Violation("", CEL_SKIPPED, "schema")


@pytest.mark.parametrize(
    "spec",
    [
        {"readiness": "Ready"},  # enum
        {"vrid": "51"},  # type
        {"interface": "a-very-long-interface"},  # maxLength
        {"trackInterfaces": [f"eth{i}" for i in range(33)]},  # maxItems
        {"serviceRef": {}},  # required
    ],
)
def test_shape_errors_keep_the_rules_from_running(spec: dict[str, Any]) -> None:
    found = validate(virtualip({"vrid": 0, **spec}), SCHEMA)
    assert found[-1].message == CEL_SKIPPED
    assert "vrid must be 1..255 (an 8-bit field; 0 is reserved)" not in [v.message for v in found]


def test_range_and_pattern_errors_do_not_keep_the_rules_from_running() -> None:
    checked = validate(virtualip({"vrid": 0, "syncGroup": "Edge"}), SCHEMA)
    assert [v.message for v in checked][-1] == "vrid must be 1..255 (an 8-bit field; 0 is reserved)"
