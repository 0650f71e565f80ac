"""The VirtualIP spec (kubevrrp.io/v1alpha1): one validated model for the CRD, operator and daemon.

`load_manifests` parses a standalone file (one or several YAML documents) into VirtualIP
objects; `instances_for_node` resolves them for one node into concrete `InstanceConfig`s,
one per VirtualIP and address family. Errors name the field, the value and what would work,
and every problem of a file is reported at once. The manifest side is pydantic models
(`...Spec`); what the daemon runs is frozen, hashable dataclasses (`InstanceConfig`,
`ProbeConfig`, `NotifyConfig`, ...), so reload can compare them. `docs/virtualip.md` is the
field reference.

Pure: no sockets, no clock, no event loop. Durations are kept in centiseconds (the unit
RFC 5798 counts in) and parsed with `Decimal`, so "1.05s" is 105 cs exactly.

Validation context: `{"standalone": True}` (what `load_manifests` passes by default) adds
the rules of a file read by the daemon alone (vrid set, peers complete when unicast, an
inline password instead of a secretRef). Without a context the cluster rules apply: the
operator allocates VRIDs, fills in peers and resolves secrets, and server-populated
metadata / status are ignored.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv6Address,
    IPv6Interface,
    ip_address,
    ip_interface,
)
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from vrrpd.limits import (
    ADVERT_INTERVAL_V2_MAX_S,
    ADVERT_INTERVAL_V3_MAX_CS,
    GARP_INTERVAL_MAX_CS,
    GARP_MASTER_DELAY_MAX_CS,
    GARP_MASTER_REFRESH_MAX_CS,
    GARP_REPEAT_MAX,
    GARP_REPEAT_MIN,
    HTTP_STATUS_MAX,
    HTTP_STATUS_MIN,
    IFNAMSIZ,
    MAX_ADDRESSES,
    NOTIFY_TIMEOUT_MAX_CS,
    PASSWORD_MAX_BYTES,
    PORT_MAX,
    PORT_MIN,
    PREEMPT_DELAY_MAX_CS,
    PRIORITY_MIN,
    PRIORITY_OWNER,
    PROBE_INTERVAL_MAX_CS,
    PROBE_RISE_FALL_MAX,
    PROBE_WEIGHT_MAX,
    SMTP_CONNECT_TIMEOUT_MAX_CS,
    SMTP_PORT,
    VRID_MAX,
    VRID_MIN,
    WEBHOOK_RETRIES_MAX,
    WEBHOOK_TIMEOUT_MAX_CS,
    IPAddress,
    IPInterface,
)
from vrrpd.vrrp.fsm import PreemptMode

API_VERSION = "kubevrrp.io/v1alpha1"
KIND = "VirtualIP"


class ConfigError(ValueError):
    """Invalid configuration; str() is a readable multi-line report (field, value, what works)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class GarpConfig:
    master_delay_cs: int = 500  # keepalived vrrp_garp_master_delay: second burst after 5 s
    master_repeat: int = 5  # keepalived vrrp_garp_master_repeat
    interval_cs: int = 0  # pause between the messages of one burst
    master_refresh_cs: int = 0  # 0: no periodic refresh while MASTER


# What a probe checks, resolved: the daemon's probe runners take these as they are.


@dataclass(frozen=True, slots=True)
class ExecCheck:
    command: tuple[str, ...]  # argv; a relative argv[0] is looked up in PATH
    env: tuple[tuple[str, str], ...] = ()  # added to the daemon's environment, sorted by name


@dataclass(frozen=True, slots=True)
class TcpCheck:
    host: str  # an IP address or a DNS name
    port: int


@dataclass(frozen=True, slots=True)
class HttpCheck:
    scheme: str  # "http" or "https"
    host: str
    port: int  # resolved: 80 for http, 443 for https unless set
    path: str = "/"
    host_header: str | None = None  # None: the Host header is host[:port]
    expect_status: tuple[int, ...] = (200,)
    body_contains: str | None = None
    body_sha256: str | None = None  # lowercase hex digest of the whole body
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class IcmpCheck:
    host: str


@dataclass(frozen=True, slots=True)
class FileCheck:
    path: str  # absolute; keepalived track_file semantics


@dataclass(frozen=True, slots=True)
class InterfaceCheck:
    name: str


Check = ExecCheck | TcpCheck | HttpCheck | IcmpCheck | FileCheck | InterfaceCheck


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """One probe, resolved: keepalived vrrp_script + track_script."""

    name: str
    check: Check
    interval_cs: int
    timeout_cs: int  # <= interval_cs
    rise: int  # successes in a row that make a down probe up
    fall: int  # failures in a row that make an up probe down
    weight: int  # > 0 adds while up, < 0 subtracts while down, 0: down -> FAULT


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    timeout_cs: int = 500
    retries: int = 3


@dataclass(frozen=True, slots=True)
class EmailConfig:
    to: tuple[str, ...]
    sender: str
    smtp_host: str
    smtp_port: int = SMTP_PORT
    connect_timeout_cs: int = 3000


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Notification hooks; each script is an argv, () when not set."""

    master: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    fault: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    all: tuple[str, ...] = ()  # keepalived `notify`: argv + INSTANCE name state priority
    timeout_cs: int = 1000
    webhook: WebhookConfig | None = None
    email: EmailConfig | None = None


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    """One VRRP instance on one node: a VirtualIP for one address family, fully resolved.

    Equality is what reload compares: an instance whose InstanceConfig is unchanged keeps
    its state.
    """

    name: str  # "<namespace>/<virtualip>/ipv4" or ".../ipv6"
    virtualip: str  # "<namespace>/<name>"
    family: int  # 4 or 6
    vrid: int
    version: int
    priority: int
    advert_interval_cs: int
    addresses: tuple[IPInterface, ...]  # with prefix length, as put on the interface
    interface: str | None  # None: the interface whose subnet holds the first address
    label: str | None  # IPv4 address label such as "eth0:0"
    preempt: PreemptMode
    preempt_delay_cs: int
    accept: bool
    unicast: bool
    source_address: IPAddress | None  # from this node's entry in spec.peers, if any
    peers: tuple[IPAddress, ...]  # unicast peers, this node excluded
    auth_password: bytes | None  # VRRPv2 PASS, 1..8 bytes
    garp: GarpConfig
    probes: tuple[ProbeConfig, ...] = ()
    track_interfaces: tuple[str, ...] = ()  # any of them down -> FAULT
    sync_group: str | None = None  # "<namespace>/<syncGroup>": groups never span namespaces
    notify: NotifyConfig | None = None
    readiness: str = "Healthy"  # "Healthy" or "Master" (the value of Readiness)
    # False: adverts whose address list differs are accepted (RFC 5798 §7.1 makes the check
    # a MAY), and a new address list is applied without restarting the instance.
    verify_addresses: bool = True


# --- showing values in messages ---------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9_./:+@%-]+")


def _show(value: Any) -> str:
    """A value as the person wrote it in YAML: plain where unambiguous, quoted otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, str):
        # Quote what YAML would not read back as this string ("51", "true", "a b").
        try:
            plain = bool(_PLAIN.fullmatch(value)) and yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        return value if plain else json.dumps(value)
    if isinstance(value, IPv4Address | IPv6Address | IPv4Interface | IPv6Interface):
        return str(value)
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


# A validator reports one or several problems, each at a path below the field it checks
# ("" for the field itself, ".delay", "[1].address"); `_format_errors` expands them.
Problem = tuple[str, str]


def _error(problems: Iterable[Problem]) -> PydanticCustomError:
    found = tuple(problems)
    summary = "; ".join(f"{sub}: {msg}" if sub else msg for sub, msg in found)
    return PydanticCustomError("kubevrrp", "{summary}", {"summary": summary, "problems": found})


def _fail(message: str, sub: str = "") -> PydanticCustomError:
    return _error([(sub, message)])


_T = TypeVar("_T")


def _validate_adding(handler: Callable[[Any], _T], data: Any, problems: list[Problem]) -> _T:
    """pydantic's own validation of `data` (through a wrap validator's handler), with
    `problems` found on the raw input reported alongside whatever it finds: a check of the
    whole never hides the parts' problems, nor waits for them to be fixed."""
    try:
        result = handler(data)
    except ValidationError as exc:
        if not problems:
            raise
        details: list[InitErrorDetails] = []
        for err in exc.errors():
            ctx = err.get("ctx")
            detail = InitErrorDetails(
                type=_error(ctx["problems"]) if err["type"] == "kubevrrp" and ctx else err["type"],
                loc=err["loc"],
                input=err["input"],
            )
            if ctx is not None:
                detail["ctx"] = ctx
            details.append(detail)
        details.append(InitErrorDetails(type=_error(problems), loc=(), input=data))
        raise ValidationError.from_exception_data(exc.title, details) from None
    if problems:
        raise _error(problems)
    return result


def _standalone(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, Mapping) and bool(context.get("standalone", False))


# --- durations --------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)")
_UNIT_CS = {"ms": Decimal("0.1"), "s": Decimal(100), "m": Decimal(6000), "h": Decimal(360000)}
_DURATION_HINT = 'use a duration such as "1s", "100ms", "1.5s" or "2m", or a number of seconds'


