"""`vrrpd control-plane`: write the control-plane VIP's static pod and VirtualIP file on
this node, before `kubeadm init` / `kubeadm join --control-plane`.

What it looks at on the host (through `Host`, which the unit tests replace): that the
interface exists, and, with --peer and without --address, which address this node sends
from towards its peers (the route's source address, with the socket bound to the
interface: a UDP connect, nothing is sent). A --peer that is one of this node's own
addresses is recognised and dropped, so the same command line serves every node.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vrrpd.controlplane.render import (
    DEFAULT_ADVERT_CS,
    DEFAULT_APISERVER_PORT,
    DEFAULT_CONFIG_DIR,
    DEFAULT_HTTP_PORT,
    DEFAULT_IMAGE,
    DEFAULT_MANIFESTS_DIR,
    DEFAULT_PRIORITY,
    FAILING_PRIORITY,
    MANIFEST_FILE,
    ControlPlaneVip,
    static_pod_yaml,
    virtualip_yaml,
)
from vrrpd.limits import ADVERT_INTERVAL_V3_MAX_CS, IPAddress, IPInterface
from vrrpd.resolve import instances_for_node
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.fields import format_duration_cs, parse_duration_cs
from vrrpd.spec.load import load_manifests

PROG = "vrrpd control-plane"
EXIT_USAGE = 2  # a flag is wrong: nothing was written
EXIT_WRITE = 1  # the files could not be written
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IMAGE = re.compile(r"[^\s]+")
# Where a problem the VirtualIP model finds comes from, for the message.
_FLAG_OF_FIELD = {
    "spec.addresses": "--vip",
    "spec.interface": "--interface",
    "spec.vrid": "--vrid",
    "spec.priority": "--priority",
    "spec.advertInterval": "--advert-interval",
    "spec.peers": "--peer",
    "spec.probes": "--apiserver-bind-port",
}


class UsageError(Exception):
    """A flag's value cannot work; the message names the flag, the value and what would."""


class Host:
    """What the command reads from this machine."""

    def interfaces(self) -> list[str]:
        return [name for _, name in socket.if_nameindex()]

    def route_source(self, interface: str, peer: IPAddress) -> IPAddress:
        """The address this node sends from to `peer` through `interface` (OSError: none)."""
        family = socket.AF_INET if peer.version == 4 else socket.AF_INET6
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            # Kernels before 5.7 want CAP_NET_RAW for it; the route is then unconstrained.
            with contextlib.suppress(PermissionError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            sock.connect((str(peer), 9))  # routing only: a UDP connect sends nothing
            return ipaddress.ip_address(sock.getsockname()[0].split("%")[0])


# --- flag values ------------------------------------------------------------------------------


def _vip(text: str) -> IPInterface:
    try:
        return ipaddress.ip_interface(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address with an optional prefix length; e.g. "
            "192.168.10.100/24 (the prefix of the nodes' subnet) or fd00:10::100/64"
        ) from None


def _addresses(text: str) -> list[IPAddress]:
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            found.append(ipaddress.ip_address(part))
        except ValueError:
            hint = " (an address, without /prefix)" if "/" in part else ""
            raise argparse.ArgumentTypeError(
                f"{part!r} is not an IP address{hint}; e.g. 192.168.10.11, or a list: "
                "192.168.10.11,192.168.10.12"
            ) from None
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} holds no address; e.g. 192.168.10.11")
    return found


def _address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address; give this node's own address on --interface, "
            "e.g. 192.168.10.11"
        ) from None


def _int_between(lo: int, hi: int, why: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r}: use a whole number {lo}..{hi}{why}")
        return value

    return parse


def _advert_interval(text: str) -> int:
    try:
        cs = parse_duration_cs(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 1 <= cs <= ADVERT_INTERVAL_V3_MAX_CS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range; VRRPv3 sends adverts every 10ms..40.95s "
            f"(default {format_duration_cs(DEFAULT_ADVERT_CS)})"
        )
    return cs


def _node_name(text: str) -> str:
    if len(text) > 253 or not _NODE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Kubernetes node name; use lowercase letters, digits, '-' and "
            "'.', e.g. cp-1 (kubeadm's --node-name, by default the host name in lowercase)"
        )
    return text


