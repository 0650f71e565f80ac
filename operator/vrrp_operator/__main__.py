"""Entry point: `python -m vrrp_operator`, the equivalent of `kopf run --all-namespaces`.

Settings come from the environment (settings.py); credentials from the pod's service
account, else the kubeconfig. Without KUBEVRRP_PEERING_PRIORITY each replica draws a random
priority: kopf pauses every operator that sees a peer of higher *or equal* priority, so two
replicas with the same priority would both stop.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from typing import Any

import kopf

from vrrp_operator.handlers import Runtime, register
from vrrp_operator.kube import KubeClient
from vrrp_operator.settings import OperatorSettings, SettingsError


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = OperatorSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"vrrp-operator: {exc}", file=sys.stderr)
        return 2
    registry = kopf.OperatorRegistry()

    # kopf adds its default login only to its default registry: the same credentials as
    # KubeClient.default (service account, else kubeconfig), through the official client.
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    register(registry, Runtime(settings, KubeClient.default()))
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
