"""The layering rules the design relies on, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    ROOT / "vrrpd" / "vrrp",
    ROOT / "vrrpd" / "model.py",
    ROOT / "vrrpd" / "ports.py",
    ROOT / "vrrpd" / "probes" / "tracking.py",
]
FORBIDDEN = {
    "socket",
    "asyncio",
    "pyroute2",
    "scapy",
    "selectors",
    "time",
    "vrrpd.net",
    "vrrpd.daemon",
    "vrrpd.lab",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _pure_files() -> list[Path]:
    files: list[Path] = []
    for entry in PURE:
        files.extend(sorted(entry.rglob("*.py")) if entry.is_dir() else [entry])
    return files


def test_sans_io_core_imports_no_io() -> None:
    offenders = {}
    for path in _pure_files():
        bad = {
            name
            for name in _imports(path)
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
        }
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}, f"the sans-I/O core imports I/O modules: {offenders}"


def test_pure_file_list_is_not_empty() -> None:
    # Guards the test above against passing vacuously after a move.
    names = {p.name for p in _pure_files()}
    assert {"packet.py", "fsm.py", "model.py", "tracking.py"} <= names


def test_operator_is_not_a_python_package() -> None:
    # A top-level package named `operator` would shadow the standard library module.
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_runtime_does_not_import_scapy() -> None:
    # scapy costs tens of MB of RSS; it is a test oracle only.
    for path in sorted((ROOT / "vrrpd").rglob("*.py")):
        assert not any(n == "scapy" or n.startswith("scapy.") for n in _imports(path)), path
