"""The operator's kopf handlers in the test's event loop, against kmock (tests/operator)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Iterator
from typing import Any

import kopf
from vrrp_operator.handlers import Runtime, register
from vrrp_operator.kube import KubeClient
from vrrp_operator.manifests import DaemonSettings
from vrrp_operator.settings import OperatorSettings


class HarnessTasks(Collection[asyncio.Task[Any]]):
    """The tasks kopf must leave alone when it stops.

    On exit kopf cancels every task created after its start ("hung tasks"), assuming it
    owns the loop; here the test's own tasks (teardown, a test kubelet, a relay) are such
    tasks. Only tasks running kopf's or the operator's code are kopf's to cancel.
    """

    def __contains__(self, task: object) -> bool:
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        filename = getattr(getattr(coro, "cr_code", None), "co_filename", "")
        return "kopf" not in filename and "vrrp_operator" not in filename

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(())

    def __len__(self) -> int:
        return 0


@contextlib.asynccontextmanager
async def running_operator(
    url: str, *, namespace: str, image: str, status_interval_s: float
) -> AsyncIterator[Runtime]:
    """kopf with the operator's handlers, cluster-wide (kmock cannot list namespaces)."""
    settings = OperatorSettings(
        daemon=DaemonSettings(namespace=namespace, image=image),
        status_interval_s=status_interval_s,
        peering="standalone",
        liveness_endpoint=None,
    )
    runtime = Runtime(settings, KubeClient.for_host(url))
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url)

    register(registry, runtime)
    stop = asyncio.Event()
    root = await kopf.spawn_tasks(
        registry=registry, clusterwide=True, standalone=True, stop_flag=stop
    )
    task = asyncio.create_task(kopf.run_tasks(root, ignored=HarnessTasks()))
    await asyncio.sleep(1)  # the initial listings fill the indexes
    try:
        yield runtime
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)
