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

    reader.py       lines, tokens, `{ }` blocks -> Statements (includes, @host, $NAME)
    report.py       Warning, the Report that gathers them, the Conversion result
    values.py       numbers, durations, names, script lines, read and reported
    definitions.py  global_defs, vrrp_script, track_file, vrrp_sync_group
    instance.py     one vrrp_instance, directive by directive
    tracking.py     its track_interface / track_script / track_file -> probes
    spec.py         the gathered instance resolved into a VirtualIP spec
    documents.py    the file's top level -> one VirtualIP per vrrp_instance
    command.py      `vrrpd convert`
"""

from vrrpd.convert.command import EXIT_OK, EXIT_PARSE, cli
from vrrpd.convert.documents import (
    INSTANCE_ANNOTATION,
    TOP_UNSUPPORTED,
    convert_file,
    convert_text,
)
from vrrpd.convert.instance import INSTANCE_UNSUPPORTED
from vrrpd.convert.reader import ParseError, Statement, Token, parse
from vrrpd.convert.report import Conversion, Severity, Warning
from vrrpd.convert.values import SHELL_CHANGED, dns_label, shell_use

__all__ = [
    "EXIT_OK",
    "EXIT_PARSE",
    "INSTANCE_ANNOTATION",
    "INSTANCE_UNSUPPORTED",
    "SHELL_CHANGED",
    "TOP_UNSUPPORTED",
    "Conversion",
    "ParseError",
    "Severity",
    "Statement",
    "Token",
    "Warning",
    "cli",
    "convert_file",
    "convert_text",
    "dns_label",
    "parse",
    "shell_use",
]
