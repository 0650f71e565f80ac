"""The field types the VirtualIP models share: their validators, and the models' base.

Durations are kept in centiseconds (the unit RFC 5798 counts in) and parsed with
`Decimal`, so "1.05s" is 105 cs exactly. Each validator raises `errors.fail` /
`errors.error` with the value and what would work.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from ipaddress import IPv6Address, ip_address
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel

from vrrpd.limits import IFNAMSIZ, PORT_MAX, PORT_MIN, IPAddress
from vrrpd.spec.errors import ConfigError, Problem, error, fail, show, type_name, validate_adding
from vrrpd.spec.openapi import Crd, Rule

_T = TypeVar("_T")


def is_standalone(info: ValidationInfo) -> bool:
    """True for a file the daemon reads alone: validation context {"standalone": True}."""
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
        raise ConfigError([f"{show(value)} {result}"])
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


def duration(value: Any) -> int:
    """parse_duration_cs for validators: the problem as a pydantic error."""
    result = _centiseconds(value)
    if isinstance(result, str):
        raise fail(f"{show(value)} {result}")
    return result


# How the API server reads the same durations: Go's time.ParseDuration, limited to whole
# milliseconds (up to three decimals on s, none on ms, m and h).
DURATION_PATTERN = r"^(0|([0-9]+(h|m|ms)|([0-9]+([.][0-9]{1,3})?|[.][0-9]{1,3})s)+)$"


def crd_duration(cs: int) -> str:
    """A duration in the largest unit that holds it whole, as Kubernetes users write them:
    "1h", "5m", "30s", "10ms"."""
    for unit, size in (("h", 360000), ("m", 6000), ("s", 100)):
        if cs % size == 0 and (cs or unit == "s"):
            return f"{cs // size}{unit}"
    return f"{cs * 10}ms"


class DurationText:
    """The CRD's side of a duration field (kept in centiseconds here): a string the
    API server can read as a duration. As metadata of a field validated elsewhere."""

    def openapi(self, name: str) -> dict[str, Any]:
        return {"type": "string", "maxLength": 32, "pattern": DURATION_PATTERN}

    def openapi_value(self, cs: int) -> str:
        return crd_duration(cs)


class DurationRange(DurationText):
    """A validator: a duration within lo_cs..hi_cs, in centiseconds. `what` follows the
    range in the model's message; `example` ends the CRD's."""

    def __init__(self, lo_cs: int, hi_cs: int, what: str = "", example: str | None = None):
        self.lo_cs, self.hi_cs, self.what, self.example = lo_cs, hi_cs, what, example

    def __call__(self, value: Any) -> int:
        cs = duration(value)
        if not self.lo_cs <= cs <= self.hi_cs:
            raise fail(
                f"{show(value)} is out of range; use "
                f"{format_duration_cs(self.lo_cs)}..{format_duration_cs(self.hi_cs)}{self.what}"
            )
        return cs

    def openapi(self, name: str) -> dict[str, Any]:
        lo, hi = crd_duration(self.lo_cs), crd_duration(self.hi_cs)
        bounds = [f"duration(self) >= duration('{lo}')"] if self.lo_cs else []
        bounds += [
            f"duration(self) <= duration('{hi}')",
            "duration(self).getMilliseconds() % 10 == 0",
        ]
        rule = Rule(
            f"!self.matches('{DURATION_PATTERN}') || ({' && '.join(bounds)})",
            f"{name} must be {lo}..{hi} in 10 ms steps"
            + (f", e.g. {self.example}" if self.example else ""),
        )
        return {**super().openapi(name), "x-kubernetes-validations": [rule.openapi()]}


# --- scalar checks ----------------------------------------------------------------------


class IntRange:
    """A validator: a whole number within lo..hi (the CRD's minimum and maximum); `what`
    follows the range in the message."""

    def __init__(self, lo: int, hi: int, what: str = "") -> None:
        self.lo, self.hi, self.what = lo, hi, what

    def __call__(self, value: Any) -> int:
        lo, hi, what = self.lo, self.hi, self.what
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(
                f"{show(value)} is {type_name(value)}, not a whole number; use {lo}..{hi}{what}"
            )
        if not lo <= value <= hi:
            raise fail(f"{show(value)} is out of range; use {lo}..{hi}{what}")
        return value

    def openapi(self, name: str) -> dict[str, Any]:
        return {"minimum": self.lo, "maximum": self.hi}


_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[!-<>-~]+")  # printable ASCII but '=' and space
_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def as_string(value: Any, example: str) -> str:
    if not isinstance(value, str):
        if isinstance(value, bool | int | float):
            raise fail(f'{show(value)} is {type_name(value)}, not a string; quote it: "{value}"')
        raise fail(f"{show(value)} is {type_name(value)}; expected a string such as {example}")
    return value


def dns_label(value: Any, example: str = "web-vip") -> str:
    text = as_string(value, f'"{example}"')
    if len(text) > 63 or not _DNS1123_LABEL.fullmatch(text):
        raise fail(
            f"{show(text)} is not a valid name; use at most 63 lowercase letters, digits "
            f"and '-', starting and ending with a letter or digit (e.g. {example})"
        )
    return text


def dns1035_label(value: Any) -> str:
    # Service names are RFC 1035 labels: unlike most names they must start with a letter.
    text = as_string(value, '"ingress"')
    if len(text) > 63 or not _DNS1035_LABEL.fullmatch(text):
        raise fail(
            f"{show(text)} is not a valid Service name; use at most 63 lowercase letters, "
            "digits and '-', starting with a letter and ending with a letter or digit "
            "(e.g. ingress)"
        )
    return text


def dns_subdomain(value: Any) -> str:
    text = as_string(value, '"node-a"')
    if len(text) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(text):
        raise fail(
            f"{show(text)} is not a valid Kubernetes name; use lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit (e.g. node-a)"
        )
    return text


def label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"{show(key)}: the prefix before '/' must be a DNS subdomain (e.g. example.com/)"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            f"{show(key)} is not a valid label key; use at most 63 letters, digits, "
            "'-', '_' and '.', with an optional prefix such as node-role.kubernetes.io/"
        )
    return None


def label_value_problem(value: str) -> str | None:
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        return (
            f"{show(value)} is not a valid label value; use at most 63 letters, digits, "
            "'-', '_' and '.', or an empty string"
        )
    return None


def interface_name(value: Any) -> str:
    text = as_string(value, '"eth0"')
    if (
        not text
        or len(text) >= IFNAMSIZ
        or text in {".", ".."}
        or any(c in "/:" or c.isspace() for c in text)
    ):
        raise fail(
            f"{show(text)} is not a Linux interface name; use 1..15 characters without "
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


def ip_or_dns_name(value: Any) -> str:
    text = as_string(value, '"127.0.0.1"')
    if (problem := _host_problem(text)) is not None:
        raise fail(f"{show(text)} {problem}")
    return text


def split_host_port(text: str) -> tuple[str, int | None]:
    """ "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 address has no port.

    Raises ValueError saying what is wrong (to follow the value).
    """
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("is not host[:port] (an IPv6 address goes in brackets: [fd00::25]:25)")
        if not isinstance(_ip_or_none(host), IPv6Address):
            raise ValueError(f"has {show(host)} in brackets, which is not an IPv6 address")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    if (problem := _host_problem(host)) is not None:
        raise ValueError(f"has host {show(host)}, which {problem.split(';')[0]}")
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


def host_port(example: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = as_string(value, f'"{example}"')
        try:
            split_host_port(text)
        except ValueError as exc:
            raise fail(f"{show(text)} {exc}; use host[:port], e.g. {example}") from None
        return text

    return check


def absolute_path(value: Any) -> str:
    text = as_string(value, '"/run/vrrp/maintenance"')
    if not text.startswith("/"):
        raise fail(f"{show(text)} is not an absolute path; e.g. /run/vrrp/maintenance")
    if "\0" in text:
        raise fail(f"{show(text)} contains a NUL character, which no path can hold")
    return text


def argv(example: list[str], *, absolute: bool) -> Callable[[Any], tuple[str, ...]]:
    """A command as a list of arguments (no shell); `absolute`: the program is a full path."""
    shown = json.dumps(example)

    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            split = json.dumps(value.split() or example)
            raise fail(
                f"{show(value)} is a string; write a list, one item per argument "
                f"(no shell): {split}"
            )
        if not isinstance(value, list | tuple):
            raise fail(f"{show(value)} is {type_name(value)}; write a list such as {shown}")
        if not value:
            raise fail(f"is empty; give the program and its arguments, e.g. {shown}")
        problems: list[Problem] = []
        for i, item in enumerate(value):
            if isinstance(item, bool | int | float):
                problems.append(
                    (f"[{i}]", f'{show(item)} is {type_name(item)}; quote it: "{show(item)}"')
                )
            elif not isinstance(item, str):
                problems.append(
                    (f"[{i}]", f"{show(item)} is {type_name(item)}; an argument is a string")
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
                    f"{show(program)} is not an absolute path; the first item is the "
                    f"program's full path, e.g. /usr/local/bin/{program.rsplit('/')[-1]}",
                )
            )
        if problems:
            raise error(problems)
        return tuple(value)

    return check


def environment(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise fail(
            f'{show(value)} is {type_name(value)}; write a mapping such as {{CHECK_PORT: "8080"}}'
        )
    problems: list[Problem] = []
    for key, item in value.items():
        sub = f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{show(key)}]"
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            problems.append(
                (
                    sub,
                    f"{show(key)} is not an environment variable name; use printable "
                    "characters other than '=' and spaces, e.g. CHECK_PORT",
                )
            )
        if isinstance(item, bool | int | float):
            problems.append((sub, f'{show(item)} is {type_name(item)}; quote it: "{show(item)}"'))
        elif not isinstance(item, str):
            problems.append((sub, f"{show(item)} is {type_name(item)}; a value is a string"))
        elif "\0" in item:
            problems.append((sub, "contains a NUL character, which no value can hold"))
    if problems:
        raise error(problems)
    return dict(value)


def email_address(value: Any) -> str:
    text = as_string(value, '"ops@example.test"')
    local, at, domain = text.rpartition("@")
    if (
        not at
        or not local
        or any(c.isspace() or c in ",;<>" for c in text)
        or _host_problem(domain) is not None
    ):
        raise fail(
            f"{show(text)} is not an e-mail address; write one bare address such as "
            "ops@example.test"
        )
    return text


def http_url(value: Any) -> str:
    example = "e.g. http://hooks.example.test/vrrp"
    text = as_string(value, '"http://hooks.example.test/vrrp"')
    if any(c.isspace() for c in text):
        raise fail(f"{show(text)} contains spaces; percent-encode them (%20)")
    if "://" not in text:
        raise fail(f"{show(text)} has no scheme; write http://{text} or https://{text}")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise fail(f"{show(text)} is not a valid URL ({exc}); {example}") from None
    if parts.scheme not in ("http", "https"):
        raise fail(f"{show(text)} is not an http or https URL; {example}")
    host = parts.hostname
    if not host:
        raise fail(f"{show(text)} has no host; {example}")
    if (problem := _host_problem(host)) is not None:
        raise fail(f"{show(text)} has host {show(host)}, which {problem.split(';')[0]}; {example}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise fail(
            f"{show(text)} has port {parts.netloc.rpartition(':')[2]}; use {PORT_MIN}..{PORT_MAX}"
        )
    return text


def sha256_hex(value: Any) -> str:
    text = as_string(value, '"<64 hex digits>"')
    if not _SHA256_HEX.fullmatch(text):
        raise fail(
            f"{show(text)} is not a SHA-256 digest; write its 64 hex digits (as sha256sum "
            "prints them)"
        )
    return text.lower()


def list_once(
    value: Any, handler: Callable[[Any], _T], example: str, if_empty: str | None = None
) -> _T:
    """A list of scalars, each listed once (and not empty when `if_empty` says what to do);
    a lone scalar is shown as a list. The items' own problems are reported too."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        raise fail(f"{show(value)} is {type_name(value)}; write a list: [{show(value)}]")
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
                    (f"[{i}]", f"{show(item)} is listed twice (also at [{first_at[ident]}])")
                )
            else:
                first_at[ident] = i
    return validate_adding(handler, value, problems)


