"""`vrrpd control-plane` without root: what it renders (a VirtualIP the daemon accepts, a
static Pod the Kubernetes schemas accept), what it writes, and the errors a user reads.
tests/netns/test_control_plane.py runs the result in front of real kube-apiservers."""

from __future__ import annotations

import ipaddress
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from vrrpd.cli import build_parser, main
from vrrpd.config import HttpCheck
from vrrpd.controlplane import command
from vrrpd.controlplane.render import (
    DEFAULT_IMAGE,
    MANIFEST_FILE,
    ControlPlaneVip,
    grace_period_s,
    static_pod,
    static_pod_yaml,
    virtualip,
    virtualip_yaml,
)
from vrrpd.probes.tracking import Priority, ProbeTracker, effective_priority
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests
from vrrpd.vrrp.fsm import PreemptMode

ROOT = Path(__file__).resolve().parents[2]
KUBE_VERSION = "1.31"  # as tests/chart: the oldest Kubernetes the chart supports

VIP = ipaddress.ip_interface("192.168.77.100/24")
N1, N2, N3 = (ipaddress.ip_address(f"192.168.77.1{i}") for i in (1, 2, 3))
FAR = ipaddress.ip_address("10.9.9.9")  # a peer in another subnet


def cp(**changes: Any) -> ControlPlaneVip:
    values: dict[str, Any] = {
        "vip": VIP, "interface": "eth0", "node": "cp-1", "vrid": 100,
        "address": N1, "peers": (N2, N3), "config_dir": "/etc/kube-vrrp",
    }  # fmt: skip
    values.update(changes)
    return ControlPlaneVip(**values)


# --- the VirtualIP ----------------------------------------------------------------------------


def test_the_virtualip_file_is_what_the_daemon_runs_unicast() -> None:
    text = virtualip_yaml(cp())
    (instance,) = instances_for_node(load_manifests(text, source="control-plane.yaml"), "cp-1")
    assert instance.addresses == (VIP,)
    assert (instance.vrid, instance.interface, instance.priority) == (100, "eth0", 100)
    assert instance.preempt is PreemptMode.ALWAYS and instance.accept
    assert instance.unicast and instance.source_address == N1 and instance.peers == (N2, N3)
    assert instance.advert_interval_cs == 20
    (probe,) = instance.probes
    assert probe.check == HttpCheck(
        scheme="https", host="127.0.0.1", port=6443, path="/readyz", verify_tls=False
    )
    assert (probe.interval_cs, probe.timeout_cs, probe.fall, probe.rise) == (100, 100, 2, 2)


def test_without_peers_it_is_multicast() -> None:
    text = virtualip_yaml(cp(address=None, peers=()))
    (instance,) = instances_for_node(load_manifests(text), "cp-1")
    assert not instance.unicast and instance.peers == () and instance.source_address is None
    assert "peers" not in virtualip(cp(address=None, peers=()))["spec"]
    assert "multicast to 224.0.0.18" in text


@pytest.mark.parametrize("priority", [2, 100, 150, 254])
def test_a_failing_api_server_puts_the_node_at_1_below_every_healthy_node(priority: int) -> None:
    """The probe's weight is 1 - priority: through the daemon's own arithmetic a failing
    node ends at 1 whatever its priority, and a healthy one keeps its priority (>= 2)."""
    (instance,) = instances_for_node(load_manifests(virtualip_yaml(cp(priority=priority))), "cp-1")
    (probe,) = instance.probes
    tracker = ProbeTracker(probe.name, probe.rise, probe.fall, probe.weight)
    tracker.record(True)
    assert effective_priority(priority, [tracker]) == Priority(priority, priority, priority)
    for _ in range(probe.fall):
        tracker.record(False)
    failing = effective_priority(priority, [tracker])
    assert isinstance(failing, Priority) and failing.value == 1


def test_the_file_header_states_the_numbers_it_explains() -> None:
    text = virtualip_yaml(cp(priority=150))
    assert "150 - 149 = 1" in text
    assert "unicast to 192.168.77.12, 192.168.77.13 from 192.168.77.11" in text
    assert " ".join(cp().command) in text


# --- the static Pod ---------------------------------------------------------------------------


def test_the_static_pod_is_valid_kubernetes() -> None:
    for c in (cp(), cp(address=None, peers=(), vip=ipaddress.ip_interface("fd00:77::100/64"))):
        pod = yaml.safe_load(static_pod_yaml(c))
        assert pod == static_pod(c)
        kubernetes_validate.validate(pod, KUBE_VERSION, strict=True)