def _image(text: str) -> str:
    if not _IMAGE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an image reference; e.g. {DEFAULT_IMAGE} or "
            "registry.example.test/kube-vrrp/vrrpd@sha256:..."
        )
    return text


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`vrrpd control-plane`, as a subcommand of `vrrpd`."""
    parser = subparsers.add_parser(
        "control-plane",
        help="write the static pod and VirtualIP file of a control-plane VIP (kubeadm HA)",
        description=(
            "Write the kubelet static pod and the VirtualIP file that hold a VIP in front of "
            "the kube-apiservers of the control-plane nodes, before the cluster exists. Run "
            "it as root on every control-plane node (the same command line on each), then "
            "`kubeadm init --control-plane-endpoint VIP:6443` on the first and `kubeadm join "
            "VIP:6443 --control-plane ...` on the others. docs/control-plane.md"
        ),
    )
    need = parser.add_argument_group("required")
    need.add_argument(
        "--vip",
        required=True,
        type=_vip,
        metavar="ADDR/PREFIX",
        help="the control-plane endpoint's address, e.g. 192.168.10.100/24",
    )
    need.add_argument(
        "--interface",
        "-i",
        required=True,
        metavar="IF",
        help="the interface of the nodes' subnet, where the VIP goes",
    )
    vrrp = parser.add_argument_group("VRRP")
    vrrp.add_argument(
        "--peer",
        action="append",
        type=_addresses,
        default=[],
        metavar="ADDR[,ADDR...]",
        help="every control-plane node's address on IF (repeat, or comma-separate; this "
        "node's own may be listed too): VRRP then goes unicast to them. Without --peer: "
        "multicast (224.0.0.18 / ff02::12)",
    )
    vrrp.add_argument(
        "--address",
        type=_address,
        metavar="ADDR",
        help="this node's address on IF (unicast; default: the source address of the route "
        "to the peers)",
    )
    vrrp.add_argument(
        "--vrid",
        type=_int_between(1, 255, " (the same on every node, unique on the link)"),
        metavar="N",
        help="virtual router id (default: the VIP's last byte)",
    )
    vrrp.add_argument(
        "--priority",
        type=_int_between(
            2,
            254,
            "; a node whose API server fails drops to 1, so every healthy node must be above it",
        ),
        default=DEFAULT_PRIORITY,
        metavar="N",
        help=f"this node's priority (default {DEFAULT_PRIORITY}; keep it the same on every "
        "node so the VIP never moves back after a failure)",
    )
    vrrp.add_argument(
        "--advert-interval",
        type=_advert_interval,
        default=DEFAULT_ADVERT_CS,
        metavar="DURATION",
        help=f"VRRPv3 advert interval (default {format_duration_cs(DEFAULT_ADVERT_CS)}): the "
        "VIP moves about 3 intervals after its holder goes silent",
    )
    node = parser.add_argument_group("this node")
    node.add_argument(
        "--node-name",
        type=_node_name,
        metavar="NAME",
        help="the name the daemon runs as (default: the host name in lowercase, as kubeadm "
        "names the node)",
    )
    node.add_argument(
        "--apiserver-bind-port",
        type=_int_between(1, 65535),
        default=DEFAULT_APISERVER_PORT,
        metavar="PORT",
        help="the local kube-apiserver's port, probed on 127.0.0.1 and served on the VIP "
        f"(default {DEFAULT_APISERVER_PORT})",
    )
    node.add_argument(
        "--http-port",
        type=_int_between(1, 65535),
        default=DEFAULT_HTTP_PORT,
        metavar="PORT",
        help=f"the daemon's /healthz /readyz /metrics /status on 127.0.0.1 (default "
        f"{DEFAULT_HTTP_PORT})",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--image",
        type=_image,
        default=DEFAULT_IMAGE,
        help=f"the vrrpd image (default {DEFAULT_IMAGE}, the chart's)",
    )
    out.add_argument(
        "--manifests-dir",
        default=DEFAULT_MANIFESTS_DIR,
        metavar="DIR",
        help=f"the kubelet's static pod folder (default {DEFAULT_MANIFESTS_DIR})",
    )
    out.add_argument(
        "--config-dir",
        default=DEFAULT_CONFIG_DIR,
        metavar="DIR",
        help="where the VirtualIP file goes; mounted into the pod at the same path (default "
        f"{DEFAULT_CONFIG_DIR})",
    )
    out.add_argument(
        "--dry-run", action="store_true", help="print both files instead of writing them"
    )
    parser.set_defaults(func=cli)


# --- resolving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    vip: ControlPlaneVip
    config_file: Path
    manifest_file: Path
    config_text: str
    manifest_text: str
    dropped_own: tuple[IPAddress, ...] = ()  # --peer entries that are this node's addresses


def plan(args: argparse.Namespace, host: Host) -> Plan:
    """The files to write, from the parsed flags; UsageError when a flag cannot work."""
    vip: IPInterface = args.vip
    interfaces = host.interfaces()
    if args.interface not in interfaces:
        raise UsageError(
            f"--interface {args.interface}: no such interface on this host; it has "
            f"{', '.join(interfaces) or 'none'}"
        )
    node = args.node_name or _node_name_default()
    peers = list(dict.fromkeys(a for group in args.peer for a in group))  # once each, in order
    for flag, addresses in (
        ("--peer", peers),
        ("--address", [args.address] if args.address else []),
    ):
        for address in addresses:
            if address.version != vip.version:
                raise UsageError(
                    f"{flag} {address}: IPv{address.version}, but --vip {vip} is "
                    f"IPv{vip.version}; give the nodes' IPv{vip.version} addresses"
                )
            if address == vip.ip:
                raise UsageError(
                    f"{flag} {address} is the VIP itself; give the nodes' own addresses"
                )
    own, others, dropped = _split_peers(args, host, peers)
    vrid = args.vrid if args.vrid is not None else vip.ip.packed[-1]  # 0: none to take
    config_dir = os.path.abspath(args.config_dir)
    cp = ControlPlaneVip(
        vip=vip,
        interface=args.interface,
        node=node,
        vrid=vrid or 1,  # so that the VIP's own problems are named first
        address=own,
        peers=tuple(others),
        priority=args.priority,
        advert_interval_cs=args.advert_interval,
        apiserver_port=args.apiserver_bind_port,
        image=args.image,
        config_dir=config_dir,
        http_port=args.http_port,
    )
    config_text = virtualip_yaml(cp)
    _check(config_text, cp)
    if not vrid:
        raise UsageError(
            f"--vrid: the default is the VIP's last byte, which is 0 for {vip.ip}; give "
            "--vrid N (1..255, the same on every node, unique on the link)"
        )
    return Plan(
        vip=cp,
        config_file=Path(cp.config_path),
        manifest_file=Path(os.path.abspath(args.manifests_dir)) / MANIFEST_FILE,
        config_text=config_text,
        manifest_text=static_pod_yaml(cp),
        dropped_own=tuple(dropped),
    )


def _node_name_default() -> str:
    name = socket.gethostname().lower()
    try:
        return _node_name(name)
    except argparse.ArgumentTypeError:
        raise UsageError(
            f"--node-name: this host's name {name!r} is not a Kubernetes node name; give "
            "--node-name NAME (lowercase letters, digits, '-' and '.'), the one kubeadm uses"
        ) from None


def _split_peers(
    args: argparse.Namespace, host: Host, peers: list[IPAddress]
) -> tuple[IPAddress | None, list[IPAddress], list[IPAddress]]:
    """(this node's address, the other nodes, --peer entries that were this node's own)."""
    if not peers:
        if args.address is not None:
            raise UsageError(
                f"--address {args.address}: only used with --peer (unicast); without --peer "
                "VRRP goes multicast from the interface's own address. Add the other "
                "control-plane nodes with --peer, or drop --address"
            )
        return None, [], []
    if args.address is not None:
        others = [p for p in peers if p != args.address]
        dropped = [p for p in peers if p == args.address]
    else:
        sources: dict[IPAddress, IPAddress] = {}
        for peer in peers:
            try:
                sources[peer] = host.route_source(args.interface, peer)
            except OSError as exc:
                raise UsageError(
                    f"--peer {peer}: no route to it through --interface {args.interface} "
                    f"({exc.strerror or exc}); check the address and the interface, or give "
                    "this node's own address with --address"
                ) from None
        dropped = [p for p in peers if sources[p] == p]  # routed to itself: ours
        others = [p for p in peers if sources[p] != p]
    if not others:
        raise UsageError(
            f"--peer {','.join(map(str, peers))}: only this node's own address; list the "
            "other control-plane nodes too (unicast needs them), or drop --peer for multicast"
        )
    if args.address is not None:
        return args.address, others, dropped
    own = {sources[p] for p in others}
    if len(own) > 1:
        listed = ", ".join(f"{sources[p]} towards {p}" for p in others)
        raise UsageError(
            f"--peer: this node reaches its peers from different addresses ({listed}); "
            "give the one on --interface with --address"
        )
    return own.pop(), others, dropped


def _check(text: str, cp: ControlPlaneVip) -> None:
    """The file as the daemon will read it: every problem, named by the flag behind it."""
    try:
        instances_for_node(load_manifests(text, source=cp.config_path), cp.node)
    except ConfigError as exc:
        lines = []
        for line in exc.problems:
            problem = line.split("): ", 1)[-1]  # drop "<source>: document 1 (<name>)"
            field, _, message = problem.partition(": ")
            flag = next(
                (f for prefix, f in _FLAG_OF_FIELD.items() if field.startswith(prefix)), None
            )
            lines.append(f"{flag}: {message}" if flag and message else problem)
        raise UsageError("\n".join(lines)) from None


# --- writing -----------------------------------------------------------------------------------


def write_atomically(path: Path, text: str, mode: int) -> bool:
    """Replace `path` with `text` in one rename (the kubelet ignores dot files, and the
    daemon sees a whole new file); returns False when the content was already that."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def endpoint(cp: ControlPlaneVip) -> str:
    host = f"[{cp.vip.ip}]" if cp.vip.version == 6 else str(cp.vip.ip)
    return f"{host}:{cp.apiserver_port}"


