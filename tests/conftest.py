"""Test-wide hooks and fixtures.

Tests marked `root` or `keepalived` skip when their prerequisites are missing, with the
reason; under CI (env CI set) they fail instead, so CI never passes by skipping them.
`kube_api` is the real-API tier's kube-apiserver (tests/envtest.py); without
KUBEBUILDER_ASSETS its tests skip with one line (.ci/run always sets it).

On it, for both tiers that use it (tests/realapi, tests/system):
`release`: charts/kube-vrrp installed with helm, once per run (cluster.install_chart).
`operator`: the operator running as the chart's ServiceAccount (cluster.running_operator),
one process per test module, stopped after it; modules that need none never start it.
`nodes`: Ready nodes for one test, labelled so that only that test's VirtualIPs select
them (the operator serves the whole cluster), deleted after it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.envtest import SKIP_REASON, ApiServer, assets

if TYPE_CHECKING:
    from tests.realapi.cluster import Operator, Release, TestNodes


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


@pytest.fixture(scope="session")
def release(kube_api: ApiServer) -> Iterator[Release]:
    from tests.realapi.cluster import install_chart

    installed = install_chart(kube_api)
    try:
        yield installed
    finally:
        shutil.rmtree(installed.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def operator(release: Release) -> Iterator[Operator]:
    from tests.realapi.cluster import running_operator

    with running_operator(release) as running:
        yield running


@pytest.fixture
def nodes(kube_api: ApiServer, request: pytest.FixtureRequest) -> Iterator[TestNodes]:
    """Ready nodes of this test only (see TestNodes), deleted after it."""
    from tests.realapi.cluster import TestNodes

    made = TestNodes(kube_api, request.node.name)
    yield made
    made.delete()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Any:
    """A failed test that used the operator shows the end of its log."""
    report = yield
    running = getattr(item, "funcargs", {}).get("operator")
    if not report.failed or running is None:
        return report
    from tests.realapi.cluster import Operator

    if isinstance(running, Operator):
        tail = "\n".join(running.log().splitlines()[-60:])
        report.sections.append(("operator log (last 60 lines)", tail))
    return report