def test_the_static_pod_runs_the_daemon_from_the_file_with_two_capabilities_only() -> None:
    c = cp(config_dir="/srv/vrrp", image="registry.test/vrrpd@sha256:" + "ab" * 32)
    pod = static_pod(c)
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert spec["hostNetwork"] is True
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    assert container["image"] == c.image
    assert container["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_ADMIN", "NET_RAW"],
    }
    assert container["securityContext"]["privileged"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The command is `vrrpd run` in standalone mode: no --kube, so no API access.
    args = build_parser().parse_args(container["command"][1:])
    assert (args.command, args.config, args.node, args.kube) == (
        "run", "/srv/vrrp/control-plane.yaml", "cp-1", False
    )  # fmt: skip
    # The file is reached through a hostPath folder mounted at its own path.
    volumes = {v["name"]: v for v in spec["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/srv/vrrp"]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["hostPath"] == {"path": "/srv/vrrp", "type": "Directory"}
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"]["host"] == "127.0.0.1"
        assert probe["httpGet"]["port"] == c.http_port
    assert args.http_address == f"127.0.0.1:{c.http_port}"


def test_grace_period_covers_the_handover() -> None:
    assert grace_period_s(20) == 10
    assert grace_period_s(100) == 10
    assert grace_period_s(300) == 15  # 3 x 3 s + 1 s + 5 s margin
    assert static_pod(cp(advert_interval_cs=300))["spec"]["terminationGracePeriodSeconds"] == 15


def test_the_default_image_is_the_one_the_chart_runs_the_daemons_from() -> None:
    values = yaml.safe_load((ROOT / "charts/kube-vrrp/values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "charts/kube-vrrp/Chart.yaml").read_text())
    tag = values["image"]["tag"] or chart["appVersion"]
    assert f"{values['image']['repository']}:{tag}" == DEFAULT_IMAGE


# --- the command ------------------------------------------------------------------------------


class FakeHost(command.Host):
    """A node with eth0 at `own`: every peer is reached from `own`, `own` from itself."""

    def __init__(self, own: Any = N1, sources: dict[Any, Any] | None = None) -> None:
        self.own = own
        self.sources = sources or {}

    def interfaces(self) -> list[str]:
        return ["lo", "eth0"]

    def route_source(self, interface: str, peer: Any) -> Any:
        if peer in self.sources:
            result = self.sources[peer]
            if isinstance(result, OSError):
                raise result
            return result
        return peer if peer == self.own else self.own


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def invoke(*flags: str, host: command.Host | None = None) -> tuple[int, str, str]:
        argv = [
            "control-plane", "--manifests-dir", str(tmp_path / "manifests"),
            "--config-dir", str(tmp_path / "kube-vrrp"), "--node-name", "cp-1", *flags,
        ]  # fmt: skip
        args = build_parser().parse_args(argv)
        code = command.cli(args, host or FakeHost())
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_the_same_command_line_on_every_node_finds_its_own_address(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    flags = ("--vip", "192.168.77.100/24", "-i", "eth0", "--peer", "192.168.77.11,192.168.77.12")
    code, out, err = run(*flags, "--peer", "192.168.77.13", host=FakeHost(own=N2))
    assert code == 0, err
    config = tmp_path / "kube-vrrp" / "control-plane.yaml"
    manifest = tmp_path / "manifests" / MANIFEST_FILE
    assert out.splitlines()[:2] == [f"wrote {config}", f"wrote {manifest}"]
    assert "--peer 192.168.77.12: this node (its own entry)" in out
    assert "kubeadm init --control-plane-endpoint 192.168.77.100:6443" in out
    (instance,) = instances_for_node(load_manifests(config.read_text()), "cp-1")
    assert instance.source_address == N2 and instance.peers == (N1, N3)
    assert instance.vrid == 100  # the VIP's last byte
    pod = yaml.safe_load(manifest.read_text())
    assert pod["spec"]["containers"][0]["command"][3] == str(config)
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    # Run again: nothing changes, and it says so; no temporary file is left behind.
    code, out, _ = run(*flags, "--peer", "192.168.77.13", host=FakeHost(own=N2))
    assert code == 0 and out.splitlines()[:2] == [f"unchanged {config}", f"unchanged {manifest}"]
    assert sorted(p.name for p in manifest.parent.iterdir()) == [MANIFEST_FILE]


def test_dry_run_prints_both_files_and_writes_nothing(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, out, err = run("--vip", "192.168.77.100/24", "-i", "eth0", "--dry-run")
    assert code == 0, err
    assert not (tmp_path / "manifests").exists() and not (tmp_path / "kube-vrrp").exists()
    assert "kind: VirtualIP" in out and "kind: Pod" in out
    assert "kubeadm init" in err


def test_through_the_vrrpd_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([
        "control-plane", "--vip", "192.168.77.100/24", "-i", "lo", "--node-name", "cp-1",
        "--manifests-dir", str(tmp_path / "m"), "--config-dir", str(tmp_path / "c"),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "m" / MANIFEST_FILE).exists()
    assert main(["validate", str(tmp_path / "c" / "control-plane.yaml")]) == 0


@pytest.mark.parametrize(
    ("flags", "host", "message"),
    [
        (
            ["--vip", "192.168.77.100/24", "-i", "eth9"],
            None,
            "--interface eth9: no such interface on this host; it has lo, eth0",
        ),
        (
            ["--vip", "224.0.0.1/24", "-i", "eth0"],
            None,
            "--vip: 224.0.0.1/24 is a multicast address; a virtual address must be a unicast "
            "host address",
        ),
        (
            ["--vip", "192.168.77.0/16", "-i", "eth0"],
            None,
            "--vrid: the default is the VIP's last byte, which is 0 for 192.168.77.0; give "
            "--vrid N",
        ),
        (
            ["--vip", "192.168.77.100/24", "-i", "eth0", "--peer", "fd00::12"],
            None,
            "--peer fd00::12: IPv6, but --vip 192.168.77.100/24 is IPv4; give the nodes' IPv4",
        ),
        (
            ["--vip", "192.168.77.100/24", "-i", "eth0", "--peer", "192.168.77.100"],
            None,
            "--peer 192.168.77.100 is the VIP itself",
        ),
        (
            ["--vip", "192.168.77.100/24", "-i", "eth0", "--address", "192.168.77.11"],
            None,
            "--address 192.168.77.11: only used with --peer (unicast)",
        ),
        (
            ["--vip", "192.168.77.100/24", "-i", "eth0", "--peer", "192.168.77.11"],
            None,
            "--peer 192.168.77.11: only this node's own address; list the other control-plane "
            "nodes too",
        ),
        (
            ["--vip", "192.168.77.100/24", "-i", "eth0", "--peer", "192.168.77.12,10.9.9.9"],
            FakeHost(sources={FAR: OSError(101, "Network is unreachable")}),
            "--peer 10.9.9.9: no route to it through --interface eth0 (Network is unreachable)",
        ),
        (
            ["--vip", "192.168.77.100/24", "-i", "eth0", "--peer", "192.168.77.12,10.9.9.9"],
            FakeHost(sources={FAR: ipaddress.ip_address("10.9.9.1")}),
            "--peer: this node reaches its peers from different addresses (192.168.77.11 "
            "towards 192.168.77.12, 10.9.9.1 towards 10.9.9.9); give the one on --interface "
            "with --address",
        ),
    ],
)  # fmt: skip
def test_errors_name_the_flag_the_value_and_what_works(
    run: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    flags: list[str],
    host: command.Host | None,
    message: str,
) -> None:
    code, _, err = run(*flags, host=host)
    assert code == command.EXIT_USAGE
    assert f"vrrpd control-plane: {message}" in err
    assert not (tmp_path / "manifests").exists()  # nothing written


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--priority", "1"], "argument --priority: '1': use a whole number 2..254; a node whose "
         "API server fails drops to 1"),
        (["--advert-interval", "5ms"], "argument --advert-interval: 5ms is not a whole number "
         "of centiseconds"),
        (["--advert-interval", "50s"], "argument --advert-interval: '50s' is out of range; "
         "VRRPv3 sends adverts every 10ms..40.95s (default 200ms)"),
        (["--peer", "192.168.77.12/24"], "argument --peer: '192.168.77.12/24' is not an IP "
         "address (an address, without /prefix)"),
        (["--node-name", "CP_1"], "argument --node-name: 'CP_1' is not a Kubernetes node name"),
    ],
)  # fmt: skip
def test_flag_syntax_errors_name_the_flag(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["control-plane", "--vip", "192.168.77.100/24", "-i", "eth0",
                                   *flags])  # fmt: skip
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unwritable_folder_is_named(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    (tmp_path / "kube-vrrp").write_text("a file where the folder should be")
    code, _, err = run("--vip", "192.168.77.100/24", "-i", "eth0")
    assert code == command.EXIT_WRITE
    assert f"cannot write {tmp_path / 'kube-vrrp'}" in err


def test_the_docs_name_only_flags_the_command_has() -> None:
    """docs/control-plane.md: every flag it shows is the command's, or another tool's."""
    others = {
        # kubeadm, kube-apiserver, curl, nerdctl, and the kubeadm preflight check's name
        "--control-plane-endpoint", "--upload-certs", "--control-plane", "--token",
        "--discovery-token-ca-cert-hash", "--certificate-key", "--ignore-preflight-errors",
        "--etc-kubernetes-manifests", "--anonymous-auth", "--shutdown-delay-duration",
        "--insecure", "--rm", "--net", "--user", "--config",
        "--shutdown-delay", "--cases",  # bench.control_plane's
    }  # fmt: skip
    text = (ROOT / "docs" / "control-plane.md").read_text()
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text)) - others
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    known = {o for a in sub.choices["control-plane"]._actions for o in a.option_strings}
    assert named and named <= known, sorted(named - known)
