"""Fixtures of the real-API tier: the chart installed once per run, the operator per module.

`release`: charts/kube-vrrp installed with helm into kube_api (cluster.install_chart).
`operator`: the operator running as the chart's ServiceAccount (cluster.running_operator),
one process per test module, stopped after it; modules that need none never start it.
`nodes`: Ready nodes for one test, labelled so that only that test's VirtualIPs select
them (the operator serves the whole cluster), deleted after it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.envtest import ApiServer
from tests.realapi.cluster import (
    Operator,
    Release,
    TestNodes,
    install_chart,
    running_operator,
)


@pytest.fixture(scope="session")
def release(kube_api: ApiServer) -> Iterator[Release]:
    installed = install_chart(kube_api)
    try:
        yield installed
    finally:
        shutil.rmtree(installed.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def operator(release: Release) -> Iterator[Operator]:
    with running_operator(release) as running:
        yield running


@pytest.fixture
def nodes(kube_api: ApiServer, request: pytest.FixtureRequest) -> Iterator[TestNodes]:
    """Ready nodes of this test only (see TestNodes), deleted after it."""
    made = TestNodes(kube_api, request.node.name)
    yield made
    made.delete()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Any:
    """A failed test that used the operator shows the end of its log."""
    report = yield
    running = getattr(item, "funcargs", {}).get("operator")
    if report.failed and isinstance(running, Operator):
        tail = "\n".join(running.log().splitlines()[-60:])
        report.sections.append(("operator log (last 60 lines)", tail))
    return report
