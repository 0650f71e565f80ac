"""The network-namespace lab: N nodes and a client on one bridged L2 segment, and their processes.

Layout of `Lab(nodes=2, prefix="kv")`:

    kv-br      bridge namespace: br0 with ports veth-n1 .. veth-nN, veth-c
    kv-n1..N   node i: eth0 = 192.168.77.(10+i)/24, fd00:77::(10+i)/64, MAC 02:77:00:00:00:0i
    kv-client  client: eth0 = 192.168.77.200/24, fd00:77::200/64, MAC 02:77:00:00:00:c8

Every link is created from inside the lab's own namespaces (`ip -n kv-br link add ... peer
... netns kv-n1`), so nothing is ever created in, or moved through, the host's namespace.
The bridge lives in a namespace of its own, away from the host's br_netfilter settings.

Everything created is recorded as it is created; `close()` (also run by `with`, at
interpreter exit and after a failed construction) kills the processes started in the lab,
then any other process still inside the lab's namespaces, then deletes the namespaces,
which takes their veths and the bridge with them.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

NETNS_DIR = Path("/run/netns")
IP = "ip"
IFNAME = "eth0"
BRIDGE = "br0"
MAX_NODES = 99  # node addresses .11 .. .109 stay clear of the client's .200
CLIENT_HOST = 200
# Written on every lab namespace's `lo` as its alias; `cleanup_stale` deletes only
# namespaces that carry it, so it never removes a namespace someone else made.
MARKER = "kube-vrrp-lab"

_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
_unique_seq = itertools.count(1)

Side = Literal["peer", "node"]


class LabError(RuntimeError):
    """The lab could not be built or a lab command failed; the message says which."""


@dataclass(frozen=True, slots=True)
class Node:
    """One host of the lab: a namespace with one interface on the shared segment."""

    name: str  # "n1".. or "client"
    netns: str  # the namespace's name, for `ip netns exec`
    index: int  # 1..N for nodes, 0 for the client
    address4: str
    address6: str
    prefixlen4: int
    prefixlen6: int
    mac: str
    ifname: str = IFNAME
    bridge_port: str = ""  # the peer veth's name inside the bridge namespace

    @property
    def cidr4(self) -> str:
        return f"{self.address4}/{self.prefixlen4}"

    @property
    def cidr6(self) -> str:
        return f"{self.address6}/{self.prefixlen6}"


def unique_prefix(base: str = "kv") -> str:
    """A prefix no other lab of this or another process uses: `{base}-{pid}-{seq}`."""
    return f"{base}-{os.getpid()}-{next(_unique_seq)}"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true (returns True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _host_number(n: int) -> int:
    # fd00:77::11 for 192.168.77.11: the IPv6 host part reuses the IPv4 octet's digits,
    # so a person reading a capture matches the two at a glance.
    return int(str(n), 16)


def _make_host(
    prefix: str,
    name: str,
    index: int,
    host: int,
    net4: ipaddress.IPv4Network,
    net6: ipaddress.IPv6Network,
) -> Node:
    return Node(
        name=name,
        netns=f"{prefix}-{name}",
        index=index,
        address4=str(net4.network_address + host),
        address6=str(net6.network_address + _host_number(host)),
        prefixlen4=net4.prefixlen,
        prefixlen6=net6.prefixlen,
        mac=f"02:77:00:00:00:{host if index == 0 else index:02x}",
        # Inside the bridge namespace, so short fixed names never clash with anything.
        bridge_port="veth-c" if index == 0 else f"veth-n{index}",
    )


def _ip(*args: str, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(
        [IP, *args], input=input, capture_output=True, text=True, timeout=30, check=False
    )
    if check and proc.returncode != 0:
        cmd = " ".join([IP, *args])
        raise LabError(f"`{cmd}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _netns_inode(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(NETNS_DIR / name)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def netns_pids(name: str) -> list[int]:
    """PIDs of the processes whose network namespace is `name` (like `ip netns pids`)."""
    ident = _netns_inode(name)
    if ident is None:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue  # exited meanwhile, or a kernel thread
        if (st.st_dev, st.st_ino) == ident:
            pids.append(int(entry))
    return sorted(pids)


def pid_alive(pid: int) -> bool:
    """True if `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The state follows the parenthesised command name, which may hold spaces.
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _kill_netns_processes(names: Sequence[str]) -> None:
    me = os.getpid()
    for _ in range(50):
        pids = [p for name in names for p in netns_pids(name) if p != me]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _delete_netns(names: Sequence[str]) -> list[str]:
    """Delete the namespaces; returns those still present afterwards."""
    _kill_netns_processes(names)
    for name in names:
        if (NETNS_DIR / name).exists():
            _ip("netns", "delete", name, check=False)
    return [n for n in names if (NETNS_DIR / n).exists()]


class Lab:
    """N nodes and a client on one bridged segment, each in its own network namespace.

    Use as a context manager, or call `close()` (idempotent; also registered with atexit).
    """

    def __init__(
        self,
        nodes: int = 2,
        *,
        prefix: str = "kv",
        unique: bool = False,
        subnet4: str = "192.168.77.0/24",
        subnet6: str = "fd00:77::/64",
        workdir: str | os.PathLike[str] | None = None,
        kill_grace: float = 2.0,
    ) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes={nodes}: a lab has 1..{MAX_NODES} nodes")
        if unique:
            prefix = unique_prefix(prefix)
        if not _PREFIX_RE.match(prefix):
            raise ValueError(
                f"prefix={prefix!r}: use letters, digits, '_', '.', '-' (at most 41 characters)"
            )
        net4 = ipaddress.IPv4Network(subnet4)
        net6 = ipaddress.IPv6Network(subnet6)
        self.prefix = prefix
        self.kill_grace = kill_grace
        self.bridge_netns = f"{prefix}-br"
        self.nodes: list[Node] = [
            _make_host(prefix, f"n{i}", i, 10 + i, net4, net6) for i in range(1, nodes + 1)
        ]
        self.client = _make_host(prefix, "client", 0, CLIENT_HOST, net4, net6)
        self._processes: list[subprocess.Popen[Any]] = []
        self._created: list[str] = []  # namespaces, in creation order
        self._closed = False
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-") if workdir is None else workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- construction -------------------------------------------------------------

    @property
    def namespaces(self) -> list[str]:
        """All namespace names of this lab: bridge, nodes, client."""
        return [self.bridge_netns, *(n.netns for n in self.nodes), self.client.netns]

    def _build(self) -> None:
        taken = [n for n in self.namespaces if (NETNS_DIR / n).exists()]
        if taken:
            raise LabError(
                f"network namespace(s) {', '.join(taken)} already exist; not touching them. "
                f"If they are leftovers of an earlier lab run, "
                f"Lab.cleanup_stale({self.prefix!r}) removes them; "
                "or pass unique=True for a prefix of this process's own."
            )
        marker = f"{MARKER} pid={os.getpid()} prefix={self.prefix}"
        for name in self.namespaces:
            _ip("netns", "add", name)
            self._created.append(name)
            # Mark first: a namespace without the marker is never cleaned up as ours.
            _ip("-n", name, "link", "set", "lo", "alias", marker)
        # Bridge ports need no addresses; without IPv6 they send no MLD/RS noise into
        # captures.
        bridge_sysctls = [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]
        # br_netfilter is per namespace and starts at 1 here too: bridged frames would
        # traverse this namespace's (empty) iptables. Absent without br_netfilter, hence
        # optional.
        bridge_nf = [
            f"net.bridge.bridge-nf-call-{t}=0" for t in ("iptables", "ip6tables", "arptables")
        ]
        self._sysctl(self.bridge_netns, bridge_sysctls, optional=bridge_nf)
        for host in [*self.nodes, self.client]:
            # Before eth0 arrives: `default` is what the new interface copies. Without DAD
            # link-locals and nodad-less VIPs are usable at once.
            self._sysctl(
                host.netns,
                [
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            )
        # Multicast snooping off: VRRP (224.0.0.18, ff02::12) and NDP must flood to every
        # port whatever MLD reports the bridge has or has not seen.
        batch = [f"link add {BRIDGE} type bridge mcast_snooping 0 forward_delay 0"]
        for host in [*self.nodes, self.client]:
            batch += [
                f"link add {host.bridge_port} type veth peer name {IFNAME} "
                f"address {host.mac} netns {host.netns}",
                f"link set {host.bridge_port} master {BRIDGE} up",
            ]
        batch.append(f"link set {BRIDGE} up")
        _ip("-n", self.bridge_netns, "-batch", "-", input="\n".join(batch) + "\n")
        for host in [*self.nodes, self.client]:
            _ip("-n", host.netns, "-batch", "-", input="\n".join(self._host_setup(host)) + "\n")
        if not wait_until(self._link_locals_ready, timeout=5.0, interval=0.01):
            raise LabError("eth0 did not get its IPv6 link-local address within 5 s")

    @staticmethod
    def _host_setup(host: Node) -> list[str]:
        return [
            "link set lo up",
            f"addr replace {host.cidr4} dev {IFNAME}",
            f"addr replace {host.cidr6} dev {IFNAME} nodad",
            f"link set {IFNAME} up",
        ]

    def _link_locals_ready(self) -> bool:
        return all(
            any(a.startswith("fe80:") for a in self._addresses(h.netns))
            for h in [*self.nodes, self.client]
        )

    def _sysctl(self, netns: str, settings: list[str], optional: Sequence[str] = ()) -> None:
        # sysctl -e ignores unknown keys; the optional ones depend on br_netfilter being loaded.
        self._exec_raw(netns, ["sysctl", "-q", "-w", *settings])
        if optional:
            self._exec_raw(netns, ["sysctl", "-q", "-e", "-w", *optional], check=False)

    # -- access ---------------------------------------------------------------------

    def node(self, i: int) -> Node:
        """Node `i`, counted from 1 as in the namespace names."""
        if not 1 <= i <= len(self.nodes):
            raise IndexError(f"node {i}: this lab has nodes 1..{len(self.nodes)}")
        return self.nodes[i - 1]

    def _ns(self, ns: str | Node | int) -> str:
        if isinstance(ns, Node):
            return ns.netns
        if isinstance(ns, int):
            return self.node(ns).netns
        return ns

    # -- processes --------------------------------------------------------------------

    def command(self, ns: str | Node | int, argv: Sequence[str]) -> list[str]:
        """The argv that runs `argv` inside namespace `ns` (a name, a Node or a node index)."""
        return [IP, "netns", "exec", self._ns(ns), *argv]

    def run(
        self, ns: str | Node | int, argv: Sequence[str], **popen_kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start `argv` inside `ns`; it is killed with its process group at `close()`.

        `ip netns exec` execs the command, so the Popen's pid is the command's own.
        The process leads a new session: its children can be signalled as one group.
        """
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        popen_kwargs["start_new_session"] = True
        return self.track(subprocess.Popen(self.command(ns, argv), **popen_kwargs))

    def track(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        """Have `close()` kill `proc` (which must lead its own session); returns it."""
        if self._closed:
            proc.kill()
            raise LabError("the lab is closed")
        self._processes.append(proc)
        return proc

    def exec(
        self,
        ns: str | Node | int,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside `ns` and wait for it; output is captured as text."""
        return self._exec_raw(self._ns(ns), argv, check=check, timeout=timeout, input=input)

    def _exec_raw(
        self,
        netns: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [IP, "netns", "exec", netns, *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise LabError(
                f"`{' '.join(argv)}` in {netns} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def ip(self, ns: str | Node | int, *args: str, check: bool = True) -> str:
        """`ip -n NS ARGS...` (no process enters the namespace); returns stdout."""
        return _ip("-n", self._ns(ns), *args, check=check)

    def ping(
        self, ns: str | Node | int, address: str, *, count: int = 1, wait: float = 1.0
    ) -> bool:
        """True if `address` answers ICMP echo from inside `ns`."""
        proc = self.exec(
            ns,
            ["ping", "-n", "-q", "-c", str(count), "-W", str(wait), address],
            check=False,
            timeout=count * wait + 5,
        )
        return proc.returncode == 0

    # -- links and addresses ---------------------------------------------------------------

    def link_down(self, i: int, side: Side = "peer") -> None:
        """Cut node `i` off the segment.

        side="peer" sets the bridge-side veth down: the node's eth0 stays administratively
        up but loses carrier (IFF_LOWER_UP off), as when a cable is pulled.
        side="node" sets the node's own eth0 down, as `ip link set eth0 down` on the host
        would; the kernel then drops eth0's IPv6 addresses, which `link_up` restores.
        """
        self._link(i, side, "down")

    def link_up(self, i: int, side: Side = "peer") -> None:
        """Undo `link_down(i, side)`. side="node" also restores the node's own addresses."""
        self._link(i, side, "up")
        if side == "node":
            node = self.node(i)
            cmds = [
                f"addr replace {node.cidr4} dev {IFNAME}",
                f"addr replace {node.cidr6} dev {IFNAME} nodad",
            ]
            _ip("-n", node.netns, "-batch", "-", input="\n".join(cmds) + "\n")

    def _link(self, i: int, side: Side, state: str) -> None:
        node = self.node(i)
        if side == "peer":
            _ip("-n", self.bridge_netns, "link", "set", node.bridge_port, state)
        elif side == "node":
            _ip("-n", node.netns, "link", "set", IFNAME, state)
        else:
            raise ValueError(f"side={side!r}: use 'peer' (carrier loss) or 'node' (admin down)")

    def _addresses(self, netns: str, *, with_prefix: bool = False) -> list[str]:
        out = _ip("-n", netns, "-j", "addr", "show", "dev", IFNAME)
        result = []
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info", []):
                addr = info["local"]
                result.append(f"{addr}/{info['prefixlen']}" if with_prefix else addr)
        return result

    def addresses(self, i: int, *, with_prefix: bool = False) -> list[str]:
        """Addresses on node `i`'s eth0 now, IPv4 and IPv6 (link-local included)."""
        return self._addresses(self.node(i).netns, with_prefix=with_prefix)

    def holders(self, vip: str) -> list[int]:
        """Indexes of the nodes whose eth0 carries `vip` ("192.168.77.100" or ".../24")."""
        want = ipaddress.ip_interface(vip).ip
        return [
            n.index
            for n in self.nodes
            if any(ipaddress.ip_address(a) == want for a in self._addresses(n.netns))
        ]

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """Kill the lab's processes and delete its namespaces. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self._stop_processes()
        finally:
            left = _delete_netns(self._created)
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        if left:
            raise LabError(f"could not delete network namespace(s) {', '.join(left)}")

    def _stop_processes(self) -> None:
        running = [p for p in self._processes if p.poll() is None]
        # SIGTERM first: keepalived and our daemon then hand over (priority 0) and remove
        # their VIPs, as they would on a real node; SIGKILL the group after the grace.
        for p in running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace
        for p in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        for p in running:
            # The group may outlive its leader (a forked child); kill it either way.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        for p in self._processes:
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Lab {self.prefix!r} nodes={len(self.nodes)} {state}>"

    # -- leftovers ---------------------------------------------------------------------------

    @staticmethod
    def cleanup_stale(prefix: str = "kv", *, force: bool = False) -> list[str]:
        """Delete leftover lab namespaces of `prefix`; returns the names deleted.

        Only namespaces named like a lab's (`{prefix}-br`, `-client`, `-nN`, or the unique
        form `{prefix}-{pid}-{seq}-...`) *and* marked as a lab's are touched, and only if
        the process that made them is gone (or `force`). Processes still inside them are
        killed first.
        """
        pattern = re.compile(rf"^{re.escape(prefix)}(?:-\d+-\d+)?-(?:br|client|n\d+)$")
        stale = []
        for name in list_netns():
            if not pattern.match(name):
                continue
            owner = _marker_owner(name)
            if owner is None:
                continue  # not made by a lab: someone else's
            if force or (owner != os.getpid() and not pid_alive(owner)):
                stale.append(name)
        left = _delete_netns(stale)
        return [n for n in stale if n not in left]


def list_netns() -> list[str]:
    """Names of the named network namespaces on this machine."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _marker_owner(netns: str) -> int | None:
    try:
        out = _ip("-n", netns, "-j", "link", "show", "lo")
        alias = json.loads(out)[0].get("ifalias", "")
    except (LabError, ValueError, IndexError):
        return None
    m = re.match(rf"^{MARKER} pid=(\d+)", alias)
    return int(m.group(1)) if m else None
