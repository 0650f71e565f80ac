"""The kind end-to-end test: registers its marker (select it with -m e2e, leave it out with
-m "not e2e")."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: a kind cluster, the image built and loaded, helm install and a real failover "
        "(needs docker with a running engine and kind; skipped, with the reason, without them)",
    )
