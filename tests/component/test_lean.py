"""vrrpd.lean: the daemon imports pyroute2's rtnetlink without the rest of the library."""

from __future__ import annotations

import json
import subprocess
import sys

# What pyroute2/__init__.py imports and the daemon never uses.
SKIP = "skip_package_init('pyroute2')"
UNUSED = "{'ndb', 'ipdb', 'ipset', 'ipvs', 'iwutil', 'plan9', 'wiset', 'conntrack'}"


def _pyroute2_parts_loaded(skip: bool) -> list[str]:
    code = (
        "import json, sys\n"
        "from vrrpd.lean import skip_package_init\n"
        f"{SKIP if skip else 'pass'}\n"
        "import vrrpd.net.rtnl\n"
        "from pyroute2.iproute.linux import AsyncIPRoute\n"
        "assert vrrpd.net.rtnl.AsyncIPRoute is AsyncIPRoute\n"
        "loaded = {m.split('.')[1] for m in sys.modules if m.startswith('pyroute2.')}\n"
        f"print(json.dumps(sorted(loaded & {UNUSED})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    return list(json.loads(out))


def test_the_rtnetlink_client_loads_without_the_rest_of_pyroute2() -> None:
    assert _pyroute2_parts_loaded(skip=False)  # what `import pyroute2` brings
    assert _pyroute2_parts_loaded(skip=True) == []


def test_a_package_already_imported_is_left_alone() -> None:
    code = (
        "import pyroute2\n"
        "from vrrpd.lean import skip_package_init\n"
        "skip_package_init('pyroute2')\n"
        "from pyroute2 import IPRoute\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
