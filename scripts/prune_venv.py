"""Removes from the image's venv what nothing in the image imports.

Run by the Dockerfile's build stage with the venv's interpreter, before the byte code is
compiled: `python scripts/prune_venv.py`.

Above all the kubernetes client: 37.0.2 installs 95 MB, `kubernetes.aio` (an asyncio twin
of the client) and the generated classes of every API group (client/api) and object kind
(client/models). The daemon and the operator call the API through `ApiClient` alone
(plain dicts in and out, no model classes), so of those classes they need none but the
few the package itself or kopf import as they load; `kubernetes.client`, `.client.api` and
`.client.models` import the rest lazily (by name, on first use), so a module nobody asks
for can be absent. Then a few whole packages nothing uses (UNUSED_PACKAGES).

What runs decides: every module of vrrpd and vrrp_operator (but the lab and the
`python -m` mains), the console scripts' modules and the whole kubernetes package are
imported first, as tests/image/test_image_contents.py does; an api or model module loaded
then stays, and the script stops if a package of UNUSED_PACKAGES was loaded. tests/image
runs the daemon (in cluster mode too) and the operator from the pruned image.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import shutil
import sys
from pathlib import Path

# Whole packages nothing in the image imports (checked: the script stops if one is loaded).
UNUSED_PACKAGES = (
    "kubernetes.aio",  # the client's asyncio twin, 39 MB of source
    "pydantic.v1",  # pydantic 1's API, kept in pydantic 2 for code not yet ported
    "websocket.tests",  # websocket-client's own tests
)


def import_what_the_image_runs() -> None:
    import vrrp_operator

    import vrrpd

    for package in (vrrpd, vrrp_operator):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith(".__main__") and not module.name.startswith("vrrpd.lab"):
                importlib.import_module(module.name)
    for script in importlib.metadata.distribution("kube-vrrp").entry_points:
        importlib.import_module(script.module)


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    import_what_the_image_runs()
    import kubernetes  # the whole package, as the operator's `from kubernetes import client`

    doomed = []
    for name in UNUSED_PACKAGES:
        loaded = [m for m in sys.modules if m == name or m.startswith(name + ".")]
        if loaded:
            raise SystemExit(f"prune_venv: {name} is imported ({loaded[0]}): keep it")
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            doomed.append(Path(spec.submodule_search_locations[0]))
    root = Path(kubernetes.__file__).parent
    for group in ("api", "models"):
        for path in sorted((root / "client" / group).glob("*.py")):
            name = f"kubernetes.client.{group}.{path.stem}"
            if path.name != "__init__.py" and name not in sys.modules:
                doomed.append(path)
    freed = 0
    for path in doomed:
        freed += size(path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    classes = ("kubernetes.client.api.", "kubernetes.client.models.")
    kept = sorted(m for m in sys.modules if m.startswith(classes))
    print(f"prune_venv: removed {len(doomed)} packages and modules ({freed / 1e6:.1f} MB): "
          f"{', '.join(UNUSED_PACKAGES)} and the rest of kubernetes' api and models; kept "
          f"{', '.join(kept) or 'none'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
