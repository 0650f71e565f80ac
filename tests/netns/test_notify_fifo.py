"""notify.fifo (keepalived notify_fifo) from real daemons in a lab's namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.netns.test_vrrpd import VIP, WEB, manifest, until, write
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab

pytestmark = pytest.mark.root


class FifoReader:
    """The lines written so far to a FIFO, read without blocking."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.lines: list[str] = []
        self._partial = b""

    def read(self) -> list[str]:
        try:
            while chunk := os.read(self.fd, 65536):
                *done, self._partial = (self._partial + chunk).split(b"\n")
                self.lines += [line.decode() for line in done]
        except BlockingIOError:
            pass
        return self.lines

    def close(self) -> None:
        os.close(self.fd)


def test_each_daemon_writes_keepalived_lines_to_its_fifo(lab: Lab) -> None:
    work = Path(lab.workdir)
    fifos = {i: work / f"n{i}.fifo" for i in (1, 2)}  # made by the daemons
    d = {
        i: VrrpdProcess(
            lab,
            i,
            write(
                lab,
                manifest(priorities=(150, 100), extra=f"  notify:\n    fifo: {fifos[i]}\n"),
                f"n{i}.yaml",
            ),
        ).start()
        for i in (1, 2)
    }
    assert d[1].wait_state(WEB, "MASTER", 15) and d[2].wait_state(WEB, "BACKUP", 15)
    assert all(f.is_fifo() for f in fifos.values())
    readers = {i: FifoReader(fifos[i]) for i in (1, 2)}
    try:
        # What was written before anyone read waits in the pipe (the daemon holds it open).
        assert until(lambda: len(readers[1].read()) == 2)
        assert readers[1].lines == [
            f'INSTANCE "{WEB}" BACKUP 150',
            f'INSTANCE "{WEB}" MASTER 150',
        ]
        # n2 may have been MASTER for a moment, if it started first: it ends BACKUP.
        backup = [f'INSTANCE "{WEB}" BACKUP 100']
        assert until(lambda: readers[2].read()[-1:] == backup), readers[2].lines
        assert d[1].terminate() == 0
        assert until(lambda: readers[1].read()[-1:] == [f'INSTANCE "{WEB}" STOP 150'])
        assert until(lambda: readers[2].read()[-1:] == [f'INSTANCE "{WEB}" MASTER 100'])
        assert lab.holders(VIP) == [2]
    finally:
        for reader in readers.values():
            reader.close()


def test_a_sync_group_notifies_once_per_change_of_the_group(lab: Lab) -> None:
    """Two members, one group: one GROUP line per change (keepalived's), not one per member,
    and the members' own lines beside them in the same FIFO."""
    work = Path(lab.workdir)
    fifo = work / "n1.fifo"
    record = work / "group.log"
    script = work / "group.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    script.chmod(0o755)
    hooks = (
        f"  syncGroup: edge\n  notify:\n    fifo: {fifo}\n"
        f"  syncGroupNotify:\n    fifo: {fifo}\n    all: [{script}]\n"
    )

    def members(extra: str) -> str:
        web = manifest(priorities=(150, 100), extra=extra)
        api = manifest("api", 52, '["192.168.77.101/24"]', priorities=(150, 100), extra=extra)
        return web + "---\n" + api

    d = {
        1: VrrpdProcess(lab, 1, write(lab, members(hooks), "n1.yaml")).start(),
        2: VrrpdProcess(lab, 2, write(lab, members("  syncGroup: edge\n"), "n2.yaml")).start(),
    }
    api = "default/api/ipv4"
    assert d[1].wait_state(WEB, "MASTER", 15) and d[1].wait_state(api, "MASTER", 15)
    reader = FifoReader(fifo)
    try:
        assert d[1].terminate() == 0
        assert until(lambda: 'GROUP "default/edge" STOP 0' in reader.read())
        group = [line for line in reader.lines if line.startswith("GROUP")]
        assert group == [
            'GROUP "default/edge" BACKUP 0',
            'GROUP "default/edge" MASTER 0',
            'GROUP "default/edge" STOP 0',
        ], reader.lines
        for name in (WEB, api):  # the members' own, each
            assert f'INSTANCE "{name}" MASTER 150' in reader.lines
        assert until(lambda: record.exists() and len(record.read_text().splitlines()) == 3)
        assert record.read_text().splitlines() == [
            f"GROUP default/edge {state} 0" for state in ("BACKUP", "MASTER", "STOP")
        ]
        assert d[2].wait_state(WEB, "MASTER", 15) and lab.holders(VIP) == [2]
    finally:
        reader.close()
