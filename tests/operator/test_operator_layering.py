"""The operator's pure core imports no Kubernetes client, no kopf and no event loop."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "vrrp_operator"
PURE = ["objects", "render", "manifests", "status", "rollout", "services", "settings"]
FORBIDDEN = {
    "kopf",
    "kubernetes",
    "asyncio",
    "aiohttp",
    "socket",
    "time",
    "vrrp_operator.kube",
    "vrrp_operator.handlers",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_pure_core_imports_no_io() -> None:
    offenders = {}
    for name in PURE:
        bad = {
            i
            for i in _imports(PACKAGE / f"{name}.py")
            if any(i == f or i.startswith(f + ".") for f in FORBIDDEN)
        }
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


def test_operator_folder_is_not_a_package() -> None:
    # A top-level `operator` package would shadow the standard library's operator module.
    assert not (PACKAGE.parent / "__init__.py").exists()
