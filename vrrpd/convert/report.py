"""What a conversion reports: a Warning per directive not converted as written, the
VirtualIP documents, and the Report that gathers warnings on the way (each one once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:
    from vrrpd.convert.reader import Statement

Severity = Literal["info", "warning"]


@dataclass(frozen=True, slots=True)
class Warning:  # the name the CLI and the docs use; this module never needs the builtin
    """A directive that was not converted as written, and why.

    severity "warning": behaviour changes or something is lost; "info": converted, but the
    meaning differs in a way worth knowing (e.g. `state` dropped because elections decide).
    """

    line: int
    directive: str
    message: str
    severity: Severity = "warning"
    file: str | None = None  # an included file; None: the converted file itself

    def where(self, source: str) -> str:
        return f"{self.file or source}:{self.line}"

    def format(self, source: str) -> str:
        return f"{self.where(source)}: {self.severity}: {self.directive}: {self.message}"


@dataclass(slots=True)
class Conversion:
    """VirtualIP manifests (plain dicts) and the warnings met on the way."""

    source: str
    documents: list[dict[str, Any]]
    warnings: list[Warning]
    node: str | None = None

    def yaml(self) -> str:
        """All documents as multi-document YAML, the warnings as leading `#` comments."""
        node = f", node {self.node}" if self.node else ""
        head = [f"# Converted from {self.source} by `vrrpd convert`{node}."]
        if self.warnings:
            warnings = sum(1 for w in self.warnings if w.severity == "warning")
            notes = len(self.warnings) - warnings
            head.append(
                f"# {warnings} warning{'' if warnings == 1 else 's'} and {notes} "
                f"note{'' if notes == 1 else 's'}; review them before applying:"
            )
            head.extend(f"#   {w.format(self.source)}" for w in self.warnings)
        if not self.documents:
            head.append("# No vrrp_instance found: nothing to convert.")
            return "\n".join(head) + "\n"
        body = yaml.safe_dump_all(
            self.documents,
            sort_keys=False,
            explicit_start=True,
            default_flow_style=False,
            width=1000,
        )
        return "\n".join(head) + "\n" + body


class Report:
    """The warnings of one conversion, in the order met; the same warning is kept once."""

    def __init__(self) -> None:
        self.warnings: list[Warning] = []
        self._seen: set[Warning] = set()

    def at(
        self,
        line: int,
        directive: str,
        message: str,
        *,
        severity: Severity = "warning",
        file: str | None = None,
    ) -> None:
        warning = Warning(line, directive, message, severity, file)
        if warning not in self._seen:
            self._seen.add(warning)
            self.warnings.append(warning)

    def on(self, st: Statement, message: str, *, severity: Severity = "warning") -> None:
        self.at(st.line, st.keyword, message, severity=severity, file=st.file)