def parse_duration_cs(value: Any) -> int:
    """A duration as whole centiseconds: "1s", "100ms", "1.5s", "1m30s", or a number of seconds.

    Exact (Decimal arithmetic: "1.05s" is 105). Raises ConfigError (a ValueError) for a
    negative value, an unknown unit, or a value that is not a whole number of centiseconds
    (VRRP counts in 10 ms steps, so "15ms" is an error).
    """
    result = _centiseconds(value)
    if isinstance(result, str):
        raise ConfigError([f"{_show(value)} {result}"])
    return result


def _centiseconds(value: Any) -> int | str:
    """The duration in centiseconds, or what is wrong with it (to follow the value)."""
    amount: Decimal
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return f"is not a duration; {_DURATION_HINT}"
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return 0
        if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
            return f'has no unit; write "{text}s" for seconds or "{text}ms" for milliseconds'
        if text.startswith("-"):
            return "is negative; durations are 0 or more"
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return f"is not a duration; {_DURATION_HINT} (units: ms, s, m, h)"
        amount = sum((Decimal(number) * _UNIT_CS[unit] for number, unit in parts), Decimal(0))
    else:
        try:
            # repr() of a float is its shortest decimal form: 1.05 -> "1.05", not 1.0499..
            seconds = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            return f"is not a duration; {_DURATION_HINT}"
        if not seconds.is_finite():
            return f"is not a duration; {_DURATION_HINT}"
        if seconds < 0:
            return "is negative; durations are 0 or more"
        amount = seconds * 100
    if amount != amount.to_integral_value():
        return "is not a whole number of centiseconds; VRRP timers count in 10 ms steps"
    return int(amount)


def format_duration_cs(cs: int) -> str:
    """The inverse of `parse_duration_cs`: "1s", "250ms", "1050ms"."""
    return f"{cs // 100}s" if cs % 100 == 0 else f"{cs * 10}ms"


def _duration(value: Any) -> int:
    """parse_duration_cs for validators: the problem as a pydantic error."""
    result = _centiseconds(value)
    if isinstance(result, str):
        raise _fail(f"{_show(value)} {result}")
    return result


def _duration_between(lo_cs: int, hi_cs: int, what: str = "") -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        cs = _duration(value)
        if not lo_cs <= cs <= hi_cs:
            raise _fail(
                f"{_show(value)} is out of range; use "
                f"{format_duration_cs(lo_cs)}..{format_duration_cs(hi_cs)}{what}"
            )
        return cs

    return parse


# --- scalar checks ----------------------------------------------------------------------


def _ranged_int(lo: int, hi: int, what: str = "") -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(
                f"{_show(value)} is {_type_name(value)}, not a whole number; use {lo}..{hi}{what}"
            )
        if not lo <= value <= hi:
            raise _fail(f"{_show(value)} is out of range; use {lo}..{hi}{what}")
        return value

    return check


_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[!-<>-~]+")  # printable ASCII but '=' and space
_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def _string(value: Any, example: str) -> str:
    if not isinstance(value, str):
        if isinstance(value, bool | int | float):
            raise _fail(f'{_show(value)} is {_type_name(value)}, not a string; quote it: "{value}"')
        raise _fail(f"{_show(value)} is {_type_name(value)}; expected a string such as {example}")
    return value


def _dns_label(value: Any, example: str = "web-vip") -> str:
    text = _string(value, f'"{example}"')
    if len(text) > 63 or not _DNS1123_LABEL.fullmatch(text):
        raise _fail(
            f"{_show(text)} is not a valid name; use at most 63 lowercase letters, digits "
            f"and '-', starting and ending with a letter or digit (e.g. {example})"
        )
    return text


def _dns1035_label(value: Any) -> str:
    # Service names are RFC 1035 labels: unlike most names they must start with a letter.
    text = _string(value, '"ingress"')
    if len(text) > 63 or not _DNS1035_LABEL.fullmatch(text):
        raise _fail(
            f"{_show(text)} is not a valid Service name; use at most 63 lowercase letters, "
            "digits and '-', starting with a letter and ending with a letter or digit "
            "(e.g. ingress)"
        )
    return text


def _dns_subdomain(value: Any) -> str:
    text = _string(value, '"node-a"')
    if len(text) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(text):
        raise _fail(
            f"{_show(text)} is not a valid Kubernetes name; use lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit (e.g. node-a)"
        )
    return text


def _label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"{_show(key)}: the prefix before '/' must be a DNS subdomain (e.g. example.com/)"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            f"{_show(key)} is not a valid label key; use at most 63 letters, digits, "
            "'-', '_' and '.', with an optional prefix such as node-role.kubernetes.io/"
        )
    return None


def _label_value_problem(value: str) -> str | None:
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        return (
            f"{_show(value)} is not a valid label value; use at most 63 letters, digits, "
            "'-', '_' and '.', or an empty string"
        )
    return None


def _interface_name(value: Any) -> str:
    text = _string(value, '"eth0"')
    if (
        not text
        or len(text) >= IFNAMSIZ
        or text in {".", ".."}
        or any(c in "/:" or c.isspace() for c in text)
    ):
        raise _fail(
            f"{_show(text)} is not a Linux interface name; use 1..15 characters without "
            "'/', ':' or spaces (e.g. eth0, bond0.100)"
        )
    return text


_HOST_HINT = "use an IP address or a DNS name such as 127.0.0.1 or backend.example.test"


