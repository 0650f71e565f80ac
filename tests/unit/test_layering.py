"""The layering rules the design relies on, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "operator" / "vrrp_operator"
IO = {"socket", "asyncio", "selectors", "time", "aiohttp"}

# (what must stay pure, what it must not import)
RULES = {
    "the daemon's sans-I/O core": (
        [
            ROOT / "vrrpd" / "vrrp",
            ROOT / "vrrpd" / "limits.py",
            ROOT / "vrrpd" / "contract.py",
            ROOT / "vrrpd" / "spec",
            ROOT / "vrrpd" / "config.py",
            ROOT / "vrrpd" / "resolve.py",
            ROOT / "vrrpd" / "ports.py",
            ROOT / "vrrpd" / "probes" / "tracking.py",
            ROOT / "vrrpd" / "standing.py",
            ROOT / "vrrpd" / "whatif.py",
            ROOT / "vrrpd" / "noaccept.py",
        ],
        IO | {"pyroute2", "scapy", "vrrpd.net", "vrrpd.daemon", "vrrpd.lab"},
    ),
    "the control-plane renderer": (
        [ROOT / "vrrpd" / "controlplane" / "render.py"],
        IO | {"os", "pyroute2", "vrrpd.net", "vrrpd.daemon", "vrrpd.lab", "vrrp_operator"},
    ),
    "the operator's pure core": (
        [
            OPERATOR / f"{name}.py"
            for name in (
                "advisory",
                "objects",
                "render",
                "manifests",
                "status",
                "rollout",
                "services",
                "settings",
                "pools",
                "allocation",
                "loadbalancing",
            )
        ],
        IO | {"kopf", "kubernetes", "vrrp_operator.kube", "vrrp_operator.handlers"},
    ),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _files(entries: list[Path]) -> list[Path]:
    files: list[Path] = []
    for entry in entries:
        files.extend(sorted(entry.rglob("*.py")) if entry.is_dir() else [entry])
    return files


@pytest.mark.parametrize("rule", RULES)
def test_pure_cores_import_no_io(rule: str) -> None:
    entries, forbidden = RULES[rule]
    files = _files(entries)
    assert all(f.exists() for f in files) and len(files) >= len(entries)  # not vacuous
    offenders = {}
    for path in files:
        bad = {
            name
            for name in _imports(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        }
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}, f"{rule} imports I/O modules: {offenders}"


def test_operator_is_not_a_python_package() -> None:
    # A top-level package named `operator` would shadow the standard library module.
    assert OPERATOR.is_dir()
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_the_daemon_package_stands_alone() -> None:
    # The image's `vrrpd` (static pods included) must not need the operator's package.
    for path in sorted((ROOT / "vrrpd").rglob("*.py")):
        assert not any(n.split(".")[0] == "vrrp_operator" for n in _imports(path)), path


def test_runtime_does_not_import_scapy() -> None:
    # scapy costs tens of MB of RSS; it is a test oracle only.
    for path in sorted((ROOT / "vrrpd").rglob("*.py")):
        assert not any(n == "scapy" or n.startswith("scapy.") for n in _imports(path)), path


def test_test_modules_have_unique_names() -> None:
    # tests/ has no __init__.py files: pytest imports each test module by its bare name, so
    # two test_x.py in different tiers break the whole run at collection ("import file
    # mismatch") although each tier passes on its own.
    names: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}


def test_pyroute2_is_imported_by_module_never_from_the_package() -> None:
    # `vrrpd run` loads pyroute2's modules without the package's __init__ (vrrpd/lean.py):
    # `from pyroute2 import X` fails there, only at run time, in a real namespace.
    for path in sorted((ROOT / "vrrpd").rglob("*.py")):
        assert "pyroute2" not in _imports(path), path
