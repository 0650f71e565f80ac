"""Entry point: `python -m vrrp_operator`, the equivalent of `kopf run --all-namespaces`.

Settings come from the environment (settings.py); credentials from the pod's service
account, else the kubeconfig. Without KUBEVRRP_PEERING_PRIORITY each replica draws a random
priority: kopf pauses every operator that sees a peer of higher *or equal* priority, so two
replicas with the same priority would both stop.

Before kopf starts, `preflight` asks the API server what the operator cannot work without
(the VirtualIP CRD, its namespace) and logs the peering mode it will use; outside the chart
(a laptop with a kubeconfig) a missing piece is one line and exit code 1, not a traceback
or a silent wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from typing import Any

import aiohttp
import kopf

from vrrp_operator.handlers import VERSION, Runtime, register
from vrrp_operator.kube import ApiError, KubeClient
from vrrp_operator.objects import GROUP
from vrrp_operator.settings import OperatorSettings, SettingsError

EXIT_SETTINGS = 2  # a variable has a wrong value
EXIT_CLUSTER = 1  # the cluster lacks something the operator needs, or cannot be reached
API_CONNECTIONS = 32  # kopf's connections to the API server: its watches and its requests
PEERING_KIND = "ClusterKopfPeering"

log = logging.getLogger("vrrp_operator")


class NotReady(Exception):
    """The cluster lacks what the operator needs; the message says what and what to do."""


async def preflight(client: KubeClient, settings: OperatorSettings) -> None:
    """Raise NotReady for a missing CRD or namespace; log the peering mode in use."""
    server = client.api.configuration.host
    try:
        resources = await client.request("GET", f"/apis/{GROUP}/{VERSION}")
    except ApiError as exc:
        if exc.status != 404:
            raise NotReady(f"the API server at {server} answered {exc}") from None
        resources = None
    except OSError as exc:  # ApiUnreachable, a certificate file that cannot be read
        raise NotReady(f"cannot reach the API server at {server}: {exc}") from None
    names = {r.get("name") for r in (resources or {}).get("resources") or ()}
    if "virtualips" not in names:
        raise NotReady(
            f"the VirtualIP CRD is not installed on {server} ({GROUP}/{VERSION} virtualips "
            "not served): kubectl apply -f crds/ (helm install installs it too)"
        )
    namespace = settings.namespace
    try:
        await client.request("GET", f"/api/v1/namespaces/{namespace}")
    except ApiError as exc:
        if exc.status == 404:
            raise NotReady(
                f"namespace {namespace} does not exist (the daemons' ConfigMaps, Secrets and "
                f"Pods go there): kubectl create namespace {namespace}, or name another with "
                "POD_NAMESPACE"
            ) from None
        log.warning("cannot check that namespace %s exists: %s", namespace, exc)
    level, mode = await _peering_mode(client, settings)
    log.log(level, "peering: %s", mode)


async def _peering_mode(client: KubeClient, settings: OperatorSettings) -> tuple[int, str]:
    """How kopf will coordinate replicas, as a log level and a line for a person."""
    if settings.peering == "standalone":
        return logging.INFO, (
            "standalone (KUBEVRRP_PEERING=standalone): this process acts alone; run no "
            "second operator against this cluster"
        )
    peering = f"{PEERING_KIND} {settings.peering_name}"
    try:
        await client.request(
            "GET", f"/apis/kopf.dev/v1/clusterkopfpeerings/{settings.peering_name}"
        )
    except ApiError as exc:
        if exc.status != 404:
            return logging.WARNING, f"{settings.peering} through {peering} (cannot read it: {exc})"
        if settings.peering == "auto":
            return logging.INFO, f"auto: no {peering}, so no coordination with other replicas"
        return logging.WARNING, (
            f"mandatory (KUBEVRRP_PEERING), but {peering} does not exist: waiting for it, "
            "nothing is handled until it does. Create it (helm install does), or run this "
            "operator alone with KUBEVRRP_PEERING=standalone"
        )
    return logging.INFO, f"{settings.peering} through {peering}: of several replicas one acts"


def bounded_session(info: kopf.ConnectionInfo) -> kopf.AiohttpSession:
    """kopf's connection to the API server with at most API_CONNECTIONS connections.

    kopf's own session opens as many as it has requests in flight: 500 VirtualIPs created
    at once meant hundreds of TLS connections at the same moment, each with its handshake
    and buffers, and the memory they took (about 50 MB) stayed with the process after they
    closed. Requests beyond the limit wait for a connection; the watch streams hold one
    each, so the limit leaves room for many more than kopf watches."""
    connector = aiohttp.TCPConnector(limit=API_CONNECTIONS, ssl=info.as_ssl_context())
    session = aiohttp.ClientSession(
        connector=connector,
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
    )


def main() -> int:
    try:
        settings = OperatorSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"vrrp-operator: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    level = logging.getLevelName(settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # kopf says at INFO that each handler succeeded, for every object and every event; what
    # changed is in our own lines, and kopf's problems are warnings and errors. At debug,
    # every handler run is shown (kopf: "... is invoked").
    logging.getLogger("kopf.objects").setLevel(min(level, logging.WARNING))
    from kubernetes.config import ConfigException

    try:
        client = KubeClient.default()
    except ConfigException as exc:
        print(
            "vrrp-operator: no credentials: not in a pod (no service account) and no usable "
            f"kubeconfig (KUBECONFIG or ~/.kube/config): {exc}",
            file=sys.stderr,
        )
        return EXIT_CLUSTER
    try:
        asyncio.run(preflight(client, settings))
    except NotReady as exc:
        print(f"vrrp-operator: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    registry = kopf.OperatorRegistry()

    # kopf adds its default login only to its default registry: the same credentials as
    # KubeClient.default (service account, else kubeconfig), through the official client.
    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        info = await asyncio.to_thread(kopf.login_via_client, **kwargs)
        return None if info is None else bounded_session(info)

    register(registry, Runtime(settings, client))
    priority = settings.peering_priority
    if priority is None:
        priority = random.SystemRandom().randint(1, 2**31 - 1)
    kopf.run(
        registry=registry,
        clusterwide=True,  # VirtualIPs live in every namespace (and kmock has no namespace list)
        standalone=True if settings.peering == "standalone" else None,
        priority=priority,
        peering_name=settings.peering_name,
        liveness_endpoint=settings.liveness_endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
