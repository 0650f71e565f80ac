"""What `vrrpd run` does first, before anything heavy is imported: claim the network
namespace and remove the VIPs (and virtual MAC interfaces) a killed predecessor left behind.

A VIP that a dead vrrpd left on an interface is answered for by two nodes until it goes,
so this runs as soon as the interpreter is up (a few milliseconds of our own), not after
pydantic, the model, asyncio and pyroute2 are loaded and the file is validated. That is
safe whatever the configuration file says: every address carrying our mark (IFA_PROTO
0x56) was put there by a vrrpd, and the namespace lock proves that vrrpd is gone, so no
configuration, valid or not, could want those addresses kept. An invalid file still
changes nothing else on the host.

The lock is an abstract unix socket. Abstract names live in the network namespace, so
two daemons of one namespace (a pod replaced while the old one still hands over) see
each other, daemons of different namespaces do not, and the kernel releases the name
when the holder dies, kill -9 included: no stale lock file.

Why the standard library and not pyroute2, which does all other netlink of the daemon:
importing pyroute2 alone takes ~0.25 s here (its package imports every netlink family
it supports, and asyncio), which is the whole delay this module exists to remove. One
address dump and a delete per leftover are a few structs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator

VRRPD_ADDR_PROTO = 0x56  # our mark in IFA_PROTO ('V'); see vrrpd.net.rtnl
VMAC_ALIAS = "kube-vrrp vmac"  # our mark in IFLA_IFALIAS on a macvlan; see vrrpd.net.vmac
NO_ACCEPT_TABLE = "kube_vrrp_no_accept"  # vrrpd.noaccept.TABLE, not imported: see above
LOCK_NAME = b"\0kube-vrrp/vrrpd"

# linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h
_NETLINK_ROUTE = 0
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_DUMP, _NLM_F_DUMP_INTR = 0x1, 0x4, 0x300, 0x10
_RTM_DELADDR, _RTM_GETADDR = 21, 22
_RTM_DELLINK, _RTM_GETLINK = 17, 18
_IFLA_IFNAME, _IFLA_IFALIAS = 3, 20
_IFA_ADDRESS, _IFA_LOCAL, _IFA_PROTO = 1, 2, 11
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_ATTR = struct.Struct("=HH")  # rtattr: len, type


class NamespaceLock:
    """At most one vrrpd per network namespace; `acquire` never blocks."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    @property
    def held(self) -> bool:
        return self._sock is not None

    def acquire(self) -> bool:
        """True if we hold the lock now (or did already); False if a live vrrpd does."""
        if self._sock is not None:
            return True
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(LOCK_NAME)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        sock.listen()  # only so that a waiting daemon can ask who holds it (holder())
        self._sock = sock
        return True

    @staticmethod
    def holder() -> int | None:
        """The pid of the process holding the lock (of this namespace), if any."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.connect(LOCK_NAME)
            except OSError:
                return None
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", creds)[0])

    def release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _attrs(data: bytes, offset: int) -> dict[int, bytes]:
    found = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind] = data[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


def _attr(kind: int, value: bytes) -> bytes:
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def _exchange(sock: socket.socket, seq: int, kind: int, flags: int, body: bytes) -> list[bytes]:
    """One request; the payloads of its replies. OSError with the kernel's errno."""
    header = _HEADER.pack(_HEADER.size + len(body), kind, _NLM_F_REQUEST | flags, seq, 0)
    sock.send(header + body)
    replies: list[bytes] = []
    interrupted = False
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, msg_type, msg_flags, msg_seq, _pid = _HEADER.unpack_from(data, offset)
            payload = data[offset + _HEADER.size : offset + length]
            offset += (length + 3) & ~3
            if msg_seq != seq:
                continue
            interrupted = interrupted or bool(msg_flags & _NLM_F_DUMP_INTR)
            if msg_type in (_NLMSG_ERROR, _NLMSG_DONE):
                code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                if code > 0:
                    raise OSError(code, os.strerror(code))
                if interrupted:  # the table changed during the dump: not all of it
                    raise InterruptedError(errno.EINTR, "address dump interrupted")
                return replies
            replies.append(payload)


@contextlib.contextmanager
def _netlink() -> Iterator[socket.socket]:
    """A NETLINK_ROUTE socket of this namespace, closed after use."""
    kind = socket.SOCK_RAW | socket.SOCK_CLOEXEC
    with socket.socket(socket.AF_NETLINK, kind, _NETLINK_ROUTE) as sock:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        yield sock


