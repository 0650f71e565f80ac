"""CustomResourceDefinitions generated from the pydantic models, as controller-gen makes
them from Go types: one source for the daemon, the operator and the API server.

What a model already says becomes schema: field names (aliases), types, `required`,
defaults, enums (from StrEnums), descriptions (`Field(description=...)`), and bounds that
validators carry (`openapi(name)` on a validator object: integer ranges, durations). What
only the API server needs is written beside the field as a `Crd` in its `Annotated`
metadata, or on the model as `crd: ClassVar[Crd]`: lengths, patterns, list types, and CEL
rules. `Resource` adds what a CRD has around the schema (names, scope, printer columns).

`python3 -m vrrpd.spec.crds` (`make crds`) writes the files; a test keeps the checked-in
ones equal to what this makes.
"""

from __future__ import annotations

import enum
import textwrap
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

_ADDRESS_TYPES = (IPv4Address, IPv6Address, IPv4Interface, IPv6Interface, IPv4Network, IPv6Network)


@dataclass(frozen=True)
class Rule:
    """One CEL rule (x-kubernetes-validations): what must hold, and what to say if not."""

    rule: str
    message: str
    field_path: str | None = None  # where the API server reports it, e.g. ".delay"

    def openapi(self) -> dict[str, str]:
        out = {"rule": self.rule}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        out["message"] = self.message
        return out


class Crd:
    """What the CRD says of a field or a model beyond its type, bounds, enum and default:
    OpenAPI keywords as Kubernetes spells them (maxLength=63, pattern=...,
    x_kubernetes_list_type="set"), CEL `rules`, and a `description` for a model's objects
    where no field describes them (list items, the spec and status of a resource)."""

    __slots__ = ("description", "keywords", "rules")

    def __init__(
        self, *, description: str | None = None, rules: Iterable[Rule] = (), **keywords: Any
    ) -> None:
        self.description = description
        self.rules = tuple(rules)
        self.keywords = {
            k.replace("_", "-") if k.startswith("x_") else k: v for k, v in keywords.items()
        }

    def openapi(self, name: str) -> dict[str, Any]:
        out = dict(self.keywords)
        if self.description is not None:
            out["description"] = self.description
        if self.rules:
            out["x-kubernetes-validations"] = [r.openapi() for r in self.rules]
        return out


# --- pydantic models -> OpenAPI v3 schema -----------------------------------------------

# The order keys are written in: what a node is, then what bounds it, then what is below.
_ORDER = (
    "type",
    "format",
    "description",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "required",
    "x-kubernetes-validations",
    "properties",
    "additionalProperties",
    "items",
)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The schema of an object of `model`: its fields, required ones, and its own Crd."""
    node: dict[str, Any] = {"type": "object"}
    own: Crd | None = getattr(model, "crd", None)
    if own is not None:
        node.update(own.openapi(model.__name__))
    properties = {
        (info.alias or name): field_schema(name, info) for name, info in model.model_fields.items()
    }
    required = [
        info.alias or name for name, info in model.model_fields.items() if info.is_required()
    ]
    if required:
        node["required"] = required
    node["properties"] = properties
    return _ordered(node)


def field_schema(name: str, info: FieldInfo) -> dict[str, Any]:
    """One field's schema: its type's, its metadata's, its description and default."""
    node = _schema(info.annotation, info.alias or name, list(info.metadata), _default(info))
    if info.description is not None:
        node["description"] = info.description
    return _ordered(node)


def _schema(tp: Any, name: str, metadata: list[Any], default: Any = None) -> dict[str, Any]:
    while True:  # Annotated[...] and X | None: gather the metadata, keep the type
        origin = get_origin(tp)
        if origin is Annotated:
            tp, *extra = get_args(tp)
            metadata = [*extra, *metadata]
        elif origin in (Union, types.UnionType) and type(None) in get_args(tp):
            (tp,) = [a for a in get_args(tp) if a is not type(None)]
        else:
            break
    node = _type_schema(tp, name)
    # Validators that know their bounds (a BeforeValidator's function) and Crd markers.
    sources = [s for s in (getattr(m, "func", m) for m in metadata) if hasattr(s, "openapi")]
    for source in sources:
        node.update(source.openapi(name))
    if default is not None and "default" not in node:
        node["default"] = _json(default, sources)
    return node


