"""Link state over rtnetlink: the small synchronous rtnetlink client that this module and
addresses.py share, and `LinkMonitor`, which turns RTM_NEWLINK / RTM_DELLINK into up/down
events for the asyncio driver (it watches `fileno()` with loop.add_reader and calls `poll()`).

Why not pyroute2's IPRoute here: in pyroute2 0.9 the synchronous IPRoute drives its own
asyncio loop with run_until_complete, which raises "Cannot run the event loop while another
loop is running" when called from the daemon's loop thread; and importing pyroute2 costs
about 20 MB RSS. The handful of rtnetlink messages the daemon needs are a few structs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

# --- netlink / rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h) ---

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLMSGERR_ATTR_MSG = 1

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18

RTMGRP_LINK = 0x1

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_OPERSTATE = 16
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000

# RFC 2863 operational states as the kernel reports them in IFLA_OPERSTATE.
IF_OPER_UNKNOWN = 0
IF_OPER_UP = 6

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # len, type
_NLA_ALIGN = 4

# One datagram of a dump is at most a few pages; 256 KiB also holds link messages with
# many VFs. Reused for every receive so a drain allocates nothing per datagram.
_RECV_BUFFER = 256 * 1024
_DUMP_RETRIES = 5


class NetlinkError(OSError):
    """A netlink request failed; `errno` is the kernel's error (EEXIST, EADDRNOTAVAIL ...)."""


def _align(length: int) -> int:
    return (length + _NLA_ALIGN - 1) & ~(_NLA_ALIGN - 1)


def pack_attr(attr_type: int, value: bytes) -> bytes:
    """One rtattr (type-length-value), padded to 4 bytes."""
    length = _RTATTR.size + len(value)
    return _RTATTR.pack(length, attr_type) + value + b"\0" * (_align(length) - length)


def parse_attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, bytes]:
    """rtattrs from offset to the end; the last one of a type wins; junk ends the walk."""
    attrs: dict[int, bytes] = {}
    end = len(data)
    while offset + _RTATTR.size <= end:
        length, attr_type = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > end:
            break
        # Strip NLA_F_NESTED / NLA_F_NET_BYTEORDER so callers compare plain types.
        attrs[attr_type & 0x3FFF] = bytes(data[offset + _RTATTR.size : offset + length])
        offset += _align(length)
    return attrs


def attr_str(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def iter_messages(data: bytes | memoryview) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload) for each netlink message in one datagram."""
    offset = 0
    end = len(data)
    while offset + _NLMSGHDR.size <= end:
        length, msg_type, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            return
        yield msg_type, flags, seq, bytes(data[offset + _NLMSGHDR.size : offset + length])
        offset += _align(length)


def _error_text(code: int, flags: int, payload: bytes) -> str:
    """strerror, plus the kernel's extended-ack message when it sent one."""
    text = os.strerror(code)
    if flags & NLM_F_ACK_TLVS and flags & NLM_F_CAPPED:
        # int error, then the request's nlmsghdr only (capped), then attributes.
        message = parse_attrs(payload, 4 + _NLMSGHDR.size).get(NLMSGERR_ATTR_MSG)
        if message:
            text = f"{text} ({attr_str(message)})"
    return text


