"""Problems with a VirtualIP, worded for the person who wrote it: field, value, what works.

Validators report `Problem`s (a path below the field they check, and a message) through
`error` / `fail`; `format_errors` turns pydantic's errors into lines
"<field path>: <what is wrong; what works>", with hints for missing fields, unknown
fields (did you mean ...?) and values of the wrong type. `ConfigError` carries them all.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from vrrpd.spec import API_VERSION, KIND
from vrrpd.vrrp.fsm import PreemptMode

# --- what validators report -------------------------------------------------------------


class ConfigError(ValueError):
    """Invalid configuration; str() is a readable multi-line report (field, value, what works)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_PLAIN = re.compile(r"[A-Za-z0-9_./:+@%-]+")


def show(value: Any) -> str:
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


def type_name(value: Any) -> str:
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
# ("" for the field itself, ".delay", "[1].address"); `format_errors` expands them.
Problem = tuple[str, str]


def error(problems: Iterable[Problem]) -> PydanticCustomError:
    found = tuple(problems)
    summary = "; ".join(f"{sub}: {msg}" if sub else msg for sub, msg in found)
    return PydanticCustomError("kubevrrp", "{summary}", {"summary": summary, "problems": found})


def fail(message: str, sub: str = "") -> PydanticCustomError:
    return error([(sub, message)])


_T = TypeVar("_T")


def validate_adding(handler: Callable[[Any], _T], data: Any, problems: list[Problem]) -> _T:
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
                type=error(ctx["problems"]) if err["type"] == "kubevrrp" and ctx else err["type"],
                loc=err["loc"],
                input=err["input"],
            )
            if ctx is not None:
                detail["ctx"] = ctx
            details.append(detail)
        details.append(InitErrorDetails(type=error(problems), loc=(), input=data))
        raise ValidationError.from_exception_data(exc.title, details) from None
    if problems:
        raise error(problems)
    return result


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


def format_errors(exc: ValidationError, root: type[BaseModel]) -> list[str]:
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
            message = f"{show(value)}: write {{mode: {_PREEMPT_SHORTHAND[value]}}}"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            model = _model_at(root, loc) if loc else None
            example = getattr(model, "example", None)  # SpecModel.example
            message = f"{show(value)} is {type_name(value)}; expected a mapping" + (
                f" such as {example}" if example else " (key: value)"
            )
        elif kind in ("list_type", "tuple_type"):
            message = f"{show(value)} is {type_name(value)}; expected a list"
        elif kind in ("bool_type", "bool_parsing"):
            message = f"{show(value)} is {type_name(value)}; use true or false"
        elif kind in ("string_type", "str_type"):
            message = f"{show(value)} is {type_name(value)}; expected a string (quote it)"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            message = f"{show(value)} is {type_name(value)}; expected a whole number"
        else:
            message = f"{show(value)}: {err['msg']}"
        lines.append(f"{path}: {message}" if path else message)
    return lines
