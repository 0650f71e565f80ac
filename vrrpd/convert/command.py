"""`vrrpd convert`: the command line of the keepalived.conf converter."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_PARSE = 0, 2
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


_DESCRIPTION = "Convert a keepalived.conf into VirtualIP manifests (YAML on stdout)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `vrrpd convert`, for its own parser and for `vrrpd`'s subcommand."""
    parser.add_argument("file", help="keepalived.conf to convert ('-' for standard input)")
    parser.add_argument(
        "--node",
        help="the Kubernetes node this file comes from: its priority and unicast_src_ip "
        "are recorded under this name",
    )
    parser.add_argument(
        "--namespace", default="default", help="metadata.namespace of the VirtualIPs"
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`vrrpd convert`, as a subcommand of `vrrpd`."""
    parser = subparsers.add_parser(
        "convert",
        help="print a keepalived.conf as VirtualIP YAML (warnings on stderr)",
        description=_DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def cli(argv: Sequence[str] | None = None) -> int:
    """`vrrpd convert FILE [--node NAME] [--namespace NS]`: YAML on stdout, warnings on stderr.

    Exit 0 after a conversion (warnings included), 2 when the file cannot be read or parsed.
    """
    parser = argparse.ArgumentParser(prog="vrrpd convert", description=_DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    # Imported here: `vrrpd run` builds this parser too, and should not load the converter.
    from vrrpd.convert.documents import convert_text
    from vrrpd.convert.reader import ParseError
    from vrrpd.convert.values import dns_label
    from vrrpd.whatif import conversion_warnings

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
    for line in conversion_warnings(conversion.documents):  # the weight traps it carries
        print(f"{source}: {line}", file=sys.stderr)
    return EXIT_OK