class RtnlSocket:
    """A NETLINK_ROUTE socket: request/response (blocking, with a timeout) or, with
    `groups`, a non-blocking multicast subscription read with `read()`.

    Requests are synchronous on purpose: rtnetlink answers from the kernel within the
    sendmsg call, so a request never waits on the network.
    """

    def __init__(self, groups: int = 0, *, timeout: float = 5.0, rcvbuf: int = 1 << 20) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        try:
            if groups:
                # Event bursts (a bond or bridge flapping many ports) must not overflow the
                # queue; if they still do, the reader gets ENOBUFS and resynchronises.
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            # Extended acks carry the kernel's reason as text ("prefix length ... invalid");
            # CAP_ACK keeps the echoed request out of them. Both only improve messages.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
                self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self._sock.bind((0, groups))
            if groups:
                self._sock.setblocking(False)
            else:
                self._sock.settimeout(timeout)
        except BaseException:
            self._sock.close()
            raise
        self._buffer = bytearray(_RECV_BUFFER)
        self._seq = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0

    def _recv(self) -> memoryview:
        nbytes, _anc, flags, _addr = self._sock.recvmsg_into([self._buffer])
        if flags & socket.MSG_TRUNC:
            raise NetlinkError(errno.EMSGSIZE, "netlink message larger than the receive buffer")
        return memoryview(self._buffer)[:nbytes]

    def read(self) -> list[tuple[int, int, bytes]]:
        """Non-blocking: every pending (type, flags, payload); raises NetlinkError(ENOBUFS)
        when the kernel dropped messages (the caller must resynchronise by dumping)."""
        messages: list[tuple[int, int, bytes]] = []
        while True:
            try:
                view = self._recv()
            except (BlockingIOError, InterruptedError):
                return messages
            except NetlinkError:
                raise
            except OSError as exc:
                raise NetlinkError(exc.errno or errno.EIO, str(exc)) from exc
            for msg_type, flags, _seq, payload in iter_messages(view):
                messages.append((msg_type, flags, payload))

    def request(self, msg_type: int, body: bytes, flags: int = 0) -> list[tuple[int, bytes]]:
        """Send one request and collect (type, payload) replies until the ACK or NLMSG_DONE.

        Dumps (flags include NLM_F_DUMP) that the kernel marks interrupted because the
        table changed meanwhile are repeated.
        """
        for _attempt in range(_DUMP_RETRIES):
            replies, interrupted = self._request_once(msg_type, body, flags)
            if not interrupted:
                return replies
        return replies

    def _request_once(
        self, msg_type: int, body: bytes, flags: int
    ) -> tuple[list[tuple[int, bytes]], bool]:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        header = _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0
        )
        try:
            self._sock.sendto(header + body, (0, 0))
        except OSError as exc:
            raise NetlinkError(exc.errno or errno.EIO, f"netlink send: {exc.strerror}") from exc
        replies: list[tuple[int, bytes]] = []
        interrupted = False
        while True:
            try:
                view = self._recv()
            except TimeoutError as exc:
                raise NetlinkError(errno.ETIMEDOUT, "no netlink answer") from exc
            except NetlinkError:
                raise
            except OSError as exc:
                raise NetlinkError(
                    exc.errno or errno.EIO, f"netlink receive: {exc.strerror}"
                ) from exc
            for reply_type, reply_flags, reply_seq, payload in iter_messages(view):
                if reply_seq != seq:
                    continue  # the tail of an earlier request that timed out
                if reply_flags & NLM_F_DUMP_INTR:
                    interrupted = True
                if reply_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if code:
                        raise NetlinkError(code, _error_text(code, reply_flags, payload))
                    return replies, interrupted
                if reply_type == NLMSG_DONE:
                    code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if code > 0:
                        raise NetlinkError(code, os.strerror(code))
                    return replies, interrupted
                if reply_type == NLMSG_OVERRUN:
                    raise NetlinkError(errno.EOVERFLOW, "netlink overrun")
                replies.append((reply_type, payload))


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """The parts of an RTM_NEWLINK message the daemon uses."""

    family: int  # AF_UNSPEC for the link itself; AF_BRIDGE for bridge-port messages
    index: int
    ifname: str
    flags: int
    operstate: int
    mac: bytes

    @property
    def up(self) -> bool:
        """Usable for VRRP: administratively up, carrier present, operationally up.

        IFF_LOWER_UP is the carrier; operstate catches what carrier alone does not (a VLAN
        whose lower device is down is LOWERLAYERDOWN, 802.1X-blocked ports are DORMANT).
        UNKNOWN is what drivers without operstate support (and lo) report: usable.
        """
        return (
            bool(self.flags & IFF_UP)
            and bool(self.flags & IFF_LOWER_UP)
            and self.operstate in (IF_OPER_UP, IF_OPER_UNKNOWN)
        )


def parse_link(payload: bytes) -> LinkInfo | None:
    """An RTM_NEWLINK / RTM_DELLINK payload (ifinfomsg + attributes); None if malformed."""
    if len(payload) < _IFINFOMSG.size:
        return None
    family, _type, index, flags, _change = _IFINFOMSG.unpack_from(payload)
    attrs = parse_attrs(payload, _IFINFOMSG.size)
    name = attrs.get(IFLA_IFNAME)
    if name is None:
        return None
    operstate = attrs.get(IFLA_OPERSTATE, b"\0")[0]
    mac = attrs.get(IFLA_ADDRESS, b"")
    return LinkInfo(family, index, attr_str(name), flags, operstate, mac)


def _link_request(index: int = 0, ifname: str | None = None) -> bytes:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    body += pack_attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
    if ifname is not None:
        body += pack_attr(IFLA_IFNAME, ifname.encode() + b"\0")
    return body


def dump_links(rtnl: RtnlSocket) -> list[LinkInfo]:
    links = []
    for msg_type, payload in rtnl.request(RTM_GETLINK, _link_request(), NLM_F_DUMP):
        link = parse_link(payload) if msg_type == RTM_NEWLINK else None
        if link is not None and link.family == socket.AF_UNSPEC:
            links.append(link)
    return links


