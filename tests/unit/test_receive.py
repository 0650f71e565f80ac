"""What a received datagram passes before a router hears it (vrrpd.vrrp.receive): no socket."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from vrrpd.limits import IPAddress
from vrrpd.vrrp import packet
from vrrpd.vrrp.fsm import RouterConfig
from vrrpd.vrrp.packet import AUTH_PASS, Advertisement, Dropped, DropReason
from vrrpd.vrrp.receive import Listener, Verdict, screen, sort_out

OURS = IPv4Address("10.0.0.1")
PEER = IPv4Address("10.0.0.2")
STRANGER = IPv4Address("10.0.0.9")
VIPS: tuple[IPAddress, ...] = (IPv4Address("10.0.0.100"),)


def router(**changes: Any) -> RouterConfig:
    base: dict[str, Any] = {
        "vrid": 7,
        "version": 3,
        "priority": 100,
        "advert_interval_cs": 100,
        "addresses": VIPS,
        "primary_address": OURS,
    }
    return RouterConfig(**(base | changes))


def advert(**changes: Any) -> Advertisement:
    base = Advertisement(version=3, vrid=7, priority=150, advert_interval_cs=100, addresses=VIPS)
    return replace(base, **changes)


def datagram(
    ad: Advertisement, listeners: list[Listener[str]], source: IPAddress = PEER, ttl: int = 255
) -> tuple[Advertisement, list[Verdict[str]]] | Dropped | None:
    payload = packet.encode(ad, source, packet.MULTICAST_V4)
    return sort_out(
        payload, source=source, destination=packet.MULTICAST_V4, ttl=ttl, listeners=listeners
    )


def test_a_router_of_the_vrid_hears_a_good_advert() -> None:
    assert datagram(advert(), [Listener("web", router())]) == (advert(), [Verdict("web", None)])


def test_our_own_advert_looped_back_is_not_even_decoded() -> None:
    listeners = [Listener("web", router())]
    assert sort_out(b"junk", source=OURS, destination=packet.MULTICAST_V4, ttl=1,
                    listeners=listeners) is None  # fmt: skip
    # The source of any router on the socket is ours, whatever its VRID.
    other = Listener("api", router(vrid=8, primary_address=PEER))
    assert datagram(advert(), [Listener("web", router()), other]) is None


def test_the_codec_drops_what_no_router_could_take() -> None:
    result = datagram(advert(), [Listener("web", router())], ttl=64)
    assert isinstance(result, Dropped) and result.reason is DropReason.TTL


def test_the_vrid_picks_the_router_and_others_are_no_error() -> None:
    listeners = [Listener("web", router()), Listener("api", router(vrid=8))]
    assert datagram(advert(vrid=8), listeners) == (advert(vrid=8), [Verdict("api", None)])
    assert datagram(advert(vrid=9), listeners) == (advert(vrid=9), [])


def test_a_unicast_router_hears_only_its_peers() -> None:
    unicast = Listener("web", router(), peers=(PEER,))
    assert screen(advert(), PEER, unicast) is None
    assert screen(advert(), STRANGER, unicast) == Dropped(
        DropReason.PEER, "advert from 10.0.0.9, not a configured peer"
    )
    assert screen(advert(), STRANGER, Listener("web", router())) is None  # multicast: anyone


@pytest.mark.parametrize(
    ("config", "received", "reason"),
    [
        ({}, {"version": 2, "advert_interval_cs": 100}, DropReason.VERSION),
        ({"version": 2, "auth_type": AUTH_PASS, "auth_data": b"secret"},
         {"version": 2, "auth_type": AUTH_PASS, "auth_data": b"guess"}, DropReason.AUTH),
        ({"version": 2}, {"version": 2, "advert_interval_cs": 200}, DropReason.INTERVAL),
        ({}, {"addresses": (IPv4Address("10.0.0.101"),)}, DropReason.ADDRESS_LIST),
    ],
)  # fmt: skip
def test_the_routers_own_checks_name_the_source(
    config: dict[str, Any], received: dict[str, Any], reason: DropReason
) -> None:
    dropped = screen(advert(**received), STRANGER, Listener("web", router(**config)))
    assert dropped is not None and dropped.reason is reason
    assert dropped.detail.startswith("from 10.0.0.9: ")
    assert "secret" not in dropped.detail and "guess" not in dropped.detail


def test_an_address_list_that_changes_while_running_is_not_verified() -> None:
    other = advert(addresses=(IPv4Address("10.0.0.101"),))
    assert screen(other, PEER, Listener("pool", router(), verify_addresses=False)) is None
    assert screen(other, PEER, Listener("pool", router(), verify_addresses=True)) is not None