def _dump(sock: socket.socket, msg_type: int, body: bytes, table: str) -> list[bytes]:
    """A whole dump of one table, asked again (up to five times) while the kernel says it
    changed meanwhile; the sequence numbers 1..5 leave 100 and up to the caller."""
    for attempt in range(5):
        try:
            return _exchange(sock, 1 + attempt, msg_type, _NLM_F_DUMP, body)
        except InterruptedError:
            continue
    raise OSError(errno.EAGAIN, f"the {table} table kept changing during the dump")


def remove_marked(mark: int = VRRPD_ADDR_PROTO) -> list[tuple[str, str]]:
    """Delete every address of this namespace that carries `mark` in IFA_PROTO.

    Returns (interface, address/prefix) for each one deleted. A secondary address can go
    with its primary before its own turn (promote_secondaries off); it still counts.
    Kernels before 5.18 keep no IFA_PROTO, so there this finds nothing (see
    docs/architecture.md: the configured VIPs are removed later instead).
    """
    with _netlink() as sock:
        dump = _dump(sock, _RTM_GETADDR, _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), "address")
        removed = []
        for seq, payload in enumerate(dump, 100):
            family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(payload)
            attrs = _attrs(payload, _IFADDRMSG.size)
            if attrs.get(_IFA_PROTO, b"\0")[0] != mark:
                continue
            local = attrs.get(_IFA_LOCAL) or attrs[_IFA_ADDRESS]
            body = _IFADDRMSG.pack(family, prefixlen, 0, 0, index)
            if family == socket.AF_INET:
                body += _attr(_IFA_LOCAL, local)
            body += _attr(_IFA_ADDRESS, local)
            try:
                _exchange(sock, seq, _RTM_DELADDR, _NLM_F_ACK, body)
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:  # gone with its primary: fine
                    raise
            try:
                ifname = socket.if_indextoname(index)
            except OSError:
                ifname = str(index)
            address = socket.inet_ntop(family, local)
            removed.append((ifname, f"{address}/{prefixlen}"))
        return removed


def remove_vmacs(alias: str = VMAC_ALIAS) -> list[str]:
    """Delete every interface of this namespace whose alias is `alias`: the virtual MAC
    interfaces a vrrpd made (with the VIPs on them). Returns their names."""
    with _netlink() as sock:
        dump = _dump(sock, _RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), "link")
        removed = []
        for seq, payload in enumerate(dump, 100):
            _family, _type, index, _flags, _change = _IFINFOMSG.unpack_from(payload)
            attrs = _attrs(payload, _IFINFOMSG.size)
            if attrs.get(_IFLA_IFALIAS, b"").rstrip(b"\0") != alias.encode():
                continue
            try:
                _exchange(sock, seq, _RTM_DELLINK, _NLM_F_ACK,
                          _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))  # fmt: skip
            except OSError as exc:
                if exc.errno != errno.ENODEV:
                    raise
            removed.append(attrs.get(_IFLA_IFNAME, b"").rstrip(b"\0").decode())
        return removed


def remove_no_accept_table(table: str = NO_ACCEPT_TABLE) -> bool:
    """Delete the accept: false table a dead vrrpd left (vrrpd.noaccept); True if there was
    one. After the VIPs: a process of its own, a few milliseconds. Without nft, no vrrpd
    could have made it."""
    nft = shutil.which("nft")
    if nft is None:
        return False
    done = subprocess.run(
        [nft, "delete", "table", "inet", table], capture_output=True, timeout=10, check=False
    )
    if done.returncode == 0:
        return True
    why = done.stderr.decode(errors="replace").strip()
    if "No such file or directory" in why:  # none here
        return False
    raise OSError(f"nft could not delete table inet {table}: {why}")


class Claim:
    """The namespace lock, and what was removed once it was ours."""

    def __init__(self) -> None:
        self.lock = NamespaceLock()
        self.removed: list[tuple[str, str]] = []
        self.removed_table = False
        self.error: OSError | None = None
        self.cleaned = False

    def clean(self) -> None:
        self.cleaned = True
        try:
            # The virtual MAC interfaces first: their VIPs go with them.
            self.removed += [("the links", f"virtual MAC interface {n}") for n in remove_vmacs()]
            self.removed += remove_marked()
            self.removed_table = remove_no_accept_table()
        except (OSError, subprocess.SubprocessError) as exc:  # reported once logging is up
            self.error = exc if isinstance(exc, OSError) else OSError(str(exc))


EARLY: Claim | None = None  # set by claim_early(), the first thing `vrrpd run` does


def claim_early() -> None:
    """Take the lock and, if no live vrrpd holds it, remove the marked leftovers."""
    global EARLY
    EARLY = Claim()
    if EARLY.lock.acquire():
        EARLY.clean()