def get_link(rtnl: RtnlSocket, ifname: str) -> LinkInfo | None:
    """One link by name, None if there is no such interface."""
    if not ifname or len(ifname.encode()) >= 16:  # IFNAMSIZ: the kernel would say EINVAL
        return None
    try:
        replies = rtnl.request(RTM_GETLINK, _link_request(ifname=ifname))
    except NetlinkError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise
    for msg_type, payload in replies:
        if msg_type == RTM_NEWLINK:
            return parse_link(payload)
    return None


@dataclass(frozen=True, slots=True)
class LinkEvent:
    ifname: str
    up: bool


class LinkMonitor:
    """Up/down changes of the namespace's interfaces, from rtnetlink's link group.

    Only changes are reported: the kernel sends RTM_NEWLINK for MTU, promiscuity, MAC and
    many other changes, and the driver only cares about usable / not usable. An
    interface first seen (created after start) is reported with its state; a deleted one
    as down. The state at construction is the baseline and is not reported; ask `is_up`.
    """

    def __init__(self, *, rcvbuf: int = 1 << 20) -> None:
        # Subscribe before dumping, so no change can fall between the dump and the first
        # event; a change seen twice is suppressed by the comparison with the last state.
        # (rcvbuf: the kernel queue for events; tests make it tiny to force an overflow.)
        self._events = RtnlSocket(groups=RTMGRP_LINK, rcvbuf=rcvbuf)
        try:
            # Dumps go through a socket of their own, opened now so that it lives in the
            # same namespace as the subscription whatever thread calls poll() later.
            self._dumps = RtnlSocket()
        except BaseException:
            self._events.close()
            raise
        self._state: dict[int, tuple[str, bool]] = {}
        try:
            self._resync()
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._events.fileno()

    def close(self) -> None:
        self._events.close()
        self._dumps.close()

    def is_up(self, ifname: str) -> bool | None:
        """Last known state; None for an interface that does not exist."""
        for name, up in self._state.values():
            if name == ifname:
                return up
        return None

    def poll(self) -> list[LinkEvent]:
        """Drain pending link messages (never blocks); the changes they amount to.

        Never raises: it runs as an event-loop reader callback. If the kernel dropped
        events (ENOBUFS: we were too slow) the changes come from comparing a fresh dump
        with what we knew; if even that fails, the next event retries.
        """
        try:
            messages = self._events.read()
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                log.warning("link events: %s", exc)
                return []
            log.info("link events overflowed; re-reading all links")
            try:
                return self._resync()
            except OSError as resync_exc:
                log.warning("link events: cannot re-read links: %s", resync_exc)
                return []
        events: list[LinkEvent] = []
        for msg_type, _flags, payload in messages:
            if msg_type not in (RTM_NEWLINK, RTM_DELLINK):
                continue
            link = parse_link(payload)
            # The bridge driver sends AF_BRIDGE RTM_NEWLINK / RTM_DELLINK about its ports
            # on the same group; an RTM_DELLINK of those means "left the bridge", not
            # "deleted". Only AF_UNSPEC messages describe the link itself.
            if link is None or link.family != socket.AF_UNSPEC:
                continue
            if msg_type == RTM_DELLINK:
                events.extend(self._forget(link.index))
            else:
                events.extend(self._update(link.index, link.ifname, link.up))
        return events

    def _update(self, index: int, ifname: str, up: bool) -> list[LinkEvent]:
        previous = self._state.get(index)
        self._state[index] = (ifname, up)
        if previous is None:
            return [LinkEvent(ifname, up)]
        old_name, old_up = previous
        if old_name != ifname:  # renamed: the old name is gone, the new one appears
            gone = [LinkEvent(old_name, False)] if old_up else []
            return [*gone, LinkEvent(ifname, up)]
        return [] if old_up == up else [LinkEvent(ifname, up)]

    def _forget(self, index: int) -> list[LinkEvent]:
        previous = self._state.pop(index, None)
        if previous is None or not previous[1]:
            return []
        return [LinkEvent(previous[0], False)]

    def _resync(self) -> list[LinkEvent]:
        baseline = not self._state
        links = dump_links(self._dumps)
        events: list[LinkEvent] = []
        seen = {link.index for link in links}
        for index in list(self._state):
            if index not in seen:
                events.extend(self._forget(index))
        for link in links:
            events.extend(self._update(link.index, link.ifname, link.up))
        return [] if baseline else events
