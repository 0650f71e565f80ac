"""`vrrpd lab`, README command #1: it shows a failover and leaves nothing behind."""

from __future__ import annotations

import io
import re

import pytest

from vrrpd.lab import demo
from vrrpd.lab.netns import list_netns

pytestmark = pytest.mark.root


@pytest.mark.parametrize("scenario", demo.SCENARIOS)
def test_the_lab_shows_a_failover_and_cleans_up(scenario: str) -> None:
    before = set(list_netns())
    out = io.StringIO()
    assert demo.main(2, scenario, "100ms", out) == 0
    text = out.getvalue()
    elected, after, restored = text.split("NODE")[1:4]
    assert "MASTER" in elected.splitlines()[1] and "holds" in elected.splitlines()[1]
    assert "MASTER" in after.splitlines()[2] and "holds" in after.splitlines()[2]
    assert "probes lost" in text
    assert "MASTER" in restored.splitlines()[1] and "holds" in restored.splitlines()[1]
    assert {n for n in set(list_netns()) - before if n.startswith("kvlab-")} == set()


def test_the_switchover_scenario_moves_the_vip_both_ways_without_a_lost_probe() -> None:
    out = io.StringIO()
    assert demo.main(3, "switchover", "100ms", out) == 0
    text = out.getvalue()
    assert "default/demo/ipv4: held, took over" in text
    assert "default/demo/ipv4: released" in text
    assert "1 s later n3 still holds it" in text
    assert re.findall(r": (\d+) of \d+ probes lost", text) == ["0", "0"]
