"""Library packages entered without their __init__, in the daemon's own process.

Some libraries' package __init__ imports every module the library has, whatever the
caller uses: pyroute2's brings NDB, IPDB, ipset, ipvs, nl80211, wireguard, plan9 and the
rest (+11.5 MB of RSS and ~0.1 s of start-up, measured; AsyncIPRoute and the rtnetlink
messages the daemon uses cost 5.5 MB), kubernetes' brings config, dynamic, stream and with
them requests, oauthlib and websocket-client. The daemon's target is 60 MB in all.

`skip_package_init(name)` enters the package in sys.modules without running its __init__:
its `__path__` is all an import of a submodule needs, so `from pyroute2.iproute.linux
import AsyncIPRoute` works, whereas `from pyroute2 import AsyncIPRoute` (a name the
__init__ would have bound) raises ImportError. Hence: for the daemon's process only
(`vrrpd run`), before anything imports the package, and with our own imports naming the
submodules. Standard library only: it runs before the heavy imports.
"""

from __future__ import annotations

import importlib.util
import sys


def skip_package_init(name: str) -> None:
    """Enter package `name` without running its __init__; a no-op if it is imported already
    (or not installed: the import that needs it then fails as it would have)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations is not None:
        sys.modules[name] = importlib.util.module_from_spec(spec)


def release_freed_memory() -> None:
    """Hand back to the system the heap pages that the start-up's imports used and freed.

    glibc keeps freed memory for reuse (and each thread that allocated, such as the one
    importing aiohttp, has an arena of its own); malloc_trim(0) returns the free pages of
    every arena. Measured on a started daemon: 0.6 MB less RSS. A no-op without glibc.
    """
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
