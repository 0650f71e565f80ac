"""Which instances a switchover request acts on, and its JSON form (vrrpd/switchover.py)."""

from __future__ import annotations

import pytest

from vrrpd.switchover import Request, SwitchoverError, UnknownInstance, select

GROUPS = {"a/web/ipv4": "edge", "a/web/ipv6": "edge", "a/db/ipv4": None, "a/dns/ipv4": None}


def test_no_name_means_every_instance() -> None:
    assert select([], GROUPS) == sorted(GROUPS)


def test_a_named_member_brings_its_sync_group() -> None:
    assert select(["a/web/ipv6"], GROUPS) == ["a/web/ipv4", "a/web/ipv6"]
    assert select(["a/db/ipv4"], GROUPS) == ["a/db/ipv4"]


def test_an_unknown_name_is_refused_with_what_runs_here() -> None:
    with pytest.raises(UnknownInstance, match="no instance 'web' on this node; it runs a/db"):
        select(["web"], GROUPS)
    with pytest.raises(UnknownInstance, match="runs no VRRP instance"):
        select([], {})


def test_the_request_round_trips() -> None:
    request = Request(("a/web/ipv4",), release=True)
    assert Request.from_json(request.to_json()) == request
    assert Request.from_json({}) == Request()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"instance": "x"}, "unknown field.*instance: use instances, release"),
        ({"instances": "x"}, "instances: 'x': use a list"),
        ({"release": "yes"}, "release: 'yes': use true or false"),
    ],
)
def test_a_malformed_request_names_the_field(data: object, message: str) -> None:
    with pytest.raises(SwitchoverError, match=message):
        Request.from_json(data)
