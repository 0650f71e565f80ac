"""Reading a keepalived.conf: lines, tokens, and `{ }` blocks of directives (Statements).

Follows keepalived's lib/parser.c: `!`/`#` comments, double-quoted strings, `{ }` blocks
that may share a line, `\\` continuations, `include`, `@host` conditional lines and
`$NAME=value` parameters. Reads included files; nothing else leaves the process.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vrrpd.convert.report import Report, Warning

INCLUDE_DEPTH_MAX = 16


class ParseError(ValueError):
    """keepalived.conf that cannot be read as blocks of directives (unbalanced braces, quotes)."""

    def __init__(self, line: int, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.file = file

    def format(self, source: str) -> str:
        return f"{self.file or source}:{self.line}: error: {self.message}"


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

    def __init__(self, report: Report, node: str | None) -> None:
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
    report = Report()
    return read(text, source, node, report), report.warnings


def read(text: str, source: str, node: str | None, report: Report) -> list[Statement]:
    """`parse`, its warnings going to `report` (a conversion's single report)."""
    reader = _Reader(report, node)
    base: Path | None = None
    if _is_path(source):
        base = Path(source).parent
        reader.including.append(str(Path(source).resolve()))
    return _build(reader.lines(text, None, base))


def _is_path(source: str) -> bool:
    return not (source.startswith("<") and source.endswith(">")) and source != "-"