def summary(p: Plan) -> str:
    cp = p.vip
    mode = (
        f"unicast from {cp.address} to {', '.join(map(str, cp.peers))}"
        if cp.unicast
        else "multicast"
    )
    lines = [
        f"VIP {cp.vip} on {cp.interface}, VRID {cp.vrid}, node {cp.node}, {mode}, "
        f"priority {cp.priority} ({FAILING_PRIORITY} while https://127.0.0.1:"
        f"{cp.apiserver_port}/readyz fails)",
    ]
    if p.dropped_own:
        lines.append(f"--peer {', '.join(map(str, p.dropped_own))}: this node (its own entry)")
    lines += [
        "next, on the first control-plane node:",
        f"  kubeadm init --control-plane-endpoint {endpoint(cp)} --upload-certs",
        "then on each other one (after this command there too), the join command kubeadm "
        "init printed:",
        f"  kubeadm join {endpoint(cp)} --control-plane --token ... "
        "--discovery-token-ca-cert-hash ... --certificate-key ...",
    ]
    return "\n".join(lines)


def cli(args: argparse.Namespace, host: Host | None = None) -> int:
    try:
        p = plan(args, host or Host())
    except UsageError as exc:
        for line in str(exc).splitlines():
            print(f"{PROG}: {line}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        print(f"# --- {p.config_file}\n{p.config_text}---\n# --- {p.manifest_file}\n", end="")
        print(p.manifest_text, end="")
        print(summary(p), file=sys.stderr)
        return 0
    try:
        # No secret in either; 0600 for the manifest as kubeadm writes its own.
        wrote_config = write_atomically(p.config_file, p.config_text, 0o644)
        wrote_manifest = write_atomically(p.manifest_file, p.manifest_text, 0o600)
    except OSError as exc:
        print(
            f"{PROG}: cannot write {exc.filename}: {exc.strerror or exc} (run it as root on "
            "the control-plane node, or point --config-dir / --manifests-dir elsewhere)",
            file=sys.stderr,
        )
        return EXIT_WRITE
    for path, wrote in ((p.config_file, wrote_config), (p.manifest_file, wrote_manifest)):
        print(f"{'wrote' if wrote else 'unchanged'} {path}")
    print(summary(p))
    return 0
