"""Live reload of real daemons in namespaces: a new priority or advert interval is applied in
place (no re-election, no handover, no lost probe); only another router restarts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.netns.test_vrrpd import VIP, WEB, manifest, start_all, until, write
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab
from vrrpd.lab.prober import Prober

pytestmark = pytest.mark.root


def reload_all(daemons: list[VrrpdProcess]) -> None:
    for d in daemons:
        d.reload()


def rewrite(config: Path, text: str) -> None:
    """Replace the file at once: the daemons also watch it, and one that read it half
    written would see fewer VirtualIPs (an empty file is a valid one, with none)."""
    tmp = config.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, config)


def test_new_priorities_on_every_node_cause_no_handover(lab: Lab) -> None:
    config = write(lab, manifest(priorities=(150, 100)))
    d = start_all(lab, config)
    assert d[0].wait_state(WEB, "MASTER", 15) and until(lambda: d[1].state(WEB) == "BACKUP")
    before = [len(x.transitions(WEB)) for x in d]
    with Prober(lab, VIP) as prober:
        time.sleep(0.3)
        # The master's priority raised, the backup's raised too but still below it.
        rewrite(config, manifest(priorities=(200, 180)))
        reload_all(d)
        assert until(lambda: all("reconfigured in place" in x.log_text() for x in d))
        time.sleep(1.0)
    result = prober.stop()
    assert [len(x.transitions(WEB)) for x in d] == before
    assert lab.holders(VIP) == [1]
    assert result.lost == 0, result
    assert all("1 changed, 0 unchanged, 0 failed (0 restarted)" in x.log_text() for x in d)


def test_a_new_advert_interval_keeps_the_master(lab: Lab) -> None:
    config = write(lab, manifest(priorities=(150, 100), interval="100ms"))
    d = start_all(lab, config)
    assert d[0].wait_state(WEB, "MASTER", 15) and until(lambda: d[1].state(WEB) == "BACKUP")
    before = [len(x.transitions(WEB)) for x in d]
    with Prober(lab, VIP) as prober:
        for interval in ("1s", "50ms"):
            rewrite(config, manifest(priorities=(150, 100), interval=interval))
            # The backup first: the master's adverts still come every 100 ms / 1 s meanwhile.
            d[1].reload()
            time.sleep(0.3)
            d[0].reload()
            time.sleep(4.0)  # longer than 3 intervals of 1 s: a missed advert would show
    result = prober.stop()
    assert [len(x.transitions(WEB)) for x in d] == before
    assert lab.holders(VIP) == [1]
    assert result.lost == 0, result
    assert all("(1 restarted)" not in x.log_text() for x in d)


def test_a_new_vrid_restarts_the_instance_with_a_handover(lab: Lab) -> None:
    config = write(lab, manifest(priorities=(150, 100)))
    d = start_all(lab, config)
    assert d[0].wait_state(WEB, "MASTER", 15) and until(lambda: d[1].state(WEB) == "BACKUP")
    rewrite(config, manifest(vrid=52, priorities=(150, 100)))
    reload_all(d)
    assert until(lambda: "(1 restarted)" in d[0].log_text())
    assert until(lambda: d[0].state(WEB) == "MASTER" and lab.holders(VIP) == [1], 15)
    assert "configuration changed: vrid changed" in d[0].log_text()
