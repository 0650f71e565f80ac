"""The RFC 5798 virtual MAC (keepalived use_vmac): one macvlan per instance whose MAC is
00-00-5E-00-01-{VRID}, carrying the VIPs and sending the adverts, so that a failover moves
no MAC address at all: hosts' ARP caches stay right, only the switches relearn the port
from the new master's first advert.

Synchronous: the daemon launches an instance synchronously (its socket opens on the
macvlan at once), and a link creation is a few netlink round trips. pyroute2 cannot run a
request inside the daemon's running event loop without awaiting it, so each call runs
pyroute2's AsyncIPRoute in an event loop of its own on a worker thread, and waits for it.

Every macvlan made here carries the alias VMAC_ALIAS (IFLA_IFALIAS, `ip link` shows it):
the start-up clean-up (vrrpd.net.startup) deletes what a killed daemon left by that mark.

ARP: the VIP sits on the macvlan, but a request for it also reaches the lower interface,
which by default (arp_ignore 0) answers for any local address with its own MAC; and a
reply from the VIP leaves through the lower interface (its route), whose ARP requests
would name the VIP as sender (arp_announce 0) and teach hosts the lower interface's MAC
for it. So both get arp_ignore 1 (answer only for the receiving interface's addresses)
and arp_announce 2 (ask with the outgoing interface's own address), set over netlink as
promote_secondaries is (vrrpd.net.rtnl).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyroute2.iproute.linux import AsyncIPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_SETLINK

from vrrpd.net.rtnl import SetInetConf
from vrrpd.net.startup import VMAC_ALIAS


class VmacError(OSError):
    """A virtual MAC interface could not be made or set up; `errno` is the kernel's."""


def vmac_address(vrid: int, family: int) -> str:
    """RFC 5798 §7.3: 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6."""
    return f"00:00:5e:00:{1 if family == 4 else 2:02x}:{vrid:02x}"


def vmac_name(vrid: int, family: int) -> str:
    """keepalived's name for it: vrrp.{VRID} (vrrp6.{VRID} for IPv6)."""
    return f"vrrp{'' if family == 4 else '6'}.{vrid}"


def _strerror(exc: NetlinkError) -> str:
    return os.strerror(exc.code) if exc.code else str(exc)


class Vmacs:
    """Makes and deletes the macvlans; implements the daemon's VmacPort."""

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vmac")

    def close(self) -> None:
        self._worker.shutdown()

    def create(self, base: str, vrid: int, family: int) -> str:
        """The instance's macvlan on `base`, up, ARP answered only for its own addresses;
        its name. One left over with our mark (a killed daemon's) is replaced."""
        return self._worker.submit(asyncio.run, _create(base, vrid, family)).result()

    def delete(self, name: str) -> bool:
        """Delete the macvlan (and the VIPs on it). False if it was not there."""
        return self._worker.submit(asyncio.run, _delete_link(name)).result()


async def _index(ipr: AsyncIPRoute, ifname: str) -> int | None:
    found = await ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


async def _create(base: str, vrid: int, family: int) -> str:
    name, mac = vmac_name(vrid, family), vmac_address(vrid, family)
    async with AsyncIPRoute() as ipr:
        lower = await _index(ipr, base)
        if lower is None:
            raise VmacError(errno.ENODEV, f"no interface {base!r} for the virtual MAC {mac}")
        existing = await _index(ipr, name)
        if existing is not None:
            links = [link async for link in await ipr.get_links(existing)]
            if links[0].get("IFLA_IFALIAS") != VMAC_ALIAS:
                raise VmacError(
                    errno.EEXIST,
                    f"an interface {name} exists and is not kube-vrrp's; rename or delete it",
                )
            await _delete(ipr, name)
        try:
            await ipr.link(
                "add",
                ifname=name,
                kind="macvlan",
                link=lower,
                macvlan_mode="private",
                address=mac,
                ifalias=VMAC_ALIAS,
            )
            index = await _index(ipr, name)
            assert index is not None
            if family == 4:
                await _arp_settings(ipr, index)
                await _arp_settings(ipr, lower)
            await ipr.link("set", index=index, state="up")
        except NetlinkError as exc:
            await _delete(ipr, name)
            raise VmacError(
                exc.code, f"cannot make the virtual MAC interface {name} on {base}: "
                f"{_strerror(exc)}"
            ) from exc  # fmt: skip
    return name


async def _delete_link(name: str) -> bool:
    async with AsyncIPRoute() as ipr:
        return await _delete(ipr, name)


async def _delete(ipr: AsyncIPRoute, name: str) -> bool:
    index = await _index(ipr, name)
    if index is None:
        return False
    try:
        await ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return False
        raise VmacError(exc.code, f"cannot delete {name}: {_strerror(exc)}") from exc
    return True


async def _arp_settings(ipr: AsyncIPRoute, index: int) -> None:
    msg = SetInetConf()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = index
    conf: dict[str, Any] = {"attrs": [("ARP_ANNOUNCE", 2), ("ARP_IGNORE", 1)]}
    inet = {"attrs": [("IFLA_INET_CONF", conf)]}
    msg["attrs"] = [("IFLA_AF_SPEC", {"attrs": [("AF_INET", inet)]})]
    replies = await ipr.nlm_request(msg, msg_type=RTM_SETLINK, msg_flags=NLM_F_REQUEST | NLM_F_ACK)
    async for _ in replies:
        pass
