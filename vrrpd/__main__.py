"""`python -m vrrpd` and the `vrrpd` command.

`vrrpd run` first removes the VIPs a killed predecessor left (vrrpd.net.startup), before
the command line, the model and the daemon are even imported: a leftover VIP is answered
for by two nodes until it goes, and those imports take a few hundred milliseconds.
"""

import sys


def main() -> int:
    # Only `run` touches the host. The parser has no options of its own, so the command is
    # always the first argument.
    if sys.argv[1:2] == ["run"]:
        from vrrpd.lean import skip_package_init
        from vrrpd.net.startup import claim_early

        claim_early()
        skip_package_init("pyroute2")  # AsyncIPRoute without the whole library (vrrpd.lean)
    if sys.argv[1:2] == ["switchover"]:  # asked in the middle of a maintenance: start fast
        from vrrpd.control import main as switchover

        return switchover(sys.argv[2:])
    from vrrpd.cli import main as command_line

    return command_line()


if __name__ == "__main__":
    sys.exit(main())
