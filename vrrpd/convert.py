"""keepalived.conf -> VirtualIP manifests: the `vrrpd convert` migration tool.

`convert_text` parses a keepalived.conf (its own small parser, following keepalived's
lib/parser.c: `!`/`#` comments, double-quoted strings, `{ }` blocks that may share a line,
`\\` continuations, `include`, `@host` conditional lines, `$NAME=value` parameters) and
turns each vrrp_instance into one VirtualIP manifest (a plain dict, ready for
yaml.safe_dump). Every directive is either mapped to a field or reported as a `Warning`
naming the directive and its line: nothing is dropped silently.

Where keepalived and kube-vrrp differ the conversion keeps what the configuration meant
and says so in a warning: `state` is dropped (elections decide), `nopreempt` becomes
preempt Never on every node, the VRRP version is always written out (keepalived's default
is 2, ours 3). docs/keepalived-migration.md is the directive -> field table.

Pure apart from reading included files and the `cli` wrapper: no network, no clock.
"""

from __future__ import annotations

import argparse
import glob
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parseaddr
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_interface
from pathlib import Path
from typing import Any, Literal

import yaml

from vrrpd.model import API_VERSION, KIND, format_duration_cs

INSTANCE_ANNOTATION = "kubevrrp.io/keepalived-instance"
THIS_NODE = "this-node"  # nodeName of unicast_src_ip when no --node is given
KEEPALIVED_DEFAULT_VERSION = 2  # keepalived's vrrp_version default (ours is 3)
PASSWORD_MAX = 8  # keepalived uses the first 8 characters of auth_pass
INCLUDE_DEPTH_MAX = 16
PROBE_INTERVAL_MAX_CS = 3600 * 100
SMTP_TIMEOUT_MAX_CS = 5 * 60 * 100
PREEMPT_DELAY_MAX_CS = 3600 * 100
EXIT_OK, EXIT_PARSE = 0, 2

Severity = Literal["info", "warning"]


# --- results --------------------------------------------------------------------------------


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


