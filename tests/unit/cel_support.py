"""Validate objects against a CRD's schema as the API server would, without an API server.

What kube-apiserver does on create, in that order, and what stands in for it here:

1. drops null values of non-nullable fields and fills in `default`s (`normalize`);
2. structural checks: x-kubernetes-list-type set / map entries are unique;
3. OpenAPI v3 validation of the structural schema (`jsonschema`, with the schema turned
   into JSON Schema by `to_json_schema`; unknown fields are errors, as with kubectl's
   default strict field validation), messages in kube-openapi's words;
4. every `x-kubernetes-validations` rule, with `self` bound to the value at the rule's
   place, evaluated by cel-python (`celpy`) plus the Kubernetes CEL functions the CRD
   uses and cel-python lacks (`K8S_FUNCTIONS`: the IP and CIDR libraries, `split` of the
   strings extension, and `duration()` with Go's syntax and precision).

A schema error of type, enum, required, maxLength, maxItems or maxProperties keeps the
rules from running, as in kube-apiserver (`hasBlockingErr`). A rule that fails to
evaluate is reported with source "cel-error": the API server would refuse the object
too, but with a message nobody can act on, so rules are written not to fail on values
the schema already refuses (a pattern guard before `duration()`, `has()` first).

Not emulated: CEL type checking and cost estimation (only a real API server does those;
test_crd reads the rules for names the schema lacks and for constructs the estimator
cannot bound), transition rules (`oldSelf`), `messageExpression`, formats.

A cel-python quirk to keep in mind: an error inside an `exists_one` or `filter` body is
raised, not absorbed by a surrounding `||` / `&&` as CEL requires; guard with a ternary
(`has(a.x) ? self.exists_one(...) : true`), which both evaluate lazily.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel

Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Violation:
    """One reason the API server would refuse an object: where, what, and who said so."""

    path: str  # "spec.preempt.delay", "spec.probes[0]"
    message: str
    source: str  # "schema", "cel", or "cel-error" (a rule that failed to evaluate: a bug)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def load_crd(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        crd: dict[str, Any] = yaml.safe_load(handle)
    return crd


def version_schema(crd: Mapping[str, Any], version: str) -> dict[str, Any]:
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"the CRD has no version {version}")


def validate(obj: Any, schema: Schema, *, defaulting: bool = True) -> list[Violation]:
    """Every violation the API server would report for `obj` (a whole object), in order:
    structural, schema, then CEL. `obj` is not changed. `defaulting=False` checks `obj` as
    it is, as the API server checks a schema's `default` values (nested defaults unfilled).
    """
    value = normalize(obj, schema) if defaulting else copy.deepcopy(obj)
    found = list(_list_type_violations(schema, value, ""))
    schema_found, blocking = _schema_violations(schema, value)
    found += schema_found
    if blocking:
        found.append(Violation("", CEL_SKIPPED, "schema"))
    else:
        found += _cel_violations(schema, value, "")
    return found


CEL_SKIPPED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


# --- 1. defaulting ----------------------------------------------------------------------


def normalize(obj: Any, schema: Schema) -> Any:
    """A copy of `obj` as the API server stores it: nulls of non-nullable fields dropped,
    defaults filled in (recursively, also inside defaulted values)."""
    value = copy.deepcopy(obj)
    _apply_defaults(schema, value)
    return value


def _apply_defaults(schema: Schema, value: Any) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in [k for k, v in value.items() if v is None]:
            if not properties.get(key, {}).get("nullable", False):
                del value[key]
        for key, sub in properties.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, item in value.items():
                if key not in properties:
                    _apply_defaults(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _apply_defaults(schema["items"], item)


# --- 2. list types ----------------------------------------------------------------------


def _list_type_violations(schema: Schema, value: Any, path: str) -> Iterator[Violation]:
    if not _type_matches(schema, value):
        return
    if isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if list_type == "set":
                key = json.dumps(item, sort_keys=True, separators=(",", ":"))
            elif list_type == "map" and isinstance(item, Mapping):
                keys = schema.get("x-kubernetes-list-map-keys", [])
                key = json.dumps(
                    {k: item.get(k) for k in keys}, sort_keys=True, separators=(",", ":")
                )
            else:
                key = None
            if key is not None:
                if key in seen:
                    yield Violation(f"{path}[{i}]", f"Duplicate value: {key}", "schema")
                seen.add(key)
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                yield from _list_type_violations(schema["items"], item, f"{path}[{i}]")
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                yield from _list_type_violations(sub, item, _join(path, key))


# --- 3. OpenAPI schema ------------------------------------------------------------------

_DROPPED_KEYWORDS = {"description", "default", "nullable", "format", "example", "externalDocs"}


def to_json_schema(schema: Schema) -> dict[str, Any]:
    """The structural schema as JSON Schema (draft 4, which OpenAPI v3.0 follows).

    x-kubernetes-int-or-string becomes anyOf integer | string; nullable adds "null";
    an object with properties and neither additionalProperties nor
    x-kubernetes-preserve-unknown-fields rejects unknown fields (kubectl's default
    --validate=strict); other x-kubernetes-* extensions have no JSON Schema meaning.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYWORDS or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=8)
