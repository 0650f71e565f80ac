"""Reading VirtualIPs: YAML text or a file into validated objects, every problem at once.

`load_file` / `load_manifests` read what the daemon runs standalone (one or several
documents; names, addresses and VRIDs checked across them); `parse_virtualip` validates
one object, as read from a file or the API; `parse_yaml` is the YAML reader they use
(duplicate keys refused, errors with line and column), for text from elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vrrpd.spec import API_VERSION, KIND
from vrrpd.spec.errors import ConfigError, format_errors, show, type_name
from vrrpd.spec.fields import family_name
from vrrpd.spec.virtualip import VirtualIP


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


def parse_yaml(text: str, source: str) -> list[Any]:
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


def document_key(doc: Mapping[Any, Any]) -> str | None:
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
        raise ConfigError(format_errors(exc, VirtualIP)) from None


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
    for number, doc in enumerate(parse_yaml(text, source), start=1):
        if doc is None:
            continue
        where = f"{source}: document {number}"
        if not isinstance(doc, Mapping):
            problems.append(
                f"{where}: {show(doc)} is {type_name(doc)}; expected a VirtualIP "
                f"(apiVersion: {API_VERSION}, kind: {KIND}, metadata, spec)"
            )
            continue
        if (key := document_key(doc)) is not None:
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
            f"spec.vrid: {vip.spec.vrid} ({family_name(family)}) is already "
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
