"""Values in a keepalived.conf: numbers, durations, names, script lines; and `Values`,
which reads a directive's value and reports what it had to change."""

from __future__ import annotations

import re
import shlex
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parseaddr
from typing import Any, Literal

from vrrpd.convert.reader import Statement
from vrrpd.convert.report import Report
from vrrpd.limits import GARP_REPEAT_MAX, GARP_REPEAT_MIN
from vrrpd.spec.fields import format_duration_cs

_DECIMAL = re.compile(r"\d+(\.\d*)?|\.\d+")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE, _FALSE = {"true", "on", "yes"}, {"false", "off", "no"}


def decimal_seconds(text: str) -> Decimal | None:
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def integer(text: str) -> int | None:
    return int(text) if _INTEGER.fullmatch(text) else None


def to_cs(seconds: Decimal) -> int:
    """Seconds as centiseconds, rounded half up (as keepalived rounds advert_int)."""
    return int((seconds * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def duration(cs: int) -> str:
    return format_duration_cs(cs)


def show_seconds(seconds: Decimal) -> str:
    return f"{seconds.normalize():f}s"


_DNS_INVALID = re.compile(r"[^a-z0-9-]+")


def dns_label(name: str, fallback: str = "vrrp") -> str:
    """A DNS-1123 label from a keepalived name: lowercase, other characters as '-'."""
    text = _DNS_INVALID.sub("-", name.lower())
    text = re.sub(r"-{2,}", "-", text).strip("-")[:63].rstrip("-")
    return text or fallback


def unique_name(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        suffix = f"-{n}"
        candidate = name[: 63 - len(suffix)].rstrip("-") + suffix
        n += 1
    used.add(candidate)
    return candidate


def peer_name(address: str) -> str:
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


DEV_TCP = re.compile(r"\s*<\s*/dev/tcp/([^/\s]+)/(\d{1,5})\s*")
SHELL_CHANGED = (
    "keepalived 2.x runs no shell here: it execs the first word and passes `|`, `&&`, "
    "`$VAR` and the like as plain arguments, so this line never did what it says; it runs "
    "with /bin/sh -c now, which does. Check that is what you want"
)


def script_argv(command: str, *, appended: bool = False) -> list[str]:
    """A keepalived script line as argv; shell syntax (and `[ ]` tests) run with /bin/sh -c.

    appended: keepalived adds arguments after the command (`notify` gets TYPE NAME STATE
    PRIORITY); through the shell they are passed on with "$@".
    """
    if shell_use(command) == "none":
        return shlex.split(command)
    if appended:
        return ["/bin/sh", "-c", f'{command} "$@"', "sh"]
    return ["/bin/sh", "-c", command]


class Values:
    """Directive values read and checked; what is dropped, clamped or rounded is reported
    at the directive's line."""

    def __init__(self, report: Report) -> None:
        self.report = report

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
        seconds = integer(text) if whole else decimal_seconds(text)
        if seconds is None or seconds < 0:
            kind = "whole number of seconds" if whole else "number of seconds"
            self.report.on(st, f"{text!r} is not a {kind}; ignored")
            return None
        return int(Decimal(seconds) * 100)

    def read_interval(self, st: Statement, text: str, *, minimum: int = 0) -> int | None:
        """Seconds (keepalived: millisecond or finer resolution) as centiseconds."""
        seconds = decimal_seconds(text)
        if seconds is None:
            self.report.on(st, f"{text!r} is not a number of seconds; ignored")
            return None
        cs = max(to_cs(seconds), minimum)
        if Decimal(cs) != seconds * 100:
            self.report.on(
                st,
                f"{show_seconds(seconds)} is not a whole number of 10 ms steps; "
                f"using {duration(cs)}",
            )
        return cs

    def read_weight(self, st: Statement, text: str, limit: int) -> int | None:
        weight = integer(text)
        if weight is None:
            self.report.on(st, f"{text!r} is not a whole number; ignored")
            return None
        if not -limit <= weight <= limit:
            clamped = max(-limit, min(limit, weight))
            self.report.on(st, f"{weight} is outside -{limit}..{limit}; using {clamped}")
            return clamped
        return weight

    def email(self, st: Statement, text: str) -> str | None:
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
            repeat = integer(text)
            if repeat is None or repeat < 0:
                self.report.on(st, f"{text!r} is not a count; ignored")
                return
            if not GARP_REPEAT_MIN <= repeat <= GARP_REPEAT_MAX:
                clamped = min(max(repeat, GARP_REPEAT_MIN), GARP_REPEAT_MAX)
                self.report.on(
                    st, f"{repeat} is outside {GARP_REPEAT_MIN}..{GARP_REPEAT_MAX}; using {clamped}"
                )
                repeat = clamped
            garp[key] = repeat
            return
        cs = self.read_duration(st, text, whole=whole)
        if cs is not None:
            garp[key] = duration(cs)

    def shell_note(self, st: Statement, command: str) -> None:
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
        self.shell_note(st, st.args[0])
        try:
            argv = script_argv(st.args[0], appended=st.keyword == "notify")
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
