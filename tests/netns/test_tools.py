"""The operator-facing tools on a live segment: `vrrpd scan`."""

from __future__ import annotations

import sys

import pytest

from tests.netns.test_vrrpd import WEB, manifest, start_all, write
from vrrpd.lab.netns import Lab

pytestmark = pytest.mark.root


def test_scan_lists_the_master_heard_on_the_wire(lab: Lab) -> None:
    d = start_all(lab, write(lab, manifest(priorities=(150, 100))))
    assert d[0].wait_state(WEB, "MASTER", 5)
    argv = [sys.executable, "-m", "vrrpd", "scan", "--interface", "eth0", "--seconds", "1"]
    out = lab.exec(lab.client, argv).stdout.splitlines()
    assert out[0].split()[:3] == ["VRID", "VER", "SOURCE"]
    row = out[1].split()
    assert row[:4] == ["51", "v3", "192.168.77.11", "150"]
    assert row[4] == "100ms" and int(row[5]) >= 5 and row[6] == "192.168.77.100"
    assert len(out) == 2  # the backup is silent, no conflict
