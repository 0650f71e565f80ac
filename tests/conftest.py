"""Test-wide hooks and fixtures.

Tests marked `root` or `keepalived` skip when their prerequisites are missing, with the
reason; under CI (env CI set) they fail instead, so CI never passes by skipping them.
`kube_api` is the real-API tier's kube-apiserver (tests/envtest.py); without
KUBEBUILDER_ASSETS its tests skip with one line (.ci/run always sets it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.envtest import SKIP_REASON, ApiServer, assets


def _missing(item: pytest.Item) -> list[str]:
    problems = []
    if item.get_closest_marker("root") is not None:
        if os.geteuid() != 0:
            problems.append(
                "needs root for network namespaces (e.g. `sudo -E python -m pytest tests/netns`)"
            )
        if shutil.which("ip") is None:
            problems.append("needs iproute2's `ip` (apt-get install iproute2)")
    if item.get_closest_marker("keepalived") is not None and not (
        shutil.which("keepalived") or os.access("/usr/sbin/keepalived", os.X_OK)
    ):
        problems.append("needs keepalived (apt-get install keepalived)")
    return problems


def pytest_runtest_setup(item: pytest.Item) -> None:
    problems = _missing(item)
    if not problems:
        return
    message = "; ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(f"prerequisite missing in CI: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kube_api() -> Iterator[ApiServer]:
    """The real-API tier's server: etcd + kube-apiserver from KUBEBUILDER_ASSETS, one per run,
    stopped and removed after it. Without the variable, every test that uses it skips with
    one line saying how to run it."""
    if assets() is None:
        pytest.skip(SKIP_REASON)
    with ApiServer.start() as server:
        yield server