def _host_problem(text: str) -> str | None:
    """What makes `text` neither an IP address nor a DNS name (None: it is one), with what
    to do instead when that is more than "use an IP address or a DNS name"."""
    try:
        ip_address(text)
    except ValueError:
        pass
    else:
        return None
    name = text.removesuffix(".")
    labels = name.split(".")
    if (
        0 < len(name) <= 253
        and all(len(label) <= 63 and _HOSTNAME_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()  # "192.168.77.300" is a bad address, not a name
    ):
        return None
    if not text:
        return f"is empty; {_HOST_HINT}"
    if "/" in text:
        return "is a URL or a path; write the host alone, e.g. backend.example.test"
    if re.fullmatch(r"[^:]+:\d+", text):
        return "includes a port; write the host alone (the port has its own field)"
    if re.fullmatch(r"[\d.]+|[\dA-Fa-f:.]*:[\dA-Fa-f:.]*", text):
        return f"is not an IP address; {_HOST_HINT}"
    return f"is neither an IP address nor a DNS name; {_HOST_HINT}"


def _host(value: Any) -> str:
    text = _string(value, '"127.0.0.1"')
    if (problem := _host_problem(text)) is not None:
        raise _fail(f"{_show(text)} {problem}")
    return text


def _split_host_port(text: str) -> tuple[str, int | None]:
    """ "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 address has no port.

    Raises ValueError saying what is wrong (to follow the value).
    """
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("is not host[:port] (an IPv6 address goes in brackets: [fd00::25]:25)")
        if not isinstance(_ip_or_none(host), IPv6Address):
            raise ValueError(f"has {_show(host)} in brackets, which is not an IPv6 address")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    if (problem := _host_problem(host)) is not None:
        raise ValueError(f"has host {_show(host)}, which {problem.split(';')[0]}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not PORT_MIN <= int(port_text) <= PORT_MAX:
        raise ValueError(f"has port {port_text}, not {PORT_MIN}..{PORT_MAX}")
    return host, int(port_text)


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _host_port(example: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _string(value, f'"{example}"')
        try:
            _split_host_port(text)
        except ValueError as exc:
            raise _fail(f"{_show(text)} {exc}; use host[:port], e.g. {example}") from None
        return text

    return check


def _absolute_path(value: Any) -> str:
    text = _string(value, '"/run/vrrp/maintenance"')
    if not text.startswith("/"):
        raise _fail(f"{_show(text)} is not an absolute path; e.g. /run/vrrp/maintenance")
    if "\0" in text:
        raise _fail(f"{_show(text)} contains a NUL character, which no path can hold")
    return text


def _argv(example: list[str], *, absolute: bool) -> Callable[[Any], tuple[str, ...]]:
    """A command as a list of arguments (no shell); `absolute`: the program is a full path."""
    shown = json.dumps(example)

    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            split = json.dumps(value.split() or example)
            raise _fail(
                f"{_show(value)} is a string; write a list, one item per argument "
                f"(no shell): {split}"
            )
        if not isinstance(value, list | tuple):
            raise _fail(f"{_show(value)} is {_type_name(value)}; write a list such as {shown}")
        if not value:
            raise _fail(f"is empty; give the program and its arguments, e.g. {shown}")
        problems: list[Problem] = []
        for i, item in enumerate(value):
            if isinstance(item, bool | int | float):
                problems.append(
                    (f"[{i}]", f'{_show(item)} is {_type_name(item)}; quote it: "{_show(item)}"')
                )
            elif not isinstance(item, str):
                problems.append(
                    (f"[{i}]", f"{_show(item)} is {_type_name(item)}; an argument is a string")
                )
            elif "\0" in item:
                problems.append((f"[{i}]", "contains a NUL character, which no argument can hold"))
        program = value[0]
        if isinstance(program, str) and not program:
            problems.append(("[0]", f"is empty; the first item is the program, e.g. {shown}"))
        elif isinstance(program, str) and absolute and not program.startswith("/"):
            problems.append(
                (
                    "[0]",
                    f"{_show(program)} is not an absolute path; the first item is the "
                    f"program's full path, e.g. /usr/local/bin/{program.rsplit('/')[-1]}",
                )
            )
        if problems:
            raise _error(problems)
        return tuple(value)

    return check


def _environment(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _fail(
            f'{_show(value)} is {_type_name(value)}; write a mapping such as {{CHECK_PORT: "8080"}}'
        )
    problems: list[Problem] = []
    for key, item in value.items():
        sub = f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{_show(key)}]"
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            problems.append(
                (
                    sub,
                    f"{_show(key)} is not an environment variable name; use printable "
                    "characters other than '=' and spaces, e.g. CHECK_PORT",
                )
            )
        if isinstance(item, bool | int | float):
            problems.append(
                (sub, f'{_show(item)} is {_type_name(item)}; quote it: "{_show(item)}"')
            )
        elif not isinstance(item, str):
            problems.append((sub, f"{_show(item)} is {_type_name(item)}; a value is a string"))
        elif "\0" in item:
            problems.append((sub, "contains a NUL character, which no value can hold"))
    if problems:
        raise _error(problems)
    return dict(value)


def _email_address(value: Any) -> str:
    text = _string(value, '"ops@example.test"')
    local, at, domain = text.rpartition("@")
    if (
        not at
        or not local
        or any(c.isspace() or c in ",;<>" for c in text)
        or _host_problem(domain) is not None
    ):
        raise _fail(
            f"{_show(text)} is not an e-mail address; write one bare address such as "
            "ops@example.test"
        )
    return text


def _http_url(value: Any) -> str:
    example = "e.g. http://hooks.example.test/vrrp"
    text = _string(value, '"http://hooks.example.test/vrrp"')
    if any(c.isspace() for c in text):
        raise _fail(f"{_show(text)} contains spaces; percent-encode them (%20)")
    if "://" not in text:
        raise _fail(f"{_show(text)} has no scheme; write http://{text} or https://{text}")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise _fail(f"{_show(text)} is not a valid URL ({exc}); {example}") from None
    if parts.scheme not in ("http", "https"):
        raise _fail(f"{_show(text)} is not an http or https URL; {example}")
    host = parts.hostname
    if not host:
        raise _fail(f"{_show(text)} has no host; {example}")
    if (problem := _host_problem(host)) is not None:
        raise _fail(
            f"{_show(text)} has host {_show(host)}, which {problem.split(';')[0]}; {example}"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _fail(
            f"{_show(text)} has port {parts.netloc.rpartition(':')[2]}; use {PORT_MIN}..{PORT_MAX}"
        )
    return text


def _sha256_hex(value: Any) -> str:
    text = _string(value, '"<64 hex digits>"')
    if not _SHA256_HEX.fullmatch(text):
        raise _fail(
            f"{_show(text)} is not a SHA-256 digest; write its 64 hex digits (as sha256sum "
            "prints them)"
        )
    return text.lower()


def _list_once(
    value: Any, handler: Callable[[Any], _T], example: str, if_empty: str | None = None
) -> _T:
    """A list of scalars, each listed once (and not empty when `if_empty` says what to do);
    a lone scalar is shown as a list. The items' own problems are reported too."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        raise _fail(f"{_show(value)} is {_type_name(value)}; write a list: [{_show(value)}]")
    problems: list[Problem] = []
    if isinstance(value, list | tuple):
        if not value and if_empty is not None:
            problems.append(("", f"is empty; {if_empty}, e.g. {example}"))
        first_at: dict[tuple[type, Any], int] = {}
        for i, item in enumerate(value):
            if not isinstance(item, str | int):
                continue
            ident = (type(item), item)
            if ident in first_at:
                problems.append(
                    (f"[{i}]", f"{_show(item)} is listed twice (also at [{first_at[ident]}])")
                )
            else:
                first_at[ident] = i
    return _validate_adding(handler, value, problems)


def _family_name(family: int) -> str:
    return f"IPv{family}"


def _parse_virtual_address(value: Any) -> IPInterface:
    example = "e.g. 192.168.77.100/24 or fd00:77::100/64"
    if not isinstance(value, str):
        raise ValueError(
            f"{_show(value)} is {_type_name(value)}; write an address as a string, {example}"
        )
    try:
        iface = ip_interface(value.strip())
    except ValueError:
        raise ValueError(
            f"{_show(value)} is not an IP address with an optional prefix length; {example}"
        ) from None
    ip, net = iface.ip, iface.network
    why: str | None = None
    if ip.is_unspecified:
        why = "the unspecified address"
    elif ip.is_loopback:
        why = "a loopback address"
    elif ip.is_multicast:
        why = "a multicast address"
    elif isinstance(ip, IPv4Address) and ip.is_link_local:
        why = "an IPv4 link-local address (169.254.0.0/16)"
    elif isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        why = f"an IPv4-mapped IPv6 address; write the IPv4 address {ip.ipv4_mapped} instead"
    elif isinstance(ip, IPv4Address) and net.prefixlen <= 30 and ip == net.network_address:
        why = f"the network address of {net}"
    elif isinstance(ip, IPv4Address) and net.prefixlen <= 30 and ip == net.broadcast_address:
        why = f"the broadcast address of {net}"
    elif isinstance(ip, IPv6Address) and net.prefixlen <= 126 and ip == net.network_address:
        why = f"the subnet-router anycast address of {net}"
    if why is not None:
        raise ValueError(
            f"{_show(value)} is {why}; a virtual address must be a unicast host address ({example})"
        )
    return iface


def _parse_peer_address(value: Any) -> IPAddress:
    example = "e.g. 192.168.77.11 or fd00:77::11"
    if not isinstance(value, str):
        raise _fail(
            f"{_show(value)} is {_type_name(value)}; write the address as a string, {example}"
        )
    text = value.strip()
    if "/" in text:
        raise _fail(
            f"{_show(value)}: a peer address takes no prefix length; write {text.split('/')[0]}"
        )
    try:
        ip = ip_address(text)
    except ValueError:
        raise _fail(f"{_show(value)} is not an IP address; {example}") from None
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        raise _fail(f"{_show(value)} is not a node's unicast address; {example}")
    return ip


# --- models -----------------------------------------------------------------------------


class _Model(BaseModel):
    """Common rules: camelCase names only, unknown fields rejected, immutable, null = absent."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # As in Kubernetes, `field:` with no value (null) means "not set".
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None}
        return data


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_E = TypeVar("_E", bound=StrEnum)


def _enum_value(enum: type[_E], what: str) -> Callable[[Any], _E]:
    def parse(value: Any) -> _E:
        choices = [m.value for m in enum]
        if isinstance(value, enum):
            return value
        if isinstance(value, str) and value in choices:
            return enum(value)
        listed = ", ".join(choices[:-1]) + " or " + choices[-1]
        hint = ""
        if isinstance(value, str):
            folded = {c.lower(): c for c in choices}
            close = folded.get(value.lower()) or next(
                iter(difflib.get_close_matches(value, choices, n=1, cutoff=0.6)), None
            )
            hint = f" (did you mean {close}?)" if close else ""
        raise _fail(f"{_show(value)} is not {what}; use {listed}{hint}")

    return parse


class LabelSelectorRequirement(_Model):
    """One Kubernetes matchExpressions entry."""

    key: Annotated[str, BeforeValidator(lambda v: _string(v, '"role"'))]
    operator: Annotated[
        SelectorOperator, BeforeValidator(_enum_value(SelectorOperator, "a selector operator"))
    ]
    values: tuple[str, ...] = ()

    @field_validator("key")
    @classmethod
    def _key_syntax(cls, key: str) -> str:
        if (problem := _label_key_problem(key)) is not None:
            raise _fail(problem)
        return key

    @field_validator("values", mode="before")
    @classmethod
    def _values_are_strings(cls, values: Any) -> Any:
        if not isinstance(values, list | tuple):
            raise _fail(f"{_show(values)} is {_type_name(values)}; write a list such as [edge]")
        problems: list[Problem] = []
        for i, value in enumerate(values):
            if not isinstance(value, str):
                problems.append(
                    (f"[{i}]", f'{_show(value)} is {_type_name(value)}; quote it: "{value}"')
                )
            elif (problem := _label_value_problem(value)) is not None:
                problems.append((f"[{i}]", problem))
        if problems:
            raise _error(problems)
        return tuple(values)

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Self:
        if self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not self.values:
            raise _fail(f"operator {self.operator.value} needs at least one value", ".values")
        if self.operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and (
            self.values
        ):
            raise _fail(f"operator {self.operator.value} takes no values; remove them", ".values")
        return self


class LabelSelector(_Model):
    """A Kubernetes label selector: all of matchLabels and matchExpressions must hold."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @field_validator("match_labels", mode="before")
    @classmethod
    def _labels_syntax(cls, labels: Any) -> Any:
        if not isinstance(labels, Mapping):
            raise _fail(
                f"{_show(labels)} is {_type_name(labels)}; write a mapping such as {{role: edge}}"
            )
        problems: list[Problem] = []
        for key, value in labels.items():
            sub = f"[{key}]" if isinstance(key, str) and not key.isidentifier() else f".{key}"
            if not isinstance(key, str):
                problems.append((sub, f"label key {_show(key)} must be a string"))
                continue
            if (problem := _label_key_problem(key)) is not None:
                problems.append((sub, problem))
            if not isinstance(value, str):
                problems.append(
                    (sub, f'{_show(value)} is {_type_name(value)}; quote it: "{_show(value)}"')
                )
            elif (problem := _label_value_problem(value)) is not None:
                problems.append((sub, problem))
        if problems:
            raise _error(problems)
        return dict(labels)


def match_labels(selector: LabelSelector | Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression holds.

    An empty selector matches every label set. NotIn and DoesNotExist hold when the key is
    absent. `selector` may be a LabelSelector or its manifest form ({matchLabels: ...});
    an invalid manifest form raises ConfigError.
    """
    if not isinstance(selector, LabelSelector):
        try:
            selector = LabelSelector.model_validate(selector)
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc, LabelSelector)) from None
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        match req.operator:
            case SelectorOperator.IN:
                ok = present and labels[req.key] in req.values
            case SelectorOperator.NOT_IN:
                ok = not present or labels[req.key] not in req.values
            case SelectorOperator.EXISTS:
                ok = present
            case SelectorOperator.DOES_NOT_EXIST:
                ok = not present
        if not ok:
            return False
    return True


_Priority = Annotated[
    int, BeforeValidator(_ranged_int(PRIORITY_MIN, PRIORITY_OWNER, " (255 = address owner)"))
]


class NodePriority(_Model):
    """A per-node priority override: exactly one of nodeName or nodeSelector."""

    node_name: Annotated[str, BeforeValidator(_dns_subdomain)] | None = None
    node_selector: LabelSelector | None = None
    priority: _Priority

    @model_validator(mode="after")
    def _one_way_to_pick(self) -> Self:
        if (self.node_name is None) == (self.node_selector is None):
            raise _fail(
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


class Preempt(_Model):
    """RFC 5798 Preempt_Mode, the same on every node: Always, Never, or Delay by `delay`."""

    mode: Annotated[PreemptMode, BeforeValidator(_enum_value(PreemptMode, "a preempt mode"))] = (
        PreemptMode.ALWAYS
    )
    delay_cs: (
        Annotated[
            int, BeforeValidator(_duration_between(1, PREEMPT_DELAY_MAX_CS, " for mode: Delay"))
        ]
        | None
    ) = Field(default=None, alias="delay")

    @field_serializer("delay_cs")
    def _delay_text(self, cs: int | None) -> str | None:
        return None if cs is None else format_duration_cs(cs)

    @model_validator(mode="after")
    def _delay_fits_mode(self) -> Self:
        if self.mode is PreemptMode.DELAY and self.delay_cs is None:
            raise _fail("required with mode: Delay; e.g. {mode: Delay, delay: 30s}", ".delay")
        if self.mode is not PreemptMode.DELAY and self.delay_cs is not None:
            raise _fail(
                f"only applies to mode: Delay (mode is {self.mode.value}); "
                "remove it or set mode: Delay",
                ".delay",
            )
        return self


class Peer(_Model):
    """A participating node and its address for one family (a node may appear once per family)."""

    node_name: Annotated[str, BeforeValidator(_dns_subdomain)]
    address: Annotated[IPAddress, BeforeValidator(_parse_peer_address)]


class SecretKeyRef(_Model):
    name: Annotated[str, BeforeValidator(_dns_subdomain)]
    key: Annotated[str, BeforeValidator(lambda v: _string(v, '"password"'))]

    @field_validator("key")
    @classmethod
    def _key_syntax(cls, key: str) -> str:
        if len(key) > 253 or not _SECRET_KEY.fullmatch(key):
            raise _fail(f"{_show(key)} is not a Secret key; use letters, digits, '-', '_', '.'")
        return key


class Authentication(_Model):
    """VRRPv2 simple password (PASS): inline, or from a Secret (cluster mode only)."""

    password: str | None = None
    secret_ref: SecretKeyRef | None = None

    @field_validator("password", mode="before")
    @classmethod
    def _password_bytes(cls, value: Any) -> Any:
        if not isinstance(value, str):
            # The value is not echoed: it is a secret.
            raise _fail(f"is {_type_name(value)}; a password is a string: quote it")
        size = len(value.encode())
        if not 1 <= size <= PASSWORD_MAX_BYTES:
            what = f"{size} bytes is too long" if size else "is empty"
            raise _fail(f"{what}; VRRPv2 PASS carries 1..{PASSWORD_MAX_BYTES} bytes")
        return value

    @field_validator("secret_ref")
    @classmethod
    def _secret_in_cluster_only(
        cls, ref: SecretKeyRef | None, info: ValidationInfo
    ) -> SecretKeyRef | None:
        if ref is not None and _standalone(info):
            raise _fail(
                "a Secret can only be read by the operator in a cluster; a standalone "
                "file sets the password inline: authentication: {password: ...}"
            )
        return ref

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.password is None) == (self.secret_ref is None):
            raise _fail("set exactly one of password or secretRef, e.g. {password: lab-pass}")
        return self


class Garp(_Model):
    """Gratuitous ARP / unsolicited NA on becoming MASTER, as keepalived's vrrp_garp_*."""

    master_delay_cs: Annotated[
        int,
        BeforeValidator(_duration_between(0, GARP_MASTER_DELAY_MAX_CS, " (0s: no second burst)")),
    ] = Field(default=500, alias="masterDelay")
    master_repeat: Annotated[
        int, BeforeValidator(_ranged_int(GARP_REPEAT_MIN, GARP_REPEAT_MAX))
    ] = 5
    interval_cs: Annotated[int, BeforeValidator(_duration_between(0, GARP_INTERVAL_MAX_CS))] = (
        Field(default=0, alias="interval")
    )
    master_refresh_cs: Annotated[
        int, BeforeValidator(_duration_between(0, GARP_MASTER_REFRESH_MAX_CS, " (0s: no refresh)"))
    ] = Field(default=0, alias="masterRefresh")

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


class Readiness(StrEnum):
    """When a node's daemon pod reports Ready."""

    HEALTHY = "Healthy"  # the daemon runs, its probes pass and no instance is in FAULT
    MASTER = "Master"  # only on the node that holds the VIP


class HttpScheme(StrEnum):
    HTTP = "http"
    HTTPS = "https"


class ServiceRef(_Model):
    """A LoadBalancer Service in the VirtualIP's namespace that gets the VIP in its status."""

    name: Annotated[str, BeforeValidator(_dns1035_label)]


class ExecCheckSpec(_Model):
    """Run a command (argv, no shell): exit status 0 is success. keepalived vrrp_script."""

    command: Annotated[
        tuple[str, ...],
        BeforeValidator(_argv(["/usr/local/bin/check", "arg"], absolute=False)),
    ]
    env: Annotated[dict[str, str], BeforeValidator(_environment)] = Field(default_factory=dict)

    def to_config(self) -> ExecCheck:
        return ExecCheck(command=self.command, env=tuple(sorted(self.env.items())))


class TcpCheckSpec(_Model):
    """Open a TCP connection: connected within the timeout is success."""

    host: Annotated[str, BeforeValidator(_host)] = "127.0.0.1"
    port: Annotated[int, BeforeValidator(_ranged_int(PORT_MIN, PORT_MAX))]

    def to_config(self) -> TcpCheck:
        return TcpCheck(host=self.host, port=self.port)


class HttpCheckSpec(_Model):
    """GET a URL: an expected status (and body, when asked) within the timeout is success."""

    scheme: Annotated[HttpScheme, BeforeValidator(_enum_value(HttpScheme, "an HTTP scheme"))] = (
        HttpScheme.HTTP
    )
    host: Annotated[str, BeforeValidator(_host)] = "127.0.0.1"
    port: Annotated[int, BeforeValidator(_ranged_int(PORT_MIN, PORT_MAX))] | None = None
    path: str = "/"
    host_header: Annotated[str, BeforeValidator(_host_port("example.test:8443"))] | None = None
    expect_status: tuple[
        Annotated[
            int,
            BeforeValidator(
                _ranged_int(HTTP_STATUS_MIN, HTTP_STATUS_MAX, " (an HTTP status code)")
            ),
        ],
        ...,
    ] = (200,)
    body_contains: str | None = None
    body_sha256: Annotated[str, BeforeValidator(_sha256_hex)] | None = None
    insecure_skip_verify: StrictBool = False

    @field_validator("path", mode="before")
    @classmethod
    def _request_path(cls, value: Any) -> str:
        text = _string(value, '"/healthz"')
        if not text.startswith("/"):
            raise _fail(f"{_show(text)} does not start with /; e.g. /{text.lstrip('/')}")
        if any(c.isspace() or not c.isprintable() for c in text):
            raise _fail(f"{_show(text)} contains spaces or control characters; percent-encode them")
        return text

    @field_validator("expect_status", mode="wrap")
    @classmethod
    def _status_list(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _list_once(value, handler, "[200]", "list the codes that mean healthy")

    @field_validator("body_contains", mode="before")
    @classmethod
    def _body_text(cls, value: Any) -> str:
        text = _string(value, '"ok"')
        if not text:
            raise _fail("is empty, which every body contains; remove it to accept any body")
        return text

    @field_validator("insecure_skip_verify")
    @classmethod
    def _tls_only(cls, skip: bool, info: ValidationInfo) -> bool:
        scheme = info.data.get("scheme")
        if skip and scheme is HttpScheme.HTTP:
            raise _fail(
                "only applies to scheme: https (scheme is http); remove it or set scheme: https"
            )
        return skip

    def to_config(self) -> HttpCheck:
        default_port = 443 if self.scheme is HttpScheme.HTTPS else 80
        return HttpCheck(
            scheme=self.scheme.value,
            host=self.host,
            port=default_port if self.port is None else self.port,
            path=self.path,
            host_header=self.host_header,
            expect_status=self.expect_status,
            body_contains=self.body_contains,
            body_sha256=self.body_sha256,
            verify_tls=not self.insecure_skip_verify,
        )


class IcmpCheckSpec(_Model):
    """Ping a host (ICMP / ICMPv6 echo): a reply within the timeout is success."""

    host: Annotated[str, BeforeValidator(_host)]

    def to_config(self) -> IcmpCheck:
        return IcmpCheck(host=self.host)


class FileCheckSpec(_Model):
    """keepalived track_file: the file holds a number; 0 is success."""

    path: Annotated[str, BeforeValidator(_absolute_path)]

    def to_config(self) -> FileCheck:
        return FileCheck(path=self.path)


class InterfaceCheckSpec(_Model):
    """A network interface's link: up (operationally) is success."""

    name: Annotated[str, BeforeValidator(_interface_name)]

    def to_config(self) -> InterfaceCheck:
        return InterfaceCheck(name=self.name)


CheckSpec = (
    ExecCheckSpec
    | TcpCheckSpec
    | HttpCheckSpec
    | IcmpCheckSpec
    | FileCheckSpec
    | InterfaceCheckSpec
)
_CHECK_KINDS = ("exec", "tcp", "http", "icmp", "file", "interface")


class ProbeSpec(_Model):
    """A health probe (keepalived vrrp_script + track_script): one check, run every interval;
    rise successes / fall failures in a row change its state, and its weight what that does
    to the priority."""

    name: Annotated[str, BeforeValidator(lambda v: _dns_label(v, "haproxy"))]
    exec: ExecCheckSpec | None = None
    tcp: TcpCheckSpec | None = None
    http: HttpCheckSpec | None = None
    icmp: IcmpCheckSpec | None = None
    file: FileCheckSpec | None = None
    interface: InterfaceCheckSpec | None = None
    interval_cs: Annotated[int, BeforeValidator(_duration_between(1, PROBE_INTERVAL_MAX_CS))] = (
        Field(default=100, alias="interval")
    )
    timeout_cs: int | None = Field(default=None, alias="timeout")  # None: the interval
    rise: Annotated[int, BeforeValidator(_ranged_int(1, PROBE_RISE_FALL_MAX))] = 1
    fall: Annotated[int, BeforeValidator(_ranged_int(1, PROBE_RISE_FALL_MAX))] = 1
    weight: Annotated[
        int,
        BeforeValidator(
            _ranged_int(
                -PROBE_WEIGHT_MAX, PROBE_WEIGHT_MAX, " (0, the default: failing means FAULT)"
            )
        ),
    ] = 0

    @model_validator(mode="wrap")
    @classmethod
    def _one_check(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[Problem] = []
        if isinstance(data, Mapping):
            given = [kind for kind in _CHECK_KINDS if data.get(kind) is not None]
            if not given:
                problems.append(
                    (
                        "",
                        "set one check: exec, tcp, http, icmp, file or interface, e.g. "
                        "{name: haproxy, tcp: {port: 443}}",
                    )
                )
            elif len(given) > 1:
                problems.append(
                    (
                        "",
                        f"has {' and '.join(given)}; a probe runs exactly one check: make one "
                        "probe per check, each with its own name",
                    )
                )
        return _validate_adding(handler, data, problems)

    @field_validator("timeout_cs", mode="before")
    @classmethod
    def _timeout_within_interval(cls, value: Any, info: ValidationInfo) -> int:
        cs = _duration_between(1, PROBE_INTERVAL_MAX_CS)(value)
        interval = info.data.get("interval_cs")  # absent when interval itself is invalid
        if interval is not None and cs > interval:
            raise _fail(
                f"{_show(value)} is longer than the interval ({format_duration_cs(interval)}); "
                "a check must end before the next one starts: use a timeout <= interval "
                "(default: the interval)"
            )
        return cs

    @field_serializer("interval_cs", "timeout_cs")
    def _duration_text(self, cs: int | None) -> str | None:
        return None if cs is None else format_duration_cs(cs)

    @property
    def check(self) -> CheckSpec:
        """The one check this probe runs."""
        found = self.exec or self.tcp or self.http or self.icmp or self.file or self.interface
        assert found is not None  # _one_check
        return found

    def to_config(self) -> ProbeConfig:
        return ProbeConfig(
            name=self.name,
            check=self.check.to_config(),
            interval_cs=self.interval_cs,
            timeout_cs=self.interval_cs if self.timeout_cs is None else self.timeout_cs,
            rise=self.rise,
            fall=self.fall,
            weight=self.weight,
        )


class WebhookSpec(_Model):
    """HTTP POST of a JSON event on every state change."""

    url: Annotated[str, BeforeValidator(_http_url)]
    timeout_cs: Annotated[int, BeforeValidator(_duration_between(1, WEBHOOK_TIMEOUT_MAX_CS))] = (
        Field(default=500, alias="timeout")
    )
    retries: Annotated[
        int, BeforeValidator(_ranged_int(0, WEBHOOK_RETRIES_MAX, " (0: one attempt only)"))
    ] = 3

    @field_serializer("timeout_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> WebhookConfig:
        return WebhookConfig(url=self.url, timeout_cs=self.timeout_cs, retries=self.retries)


class EmailSpec(_Model):
    """E-mail on state changes: keepalived notification_email / smtp_server / smtp_alert."""

    to: tuple[Annotated[str, BeforeValidator(_email_address)], ...]
    sender: Annotated[str, BeforeValidator(_email_address)] = Field(alias="from")
    smtp_server: Annotated[str, BeforeValidator(_host_port("127.0.0.1:25"))]
    connect_timeout_cs: Annotated[
        int, BeforeValidator(_duration_between(1, SMTP_CONNECT_TIMEOUT_MAX_CS))
    ] = Field(default=3000, alias="connectTimeout")

    @field_validator("to", mode="wrap")
    @classmethod
    def _recipients(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _list_once(value, handler, "[ops@example.test]", "list at least one address")

    @field_serializer("connect_timeout_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> EmailConfig:
        host, port = _split_host_port(self.smtp_server)
        return EmailConfig(
            to=self.to,
            sender=self.sender,
            smtp_host=host,
            smtp_port=SMTP_PORT if port is None else port,
            connect_timeout_cs=self.connect_timeout_cs,
        )


_NotifyArgv = Annotated[
    tuple[str, ...],
    BeforeValidator(_argv(["/usr/local/bin/notify.sh", "master"], absolute=True)),
]
_NOTIFY_HOOKS = ("master", "backup", "fault", "stop", "all", "webhook", "email")


class NotifySpec(_Model):
    """Notifications on state changes (keepalived notify_*): scripts, a webhook, e-mail.

    They never influence the election."""

    master: _NotifyArgv | None = None  # keepalived notify_master
    backup: _NotifyArgv | None = None
    fault: _NotifyArgv | None = None
    stop: _NotifyArgv | None = None
    all: _NotifyArgv | None = None  # keepalived notify: argv + INSTANCE name state priority
    timeout_cs: Annotated[int, BeforeValidator(_duration_between(1, NOTIFY_TIMEOUT_MAX_CS))] = (
        Field(default=1000, alias="timeout")
    )
    webhook: WebhookSpec | None = None
    email: EmailSpec | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _something_to_notify(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[Problem] = []
        if isinstance(data, Mapping) and all(data.get(hook) is None for hook in _NOTIFY_HOOKS):
            problems.append(
                (
                    "",
                    "nothing to notify; set at least one of master, backup, fault, stop, all "
                    '(scripts), webhook or email, e.g. {webhook: {url: "http://..."}}, or '
                    "remove notify",
                )
            )
        return _validate_adding(handler, data, problems)

    @field_serializer("timeout_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> NotifyConfig:
        return NotifyConfig(
            master=self.master or (),
            backup=self.backup or (),
            fault=self.fault or (),
            stop=self.stop or (),
            all=self.all or (),
            timeout_cs=self.timeout_cs,
            webhook=None if self.webhook is None else self.webhook.to_config(),
            email=None if self.email is None else self.email.to_config(),
        )


class VirtualIPSpec(_Model):
    """spec of a VirtualIP. Fields are declared in dependency order: a validator may look
    at the fields above it (info.data), so cross-field problems are reported together with
    the other fields' problems."""

    addresses: tuple[IPInterface, ...]
    vrid: Annotated[int, BeforeValidator(_ranged_int(VRID_MIN, VRID_MAX))] | None = Field(
        default=None, validate_default=True
    )
    version: int = 3
    interface: Annotated[str, BeforeValidator(_interface_name)] | None = None
    label: str | None = Field(default=None, validate_default=True)
    advert_interval_cs: int = Field(default=100, alias="advertInterval")
    priority: _Priority = 100
    node_priorities: tuple[NodePriority, ...] = ()
    preempt: Preempt = Preempt()
    accept: StrictBool = True
    verify_addresses: StrictBool = True
    unicast: StrictBool = False
    peers: tuple[Peer, ...] = Field(default=(), validate_default=True)
    authentication: Authentication | None = None
    garp: Garp = Garp()
    node_selector: LabelSelector | None = None
    service_ref: ServiceRef | None = None
    readiness: Annotated[Readiness, BeforeValidator(_enum_value(Readiness, "a readiness mode"))] = (
        Readiness.HEALTHY
    )
    track_interfaces: tuple[Annotated[str, BeforeValidator(_interface_name)], ...] = ()
    probes: tuple[ProbeSpec, ...] = ()
    sync_group: Annotated[str, BeforeValidator(lambda v: _dns_label(v, "edge"))] | None = None
    notify: NotifySpec | None = None

    @field_validator("addresses", mode="before")
    @classmethod
    def _parse_addresses(cls, value: Any) -> tuple[IPInterface, ...]:
        if isinstance(value, str):
            raise _fail(f"{_show(value)} is a string; write a list: [{value}]")
        if not isinstance(value, list | tuple):
            raise _fail(f"{_show(value)} is {_type_name(value)}; write a list of addresses")
        if not value:
            raise _fail("is empty; list at least one address, e.g. [192.168.77.100/24]")
        problems: list[Problem] = []
        parsed: list[IPInterface] = []
        first_at: dict[IPAddress, int] = {}
        for i, item in enumerate(value):
            try:
                iface = _parse_virtual_address(item)
            except ValueError as exc:
                problems.append((f"[{i}]", str(exc)))
                continue
            if iface.ip in first_at:
                problems.append(
                    (f"[{i}]", f"{iface.ip} is listed twice (also at [{first_at[iface.ip]}])")
                )
                continue
            first_at[iface.ip] = i
            parsed.append(iface)
        for family, limit in MAX_ADDRESSES.items():
            count = sum(1 for a in parsed if a.version == family)
            if count > limit:
                problems.append(
                    ("", f"{count} {_family_name(family)} addresses; one advert carries {limit}")
                )
        if problems:
            raise _error(problems)
        return tuple(parsed)

    @field_validator("vrid")
    @classmethod
    def _vrid_set_standalone(cls, vrid: int | None, info: ValidationInfo) -> int | None:
        if vrid is None and _standalone(info):
            raise _fail(
                "required in a standalone file; in a cluster the operator allocates it, "
                "standalone must set it: 1..255, the same on every node of this VirtualIP "
                "and unique on the link"
            )
        return vrid

    @field_validator("version", mode="before")
    @classmethod
    def _version_fits_addresses(cls, version: Any, info: ValidationInfo) -> int:
        if isinstance(version, bool) or version not in (2, 3):
            raise _fail(
                f"{_show(version)} is not supported; use 3 (VRRPv3, the default) or 2 "
                "(VRRPv2, for keepalived peers)"
            )
        if version == 2:
            v6 = [str(a) for a in info.data.get("addresses", ()) if a.version == 6]
            if v6:
                raise _fail(
                    f"2 (VRRPv2) carries IPv4 only, but spec.addresses has {', '.join(v6)}; "
                    "use version: 3 or move the IPv6 addresses to another VirtualIP"
                )
        return int(version)

    @field_validator("label", mode="before")
    @classmethod
    def _label_linux_rule(cls, label: Any, info: ValidationInfo) -> Any:
        if label is None:
            return None
        text = _string(label, '"eth0:0"')
        problems: list[str] = []
        if not text or len(text) >= IFNAMSIZ or any(c.isspace() for c in text):
            problems.append(f"{_show(text)} is not an address label; use 1..15 characters")
        interface = info.data.get("interface")
        if interface is not None and text != interface and not text.startswith(f"{interface}:"):
            problems.append(
                f"{_show(text)} must start with the interface name (Linux rule); "
                f"use {interface}:<suffix>, e.g. {interface}:vip"
            )
        addresses = info.data.get("addresses")
        if addresses is not None and not any(a.version == 4 for a in addresses):
            problems.append("labels apply to IPv4 addresses only; spec.addresses has none")
        if problems:
            raise _error(("", p) for p in problems)
        return text

    @field_validator("advert_interval_cs", mode="before")
    @classmethod
    def _advert_interval_fits_version(cls, value: Any, info: ValidationInfo) -> int:
        cs = _duration(value)
        version = info.data.get("version")  # absent when spec.version itself is invalid
        if version == 2:
            if cs < 100:
                raise _fail(
                    f"{_show(value)} is below 1s, the VRRPv2 minimum (spec.version: 2 counts "
                    "whole seconds); use 1s..255s, or version: 3 for sub-second adverts"
                )
            if cs % 100 or cs > ADVERT_INTERVAL_V2_MAX_S * 100:
                raise _fail(
                    f"{_show(value)} does not fit VRRPv2 (spec.version: 2), which counts whole "
                    "seconds; use 1s..255s"
                )
        elif version == 3 and not 1 <= cs <= ADVERT_INTERVAL_V3_MAX_CS:
            raise _fail(
                f"{_show(value)} is out of range for VRRPv3; use 10ms..40.95s in 10 ms steps "
                "(default 1s)"
            )
        elif not 1 <= cs <= ADVERT_INTERVAL_V2_MAX_S * 100:
            raise _fail(f"{_show(value)} is out of range; use 10ms..40.95s (VRRPv3) or 1s..255s")
        return cs

    @field_serializer("advert_interval_cs")
    def _advert_interval_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    @field_validator("node_priorities")
    @classmethod
    def _node_names_once(cls, entries: tuple[NodePriority, ...]) -> tuple[NodePriority, ...]:
        problems: list[Problem] = []
        first_at: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if entry.node_name is None:
                continue
            if entry.node_name in first_at:
                problems.append(
                    (
                        f"[{i}].nodeName",
                        f"{entry.node_name} is already at [{first_at[entry.node_name]}]; "
                        "the first match wins, so this entry never applies: remove it",
                    )
                )
            else:
                first_at[entry.node_name] = i
        if problems:
            raise _error(problems)
        return entries

    @field_validator("peers")
    @classmethod
    def _peers_complete(cls, peers: tuple[Peer, ...], info: ValidationInfo) -> tuple[Peer, ...]:
        problems: list[Problem] = []
        addresses: tuple[IPInterface, ...] | None = info.data.get("addresses")
        families = {a.version for a in addresses} if addresses is not None else {4, 6}
        virtual = {a.ip for a in addresses} if addresses is not None else set()
        node_at: dict[tuple[str, int], int] = {}
        address_at: dict[IPAddress, int] = {}
        for i, peer in enumerate(peers):
            family = peer.address.version
            if (peer.node_name, family) in node_at:
                problems.append(
                    (
                        f"[{i}].nodeName",
                        f"{peer.node_name} already has an {_family_name(family)} entry at "
                        f"[{node_at[peer.node_name, family]}]; list each node once per family",
                    )
                )
            else:
                node_at[peer.node_name, family] = i
            if peer.address in address_at:
                problems.append(
                    (
                        f"[{i}].address",
                        f"{peer.address} is already the address of [{address_at[peer.address]}]",
                    )
                )
            else:
                address_at[peer.address] = i
            if family not in families:
                problems.append(
                    (
                        f"[{i}].address",
                        f"{peer.address} is {_family_name(family)}, but spec.addresses has no "
                        f"{_family_name(family)} address; remove this entry",
                    )
                )
            if peer.address in virtual:
                problems.append(
                    (
                        f"[{i}].address",
                        f"{peer.address} is a virtual address of this VirtualIP; give the "
                        "node's own address",
                    )
                )
        unicast = info.data.get("unicast")
        if unicast and addresses is not None and (peers or _standalone(info)):
            for needed in sorted(families):
                count = sum(1 for p in peers if p.address.version == needed)
                if count < 2:
                    problems.append(
                        (
                            "",
                            f"unicast needs the {_family_name(needed)} address of every "
                            f"participating node, this one included: at least 2 entries, "
                            f"found {count}; e.g. [{{nodeName: node-a, address: ...}}, "
                            "{nodeName: node-b, address: ...}]",
                        )
                    )
        if problems:
            raise _error(problems)
        return peers

    @field_validator("authentication")
    @classmethod
    def _authentication_is_v2(
        cls, auth: Authentication | None, info: ValidationInfo
    ) -> Authentication | None:
        if auth is not None and info.data.get("version") == 3:
            raise _fail(
                "VRRPv3 has no authentication (RFC 5798 removed it); remove "
                "authentication, or set version: 2 to talk to keepalived VRRPv2 peers "
                "with a PASS password"
            )
        return auth

    @field_validator("track_interfaces", mode="wrap")
    @classmethod
    def _interface_list(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _list_once(value, handler, "[eth1]")

    @field_validator("probes", mode="wrap")
    @classmethod
    def _probes_fit_spec(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> tuple[ProbeSpec, ...]:
        # On the raw list, so that these problems show up with each probe's own.
        problems: list[Problem] = []
        if isinstance(value, list | tuple):
            first_at: dict[str, int] = {}
            for i, item in enumerate(value):
                name = (
                    item.get("name") if isinstance(item, Mapping) else getattr(item, "name", None)
                )
                if not isinstance(name, str):
                    continue
                if name in first_at:
                    problems.append(
                        (
                            f"[{i}].name",
                            f"{name} is already the name of [{first_at[name]}]; give each "
                            "probe its own name",
                        )
                    )
                else:
                    first_at[name] = i
            owners = []
            if info.data.get("priority") == PRIORITY_OWNER:
                owners.append("spec.priority is 255")
            for i, entry in enumerate(info.data.get("node_priorities", ())):
                if entry.priority == PRIORITY_OWNER:
                    owners.append(f"spec.nodePriorities[{i}].priority is 255")
            if value and owners:
                problems.append(
                    (
                        "",
                        f"not allowed because {' and '.join(owners)}: a node at priority 255 "
                        "owns the addresses (RFC 5798 §5.2.4) and cannot be demoted, so no "
                        "probe could move the VIP away from it; use priorities 1..254 with "
                        "probes, or remove the probes",
                    )
                )
        result: tuple[ProbeSpec, ...] = _validate_adding(handler, value, problems)
        return result

    @model_validator(mode="after")
    def _one_owner(self) -> Self:
        # Two nodes with priority 255 both claim to own the address. Only nodes whose
        # priority is certain (no nodeSelector entry could match first) are counted.
        owners = sorted(
            {p.node_name for p in self.peers if self._known_priority(p.node_name) == 255}
        )
        if len(owners) > 1:
            raise _fail(
                f"nodes {', '.join(owners)} would all have priority 255 (address owner); "
                "give 255 to one node at most, through nodePriorities",
                ".priority",
            )
        return self

    def _known_priority(self, node: str) -> int | None:
        for entry in self.node_priorities:
            if entry.node_selector is not None:
                return None
            if entry.node_name == node:
                return entry.priority
        return self.priority

    def priority_for(self, node: str, node_labels: Mapping[str, str] | None = None) -> int:
        """The first nodePriorities entry that matches `node`, else spec.priority.

        With node_labels None (labels unknown, as in a standalone file), nodeSelector
        entries never match.
        """
        for entry in self.node_priorities:
            if entry.matches(node, node_labels):
                return entry.priority
        return self.priority

    def takes_part(self, node_labels: Mapping[str, str] | None) -> bool:
        """True unless nodeSelector is set and the node's labels (when known) fail it."""
        return (
            self.node_selector is None
            or node_labels is None
            or match_labels(self.node_selector, node_labels)
        )

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(f for f in (4, 6) if any(a.version == f for a in self.addresses))


class ObjectMeta(_Model):
    name: Annotated[str, BeforeValidator(_dns_label)]
    namespace: Annotated[str, BeforeValidator(_dns_label)] = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _server_fields(cls, data: Any, info: ValidationInfo) -> Any:
        # Objects read from the API carry uid, resourceVersion, managedFields ...
        if isinstance(data, Mapping) and not _standalone(info):
            known = {"name", "namespace", "labels", "annotations"}
            return {k: v for k, v in data.items() if k in known}
        return data


class VirtualIP(_Model):
    """A kubevrrp.io/v1alpha1 VirtualIP: floating addresses held by one node at a time."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: VirtualIPSpec

    @model_validator(mode="before")
    @classmethod
    def _status_ignored(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Mapping) and "status" in data and not _standalone(info):
            return {k: v for k, v in data.items() if k != "status"}
        return data

    @field_validator("api_version", mode="before")
    @classmethod
    def _known_api_version(cls, value: Any) -> str:
        if value != API_VERSION:
            raise _fail(f"{_show(value)} is not supported; use {API_VERSION}")
        return API_VERSION

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> str:
        if value != KIND:
            raise _fail(
                f"{_show(value)} is not supported; use {KIND} (this file holds "
                f"{API_VERSION} VirtualIP objects only)"
            )
        return KIND

    @property
    def key(self) -> str:
        """ "<namespace>/<name>", how messages and instance names refer to this VirtualIP."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


# --- turning pydantic errors into lines a person reads ----------------------------------

_MISSING_HINT: dict[tuple[int | str, ...], str] = {
    ("apiVersion",): f"use {API_VERSION}",
    ("kind",): f"use {KIND}",
    ("metadata",): "e.g. metadata: {name: web}",
    ("metadata", "name"): "e.g. name: web",
    ("spec",): "e.g. spec: {addresses: [192.168.77.100/24], vrid: 51}",
    ("spec", "addresses"): "e.g. addresses: [192.168.77.100/24]",
    ("priority",): "e.g. priority: 150",
    ("nodeName",): "e.g. nodeName: node-a",
    ("address",): "e.g. address: 192.168.77.11",
    ("key",): "e.g. key: role",
    ("operator",): "use In, NotIn, Exists or DoesNotExist",
    ("name",): "e.g. name: vip-auth",
    ("probes", "name"): "e.g. name: haproxy (unique in this VirtualIP)",
    ("serviceRef", "name"): "e.g. name: ingress",
    ("interface", "name"): "e.g. name: eth1",
    ("port",): "e.g. port: 443",
    ("host",): "e.g. host: 192.168.77.1",
    ("command",): 'e.g. command: ["/usr/local/bin/check"]',
    ("path",): "e.g. path: /run/vrrp/maintenance",
    ("url",): 'e.g. url: "http://hooks.example.test/vrrp"',
    ("to",): "e.g. to: [ops@example.test]",
    ("from",): "e.g. from: vrrp@example.test",
    ("smtpServer",): "e.g. smtpServer: 127.0.0.1:25",
}
_MAPPING_EXAMPLE = {
    "metadata": "{name: web}",
    "spec": "{addresses: [192.168.77.100/24], vrid: 51}",
    "preempt": "{mode: Always}",
    "authentication": "{password: lab-pass}",
    "secretRef": "{name: vip-auth, key: password}",
    "garp": "{masterDelay: 5s}",
    "nodeSelector": "{matchLabels: {role: edge}}",
    "serviceRef": "{name: ingress}",
    "exec": '{command: ["/usr/local/bin/check"]}',
    "tcp": "{port: 443}",
    "http": "{port: 8080, path: /healthz}",
    "icmp": "{host: 192.168.77.1}",
    "file": "{path: /run/vrrp/maintenance}",
    "interface": "{name: eth1}",
    "env": '{CHECK_PORT: "8080"}',
    "notify": '{webhook: {url: "http://hooks.example.test/vrrp"}}',
    "webhook": '{url: "http://hooks.example.test/vrrp"}',
    "email": "{to: [ops@example.test], from: vrrp@example.test, smtpServer: 127.0.0.1}",
}

_PREEMPT_SHORTHAND: dict[Any, str] = {
    **{mode.value: mode.value for mode in PreemptMode},
    True: "Always",
    False: "Never",
}


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}" if part.isidentifier() else f"[{part}]"
        else:
            out = part
    return out


def _join(path: str, sub: str) -> str:
    if not path:
        return sub.lstrip(".")
    return path + sub


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validated the mapping at `loc` (for listing its fields)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            if not isinstance(part, str) or part not in fields:
                return None
            tp = fields[part].annotation
        elif get_origin(tp) in (list, tuple) and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else members[0]
        else:
            return tp


def _unknown_field(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    key = loc[-1]
    model = _model_at(root, loc[:-1])
    if model is None or not isinstance(key, str):
        return "unknown field"
    by_name = {n: (f.alias or n) for n, f in model.model_fields.items()}
    known = list(by_name.values())
    guess = by_name.get(key) or by_name.get(re.sub(r"_cs$", "", key))
    if guess is None:
        folded = {k.lower(): k for k in known}
        guess = folded.get(key.lower().replace("_", "").replace("-", ""))
    if guess is None:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    if guess is not None:
        return f"unknown field; did you mean {guess}?"
    return f"unknown field; known fields here: {', '.join(known)}"


def _format_errors(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _path(loc)
        kind = err["type"]
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "kubevrrp":
            for sub, message in ctx["problems"]:
                lines.append(f"{_join(path, sub)}: {message}")
            continue
        if kind == "value_error" and "error" in ctx:
            message = str(ctx["error"])
        elif kind == "extra_forbidden":
            message = _unknown_field(root, loc)
        elif kind == "missing":
            named = tuple(part for part in loc if isinstance(part, str))
            hint = (
                _MISSING_HINT.get(loc)
                or _MISSING_HINT.get(named[-2:])
                or _MISSING_HINT.get(loc[-1:])
            )
            message = "required field is missing" + (f"; {hint}" if hint else "")
        elif (
            kind == "model_type"
            and loc[-1:] == ("preempt",)
            and isinstance(value, str | bool)
            and value in _PREEMPT_SHORTHAND
        ):
            # keepalived habits: "preempt: false" (nopreempt) or "preempt: Never"
            message = f"{_show(value)}: write {{mode: {_PREEMPT_SHORTHAND[value]}}}"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            example = _MAPPING_EXAMPLE.get(str(loc[-1])) if loc else None
            message = f"{_show(value)} is {_type_name(value)}; expected a mapping" + (
                f" such as {example}" if example else " (key: value)"
            )
        elif kind in ("list_type", "tuple_type"):
            message = f"{_show(value)} is {_type_name(value)}; expected a list"
        elif kind in ("bool_type", "bool_parsing"):
            message = f"{_show(value)} is {_type_name(value)}; use true or false"
        elif kind in ("string_type", "str_type"):
            message = f"{_show(value)} is {_type_name(value)}; expected a string (quote it)"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            message = f"{_show(value)} is {_type_name(value)}; expected a whole number"
        else:
            message = f"{_show(value)}: {err['msg']}"
        lines.append(f"{path}: {message}" if path else message)
    return lines


# --- loading manifests ------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a later one would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            ident = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if ident in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key_node.value} (first at line {seen[ident]}); "
                    "remove one of them",
                    key_node.start_mark,
                )
            seen[ident] = line
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}: line {mark.line + 1}, column {mark.column + 1}" if mark else source
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise ConfigError([f"{where}: {what}"]) from None
        raise ConfigError([f"{where}: YAML syntax error: {what}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML error: {exc}"]) from None


def _document_key(doc: Mapping[Any, Any]) -> str | None:
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace") or "default"
    return f"{namespace}/{metadata['name']}" if isinstance(namespace, str) else None


def parse_virtualip(obj: Any, *, standalone: bool = False) -> VirtualIP:
    """Validate one VirtualIP object: a parsed manifest, or an object read from the API.

    Raises ConfigError listing every problem as "<field path>: <what is wrong; what works>".
    With standalone False (the operator's view) vrid may be unset, secretRef is allowed,
    and server-populated metadata and status are ignored.
    """
    try:
        return VirtualIP.model_validate(obj, context={"standalone": standalone})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, VirtualIP)) from None


def load_manifests(
    text: str, *, source: str = "<config>", standalone: bool = True
) -> list[VirtualIP]:
    """Parse and validate VirtualIP documents ("---"-separated; empty ones are skipped).

    Raises ConfigError listing every problem found, each line
    "<source>: document <n> (<namespace>/<name>): <field path>: <what is wrong; what works>".
    Across documents: names are unique, and no two VirtualIPs share a virtual address or
    a (vrid, address family) on an interface (an unset interface may be any interface).
    """
    problems: list[str] = []
    loaded: list[tuple[str, int, VirtualIP]] = []
    for number, doc in enumerate(_parse_yaml(text, source), start=1):
        if doc is None:
            continue
        where = f"{source}: document {number}"
        if not isinstance(doc, Mapping):
            problems.append(
                f"{where}: {_show(doc)} is {_type_name(doc)}; expected a VirtualIP "
                f"(apiVersion: {API_VERSION}, kind: {KIND}, metadata, spec)"
            )
            continue
        if (key := _document_key(doc)) is not None:
            where += f" ({key})"
        try:
            vip = parse_virtualip(doc, standalone=standalone)
        except ConfigError as exc:
            problems.extend(f"{where}: {line}" for line in exc.problems)
            continue
        loaded.append((where, number, vip))
    problems.extend(_conflicts(loaded))
    if problems:
        raise ConfigError(problems)
    return [vip for _, _, vip in loaded]


def _conflicts(loaded: list[tuple[str, int, VirtualIP]]) -> list[str]:
    problems: list[str] = []
    for i, (where, _, vip) in enumerate(loaded):
        for _, other_number, other in loaded[:i]:
            if other.key == vip.key:
                problems.append(
                    f"{where}: metadata.name: {vip.key} is already defined in document "
                    f"{other_number}; give each VirtualIP its own name"
                )
                continue
            ref = f"{other.key} (document {other_number})"
            problems.extend(f"{where}: {p}" for p in conflicts_between(vip, other, ref))
    return problems


def conflicts_between(vip: VirtualIP, other: VirtualIP, other_ref: str) -> list[str]:
    """Why `vip` cannot run beside `other` (`other_ref` names it in the messages) on one
    node: a shared virtual address, or one (vrid, address family) on what may be one link
    (an unset interface may turn out to be any interface)."""
    problems: list[str] = []
    theirs = {b.ip for b in other.spec.addresses}
    for ip in (a.ip for a in vip.spec.addresses if a.ip in theirs):
        problems.append(
            f"spec.addresses: {ip} is also a virtual address of {other_ref}; "
            "an address belongs to one VirtualIP only"
        )
    if vip.spec.vrid is None or vip.spec.vrid != other.spec.vrid:
        return problems
    mine, their_link = vip.spec.interface, other.spec.interface
    if mine is not None and their_link is not None and mine != their_link:
        return problems
    for family in set(vip.spec.families) & set(other.spec.families):
        link = (
            f"interface {mine}"
            if mine is not None and mine == their_link
            else "possibly the same interface (interface unset: picked at runtime)"
        )
        problems.append(
            f"spec.vrid: {vip.spec.vrid} ({_family_name(family)}) is already "
            f"used by {other_ref} on {link}; use another vrid (unique per link and "
            "family), or set distinct spec.interface values"
        )
    return problems


def load_file(path: str | Path, *, standalone: bool = True) -> list[VirtualIP]:
    """`load_manifests` on a file; an unreadable file is a ConfigError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return load_manifests(text, source=str(path), standalone=standalone)


# --- resolving for one node -------------------------------------------------------------


def instances_for_node(
    vips: list[VirtualIP], node: str, node_labels: Mapping[str, str] | None = None
) -> list[InstanceConfig]:
    """The VRRP instances `node` runs: one per VirtualIP and address family present.

    A VirtualIP whose spec.nodeSelector does not match node_labels has no instance here;
    with node_labels None (labels unknown, as in a standalone file) every node takes part.
    Priority: the first nodePriorities entry matching the node (by nodeName, or by
    nodeSelector against node_labels; with node_labels None selectors never match), else
    spec.priority. The node's own entry in spec.peers gives the source address; the other
    entries of that family are the peers. Probes, tracked interfaces, sync group, notify
    and readiness are the same for every instance of a VirtualIP (the sync group is
    qualified by namespace: "<namespace>/<syncGroup>"). Raises ConfigError (all problems)
    when a VirtualIP cannot run here: vrid unset, a secretRef unresolved, a unicast node
    absent from spec.peers.
    """
    problems: list[str] = []
    instances: list[InstanceConfig] = []
    for vip in vips:
        spec = vip.spec
        if not spec.takes_part(node_labels):
            continue
        if spec.vrid is None:
            problems.append(
                f"{vip.key}: spec.vrid: not set; the operator allocates it in a cluster, "
                "a standalone file must set it (1..255)"
            )
            continue
        password: bytes | None = None
        if spec.authentication is not None:
            if spec.authentication.password is None:
                problems.append(
                    f"{vip.key}: spec.authentication.secretRef: not resolved; the operator "
                    "reads the Secret and passes the password"
                )
                continue
            password = spec.authentication.password.encode()
        priority = spec.priority_for(node, node_labels)
        probes = tuple(probe.to_config() for probe in spec.probes)
        notify = None if spec.notify is None else spec.notify.to_config()
        sync_group = (
            None if spec.sync_group is None else f"{vip.metadata.namespace}/{spec.sync_group}"
        )
        for family in spec.families:
            peers = [p for p in spec.peers if p.address.version == family]
            own = next((p.address for p in peers if p.node_name == node), None)
            if spec.unicast and own is None:
                problems.append(
                    f"{vip.key}: spec.peers: no entry for node {node} "
                    f"({_family_name(family)}); add {{nodeName: {node}, address: ...}}"
                )
                continue
            instances.append(
                InstanceConfig(
                    name=f"{vip.key}/ipv{family}",
                    virtualip=vip.key,
                    family=family,
                    vrid=spec.vrid,
                    version=spec.version,
                    priority=priority,
                    advert_interval_cs=spec.advert_interval_cs,
                    addresses=tuple(a for a in spec.addresses if a.version == family),
                    interface=spec.interface,
                    label=spec.label if family == 4 else None,
                    preempt=spec.preempt.mode,
                    preempt_delay_cs=spec.preempt.delay_cs or 0,
                    accept=spec.accept,
                    unicast=spec.unicast,
                    source_address=own,
                    peers=tuple(p.address for p in peers if p.node_name != node),
                    auth_password=password,
                    garp=spec.garp.to_config(),
                    probes=probes,
                    track_interfaces=spec.track_interfaces,
                    sync_group=sync_group,
                    notify=notify,
                    readiness=spec.readiness.value,
                    verify_addresses=spec.verify_addresses,
                )
            )
    if problems:
        raise ConfigError(problems)
    return instances