class ParseError(ValueError):
    """keepalived.conf that cannot be read as blocks of directives (unbalanced braces, quotes)."""

    def __init__(self, line: int, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.file = file

    def format(self, source: str) -> str:
        return f"{self.file or source}:{self.line}: error: {self.message}"


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


# --- reading: lines, tokens, blocks ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # quotes removed
    quoted: bool
    line: int


@dataclass(slots=True)
class Statement:
    """One directive: its words, and the `{ }` block that follows it, if any."""

    words: list[Token]
    line: int
    file: str | None
    block: list[Statement] | None = None

    @property
    def keyword(self) -> str:
        return self.words[0].text

    @property
    def args(self) -> list[str]:
        return [t.text for t in self.words[1:]]


@dataclass(frozen=True, slots=True)
class _Line:
    file: str | None
    number: int
    tokens: list[Token]


def _decomment(raw: str, number: int, file: str | None) -> tuple[str, bool]:
    """keepalived's decomment(): the line without its comment, and whether a `\\` continues it.

    `!` and `#` start a comment anywhere outside double quotes; `\\!` and `\\#` are literal.
    """
    out: list[str] = []
    quote = False
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            quote = not quote
        elif c == "\\":
            if i + 1 == n:
                return "".join(out).strip(), True
            following = raw[i + 1]
            if not quote and following in "!#":
                out.append(following)
            else:
                out.append(c + following)
            i += 2
            continue
        elif not quote and c in "!#":
            break
        out.append(c)
        i += 1
    if quote:
        raise ParseError(number, 'unterminated quote: a "..." string must end on its line', file)
    return "".join(out).strip(), False


def _logical_lines(text: str, file: str | None) -> Iterator[tuple[int, str]]:
    pending: str | None = None
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        content, continued = _decomment(raw, number, file)
        if pending is None:
            start = number
        else:
            content = f"{pending} {content}"
        if continued:
            pending = content
            continue
        pending = None
        if content:
            yield start, content
    if pending:
        yield start, pending


_SPACE = " \t\r\f\v"


def _tokenize(text: str, number: int, file: str | None) -> list[Token]:
    """Words of one line: whitespace-separated, "..." as one word, `{` and `}` on their own."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c in "{}":
            tokens.append(Token(c, False, number))
            i += 1
        elif c == '"':
            j, chars = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    # \" is a quote inside the string; other escapes stay for shlex to read.
                    chars.append('"' if text[j + 1] == '"' else text[j : j + 2])
                    j += 2
                    continue
                chars.append(text[j])
                j += 1
            if j >= n:
                raise ParseError(number, "unterminated quote", file)
            tokens.append(Token("".join(chars), True, number))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in _SPACE + '"{}':
                j += 1
            tokens.append(Token(text[i:j], False, number))
            i = j
    return tokens


_DEFINITION = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class _Reader:
    """Lines of the configuration after keepalived's line-level preprocessing."""

    def __init__(self, report: _Report, node: str | None) -> None:
        self.report = report
        self.node = node
        self.definitions: dict[str, str] = {}
        self.including: list[str] = []

    def lines(self, text: str, file: str | None, base: Path | None) -> Iterator[_Line]:
        for number, content in _logical_lines(text, file):
            kept = self._conditional(content, number, file)
            if kept is None:
                continue
            content = kept
            if (match := _DEFINITION.fullmatch(content)) is not None:
                self.definitions[match.group(1)] = match.group(2).strip()
                continue
            if self.definitions and "$" in content:
                content = self._substitute(content, number, file)
            if content.startswith(("~SEQ", "~LST")):
                self.report.at(
                    number,
                    content.split("(")[0],
                    "keepalived sequence/list expansion is not supported; expand it by hand",
                    file=file,
                )
                continue
            tokens = _tokenize(content, number, file)
            if tokens and tokens[0].text == "include" and not tokens[0].quoted:
                yield from self._include(tokens, number, file, base)
                continue
            yield _Line(file, number, tokens)

    def _conditional(self, content: str, number: int, file: str | None) -> str | None:
        """`@host directive` applies only on that host (`@^host`: everywhere else)."""
        if not content.startswith("@"):
            return content
        head, _, rest = content.replace("\t", " ").partition(" ")
        rest = rest.strip()
        negated = head.startswith("@^")
        host = head[2:] if negated else head[1:]
        if not rest:
            return None
        if self.node is None:
            self.report.at(
                number,
                head,
                f"line for host {host!r} skipped: give --node to choose which host's lines apply",
                file=file,
            )
            return None
        if (host == self.node) != negated:
            return rest
        self.report.at(
            number,
            head,
            f"line skipped: it applies {'everywhere except on' if negated else 'only on'} "
            f"host {host!r}, and --node is {self.node!r}",
            severity="info",
            file=file,
        )
        return None

    def _substitute(self, content: str, number: int, file: str | None) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name in self.definitions:
                return self.definitions[name]
            self.report.at(number, f"${name}", "undefined parameter; left as written", file=file)
            return match.group(0)

        return _REFERENCE.sub(value, content)

    def _include(
        self, tokens: list[Token], number: int, file: str | None, base: Path | None
    ) -> Iterator[_Line]:
        if len(tokens) < 2:
            self.report.at(number, "include", "no file name given; ignored", file=file)
            return
        pattern = tokens[1].text
        if base is None:
            self.report.at(
                number,
                "include",
                f"{pattern}: cannot be resolved for text without a file path; its directives "
                "are not converted (convert the file itself, or paste the included text)",
                file=file,
            )
            return
        path = Path(pattern).expanduser()
        full = path if path.is_absolute() else base / path
        matches = sorted(m for m in glob.glob(str(full)) if Path(m).is_file())
        if not matches:
            self.report.at(
                number,
                "include",
                f"{pattern}: no such file (looked for {full}); its directives are not "
                "converted (not supported unless the file is there)",
                file=file,
            )
            return
        if len(self.including) >= INCLUDE_DEPTH_MAX:
            self.report.at(number, "include", f"{pattern}: includes nest too deep", file=file)
            return
        for match in matches:
            resolved = str(Path(match).resolve())
            if resolved in self.including:
                self.report.at(number, "include", f"{match} includes itself; skipped", file=file)
                continue
            try:
                text = Path(match).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.report.at(number, "include", f"{match}: cannot read ({exc})", file=file)
                continue
            self.report.at(number, "include", f"inlined {match}", severity="info", file=file)
            self.including.append(resolved)
            try:
                yield from self.lines(text, match, Path(match).parent)
            finally:
                self.including.pop()


def _build(lines: Iterator[_Line]) -> list[Statement]:
    """Statements and their nested blocks; `{` may end a directive's line or start the next."""
    root: list[Statement] = []
    stack: list[tuple[list[Statement], Statement, int]] = []  # (outer block, owner, '{' line)
    current = root
    for line in lines:
        pending: list[Token] = []
        for token in [*line.tokens, None]:
            brace = token.text if token is not None and not token.quoted else None
            if token is not None and brace not in ("{", "}"):
                pending.append(token)
                continue
            # A directive ends at the end of its line, and before a brace.
            if pending:
                current.append(Statement(pending, pending[0].line, line.file))
                pending = []
            if brace == "{":
                # The block belongs to the directive just before: on this line, or on the
                # line above (keepalived accepts `{` on the line after its directive).
                if not current or current[-1].block is not None:
                    raise ParseError(line.number, "'{' without a directive before it", line.file)
                owner = current[-1]
                owner.block = []
                stack.append((current, owner, line.number))
                current = owner.block
            elif brace == "}":
                if not stack:
                    raise ParseError(
                        line.number, "unbalanced '}': no block is open here", line.file
                    )
                current, _, _ = stack.pop()
    if stack:
        _, owner, opened = stack[-1]
        where = "" if opened == owner.line else f" (line {owner.line})"
        raise ParseError(
            opened,
            f"the '{{' of {owner.keyword}{where} is never closed (a '}}' is missing)",
            owner.file,
        )
    return root


def parse(
    text: str, *, source: str = "<keepalived.conf>", node: str | None = None
) -> tuple[list[Statement], list[Warning]]:
    """The statements of a keepalived.conf, with warnings from preprocessing (includes, @host).

    Raises ParseError (with the line) for unbalanced braces or an unterminated quote.
    """
    report = _Report()
    return _parse(text, source, node, report), report.warnings


def _parse(text: str, source: str, node: str | None, report: _Report) -> list[Statement]:
    reader = _Reader(report, node)
    base: Path | None = None
    if _is_path(source):
        base = Path(source).parent
        reader.including.append(str(Path(source).resolve()))
    return _build(reader.lines(text, None, base))


def _is_path(source: str) -> bool:
    return not (source.startswith("<") and source.endswith(">")) and source != "-"


# --- warnings -------------------------------------------------------------------------------


class _Report:
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


# --- values ---------------------------------------------------------------------------------

_DECIMAL = re.compile(r"\d+(\.\d*)?|\.\d+")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE, _FALSE = {"true", "on", "yes"}, {"false", "off", "no"}


def _seconds(text: str) -> Decimal | None:
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def _integer(text: str) -> int | None:
    return int(text) if _INTEGER.fullmatch(text) else None


def _cs(seconds: Decimal) -> int:
    """Seconds as centiseconds, rounded half up (as keepalived rounds advert_int)."""
    return int((seconds * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _duration(cs: int) -> str:
    return format_duration_cs(cs)


def _show_seconds(seconds: Decimal) -> str:
    return f"{seconds.normalize():f}s"


_DNS_INVALID = re.compile(r"[^a-z0-9-]+")


def dns_label(name: str, fallback: str = "vrrp") -> str:
    """A DNS-1123 label from a keepalived name: lowercase, other characters as '-'."""
    text = _DNS_INVALID.sub("-", name.lower())
    text = re.sub(r"-{2,}", "-", text).strip("-")[:63].rstrip("-")
    return text or fallback


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        suffix = f"-{n}"
        candidate = name[: 63 - len(suffix)].rstrip("-") + suffix
        n += 1
    used.add(candidate)
    return candidate


def _peer_name(address: str) -> str:
    return "peer-" + re.sub(r"[^a-z0-9]", "-", address.lower()).strip("-")


_SHELL_CHARS = set("|&;<>()$`*?~")
_TEST_WORDS = {"[", "test"}  # programs (/usr/bin/[) that read like shell syntax

ShellUse = Literal["none", "test", "shell"]


def shell_use(command: str) -> ShellUse:
    """How a keepalived script line relates to the shell.

    "none": a plain command line. "test": a `[ ... ]` / `test ...` line, which keepalived
    execs as the program /usr/bin/[ and /bin/sh -c runs the same way. "shell": pipes,
    redirections, `&&`, `$VAR`, globs or shell keywords, which only a shell understands.
    """
    quote: str | None = None
    escaped = False
    for c in command:
        if escaped:
            escaped = False
        elif c == "\\" and quote != "'":
            escaped = True
        elif quote is not None:
            if c == quote:
                quote = None
            elif quote == '"' and c in "$`":
                return "shell"
        elif c in "'\"":
            quote = c
        elif c in _SHELL_CHARS:
            return "shell"
    try:
        words = shlex.split(command)
    except ValueError:
        return "shell"
    if not words:
        return "none"
    if words[0] in _TEST_WORDS:
        return "test"
    if words[0] in {"[[", "!", "{", "if", "for", "while", "case", "exec"} or re.match(
        r"\w+=", words[0]
    ):
        return "shell"
    return "none"


_DEV_TCP = re.compile(r"\s*<\s*/dev/tcp/([^/\s]+)/(\d{1,5})\s*")
SHELL_CHANGED = (
    "keepalived 2.x runs no shell here: it execs the first word and passes `|`, `&&`, "
    "`$VAR` and the like as plain arguments, so this line never did what it says; it runs "
    "with /bin/sh -c now, which does. Check that is what you want"
)


def _argv(command: str, *, appended: bool = False) -> list[str]:
    """A keepalived script line as argv; shell syntax (and `[ ]` tests) run with /bin/sh -c.

    appended: keepalived adds arguments after the command (`notify` gets TYPE NAME STATE
    PRIORITY); through the shell they are passed on with "$@".
    """
    if shell_use(command) == "none":
        return shlex.split(command)
    if appended:
        return ["/bin/sh", "-c", f'{command} "$@"', "sh"]
    return ["/bin/sh", "-c", command]


# --- keepalived model -----------------------------------------------------------------------


@dataclass(slots=True)
class _Script:
    """A vrrp_script, resolved once (its warnings are given once, at its own lines)."""

    name: str
    check: dict[str, Any] | None
    interval_cs: int | None = None
    timeout_cs: int | None = None
    weight: int | None = None
    reverse: bool = False
    rise: int | None = None
    fall: int | None = None


@dataclass(slots=True)
class _TrackFile:
    name: str
    path: str | None
    weight: int = 1  # keepalived: a track_file's weight defaults to 1
    reverse: bool = False


@dataclass(slots=True)
class _Globals:
    version: int | None = None
    garp: dict[str, Any] = field(default_factory=dict)
    garp_interval_cs: int | None = None
    gna_interval_cs: int | None = None
    email_to: list[str] = field(default_factory=list)
    email_from: str | None = None
    smtp_server: str | None = None
    smtp_timeout_cs: int | None = None
    smtp_alert: bool = False
    strict: bool = False
    garp_line: dict[str, Statement] = field(default_factory=dict)


@dataclass(slots=True)
class _SyncGroup:
    st: Statement
    name: str  # sanitized
    members: list[str] = field(default_factory=list)
    notify: dict[str, tuple[list[str], Statement]] = field(default_factory=dict)
    smtp_alert: bool = False
    tracking: list[Statement] = field(default_factory=list)
    tracking_weight: bool = False
    copied: dict[str, list[str]] = field(default_factory=dict)  # notify kind -> members


_NOTIFY_FIELDS = {
    "notify_master": "master",
    "notify_backup": "backup",
    "notify_fault": "fault",
    "notify_stop": "stop",
    "notify": "all",
}
_NOTIFY_ORDER = ("master", "backup", "fault", "stop", "all")

TOP_UNSUPPORTED = {
    "virtual_server": "IPVS load balancing is not part of kube-vrrp (use a Service or ingress)",
    "virtual_server_group": "IPVS load balancing is not part of kube-vrrp",
    "static_ipaddress": "static addresses are host configuration, not a VirtualIP",
    "static_routes": "static routes are host configuration, not a VirtualIP",
    "static_rules": "static rules are host configuration, not a VirtualIP",
    "garp_group": "per-interface GARP rate limits are not supported; see spec.garp.interval",
    "vrrp_track_process": "process tracking is not supported; use an exec probe (pgrep)",
    "bfd_instance": "BFD is not supported; use probes",
    "track_group": "track groups (for static addresses) are not supported",
    "linkbeat_interfaces": "not needed: link state comes from netlink events",
    "interface_up_down_delays": "interface debouncing is not supported",
}

INSTANCE_UNSUPPORTED = {
    "virtual_routes": "not supported: routes are not added or removed on state changes; "
    "keep them static or add them from a notify script",
    "virtual_rules": "not supported: policy rules are not added or removed on state changes; "
    "keep them static or add them from a notify script",
    "use_vmac": "not supported: the VIP uses the interface's own MAC; peers learn it from "
    "gratuitous ARP / unsolicited NA",
    "use_vmac_addr": "not supported (no VMAC interfaces)",
    "vmac_xmit_base": "not supported (no VMAC interfaces)",
    "use_ipvlan": "not supported (no ipvlan interfaces)",
    "dont_track_primary": "not supported: an instance always goes to FAULT while its "
    "interface is down",
    "debug": "no per-instance debug level; run vrrpd with --verbose",
    "mcast_src_ip": "not supported: adverts come from the interface's primary address",
    "mcast_dst_ip": "not supported: adverts use the RFC groups 224.0.0.18 / ff02::12",
    "vrf": "VRFs are not supported",
    "track_process": "process tracking is not supported; use an exec probe (e.g. pgrep -x NAME)",
    "track_bfd": "BFD tracking is not supported",
    "track_src_ip": "not supported",
    "unicast_ttl": "not supported: unicast adverts are sent with TTL 255",
    "check_unicast_src": "not needed: unicast adverts from addresses not in spec.peers are "
    "always dropped",
    "unicast_fault_no_peer": "not needed: unicast without peers is a configuration error here",
    "old_unicast_checksum": "not supported: checksums follow RFC 5798 (keepalived >= 1.3.6)",
    "v3_checksum_as_v2": "not supported: VRRPv3 IPv4 checksums include the pseudo-header",
    "native_ipv6": "not needed: the address families follow spec.addresses",
    "lvs_sync_daemon_interface": "IPVS sync is not part of kube-vrrp",
    "garp_master_refresh_repeat": "not supported: each refresh sends one burst",
    "garp_lower_prio_delay": "not supported",
    "garp_lower_prio_repeat": "not supported",
    "garp_extra_if": "not supported",
    "vmac_garp_intvl": "not supported",
    "down_timer_adverts": "not supported: master_down_interval is 3 adverts + skew (RFC 5798)",
    "timer_expired_backup": "not supported",
    "thread_timer_expired": "not supported",
    "lower_prio_no_advert": "not supported",
    "higher_prio_send_advert": "not supported",
    "owner_ignore_adverts": "not supported",
    "kernel_rx_buf_size": "not supported",
    "linkbeat_use_polling": "not needed: link state comes from netlink events",
    "notify_deleted": "not supported: there is no DELETED notification",
    "notify_master_rx_lower_pri": "not supported",
    "notify_priority_changes": "not supported: notifications are sent on state changes only",
    "no_virtual_ipaddress": "not supported: a VirtualIP has at least one address",
    "skip_check_adv_addr": "not supported: adverts whose address list differs are dropped "
    "(RFC 5798 section 7.1), as keepalived does without this option",
    "auth_hmac": "keepalived's HMAC authentication extension is not supported",
}

_GLOBAL_VALUED = {
    "notification_email_from",
    "smtp_server",
    "smtp_connect_timeout",
    "vrrp_version",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
}

_GLOBAL_INFO = {
    "router_id": "not needed: each node is identified by its Kubernetes node name",
    "script_user": "not supported: probes and notify scripts run as the daemon's user",
    "enable_script_security": "not supported: probes and notify scripts run as the daemon's "
    "user; keep scripts root-owned",
}


# --- conversion -----------------------------------------------------------------------------


class _Converter:
    def __init__(self, report: _Report, node: str | None, namespace: str) -> None:
        self.report = report
        self.node = node
        self.namespace = namespace
        self.globals = _Globals()
        self.scripts: dict[str, _Script] = {}
        self.track_files: dict[str, _TrackFile] = {}
        self.groups: dict[str, _SyncGroup] = {}  # by instance name
        self.names: set[str] = set()
        self.used_scripts: set[str] = set()
        self.noted: set[str] = set()  # advice given once per file, not once per instance

    # --- top level

    def run(self, statements: list[Statement]) -> list[dict[str, Any]]:
        instances: list[Statement] = []
        groups: list[Statement] = []
        # Definitions first, instances after: keepalived resolves names over the whole file.
        blocks: dict[str, Callable[[Statement], None]] = {
            "global_defs": self._global_defs,
            "vrrp_script": self._vrrp_script,
            "track_file": self._track_file,
            "vrrp_track_file": self._track_file,
            "vrrp_sync_group": groups.append,
            "vrrp_instance": instances.append,
        }
        for st in statements:
            kw = st.keyword
            if kw in blocks:
                if self._has_block(st, named=kw != "global_defs"):
                    blocks[kw](st)
            elif kw in TOP_UNSUPPORTED:
                self.report.on(st, TOP_UNSUPPORTED[kw] + "; block ignored")
            else:
                what = "block" if st.block is not None else "directive"
                self.report.on(st, f"unknown or unsupported top-level {what}; ignored")
        names = [i.args[0] for i in instances]
        for st in groups:
            self._sync_group(st, names)
        documents = [self._instance(st) for st in instances]
        self._unused_scripts(statements)
        for group in {id(g): g for g in self.groups.values()}.values():
            self._group_notify_report(group)
        for st in groups:
            if not any(g.st is st for g in self.groups.values()):
                self.report.on(st, "has no member instances; ignored")
        return documents

    def _group_notify_report(self, group: _SyncGroup) -> None:
        for kind, (_, st) in group.notify.items():
            members = group.copied.get(kind)
            if not members:
                continue
            extra = (
                "; it now gets INSTANCE <instance> instead of GROUP "
                f"{group.st.args[0]} as its first two appended arguments (the group's name "
                "is in $VRRPD_GROUP)"
                if kind == "all"
                else ""
            )
            self.report.on(
                st,
                "group notifications become per-instance: copied to notify."
                f"{kind} of {', '.join(members)}, so the script runs once per member{extra}",
            )

    def note_once(self, key: str, st: Statement, message: str) -> None:
        if key not in self.noted:
            self.noted.add(key)
            self.report.on(st, message, severity="info")

    def _has_block(self, st: Statement, *, named: bool = False) -> bool:
        if named and not st.args:
            self.report.on(st, "has no name; ignored")
            return False
        if st.block is None:
            self.report.on(st, "has no { } block; ignored")
            return False
        return True

    def _unused_scripts(self, statements: list[Statement]) -> None:
        for st in statements:
            if st.keyword == "vrrp_script" and st.args and st.args[0] not in self.used_scripts:
                self.report.on(
                    st,
                    f"{st.args[0]} is not used by any track_script; not converted",
                    severity="info",
                )

    # --- global_defs

    def _global_defs(self, block: Statement) -> None:
        g = self.globals
        for st in block.block or []:
            kw, args = st.keyword, st.args
            if kw in _GLOBAL_VALUED and not args:
                self.report.on(st, "no value given; ignored")
            elif kw == "notification_email":
                if st.block is None:
                    self.report.on(st, "expects a { } block of addresses; ignored")
                    continue
                for entry in st.block:
                    address = self._email(entry, " ".join(t.text for t in entry.words))
                    if address is not None:
                        g.email_to.append(address)
            elif kw == "notification_email_from":
                g.email_from = self._email(st, " ".join(args))
            elif kw == "smtp_server":
                host = args[0]
                port = args[1] if len(args) > 1 else "25"
                g.smtp_server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            elif kw == "smtp_connect_timeout":
                g.smtp_timeout_cs = self.read_duration(st, args[0])
                if g.smtp_timeout_cs is not None and g.smtp_timeout_cs > SMTP_TIMEOUT_MAX_CS:
                    self.report.on(st, "above the 5m maximum; using 5m")
                    g.smtp_timeout_cs = SMTP_TIMEOUT_MAX_CS
            elif kw in ("smtp_alert", "smtp_alert_vrrp"):
                value = self.read_bool(st)
                if value is not None:
                    g.smtp_alert = value
            elif kw == "vrrp_version":
                version = _integer(args[0])
                if version not in (2, 3):
                    self.report.on(st, f"{args[0]!r} is not 2 or 3; ignored")
                else:
                    g.version = version
            elif kw == "vrrp_garp_master_delay":
                self.garp_value(st, g.garp, "masterDelay", args[0], whole=True)
            elif kw == "vrrp_garp_master_repeat":
                self.garp_value(st, g.garp, "masterRepeat", args[0])
            elif kw == "vrrp_garp_master_refresh":
                self.garp_value(st, g.garp, "masterRefresh", args[0], whole=True)
            elif kw == "vrrp_garp_interval":
                g.garp_interval_cs = self.read_interval(st, args[0])
                g.garp_line["interval"] = st
            elif kw == "vrrp_gna_interval":
                g.gna_interval_cs = self.read_interval(st, args[0])
                g.garp_line["gna"] = st
            elif kw == "vrrp_strict":
                g.strict = True
                self.report.on(
                    st,
                    "strict mode is not a setting here; converted as `accept: false` on every "
                    "instance (its effect on accept mode); its other checks do not apply",
                )
            elif kw in _GLOBAL_INFO:
                self.report.on(st, _GLOBAL_INFO[kw], severity="info")
            else:
                self.report.on(st, "not supported by kube-vrrp; ignored")

    def _email(self, st: Statement, text: str) -> str | None:
        """A bare address; keepalived also takes "Display Name <address>"."""
        name, address = parseaddr(text)
        if "@" not in address:
            self.report.on(st, f"{text!r} is not an e-mail address; ignored")
            return None
        if name or address != text:
            self.report.on(st, f"display name dropped: {address}", severity="info")
        return address

    def garp_value(
        self, st: Statement, garp: dict[str, Any], key: str, text: str, *, whole: bool = False
    ) -> None:
        if key == "masterRepeat":
            repeat = _integer(text)
            if repeat is None or repeat < 0:
                self.report.on(st, f"{text!r} is not a count; ignored")
                return
            if not 1 <= repeat <= 255:
                clamped = min(max(repeat, 1), 255)
                self.report.on(st, f"{repeat} is outside 1..255; using {clamped}")
                repeat = clamped
            garp[key] = repeat
            return
        cs = self.read_duration(st, text, whole=whole)
        if cs is not None:
            garp[key] = _duration(cs)

    # --- vrrp_script, track_file

    def _vrrp_script(self, block: Statement) -> None:
        name = block.args[0]
        script = _Script(name=name, check=None)
        timeout_st: Statement | None = None
        for st in block.block or []:
            kw, args = st.keyword, st.args
            if kw in ("script", "interval", "timeout", "weight", "rise", "fall") and not args:
                self.report.on(st, "no value given; ignored")
            elif kw == "script":
                script.check = self._script_check(st)
            elif kw == "interval":
                script.interval_cs = self.read_interval(st, args[0], minimum=1)
                if script.interval_cs is not None and script.interval_cs > PROBE_INTERVAL_MAX_CS:
                    self.report.on(st, "above the 1h maximum of a probe interval; using 1h")
                    script.interval_cs = PROBE_INTERVAL_MAX_CS
            elif kw == "timeout":
                script.timeout_cs = self.read_interval(st, args[0], minimum=1)
                timeout_st = st
            elif kw == "weight":
                script.weight = self.read_weight(st, args[0], 253)
                if len(args) > 1 and args[1] == "reverse":
                    script.reverse = True
            elif kw in ("rise", "fall"):
                count = _integer(args[0])
                if count is None or count < 1:
                    self.report.on(st, f"{args[0]!r} is not a count >= 1; using 1")
                    count = 1
                elif count > 255:
                    self.report.on(st, f"{count} is above 255, the most a probe counts; using 255")
                    count = 255
                setattr(script, kw, count)
            elif kw == "user":
                self.report.on(st, "not supported: probes run as the daemon's user; dropped")
            elif kw == "init_fail":
                self.report.on(
                    st,
                    "not supported: a probe counts as neither up nor down until its first "
                    "result; dropped",
                )
            else:
                self.report.on(st, "unknown vrrp_script option; ignored")
        interval = script.interval_cs if script.interval_cs is not None else 100
        if script.timeout_cs is not None and script.timeout_cs > interval and timeout_st:
            self.report.on(
                timeout_st,
                f"timeout {_duration(script.timeout_cs)} is longer than the interval "
                f"{_duration(interval)}; a probe's timeout must be <= its interval, so it "
                f"becomes {_duration(interval)} (or raise the interval to keep the timeout)",
            )
            script.timeout_cs = interval
        if script.check is None:
            self.report.on(block, f"{name} has no script; not converted")
        self.scripts[name] = script

    def _script_check(self, st: Statement) -> dict[str, Any] | None:
        command = st.args[0]
        if len(st.args) > 1:
            self.report.on(
                st,
                f"user {' '.join(st.args[1:])!r} not supported: probes run as the daemon's "
                "user (quote the script if those words were its arguments)",
            )
        if (match := _DEV_TCP.fullmatch(command)) is not None:
            host, port = match.group(1), int(match.group(2))
            self.report.on(
                st,
                f"{command!r} (a bash /dev/tcp connect) becomes a tcp probe {host}:{port}. "
                "keepalived runs a script starting with '</' through /bin/sh, which has no "
                "/dev/tcp where sh is dash (Debian, Ubuntu): there the check always failed",
                severity="info",
            )
            return {"tcp": {"host": host, "port": port}}
        if "/dev/tcp/" in command or "/dev/udp/" in command:
            self._shell_note(st, command)
            self.report.on(
                st,
                "uses bash's /dev/tcp: runs with /bin/bash -c; the daemon's image must have bash",
            )
            return {"exec": {"command": ["/bin/bash", "-c", command]}}
        self._shell_note(st, command)
        try:
            return {"exec": {"command": _argv(command)}}
        except ValueError as exc:
            self.report.on(st, f"cannot split {command!r} into arguments ({exc}); not converted")
            return None

    def _track_file(self, block: Statement) -> None:
        name = block.args[0]
        if block.keyword == "vrrp_track_file":
            self.report.on(block, "deprecated keepalived name of track_file", severity="info")
        track = _TrackFile(name=name, path=None)
        for st in block.block or []:
            kw, args = st.keyword, st.args
            if kw == "file" and args:
                track.path = args[0]
                if not track.path.startswith("/"):
                    self.report.on(st, "not an absolute path; not converted")
                    track.path = None
            elif kw == "weight" and args:
                weight = self.read_weight(st, args[0], 254)
                if weight is not None:
                    track.weight = weight
                if len(args) > 1 and args[1] == "reverse":
                    track.reverse = True
            elif kw == "init_file":
                self.report.on(
                    st,
                    "not supported: the file is not created; a missing file counts as a "
                    "failure here (keepalived reads it as 0). Create it before the daemon starts",
                )
            else:
                self.report.on(st, "unknown track_file option; ignored")
        if track.path is None:
            self.report.on(block, f"{name} has no file; not converted")
        self.track_files[name] = track

    # --- vrrp_sync_group

    def _sync_group(self, block: Statement, instance_names: list[str]) -> None:
        group = _SyncGroup(st=block, name=dns_label(block.args[0], "sync-group"))
        for st in block.block or []:
            kw = st.keyword
            if kw == "group":
                if st.block is None:
                    self.report.on(st, "expects a { } block of vrrp_instance names; ignored")
                    continue
                for member in st.block:
                    name = member.keyword
                    if name not in instance_names:
                        self.report.on(member, f"no vrrp_instance {name}; ignored")
                    elif name in self.groups:
                        self.report.on(
                            member,
                            f"{name} is already in sync group {self.groups[name].st.args[0]}; "
                            "an instance belongs to one group",
                        )
                    else:
                        group.members.append(name)
                        self.groups[name] = group
            elif kw in _NOTIFY_FIELDS:
                argv = self.notify_argv(st)
                if argv is not None:
                    group.notify[_NOTIFY_FIELDS[kw]] = (argv, st)
            elif kw == "smtp_alert":
                group.smtp_alert = bool(self.read_bool(st))
            elif kw in ("track_interface", "track_script", "track_file"):
                group.tracking.append(st)
            elif kw == "sync_group_tracking_weight":
                group.tracking_weight = True
            elif kw == "global_tracking":
                self.report.on(
                    st,
                    "deprecated in keepalived; the members' own tracking applies to each member",
                    severity="info",
                )
            else:
                self.report.on(st, "not supported in a sync group; ignored")

    # --- vrrp_instance

    def _instance(self, block: Statement) -> dict[str, Any]:
        iname = block.args[0]
        name = dns_label(iname, "vrrp-instance")
        if name in self.names:
            unique = _unique(name, self.names)
            self.report.on(block, f"{iname} maps to the name {name}, already taken; named {unique}")
            name = unique
        else:
            self.names.add(name)
        builder = _Instance(self, block, iname)
        spec = builder.build()
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "annotations": {INSTANCE_ANNOTATION: iname},
            },
            "spec": spec,
        }

    # --- shared value readers

    def read_bool(self, st: Statement) -> bool | None:
        if not st.args:
            return True
        word = st.args[0].lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        self.report.on(st, f"{st.args[0]!r} is not a boolean (true/false); ignored")
        return None

    def read_duration(self, st: Statement, text: str, *, whole: bool = False) -> int | None:
        seconds = _integer(text) if whole else _seconds(text)
        if seconds is None or seconds < 0:
            kind = "whole number of seconds" if whole else "number of seconds"
            self.report.on(st, f"{text!r} is not a {kind}; ignored")
            return None
        return int(Decimal(seconds) * 100)

    def read_interval(self, st: Statement, text: str, *, minimum: int = 0) -> int | None:
        """Seconds (keepalived: millisecond or finer resolution) as centiseconds."""
        seconds = _seconds(text)
        if seconds is None:
            self.report.on(st, f"{text!r} is not a number of seconds; ignored")
            return None
        cs = max(_cs(seconds), minimum)
        if Decimal(cs) != seconds * 100:
            self.report.on(
                st,
                f"{_show_seconds(seconds)} is not a whole number of 10 ms steps; "
                f"using {_duration(cs)}",
            )
        return cs

    def read_weight(self, st: Statement, text: str, limit: int) -> int | None:
        weight = _integer(text)
        if weight is None:
            self.report.on(st, f"{text!r} is not a whole number; ignored")
            return None
        if not -limit <= weight <= limit:
            clamped = max(-limit, min(limit, weight))
            self.report.on(st, f"{weight} is outside -{limit}..{limit}; using {clamped}")
            return clamped
        return weight

    def _shell_note(self, st: Statement, command: str) -> None:
        # keepalived hands only lines starting with "</" to /bin/sh (notify.c
        # check_script_secure); everything else is exec'd without a shell.
        if shell_use(command) == "shell" and not re.match(r"\s*<\s*/", command):
            self.report.on(st, SHELL_CHANGED)

    def notify_argv(self, st: Statement) -> list[str] | None:
        if not st.args:
            self.report.on(st, "no script given; ignored")
            return None
        if len(st.args) > 1:
            self.report.on(
                st,
                f"user {' '.join(st.args[1:])!r} not supported: notify scripts run as the "
                "daemon's user (quote the script if those words were its arguments)",
            )
        self._shell_note(st, st.args[0])
        try:
            argv = _argv(st.args[0], appended=st.keyword == "notify")
        except ValueError as exc:
            self.report.on(st, f"cannot split {st.args[0]!r} into arguments ({exc}); ignored")
            return None
        if argv and not argv[0].startswith("/"):
            self.report.on(
                st,
                f"{argv[0]!r} is not a full path: keepalived searched PATH for it; run through "
                "/usr/bin/env to keep that (or write the full path)",
                severity="info",
            )
            argv = ["/usr/bin/env", *argv]
        return argv


# virtual_ipaddress options followed by a value (keepalived vrrp_ipaddress.c)
_ADDRESS_VALUED = {"dev", "label", "brd", "broadcast", "scope", "peer", "preferred_lft"}


@dataclass(slots=True)
class _Address:
    interface: IPv4Interface | IPv6Interface
    st: Statement
    dev: str | None = None
    label: str | None = None
    excluded: bool = False


class _Instance:
    """One vrrp_instance: directives gathered first, then resolved into a VirtualIP spec."""

    def __init__(self, conv: _Converter, block: Statement, iname: str) -> None:
        self.conv = conv
        self.report = conv.report
        self.block = block
        self.iname = iname
        self.addresses: list[_Address] = []
        self.vrid: int | None = None
        self.version: tuple[int, Statement] | None = None
        self.interface: str | None = None
        self.advert: tuple[Decimal, Statement] | None = None
        self.priority: tuple[int, Statement] | None = None
        self.state: tuple[str, Statement] | None = None
        self.nopreempt: Statement | None = None
        self.preempt_delay: tuple[Decimal, Statement] | None = None
        self.accept: bool | None = None
        self.strict: Statement | None = None
        self.unicast_src: tuple[str, Statement] | None = None
        self.unicast_peers: list[tuple[str, Statement]] = []
        self.unicast_block: Statement | None = None
        self.auth: tuple[str, Statement] | None = None
        self.garp: dict[str, Any] = {}
        self.track_interfaces: list[str] = []
        self.probes: list[dict[str, Any]] = []
        self.probe_names: set[str] = set()
        self.tracked: set[tuple[str, str]] = set()  # (kind, name): keepalived tracks each once
        self.notify: dict[str, list[str]] = {}
        self.smtp_alert: bool | None = None

    # --- gathering

    def build(self) -> dict[str, Any]:
        handlers: dict[str, Callable[[Statement], None]] = {
            "virtual_ipaddress": self._virtual_ipaddress,
            "virtual_ipaddress_excluded": self._virtual_ipaddress,
            "virtual_router_id": self._vrid,
            "version": self._version,
            "interface": self._interface,
            "advert_int": self._advert_int,
            "priority": self._priority,
            "state": self._state,
            "nopreempt": self._nopreempt,
            "preempt": self._preempt,
            "preempt_delay": self._preempt_delay,
            "accept": self._accept,
            "no_accept": self._accept,
            "strict_mode": self._strict_mode,
            "unicast_src_ip": self._unicast_src_ip,
            "unicast_peer": self._unicast_peer,
            "authentication": self._authentication,
            "garp_master_delay": self._garp,
            "garp_master_repeat": self._garp,
            "garp_master_refresh": self._garp,
            "track_interface": self._track_interface,
            "track_script": self._track_script,
            "track_file": self._track_file,
            "smtp_alert": self._smtp_alert,
            "promote_secondaries": self._promote_secondaries,
            **{kw: self._notify for kw in _NOTIFY_FIELDS},
        }
        for st in self.block.block or []:
            handler = handlers.get(st.keyword)
            if handler is not None:
                handler(st)
            elif st.keyword in INSTANCE_UNSUPPORTED:
                self._unsupported(st, INSTANCE_UNSUPPORTED[st.keyword])
            else:
                what = "block" if st.block is not None else "directive"
                self.report.on(st, f"unknown or unsupported vrrp_instance {what}; ignored")
        self._from_sync_group()
        return self._spec()

    def _unsupported(self, st: Statement, message: str) -> None:
        if st.block:
            lines = sorted({e.line for e in st.block})
            span = f"line {lines[0]}" if len(lines) == 1 else f"lines {lines[0]}-{lines[-1]}"
            count = len(st.block)
            message += f" ({count} entr{'y' if count == 1 else 'ies'}, {span})"
        self.report.on(st, message)

    def _virtual_ipaddress(self, st: Statement) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of addresses; ignored")
            return
        excluded = st.keyword == "virtual_ipaddress_excluded"
        if excluded and st.block:
            self.report.on(
                st,
                "excluded addresses become ordinary addresses: they are listed in the "
                "adverts, so keepalived peers with this configuration and kube-vrrp drop each "
                "other's adverts (address list mismatch); move every node of this instance "
                "together",
            )
        for entry in st.block:
            address = self._address(entry, excluded)
            if address is not None:
                self.addresses.append(address)

    def _address(self, entry: Statement, excluded: bool) -> _Address | None:
        text = entry.keyword
        try:
            iface = ip_interface(text)
        except ValueError:
            self.report.at(
                entry.line,
                text,
                "not an IP address with an optional /prefix; ignored",
                file=entry.file,
            )
            return None
        if "/" not in text:
            self.report.at(
                entry.line,
                text,
                f"no prefix length: keepalived adds /{iface.network.prefixlen}, written out "
                f"as {iface.ip}/{iface.network.prefixlen}",
                severity="info",
                file=entry.file,
            )
        address = _Address(iface, entry, excluded=excluded)
        words = entry.args
        i = 0
        while i < len(words):
            option = words[i]
            value = words[i + 1] if i + 1 < len(words) else None
            takes_value = option in _ADDRESS_VALUED
            if takes_value and value is None:
                self._address_warning(entry, option, "has no value; ignored")
                break
            if option == "dev":
                address.dev = value
            elif option == "label":
                address.label = value
            elif option in ("brd", "broadcast"):
                self._address_warning(
                    entry,
                    f"{option} {value}",
                    "ignored: addresses are added without a broadcast address (as `ip addr "
                    "add` without brd); only directed-broadcast senders notice",
                )
            elif option == "scope":
                severity: Severity = "info" if value in ("global", "universe") else "warning"
                self._address_warning(
                    entry,
                    f"scope {value}",
                    "ignored: addresses get global scope (link scope for link-local ones)",
                    severity,
                )
            elif option == "no_track":
                self._address_warning(
                    entry, option, "not supported: a removed VIP is put back while MASTER"
                )
            else:
                shown = f"{option} {value}" if takes_value else option
                self._address_warning(entry, shown, "address option not supported; ignored")
            i += 2 if takes_value else 1
        return address

    def _address_warning(
        self, entry: Statement, option: str, message: str, severity: Severity = "warning"
    ) -> None:
        self.report.at(
            entry.line, f"{entry.keyword} {option}", message, severity=severity, file=entry.file
        )

    def _vrid(self, st: Statement) -> None:
        value = _integer(st.args[0]) if st.args else None
        if value is None or not 1 <= value <= 255:
            self.report.on(st, f"{' '.join(st.args)!r} is not 1..255; ignored")
            return
        self.vrid = value

    def _version(self, st: Statement) -> None:
        value = _integer(st.args[0]) if st.args else None
        if value not in (2, 3):
            self.report.on(st, f"{' '.join(st.args)!r} is not 2 or 3; ignored")
            return
        self.version = (value, st)

    def _interface(self, st: Statement) -> None:
        if not st.args:
            self.report.on(st, "no interface name; ignored")
            return
        self.interface = st.args[0]

    def _advert_int(self, st: Statement) -> None:
        seconds = _seconds(st.args[0]) if st.args else None
        if seconds is None or seconds <= 0:
            self.report.on(st, f"{' '.join(st.args)!r} is not a positive number of seconds")
            return
        self.advert = (seconds, st)

    def _priority(self, st: Statement) -> None:
        value = _integer(st.args[0]) if st.args else None
        if value is None or not 1 <= value <= 255:
            self.report.on(st, f"{' '.join(st.args)!r} is not 1..255; keepalived uses 100")
            return
        self.priority = (value, st)

    def _state(self, st: Statement) -> None:
        state = st.args[0].upper() if st.args else ""
        self.state = (state, st)
        self.report.on(
            st,
            f"dropped: every node starts as BACKUP and the election makes the node with the "
            f"highest priority MASTER; `state {state or '?'}` is not a priority hint. Prefer a "
            "node with priority (nodePriorities)",
            severity="info",
        )

    def _nopreempt(self, st: Statement) -> None:
        self.nopreempt = st

    def _preempt(self, st: Statement) -> None:
        self.report.on(st, "the default (preempt: Always); nothing to set", severity="info")

    def _preempt_delay(self, st: Statement) -> None:
        seconds = _seconds(st.args[0]) if st.args else None
        if seconds is None:
            self.report.on(st, f"{' '.join(st.args)!r} is not a number of seconds; ignored")
            return
        self.preempt_delay = (seconds, st)

    def _accept(self, st: Statement) -> None:
        self.accept = st.keyword == "accept"

    def _strict_mode(self, st: Statement) -> None:
        if self.conv.read_bool(st):
            self.strict = st
            self.report.on(
                st,
                "strict mode is not a setting here; converted as `accept: false` (its effect "
                "on accept mode)",
            )

    def _unicast_src_ip(self, st: Statement) -> None:
        if not st.args or not self._is_ip(st.args[0]):
            self.report.on(st, f"{' '.join(st.args)!r} is not an IP address; ignored")
            return
        self.unicast_src = (str(ip_address(st.args[0])), st)

    def _unicast_peer(self, st: Statement) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of peer addresses; ignored")
            return
        self.unicast_block = st
        for entry in st.block:
            if not self._is_ip(entry.keyword):
                self.report.at(
                    entry.line, entry.keyword, "not an IP address; ignored", file=entry.file
                )
                continue
            if entry.args:
                self.report.at(
                    entry.line,
                    f"{entry.keyword} {' '.join(entry.args)}",
                    "TTL checks (min_ttl / max_ttl) are not supported; ignored",
                    file=entry.file,
                )
            self.unicast_peers.append((str(ip_address(entry.keyword)), entry))

    @staticmethod
    def _is_ip(text: str) -> bool:
        try:
            ip_address(text)
        except ValueError:
            return False
        return True

    def _authentication(self, st: Statement) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block; ignored")
            return
        auth_type: Statement | None = None
        password: Statement | None = None
        for entry in st.block:
            if entry.keyword == "auth_type":
                auth_type = entry
            elif entry.keyword == "auth_pass":
                password = entry
            else:
                self.report.on(entry, "unknown authentication option; ignored")
        kind = auth_type.args[0].upper() if auth_type is not None and auth_type.args else None
        if kind == "AH":
            assert auth_type is not None
            self.report.on(
                auth_type,
                "IPsec AH authentication is not supported; converted without authentication "
                "(peers still using AH will not accept our adverts)",
            )
            return
        if kind != "PASS":
            self.report.on(
                auth_type or st,
                f"auth_type {kind or '(none)'} is not PASS; authentication not converted",
            )
            return
        if password is None or not password.args:
            self.report.on(st, "auth_type PASS without auth_pass; not converted")
            return
        text = password.args[0]
        if len(text.encode()) > PASSWORD_MAX:
            text = text.encode()[:PASSWORD_MAX].decode(errors="ignore")
            self.report.on(
                password,
                f"longer than {PASSWORD_MAX} characters: keepalived sends only the first "
                f"{PASSWORD_MAX}, so the password is those ({text!r})",
            )
        self.auth = (text, password)

    def _garp(self, st: Statement) -> None:
        key = {
            "garp_master_delay": "masterDelay",
            "garp_master_repeat": "masterRepeat",
            "garp_master_refresh": "masterRefresh",
        }[st.keyword]
        if not st.args:
            self.report.on(st, "no value; ignored")
            return
        self.conv.garp_value(st, self.garp, key, st.args[0], whole=True)

    def _track_interface(self, st: Statement, group: str | None = None) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of interfaces; ignored")
            return
        for entry in st.block:
            ifname, args = entry.keyword, entry.args
            weight = 0
            if args[:1] == ["weight"] and len(args) >= 2:
                parsed = self.conv.read_weight(entry, args[1], 253)
                weight = parsed or 0
                if "reverse" in args[2:]:
                    self._entry_warning(
                        entry, "weight reverse is not supported; this interface is not tracked"
                    )
                    continue
            elif args:
                self._entry_warning(entry, f"unknown option {' '.join(args)!r}; ignored")
            if weight == 0:
                if ifname not in self.track_interfaces:
                    self.track_interfaces.append(ifname)
                continue
            if self._ignored_in_group(entry, group) or self._tracked_twice("interface", entry):
                continue
            name = _unique(dns_label(f"if-{ifname}"), self.probe_names)
            self.probes.append({"name": name, "interface": {"name": ifname}, "weight": weight})
            self._entry_warning(
                entry,
                f"a weighted interface becomes an interface probe {name!r} with weight "
                f"{weight} (spec.trackInterfaces has no weights)",
                severity="info",
            )

    def _ignored_in_group(self, entry: Statement, group: str | None) -> bool:
        """keepalived ignores weighted trackers of sync-group members (keepalived.conf(5))."""
        sync = self.conv.groups.get(self.iname)
        if sync is None or sync.tracking_weight:
            return False
        where = f"of sync group {group}" if group else f"of {self.iname}, a sync-group member,"
        self._entry_warning(
            entry,
            f"a weighted tracker {where} is ignored by keepalived unless the group sets "
            "sync_group_tracking_weight; not converted, to keep that behaviour",
        )
        return True

    def _entry_warning(
        self, entry: Statement, message: str, severity: Severity = "warning"
    ) -> None:
        directive = " ".join([entry.keyword, *entry.args])
        self.report.at(entry.line, directive, message, severity=severity, file=entry.file)

    def _track_script(self, st: Statement, group: str | None = None) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of vrrp_script names; ignored")
            return
        for entry in st.block:
            name, args = entry.keyword, entry.args
            self.conv.used_scripts.add(name)
            script = self.conv.scripts.get(name)
            if script is None:
                self._entry_warning(entry, f"no vrrp_script {name} is defined; ignored")
                continue
            if script.check is None:
                continue  # reported at the vrrp_script
            weight = script.weight
            reverse = script.reverse
            if args[:1] == ["weight"] and len(args) >= 2:
                parsed = self.conv.read_weight(entry, args[1], 253)
                weight = weight if parsed is None else parsed
                reverse = "reverse" in args[2:] or (reverse and "noreverse" not in args[2:])
            elif args:
                self._entry_warning(entry, f"unknown option {' '.join(args)!r}; ignored")
            if reverse:
                self._entry_warning(
                    entry,
                    "weight reverse is not supported; the probe is not converted (converted "
                    "without reverse it would act the other way round)",
                )
                continue
            if weight and self._ignored_in_group(entry, group):
                continue
            if self._tracked_twice("script", entry):
                continue
            probe: dict[str, Any] = {"name": _unique(dns_label(name, "probe"), self.probe_names)}
            probe.update(script.check)
            if script.interval_cs is not None:
                probe["interval"] = _duration(script.interval_cs)
            if script.timeout_cs is not None:
                probe["timeout"] = _duration(script.timeout_cs)
            if script.rise is not None:
                probe["rise"] = script.rise
            if script.fall is not None:
                probe["fall"] = script.fall
            if weight is not None:
                probe["weight"] = weight
            self.probes.append(probe)

    def _tracked_twice(self, kind: str, entry: Statement) -> bool:
        if (kind, entry.keyword) in self.tracked:
            self._entry_warning(entry, f"{entry.keyword} is already tracked here; kept once")
            return True
        self.tracked.add((kind, entry.keyword))
        return False

    def _track_file(self, st: Statement, group: str | None = None) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of track_file names; ignored")
            return
        for entry in st.block:
            name, args = entry.keyword, entry.args
            track = self.conv.track_files.get(name)
            if track is None:
                self._entry_warning(entry, f"no track_file {name} is defined; ignored")
                continue
            if track.path is None:
                continue
            weight, reverse = track.weight, track.reverse
            if args[:1] == ["weight"] and len(args) >= 2:
                parsed = self.conv.read_weight(entry, args[1], 254)
                weight = weight if parsed is None else parsed
                reverse = "reverse" in args[2:] or (reverse and "noreverse" not in args[2:])
            elif args:
                self._entry_warning(entry, f"unknown option {' '.join(args)!r}; ignored")
            if reverse:
                self._entry_warning(entry, "weight reverse is not supported; not converted")
                continue
            if weight and self._ignored_in_group(entry, group):
                continue
            if self._tracked_twice("file", entry):
                continue
            probe_name = _unique(dns_label(name, "file"), self.probe_names)
            self.probes.append({"name": probe_name, "file": {"path": track.path}, "weight": weight})

    def _smtp_alert(self, st: Statement) -> None:
        self.smtp_alert = self.conv.read_bool(st)

    def _promote_secondaries(self, st: Statement) -> None:
        self.report.on(st, "always set: nothing to convert", severity="info")

    def _notify(self, st: Statement) -> None:
        argv = self.conv.notify_argv(st)
        if argv is not None:
            self.notify[_NOTIFY_FIELDS[st.keyword]] = argv

    def _from_sync_group(self) -> None:
        group = self.conv.groups.get(self.iname)
        if group is None:
            return
        for kind, (argv, st) in group.notify.items():
            if kind in self.notify:
                self.report.on(
                    st,
                    f"the group's notify for {kind} is not copied to {self.iname}, which has its "
                    "own; both ran in keepalived, only the instance's runs now",
                )
                continue
            self.notify[kind] = argv
            group.copied.setdefault(kind, []).append(self.iname)
        if group.smtp_alert and self.smtp_alert is None:
            self.smtp_alert = True
        for st in group.tracking:
            self.report.on(
                st,
                f"group tracking is copied to each member (here {self.iname})",
                severity="info",
            )
            track: Callable[[Statement, str | None], None] = {
                "track_interface": self._track_interface,
                "track_script": self._track_script,
                "track_file": self._track_file,
            }[st.keyword]
            track(st, group.st.args[0])

    # --- resolving into the spec

    def _spec(self) -> dict[str, Any]:
        g = self.conv.globals
        spec: dict[str, Any] = {}
        families: set[int] = {a.interface.version for a in self.addresses if not a.excluded}
        version = self._resolve_version(families)
        addresses = self._resolve_addresses(version)
        spec["addresses"] = [self._address_text(a) for a in addresses]
        if not addresses:
            self.report.on(
                self.block,
                f"{self.iname} has no virtual_ipaddress; a VirtualIP needs at least one "
                "address (add spec.addresses)",
            )
        if self.vrid is not None:
            spec["vrid"] = self.vrid
        else:
            self.report.on(
                self.block,
                "no virtual_router_id: the operator allocates one in a cluster; a standalone "
                "file must set spec.vrid (and it must match the keepalived peers)",
            )
        spec["version"] = version
        interface = self._resolve_interface(addresses)
        if interface is not None:
            spec["interface"] = interface
        label = self._resolve_label(addresses, interface)
        if label is not None:
            spec["label"] = label
        if self.advert is not None:
            spec["advertInterval"] = self._resolve_advert(version)
        self._resolve_priority(spec)
        preempt = self._resolve_preempt()
        if preempt is not None:
            spec["preempt"] = preempt
        accept = self._resolve_accept()
        if accept is not None:
            spec["accept"] = accept
        self._resolve_unicast(spec)
        if self.auth is not None:
            if version == 3:
                self.report.on(
                    self.auth[1],
                    "VRRPv3 has no authentication (keepalived ignores it too); not converted",
                )
            else:
                spec["authentication"] = {"password": self.auth[0]}
                self.conv.note_once(
                    "password",
                    self.auth[1],
                    "passwords are inline in the VirtualIPs; in a cluster put them in a Secret "
                    "and use authentication.secretRef",
                )
        garp = self._resolve_garp(g, addresses)
        if garp:
            spec["garp"] = garp
        if self.track_interfaces:
            spec["trackInterfaces"] = list(self.track_interfaces)
        probes = self._resolve_probes(spec) if self.probes else []
        if probes:
            spec["probes"] = probes
        group = self.conv.groups.get(self.iname)
        if group is not None:
            spec["syncGroup"] = group.name
        notify = self._resolve_notify(g)
        if notify:
            spec["notify"] = notify
        return spec

    def _resolve_version(self, families: set[int]) -> int:
        g = self.conv.globals
        if self.version is not None:
            version, st = self.version
        elif g.version is not None:
            version, st = g.version, self.block
        else:
            version, st = KEEPALIVED_DEFAULT_VERSION, self.block
            if families != {6}:
                self.conv.note_once(
                    "version",
                    self.block,
                    "no vrrp_version: keepalived's default is VRRPv2, so version: 2 is written "
                    "out here and in every instance without `version` (kube-vrrp's default is "
                    "3); move all nodes together to change it",
                )
        if version == 2 and 6 in families:
            self.report.on(
                st,
                "IPv6 instances always run VRRPv3 (keepalived does the same); version: 3",
                severity="info",
            )
            return 3
        return version

    def _resolve_addresses(self, version: int) -> list[_Address]:
        kept: list[_Address] = []
        seen: set[str] = set()
        main_families = {a.interface.version for a in self.addresses if not a.excluded}
        for address in self.addresses:
            ip = str(address.interface.ip)
            if ip in seen:
                self.report.at(
                    address.st.line,
                    address.st.keyword,
                    "listed twice; kept once",
                    file=address.st.file,
                )
                continue
            if version == 2 and address.interface.version == 6:
                self.report.at(
                    address.st.line,
                    address.st.keyword,
                    "an IPv6 address cannot be in a VRRPv2 VirtualIP; not converted (put it "
                    "in a VirtualIP of its own with version: 3)",
                    file=address.st.file,
                )
                continue
            if (
                address.excluded
                and main_families
                and address.interface.version not in (main_families)
            ):
                self.report.at(
                    address.st.line,
                    address.st.keyword,
                    "of the other address family: kube-vrrp runs a second VRRP instance "
                    "(same vrid) for it, which keepalived peers do not answer",
                    file=address.st.file,
                )
            seen.add(ip)
            kept.append(address)
        return kept

    @staticmethod
    def _address_text(address: _Address) -> str:
        iface = address.interface
        return f"{iface.ip}/{iface.network.prefixlen}"

    def _resolve_interface(self, addresses: list[_Address]) -> str | None:
        devs = [a for a in addresses if a.dev is not None]
        interface = self.interface
        if interface is None and devs:
            interface = devs[0].dev
            self.report.on(
                self.block,
                f"no interface: using {interface}, the dev of the first address",
                severity="info",
            )
        for address in devs:
            if address.dev != interface:
                self._address_warning(
                    address.st,
                    f"dev {address.dev}",
                    f"every address goes on spec.interface ({interface}); an address on "
                    "another interface needs a VirtualIP of its own",
                )
        return interface

    def _resolve_label(self, addresses: list[_Address], interface: str | None) -> str | None:
        labelled = [a for a in addresses if a.label is not None]
        if not labelled:
            return None
        first = labelled[0]
        label = first.label
        for address in labelled:
            if address.interface.version == 6:
                self._address_warning(
                    address.st, f"label {address.label}", "IPv6 addresses have no label; ignored"
                )
            elif address.label != label:
                self._address_warning(
                    address.st,
                    f"label {address.label}",
                    f"one label per VirtualIP: all IPv4 addresses get {label}",
                )
        if first.interface.version == 6:
            return None
        return label

    def _resolve_advert(self, version: int) -> str:
        assert self.advert is not None
        seconds, st = self.advert
        cs = _cs(seconds)
        if version == 2:
            whole = max(1, int(seconds.quantize(Decimal(1), rounding=ROUND_HALF_UP)))
            whole = min(whole, 255)
            if Decimal(whole) != seconds:
                self.report.on(
                    st,
                    f"VRRPv2 counts whole seconds: {_show_seconds(seconds)} becomes {whole}s "
                    "(keepalived rounds the same way)",
                )
            return f"{whole}s"
        rounded = min(max(cs, 1), 4095)
        if Decimal(rounded) != seconds * 100:
            self.report.on(
                st,
                f"VRRPv3 counts 10 ms steps (10ms..40.95s): {_show_seconds(seconds)} becomes "
                f"{_duration(rounded)} (keepalived rounds the same way)",
            )
        return _duration(rounded)

    def _resolve_priority(self, spec: dict[str, Any]) -> None:
        if self.priority is None:
            return
        priority, st = self.priority
        if self.conv.node is not None:
            spec["nodePriorities"] = [{"nodeName": self.conv.node, "priority": priority}]
            self.conv.note_once(
                "priority",
                st,
                f"priorities are node {self.conv.node}'s (nodePriorities); other nodes get "
                "spec.priority (default 100): convert their files with --node and merge "
                "their nodePriorities entries",
            )
        else:
            spec["priority"] = priority

    def _resolve_preempt(self) -> dict[str, Any] | None:
        state = self.state[0] if self.state is not None else None
        owner = self.priority is not None and self.priority[0] == 255
        if self.nopreempt is not None:
            st = self.nopreempt
            if self.preempt_delay is not None:
                self.report.on(
                    self.preempt_delay[1],
                    "ignored: nopreempt wins (as in keepalived)",
                    severity="info",
                )
            if owner:
                self.report.on(
                    st,
                    "the address owner (priority 255) always preempts, here and in "
                    "keepalived; preempt: Never applies to the other nodes",
                    severity="info",
                )
            if state == "MASTER":
                self.report.on(
                    st,
                    "keepalived ignores nopreempt with `state MASTER` (this node did preempt); "
                    "preempt: Never applies on every node, whatever its state",
                )
            else:
                self.report.on(
                    st,
                    "preempt: Never applies on every node and in every state (keepalived "
                    "needs state BACKUP on each node for nopreempt to work)",
                    severity="info",
                )
            return {"mode": "Never"}
        if self.preempt_delay is None:
            return None
        seconds, st = self.preempt_delay
        cs = _cs(seconds)
        if cs == 0:
            return None
        if Decimal(cs) != seconds * 100:
            self.report.on(st, f"{_show_seconds(seconds)} rounded to 10 ms steps: {_duration(cs)}")
        if cs > PREEMPT_DELAY_MAX_CS:
            self.report.on(st, f"{_duration(cs)} is above the 1h maximum; using 1h")
            cs = PREEMPT_DELAY_MAX_CS
        if state == "MASTER":
            self.report.on(
                st,
                "keepalived ignores preempt_delay with `state MASTER`; the delay applies on "
                "every node here",
            )
        if self.strict is not None or self.conv.globals.strict:
            self.report.on(st, "keepalived ignores preempt_delay in strict mode; converted anyway")
        self.report.on(
            st,
            "preempt: Delay waits this long after first seeing a lower-priority master; "
            "keepalived also delays the first takeover after start-up, which kube-vrrp does not",
            severity="info",
        )
        return {"mode": "Delay", "delay": _duration(cs)}

    def _resolve_accept(self) -> bool | None:
        if self.accept is not None:
            return self.accept
        if self.strict is not None or self.conv.globals.strict:
            owner = self.priority is not None and self.priority[0] == 255
            return owner
        return None

    def _resolve_unicast(self, spec: dict[str, Any]) -> None:
        if self.unicast_src is None and not self.unicast_peers:
            return
        spec["unicast"] = True
        peers: list[dict[str, str]] = []
        if self.unicast_src is not None:
            peers.append({"nodeName": self.conv.node or THIS_NODE, "address": self.unicast_src[0]})
            if self.conv.node is None:
                self.report.on(
                    self.unicast_src[1],
                    f"this node is named {THIS_NODE!r} in spec.peers: give --node, or rename "
                    "it to the node's name",
                    severity="info",
                )
        else:
            self.report.on(
                self.unicast_block or self.block,
                "no unicast_src_ip: this node's address is not known; add "
                "{nodeName: <this node>, address: ...} to spec.peers",
            )
        used = {p["address"] for p in peers}
        for address, entry in self.unicast_peers:
            if address in used:
                self.report.at(entry.line, address, "listed twice; kept once", file=entry.file)
                continue
            used.add(address)
            peers.append({"nodeName": _peer_name(address), "address": address})
        if self.unicast_peers:
            self.report.on(
                self.unicast_block or self.block,
                "peers are named peer-<address>; rename them to the nodes' names (each node "
                "uses the entry with its own name as its source address)",
                severity="info",
            )
        else:
            self.report.on(
                self.unicast_src[1] if self.unicast_src else self.block,
                "unicast_src_ip without unicast_peer: keepalived stays multicast; converted as "
                "unicast, so add the other nodes to spec.peers",
            )
        spec["peers"] = peers

    def _resolve_garp(self, g: _Globals, addresses: list[_Address]) -> dict[str, Any]:
        garp: dict[str, Any] = {}
        for key in ("masterDelay", "masterRepeat", "interval", "masterRefresh"):
            if key in self.garp:
                garp[key] = self.garp[key]
            elif key in g.garp:
                garp[key] = g.garp[key]
            elif key == "interval":
                value = self._garp_interval(g, addresses)
                if value is not None:
                    garp[key] = value
        return garp

    def _garp_interval(self, g: _Globals, addresses: list[_Address]) -> str | None:
        families = {a.interface.version for a in addresses}
        arp = g.garp_interval_cs if 4 in families else None
        na = g.gna_interval_cs if 6 in families else None
        if arp is not None and na is not None and arp != na:
            self.report.on(
                g.garp_line["gna"],
                f"one interval for ARP and NA: {self.iname} uses vrrp_garp_interval",
            )
        cs = arp if arp is not None else na
        if cs is None:
            return None
        if cs > 1000:
            self.report.on(
                g.garp_line["interval" if arp is not None else "gna"],
                f"{_duration(cs)} is above 10s; using 10s",
            )
            cs = 1000
        return _duration(cs)

    def _resolve_probes(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        priorities = [spec.get("priority")] + [
            p["priority"] for p in spec.get("nodePriorities", [])
        ]
        if 255 in priorities:
            assert self.priority is not None
            self.report.on(
                self.priority[1],
                "an address owner (priority 255) cannot have probes: keepalived ignores "
                "their weights; probes not converted (lower the priority to 254 to keep them)",
            )
            return []
        return list(self.probes)

    def _resolve_notify(self, g: _Globals) -> dict[str, Any]:
        notify: dict[str, Any] = {k: self.notify[k] for k in _NOTIFY_ORDER if k in self.notify}
        alert = self.smtp_alert if self.smtp_alert is not None else g.smtp_alert
        if not alert:
            return notify
        if not g.email_to or g.smtp_server is None:
            missing = "notification_email" if not g.email_to else "smtp_server"
            self.report.on(
                self.block,
                f"smtp_alert without global_defs {missing}: keepalived sends no email; "
                "notify.email not set",
            )
            return notify
        sender = g.email_from or f"keepalived@{self.conv.node or 'localhost'}"
        if g.email_from is None:
            self.report.on(
                self.block,
                f"no notification_email_from: using {sender} (keepalived used "
                "keepalived@<hostname>)",
                severity="info",
            )
        email: dict[str, Any] = {"to": list(g.email_to), "from": sender}
        email["smtpServer"] = g.smtp_server
        if g.smtp_timeout_cs is not None:
            email["connectTimeout"] = _duration(g.smtp_timeout_cs)
        notify["email"] = email
        return notify


# --- entry points ---------------------------------------------------------------------------


def convert_text(
    text: str, *, source: str, node: str | None = None, namespace: str = "default"
) -> Conversion:
    """Convert keepalived.conf text into VirtualIP manifests.

    source: the file's path (includes are resolved next to it) or a name such as "<stdin>".
    node: the Kubernetes node this file belongs to: its priority becomes a nodePriorities
    entry, its unicast_src_ip the peer entry of that node, and `@node` lines apply.
    Raises ParseError for text that is not blocks of directives.
    """
    report = _Report()
    statements = _parse(text, source, node, report)
    documents = _Converter(report, node, namespace).run(statements)
    ordered = sorted(report.warnings, key=lambda w: (w.file is not None, w.file or "", w.line))
    return Conversion(source=source, documents=documents, warnings=ordered, node=node)


def convert_file(
    path: str | Path, *, node: str | None = None, namespace: str = "default"
) -> Conversion:
    return convert_text(
        Path(path).read_text(encoding="utf-8"), source=str(path), node=node, namespace=namespace
    )


_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def cli(argv: Sequence[str] | None = None) -> int:
    """`vrrpd convert FILE [--node NAME] [--namespace NS]`: YAML on stdout, warnings on stderr.

    Exit 0 after a conversion (warnings included), 2 when the file cannot be read or parsed.
    """
    parser = argparse.ArgumentParser(
        prog="vrrpd convert",
        description="Convert a keepalived.conf into VirtualIP manifests (YAML on stdout).",
    )
    parser.add_argument("file", help="keepalived.conf to convert ('-' for standard input)")
    parser.add_argument(
        "--node",
        help="the Kubernetes node this file comes from: its priority and unicast_src_ip "
        "are recorded under this name",
    )
    parser.add_argument(
        "--namespace", default="default", help="metadata.namespace of the VirtualIPs"
    )
    args = parser.parse_args(argv)
    if args.node is not None and (len(args.node) > 253 or not _NODE_NAME.fullmatch(args.node)):
        print(
            f"vrrpd convert: --node {args.node!r} is not a Kubernetes node name "
            "(lowercase letters, digits, '-' and '.')",
            file=sys.stderr,
        )
        return EXIT_PARSE
    if dns_label(args.namespace, "") != args.namespace:
        print(
            f"vrrpd convert: --namespace {args.namespace!r} is not a valid namespace "
            "(lowercase letters, digits and '-')",
            file=sys.stderr,
        )
        return EXIT_PARSE
    source = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"vrrpd convert: {args.file}: cannot read: {exc}", file=sys.stderr)
        return EXIT_PARSE
    try:
        conversion = convert_text(text, source=source, node=args.node, namespace=args.namespace)
    except ParseError as exc:
        print(exc.format(source), file=sys.stderr)
        return EXIT_PARSE
    sys.stdout.write(conversion.yaml())
    for warning in conversion.warnings:
        print(warning.format(source), file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli())