def _type_schema(tp: Any, name: str) -> dict[str, Any]:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType) and all(a in _ADDRESS_TYPES for a in args):
        return {"type": "string"}
    if origin in (tuple, list):
        return {"type": "array", "items": _ordered(_schema(args[0], name, []))}
    if origin is dict:
        return {"type": "object", "additionalProperties": _ordered(_schema(args[1], name, []))}
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model_schema(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is str or tp in _ADDRESS_TYPES:
        return {"type": "string"}
    raise TypeError(f"{name}: no OpenAPI type for {tp!r}")


def _default(info: FieldInfo) -> Any:
    """The API server's default: the model's, where it is a value (not None, not empty, not
    a nested object: those the API server leaves absent, as the model reads them)."""
    value = info.default
    if value is PydanticUndefined or value is None or isinstance(value, BaseModel):
        return None
    if isinstance(value, tuple | list | dict) and not value:
        return None
    return value


def _json(value: Any, sources: list[Any]) -> Any:
    """A default as the API server stores it: enums by value, durations as text ..."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    for source in sources:
        if hasattr(source, "openapi_value"):
            return source.openapi_value(value)
    return value


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    unknown = set(node) - set(_ORDER)
    if unknown:
        raise ValueError(f"unknown schema keywords {sorted(unknown)}; add them to _ORDER")
    return {key: node[key] for key in _ORDER if key in node}


# --- the CustomResourceDefinition around the schema -------------------------------------


@dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get`."""

    name: str
    type: str
    json_path: str
    description: str | None = None

    def openapi(self) -> dict[str, str]:
        out = {"name": self.name, "type": self.type}
        if self.description is not None:
            out["description"] = self.description
        out["jsonPath"] = self.json_path
        return out


@dataclass(frozen=True)
class Resource:
    """A custom resource: its names, its models, and the file the CRD is written to."""

    group: str
    version: str
    kind: str
    plural: str
    scope: Literal["Namespaced", "Cluster"]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str  # of the whole object (kubectl explain <kind>)
    header: str  # the comment the file starts with
    short_names: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()  # on the whole object, e.g. on metadata.name
    printer_columns: tuple[PrinterColumn, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.yaml"

    def schema(self) -> dict[str, Any]:
        api_version = f"{self.group}/{self.version}"
        root: dict[str, Any] = {
            "type": "object",
            "description": self.description,
            "required": ["spec"],
            "properties": {
                "apiVersion": {
                    "type": "string",
                    "description": "APIVersion defines the versioned schema of this "
                    f"representation of an object: {api_version}.",
                },
                "kind": {
                    "type": "string",
                    "description": "Kind is the REST resource this object represents: "
                    f"{self.kind}.",
                },
                "metadata": {"type": "object"},
                "spec": model_schema(self.spec),
                "status": model_schema(self.status),
            },
        }
        if self.rules:
            root["x-kubernetes-validations"] = [r.openapi() for r in self.rules]
        return _ordered(root)

    def definition(self) -> dict[str, Any]:
        """The CustomResourceDefinition object."""
        version: dict[str, Any] = {
            "name": self.version,
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
        }
        if self.printer_columns:
            version["additionalPrinterColumns"] = [c.openapi() for c in self.printer_columns]
        version["schema"] = {"openAPIV3Schema": self.schema()}
        names: dict[str, Any] = {
            "kind": self.kind,
            "listKind": f"{self.kind}List",
            "plural": self.plural,
            "singular": self.kind.lower(),
        }
        if self.short_names:
            names["shortNames"] = list(self.short_names)
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.name},
            "spec": {
                "group": self.group,
                "scope": self.scope,
                "names": names,
                "versions": [version],
            },
        }

    def yaml(self) -> str:
        """The CRD file: its header comment, then the definition as YAML."""
        comment = "".join(f"# {line}".rstrip() + "\n" for line in self.header.splitlines())
        return comment + dump(self.definition())


# --- YAML a person can read --------------------------------------------------------------

_WIDTH = 100


def dump(data: Mapping[str, Any]) -> str:
    """`data` as block-style YAML: lists indented, short scalar lists in flow style, prose
    folded (>-) at the file's width. Reads back as `data` exactly (checked)."""
    text = "".join(line.rstrip() + "\n" for line in _mapping(data, 0))
    if yaml.safe_load(text) != data:
        raise ValueError("the YAML written does not read back as the data")
    return text


def _mapping(data: Mapping[str, Any], indent: int) -> list[str]:
    lines: list[str] = []
    pad = " " * indent
    for key, value in data.items():
        head = f"{pad}{key}:"
        if isinstance(value, Mapping) and value:
            lines += [head, *_mapping(value, indent + 2)]
        elif isinstance(value, list) and value and not _flow(value, len(head)):
            lines.append(head)
            for item in value:
                if isinstance(item, Mapping) and item:
                    first, *rest = _mapping(item, indent + 4)
                    lines += [f"{pad}  - {first.lstrip()}", *rest]
                else:
                    first, *rest = _scalar(item, indent + 4, indent + 6)
                    lines += [f"{pad}  - {first}", *rest]
        else:
            value_lines = _scalar(value, len(head) + 1, indent + 2)
            lines.append(f"{head} {value_lines[0]}")
            lines += value_lines[1:]
    return lines


def _flow(items: list[Any], column: int) -> bool:
    scalars = not any(isinstance(i, Mapping | list) for i in items)
    return scalars and column + len(_plain(items)) < _WIDTH


def _plain(value: Any) -> str:
    out: str = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, allow_unicode=True)
    return out.removesuffix("\n...\n").removesuffix("\n")


def _scalar(value: Any, column: int, block: int) -> list[str]:
    """A scalar written at `column`: there if it fits, else folded into lines at `block`."""
    text = _plain(value)
    if column + len(text) <= _WIDTH or not isinstance(value, str) or " " not in value:
        return [text]
    wrapped = textwrap.wrap(
        value, width=_WIDTH - block, break_long_words=False, break_on_hyphens=False
    )
    return [">-", *(" " * block + line for line in wrapped)]
