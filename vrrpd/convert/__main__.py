"""`python -m vrrpd.convert FILE`: the same as `vrrpd convert FILE`."""

from vrrpd.convert.command import cli

raise SystemExit(cli())
