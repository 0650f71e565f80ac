"""Real `vrrpd` processes on lab nodes, observed through their JSON logs.

The lab demo, the netns tests and the failover benchmark all start daemons the same way
and read their state transitions from the log (every transition is logged with the
instance, the new state and the reason), so none of them needs a side channel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from vrrpd.lab.netns import Lab, wait_until

ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding `vrrpd`
SOCKET_PATH_MAX = 107  # sun_path, less its terminating NUL


class VrrpdProcess:
    """One `vrrpd run` inside lab node `index`, logging JSON to a file we can read back."""

    def __init__(
        self,
        lab: Lab,
        index: int,
        config: str | Path | None,
        *,
        node_name: str | None = None,
        extra_args: tuple[str, ...] = (),
        root: str | Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        """`root`: the checkout whose `vrrpd` runs (a benchmark may compare another one);
        `env`: added to this process's environment."""
        self.lab = lab
        self.index = index
        self.node = lab.node(index)
        self.node_name = node_name or self.node.name
        self.config = None if config is None else str(config)  # None: --kube in extra_args
        self.extra_args = extra_args
        self.root, self.extra_env = str(root), env or {}
        # In the lab's workdir, so the logs go when the lab goes.
        fd, self.log_path = tempfile.mkstemp(
            prefix=f"vrrpd-{self.node_name}-", suffix=".log", dir=lab.workdir
        )
        os.close(fd)
        # Its own control socket (`vrrpd switchover`): the lab's nodes share one filesystem.
        # In the workdir unless that makes the path too long for a UNIX socket (108 bytes).
        short = len(str(lab.workdir)) < SOCKET_PATH_MAX - 40
        self._control_dir = tempfile.mkdtemp(prefix="ctl-", dir=lab.workdir if short else None)
        self.control_socket = os.path.join(self._control_dir, "control.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VrrpdProcess:
        env = {**os.environ, **self.extra_env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.root, env.get("PYTHONPATH")]))
        source = [] if self.config is None else ["--config", self.config]
        argv = [
            sys.executable, "-m", "vrrpd", "run", *source, "--node", self.node_name,
            "--log-format", "json", *self.extra_args,
        ]  # fmt: skip
        if self.root == ROOT:  # another checkout may predate the control socket
            argv += ["--control-socket", self.control_socket]
        with open(self.log_path, "ab") as log:
            # `python -m` looks in the working directory first: another checkout's vrrpd
            # runs from there.
            cwd = None if self.root == ROOT else self.root
            self.proc = self.lab.run(
                self.node.netns, argv, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=cwd
            )
        return self

    def switchover(
        self, *instances: str, release: bool = False, timeout: float = 15.0
    ) -> subprocess.CompletedProcess[str]:
        """`vrrpd switchover` on this node, as a person would run it there, once the daemon
        opened its control socket (after its instances and its HTTP face)."""
        wait_until(lambda: os.path.exists(self.control_socket), timeout)
        named = [arg for name in instances for arg in ("--instance", name)]
        argv = [sys.executable, "-m", "vrrpd", "switchover", "--control-socket",
                self.control_socket, *named]  # fmt: skip
        if release:
            argv.append("--release")
        env = {**os.environ, **self.extra_env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.root, env.get("PYTHONPATH")]))
        cwd = None if self.root == ROOT else self.root
        return subprocess.run(
            self.lab.command(self.node.netns, argv), capture_output=True, text=True,
            timeout=timeout, env=env, cwd=cwd,
        )  # fmt: skip

    # -- observing ------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        out = []
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"msg": line.rstrip(), "level": "raw"})
        return out

    def transitions(self, instance: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events()
            if "state" in e and (instance is None or e.get("instance") == instance)
        ]

    def state(self, instance: str) -> str | None:
        found = self.transitions(instance)
        return found[-1]["state"] if found else None

    def wait_state(self, instance: str, state: str, timeout: float) -> bool:
        return wait_until(lambda: self.state(instance) == state, timeout)

    def wait_http(self, timeout: float) -> bool:
        """Until the HTTP face serves: it starts after the instances (vrrpd.cli._serve_http),
        so an instance's state says nothing of it."""
        return wait_until(lambda: "serving /healthz" in self.log_text(), timeout)

    def log_text(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- stopping -------------------------------------------------------------------------

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM (handover) and wait; returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL, as a crash: nothing is cleaned up by the daemon."""
        return self._signal(signal.SIGKILL, 5.0)

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.running:
            self.kill()
        Path(self.log_path).unlink(missing_ok=True)
        shutil.rmtree(self._control_dir, ignore_errors=True)
