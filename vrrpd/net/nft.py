"""Accept_Mode false enforced with the `nft` command (nftables): our table, per network
namespace, replaced in one transaction whenever the blocked addresses change.

The `nft` command rather than pyroute2's nftables module: pyroute2 0.9 builds rules from raw
netlink expressions (its helpers match IPv4 addresses only: no IPv6, no sets, no ICMPv6
types), so we would be writing nft's bytecode by hand; `nft -f` takes the whole table as
text, checks it, and applies it atomically. The price: a process per change (at start, on
a reload that changes the set, at exit; never on a failover) and the nftables package on
the node (or in the image).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Set

from vrrpd.limits import IPAddress
from vrrpd.noaccept import TABLE, ruleset

NFT_TIMEOUT_S = 10.0


class NftError(OSError):
    """nft is missing, or refused our table: the message says which and what to do."""


async def run_nft(text: str, nft: str = "nft") -> None:
    """Feed `text` to `nft -f -`; NftError with nft's own words when it fails."""
    program = shutil.which(nft)
    if program is None:
        raise NftError(f"the {nft!r} command is not installed (Debian: apt-get install nftables)")
    proc = await asyncio.create_subprocess_exec(
        program, "-f", "-",
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(NFT_TIMEOUT_S):
            _, err = await proc.communicate(text.encode())
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NftError(f"nft did not finish within {NFT_TIMEOUT_S:g}s") from None
    if proc.returncode != 0:
        words = " ".join(err.decode(errors="replace").split())[:500]
        raise NftError(f"nft refused table inet {TABLE} (exit {proc.returncode}): {words}")


class NftFirewall:
    """The daemon's firewall port: `block` the addresses whose master must not accept."""

    def __init__(self, nft: str = "nft") -> None:
        self.nft = nft
        # The start-up clean-up (vrrpd.net.startup) removed any table of ours: none now.
        self._applied: frozenset[IPAddress] = frozenset()
        self._lock = asyncio.Lock()

    async def block(self, addresses: Set[IPAddress]) -> bool:
        """Make our table block exactly `addresses` (none: no table); True if it changed."""
        wanted = frozenset(addresses)
        async with self._lock:  # concurrent callers apply in turn; the last one wins
            if wanted == self._applied:
                return False
            await run_nft(ruleset(wanted), self.nft)
            self._applied = wanted
            return True