def family_name(family: int) -> str:
    return f"IPv{family}"


# --- the models' base and enumerations -------------------------------------------------


class SpecModel(BaseModel):
    """Common rules: camelCase names only, unknown fields rejected, immutable, null = absent."""

    # What a mapping written here looks like, for the message when something else is:
    # "443 is a number; expected a mapping such as {port: 443}".
    example: ClassVar[str | None] = None
    # What the CRD adds to the schema of this model's objects (vrrpd.spec.openapi).
    crd: ClassVar[Crd | None] = None

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


_E = TypeVar("_E", bound=StrEnum)


def enum_value(enum: type[_E], what: str) -> Callable[[Any], _E]:
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
        raise fail(f"{show(value)} is not {what}; use {listed}{hint}")

    return parse


# --- field types: a validator, and the CRD's words for the same rule ---------------------
# The API server's regular expressions are RE2; where the check here is code, not a
# pattern, the CRD's pattern is written out.

DNS_LABEL_PATTERN = f"^{_DNS1123_LABEL.pattern}$"
DNS_LABEL = Crd(maxLength=63, pattern=DNS_LABEL_PATTERN)
DnsSubdomain = Annotated[
    str,
    BeforeValidator(dns_subdomain),
    Crd(maxLength=253, pattern=f"^{_DNS1123_SUBDOMAIN.pattern}$"),
]
Dns1035Label = Annotated[
    str, BeforeValidator(dns1035_label), Crd(maxLength=63, pattern=f"^{_DNS1035_LABEL.pattern}$")
]
InterfaceName = Annotated[
    str,
    BeforeValidator(interface_name),
    Crd(
        minLength=1,
        maxLength=IFNAMSIZ - 1,
        pattern=r"^([^/:\s.][^/:\s]*|[.][^/:\s.][^/:\s]*|[.][.][^/:\s]+)$",
    ),
]
Host = Annotated[
    str,
    BeforeValidator(ip_or_dns_name),
    Crd(
        maxLength=253,
        rules=[
            Rule(
                "isIP(self) || (!self.matches('^[0-9.]+$') && self.matches("
                f"'^({_HOSTNAME_LABEL.pattern}[.])*{_HOSTNAME_LABEL.pattern}[.]?$'))",
                "must be an IP address or a DNS name, e.g. 127.0.0.1 or backend.example.test "
                "(no scheme, path or port)",
            )
        ],
    ),
]
HOST_PORT = Crd(
    maxLength=259, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9.]+|[0-9A-Fa-f:.]+)(:[0-9]{1,5})?$"
)
Port = Annotated[int, BeforeValidator(IntRange(PORT_MIN, PORT_MAX))]
AbsolutePath = Annotated[str, BeforeValidator(absolute_path), Crd(maxLength=4096, pattern="^/")]
EmailAddress = Annotated[
    str, BeforeValidator(email_address), Crd(maxLength=254, pattern=r"^[^\s,;<>@]+@[-A-Za-z0-9.]+$")
]
HttpUrl = Annotated[
    str,
    BeforeValidator(http_url),
    Crd(
        maxLength=2048,
        rules=[
            Rule(
                "self.matches('^https?://[^/?#@ ]+([/?#][!-~]*)?$')",
                "url must be an http:// or https:// URL with a host, e.g. "
                "http://hooks.example.test/vrrp",
            )
        ],
    ),
]
Sha256Hex = Annotated[
    str,
    BeforeValidator(sha256_hex),
    Crd(minLength=64, maxLength=64, pattern=f"^{_SHA256_HEX.pattern}$"),
]
LABEL_KEY = Crd(maxLength=317, pattern=f"^({_DNS1123_SUBDOMAIN.pattern}/)?{_LABEL_NAME.pattern}$")
LABEL_VALUE = Crd(maxLength=63, pattern=f"^({_LABEL_NAME.pattern})?$")