def _validator(schema_json: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(to_json_schema(json.loads(schema_json)))


# The schema errors after which kube-apiserver does not run the rules (strategy.go's
# hasBlockingErr: TypeInvalid, NotSupported, Required, TooLong, TooMany): the object does
# not have the shape the rules were written for.
_BLOCKING = {"type", "anyOf", "enum", "required", "maxLength", "maxItems", "maxProperties"}


def _schema_violations(schema: Schema, value: Any) -> tuple[list[Violation], bool]:
    """The schema's violations, and whether any of them keeps the CEL rules from running."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    found = []
    blocking = False
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        found.extend(_kube_message(error, _path(error.absolute_path)))
        blocking = blocking or error.validator in _BLOCKING
    return found, blocking


def _kube_message(error: jsonschema.ValidationError, path: str) -> list[Violation]:
    """kube-openapi's wording for a jsonschema error (what kubectl shows)."""
    kind, expected, instance = error.validator, error.validator_value, error.instance
    where = f"{path} in body" if path else "body"
    if kind == "required":
        missing = [name for name in expected if name not in instance]
        return [Violation(_join(path, name), "Required value", "schema") for name in missing]
    if kind == "additionalProperties":
        known = error.schema.get("properties", {})
        unknown = [name for name in instance if name not in known]
        return [
            Violation(path, f'unknown field "{_join(path, name)}"', "schema") for name in unknown
        ]
    messages = {
        "type": lambda: f"{where} must be of type {expected}: {_show(instance)}",
        "anyOf": lambda: f"{where} must be of type integer or string: {_show(instance)}",
        "enum": lambda: (
            f"Unsupported value: {_show(instance)}: supported values: "
            + ", ".join(_show(v) for v in expected)
        ),
        "minimum": lambda: f"{where} should be greater than or equal to {expected}",
        "maximum": lambda: f"{where} should be less than or equal to {expected}",
        "minLength": lambda: f"{where} should be at least {expected} chars long",
        # kube-apiserver 1.36's wording for strings (checked on the real server, tests/realapi)
        "maxLength": lambda: f"Too long: may not be more than {expected} bytes",
        "pattern": lambda: f"{where} should match '{expected}'",
        "minItems": lambda: f"{where} should have at least {expected} items",
        "maxItems": lambda: f"Too many: {len(instance)}: must have at most {expected} items",
        "maxProperties": lambda: f"{where} should have at most {expected} properties",
    }
    text = messages[kind]() if kind in messages else error.message
    return [Violation(path, text, "schema")]


def _show(value: Any) -> str:
    return json.dumps(value)


# --- 4. CEL rules -----------------------------------------------------------------------


def _cel_violations(schema: Schema, value: Any, path: str) -> list[Violation]:
    """Evaluate the rules at this node (the value is present and of the schema's type, as
    the API server requires) and below it."""
    if value is None or not _type_matches(schema, value):
        return []
    found: list[Violation] = []
    for rule in schema.get("x-kubernetes-validations", []):
        where = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
        try:
            result = evaluate(rule["rule"], value)
        except celpy.CELEvalError as exc:
            found.append(Violation(path, f"rule {rule['rule']!r} failed: {exc}", "cel-error"))
            continue
        if not isinstance(result, bool | celtypes.BoolType):
            found.append(Violation(path, f"rule {rule['rule']!r} gave {result!r}", "cel-error"))
        elif not result:
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            found.append(Violation(where.lstrip("."), message, "cel"))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                found += _cel_violations(sub, item, _join(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            found += _cel_violations(schema["items"], item, f"{path}[{i}]")
    return found


def rules(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema, Mapping[str, Any]]]:
    """Every (path, schema node, rule) of the schema; list items as "[]", map values "{}"."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, schema, rule
    for name, sub in schema.get("properties", {}).items():
        yield from rules(sub, _join(path, name))
    if isinstance(schema.get("items"), Mapping):
        yield from rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from rules(schema["additionalProperties"], f"{path}{{}}")


def evaluate(rule: str, value: Any) -> Any:
    """`rule` with `self` bound to `value` (plain JSON data). Raises celpy.CELEvalError
    when the rule does not compile or fails at run time."""
    result = compile_rule(rule).evaluate({"self": json_to_cel(value)})
    if isinstance(result, celpy.CELEvalError):
        raise result
    return result


_ENVIRONMENT = celpy.Environment()


@functools.lru_cache(maxsize=512)
def compile_rule(rule: str) -> celpy.Runner:
    """The rule, parsed and bound to K8S_FUNCTIONS; raises celpy.CELEvalError when it does
    not parse (cel-python does not type-check)."""
    try:
        ast = _ENVIRONMENT.compile(rule)
    except celpy.CELParseError as exc:
        raise celpy.CELEvalError(f"does not compile: {exc}") from None
    return _ENVIRONMENT.program(ast, functions=K8S_FUNCTIONS)


# --- Kubernetes CEL functions that cel-python lacks -------------------------------------
#
# cel-python calls a method x.f(a) as the function f(x, a), so a name serves both forms:
# `ip("10.0.0.1")` parses, `cidr("10.0.0.0/8").ip()` takes the prefix's address.


class IP:
    """A value of the Kubernetes CEL type net.IP (k8s.io/apiserver/pkg/cel/library/ip.go)."""

    def __init__(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        self.address = address

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IP) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def __repr__(self) -> str:
        return f"ip({str(self.address)!r})"


class CIDR:
    """A value of the Kubernetes CEL type net.CIDR: an address and a prefix length."""

    def __init__(self, interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        self.interface = interface

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CIDR) and str(other.interface) == str(self.interface)

    def __hash__(self) -> int:
        return hash(str(self.interface))

    def __repr__(self) -> str:
        return f"cidr({str(self.interface)!r})"


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Go's netip.ParseAddr as Kubernetes uses it: no zone, no IPv4-mapped IPv6, no leading
    zeros in IPv4 (Python's parser rejects those too)."""
    if "%" in text:
        raise ValueError(f"IP address with zone value is not allowed: {text}")
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise ValueError(f"IPv4-mapped IPv6 address is not allowed: {text}")
    return address


def _parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """Go's netip.ParsePrefix: address/bits, bits in decimal without leading zeros."""
    address, slash, bits = text.partition("/")
    if not slash or not re.fullmatch(r"0|[1-9][0-9]{0,2}", bits):
        raise ValueError(f"network address parse error: {text}")
    _parse_ip(address)
    return ipaddress.ip_interface(text)


def _is_ip(text: str) -> celtypes.BoolType:
    try:
        _parse_ip(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _is_cidr(text: str) -> celtypes.BoolType:
    try:
        _parse_cidr(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _ip(value: Any) -> IP:
    if isinstance(value, CIDR):  # cidr(...).ip()
        return IP(value.interface.ip)
    return IP(_parse_ip(str(value)))


def _cidr(value: Any) -> CIDR:
    return CIDR(_parse_cidr(str(value)))


_V4_LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
_V6_LINK_LOCAL = ipaddress.ip_network("fe80::/10")
_V4_LINK_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")
_V6_LINK_LOCAL_MULTICAST = ipaddress.ip_network("ff02::/16")
_V4_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _is_link_local_unicast(ip: IP) -> celtypes.BoolType:
    a = ip.address
    network = _V4_LINK_LOCAL if a.version == 4 else _V6_LINK_LOCAL
    return celtypes.BoolType(a in network)


def _is_link_local_multicast(ip: IP) -> celtypes.BoolType:
    a = ip.address
    network = _V4_LINK_LOCAL_MULTICAST if a.version == 4 else _V6_LINK_LOCAL_MULTICAST
    return celtypes.BoolType(a in network)


def _is_global_unicast(ip: IP) -> celtypes.BoolType:
    """Go's netip.Addr.IsGlobalUnicast: private ranges and ULAs count as global."""
    a = ip.address
    return celtypes.BoolType(
        not a.is_unspecified
        and a != _V4_BROADCAST
        and not a.is_loopback
        and not a.is_multicast
        and not _is_link_local_unicast(ip)
    )


def _contains_ip(cidr: CIDR, other: Any) -> celtypes.BoolType:
    ip = other if isinstance(other, IP) else _ip(other)
    return celtypes.BoolType(ip.address in cidr.interface.network)


def _masked(cidr: CIDR) -> CIDR:
    return CIDR(ipaddress.ip_interface(str(cidr.interface.network)))


_GO_DURATION_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,  # Go accepts the micro sign and the Greek letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def _duration(value: Any) -> celtypes.DurationType:
    """CEL duration() as cel-go implements it: Go's time.ParseDuration ("1.5s", "1m30s",
    "100ms", "0"), exact to the nanosecond (cel-python's own parse goes through floats and
    rejects "0")."""
    if isinstance(value, celtypes.DurationType):
        return value
    text = str(value)
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return celtypes.DurationType(timedelta(0))
    parts = _GO_DURATION_PART.findall(body)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        raise ValueError(f"invalid duration {text!r}")
    nanos = int(sum(Decimal(number) * _GO_UNIT_NS[unit] for number, unit in parts))
    return celtypes.DurationType(timedelta(microseconds=sign * nanos // 1000))


K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isIP": _is_ip,
    "ip": _ip,
    "isCIDR": _is_cidr,
    "cidr": _cidr,
    "family": lambda ip: celtypes.IntType(ip.address.version),
    "isUnspecified": lambda ip: celtypes.BoolType(ip.address.is_unspecified),
    "isLoopback": lambda ip: celtypes.BoolType(ip.address.is_loopback),
    "isLinkLocalUnicast": _is_link_local_unicast,
    "isLinkLocalMulticast": _is_link_local_multicast,
    "isGlobalUnicast": _is_global_unicast,
    "containsIP": _contains_ip,
    "prefixLength": lambda cidr: celtypes.IntType(cidr.interface.network.prefixlen),
    "masked": _masked,
    "duration": _duration,
    # The strings extension (cel-go ext.Strings): "a-b".split("-") == ["a", "b"].
    "split": lambda text, separator: celtypes.ListType(
        celtypes.StringType(part) for part in str(text).split(str(separator))
    ),
}


# --- helpers ----------------------------------------------------------------------------


def _type_matches(schema: Schema, value: Any) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    expected = schema.get("type")
    if expected is None:
        return True
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    return checks[expected](value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, str(part))
    return out
