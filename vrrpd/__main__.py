"""`python -m vrrpd` and the `vrrpd` command.

`vrrpd run` first removes the VIPs a killed predecessor left (vrrpd.net.startup), before
the command line, the model and the daemon are even imported: a leftover VIP is answered
for by two nodes until it goes, and those imports take a few hundred milliseconds.
"""

import sys


def main() -> int:
    if sys.argv[1:2] == ["run"]:  # only `run` touches the host; the parser has no options
        from vrrpd.net.startup import claim_early  # before it, so none can precede "run"

        claim_early()
    from vrrpd.cli import main as command_line

    return command_line()


if __name__ == "__main__":
    sys.exit(main())
