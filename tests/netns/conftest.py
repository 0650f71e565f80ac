"""Fixtures shared by the network-namespace tests: labs that are always torn down."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vrrpd.lab.netns import Lab, LabError

LAB_PREFIX = "kvt"  # each lab adds "-{pid}-{seq}": parallel runs never collide


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_labs() -> None:
    # Leftovers of earlier runs killed before their teardown (SIGKILL, power loss); only
    # namespaces marked as a lab's whose creating process is gone are touched.
    if os.geteuid() == 0:
        Lab.cleanup_stale(LAB_PREFIX)


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """`make(nodes=2, **Lab_kwargs) -> Lab`; every lab made is closed at teardown.

    Each lab's files (keepalived configs and logs, ...) stay under the test's tmp_path.
    """
    labs: list[Lab] = []

    def make(nodes: int = 2, **kwargs: Any) -> Lab:
        kwargs.setdefault("prefix", LAB_PREFIX)
        kwargs.setdefault("unique", True)
        kwargs.setdefault("workdir", tmp_path / f"lab{len(labs) + 1}")
        lab = Lab(nodes, **kwargs)
        labs.append(lab)
        return lab

    yield make
    errors = []
    for lab in reversed(labs):
        try:
            lab.close()
        except LabError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("lab teardown left things behind: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def lab(lab_factory: Callable[..., Lab]) -> Lab:
    """A two-node lab (nodes 192.168.77.11, .12; client .200)."""
    return lab_factory(2)
