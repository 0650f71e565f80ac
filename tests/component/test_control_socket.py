"""The control socket (vrrpd/control.py) and `vrrpd switchover`, on real UNIX sockets: who
may connect, what a request and its answer look like, and what a person reads."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from vrrpd.cli import format_status_table, main
from vrrpd.control import ControlError, ControlServer, ask_switchover
from vrrpd.switchover import select

GROUPS = {"default/web/ipv4": None, "default/db/ipv4": None}


class Recorder:
    """Answers as Daemon.switchover does, from `select`, and keeps the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], bool]] = []

    def __call__(self, names: Sequence[str], release: bool) -> Mapping[str, str]:
        self.calls.append((tuple(names), release))
        chosen = select(names, GROUPS)
        return {n: "released" if release else "held, took over" for n in chosen}


async def test_a_request_reaches_the_daemon_and_the_outcome_comes_back(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "control.sock")
    recorder = Recorder()
    server = ControlServer(path, recorder)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o700
        outcome = await asyncio.to_thread(ask_switchover, path, ["default/web/ipv4"], release=False)
        assert outcome == {"default/web/ipv4": "held, took over"}
        assert await asyncio.to_thread(ask_switchover, path, [], release=True) == {
            "default/db/ipv4": "released",
            "default/web/ipv4": "released",
        }
        assert recorder.calls == [(("default/web/ipv4",), False), ((), True)]
        with pytest.raises(ControlError, match="no instance 'web' on this node"):
            await asyncio.to_thread(ask_switchover, path, ["web"], release=False)
    finally:
        await server.close()
    assert not os.path.exists(path)


async def test_nobody_but_the_owner_may_connect(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    server = ControlServer(path, Recorder())
    await server.start()
    try:
        pid = os.fork()
        if pid == 0:  # as nobody: the socket's mode refuses the connection
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
            except PermissionError:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "nobody connected to the control socket"
    finally:
        await server.close()


async def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)  # a killed daemon's leftover: nobody listens
    first = ControlServer(path, Recorder())
    await first.start()
    try:
        with pytest.raises(ControlError, match="another vrrpd answers on it"):
            await ControlServer(path, Recorder()).start()
        assert await asyncio.to_thread(ask_switchover, path, ["default/db/ipv4"], release=False)
    finally:
        await first.close()
    Path(path).write_text("")
    with pytest.raises(ControlError, match="exists and is not a socket"):
        await ControlServer(path, Recorder()).start()


async def test_a_malformed_request_is_refused_with_the_field(tmp_path: Path) -> None:
    import aiohttp

    path = str(tmp_path / "control.sock")
    server = ControlServer(path, Recorder())
    await server.start()
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session,
            session.post("http://x/switchover", json={"release": "yes"}) as answer,
        ):
            assert answer.status == 400
            assert await answer.json() == {"error": "release: 'yes': use true or false"}
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session,
            session.get("http://x/status") as answer,
        ):
            assert answer.status == 404  # the socket answers nothing but the switchover
    finally:
        await server.close()


def test_the_command_says_when_no_daemon_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "none.sock")
    assert main(["switchover", "--control-socket", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"vrrpd switchover: {path}: no daemon answers")
    assert f"--control-socket {path}" in err


def test_the_status_table_shows_the_hold() -> None:
    status = {"instances": [{"name": "web", "state": "MASTER", "held": True, "priority": 100,
                             "effectivePriority": 254}]}  # fmt: skip
    assert format_status_table(status).splitlines()[1].split() == [
        "web", "MASTER", "(held)", "100/254", "-", "-", "-", "-",
    ]  # fmt: skip
