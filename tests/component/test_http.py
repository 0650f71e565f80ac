"""The HTTP face on loopback, the `vrrpd status` client and table, and the daemon's metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vrrpd.cli import StatusFetchError, fetch_status, format_status_table
from vrrpd.httpd import HttpServer
from vrrpd.metrics import CONTENT_TYPE, DaemonMetrics, state_value

Response = tuple[int, dict[str, str], bytes]


async def request(port: int, raw: bytes) -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


async def get(port: int, path: str, method: str = "GET") -> Response:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    return await request(port, head.encode())


class State:
    """What the callbacks answer; tests flip it."""

    alive = True
    ready: tuple[bool, str] = (True, "all probes pass")
    metrics = b"# HELP m h\n# TYPE m gauge\nm 1\n"
    status: dict[str, Any] = {"node": "node-a", "instances": []}
    fail: str | None = None

    def call(self, name: str) -> Any:
        if self.fail == name:
            raise RuntimeError("boom")
        return getattr(self, name)


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, State]]:
    state = State()
    server = HttpServer(
        "127.0.0.1",
        0,
        liveness=lambda: bool(state.call("alive")),
        ready=lambda: state.call("ready"),
        metrics=lambda: bytes(state.call("metrics")),
        status=lambda: state.call("status"),
        idle_timeout_s=0.3,
    )
    await server.start()
    try:
        yield server.address[1], state
    finally:
        await server.close()


async def test_healthz(served: tuple[int, State]) -> None:
    port, state = served
    status, headers, body = await get(port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert (headers["content-length"], headers["cache-control"]) == ("3", "no-store")
    state.alive = False
    status, _, body = await get(port, "/healthz")
    assert (status, body) == (503, b"not alive\n")


async def test_readyz_says_why(served: tuple[int, State]) -> None:
    port, state = served
    assert (await get(port, "/readyz"))[::2] == (200, b"all probes pass\n")
    state.ready = (False, "instance web in FAULT: probe haproxy failing")
    assert (await get(port, "/readyz"))[::2] == (
        503,
        b"instance web in FAULT: probe haproxy failing\n",
    )
    state.ready = (False, "")
    assert (await get(port, "/readyz"))[::2] == (503, b"not ready\n")


async def test_metrics_and_status(served: tuple[int, State]) -> None:
    port, state = served
    status, headers, body = await get(port, "/metrics")
    assert status == 200 and headers["content-type"] == CONTENT_TYPE
    assert body == state.metrics
    state.status = {"node": "node-a", "instances": [{"name": "web", "state": "MASTER"}]}
    status, headers, body = await get(port, "/status?verbose=1")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == state.status


async def test_head_has_headers_but_no_body(served: tuple[int, State]) -> None:
    port, _ = served
    status, headers, body = await get(port, "/healthz", "HEAD")
    assert (status, headers["content-length"], body) == (200, "3", b"")


async def test_unknown_path_and_method(served: tuple[int, State]) -> None:
    port, _ = served
    assert (await get(port, "/nope"))[0] == 404
    assert (await get(port, "/healthz/"))[0] == 404
    status, headers, _ = await get(port, "/healthz", "POST")
    assert (status, headers["allow"]) == (405, "GET,HEAD")
    assert (await get(port, "/status", "DELETE"))[0] == 405


async def test_keep_alive_serves_one_request_after_another(served: tuple[int, State]) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        answers = [await reader.readuntil(b"ok\n") for _ in range(2)]
    finally:
        writer.close()
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") for a in answers)


async def test_a_failing_callback_is_a_500_not_a_dead_server(
    served: tuple[int, State], caplog: pytest.LogCaptureFixture
) -> None:
    port, state = served
    state.fail = "status"
    with caplog.at_level(logging.ERROR, "vrrpd.http"):
        status, _, body = await get(port, "/status")
    assert (status, body) == (500, b"internal error: RuntimeError\n")
    assert "callback failed" in caplog.text
    state.status = {"not json": object()}  # default=str copes
    state.fail = None
    assert (await get(port, "/status"))[0] == 200
    assert (await get(port, "/healthz"))[0] == 200


async def test_malformed_requests_are_refused_quietly(
    served: tuple[int, State], caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = served
    with caplog.at_level(logging.INFO):
        for raw in [
            b"GET\r\n\r\n",
            b"GET /healthz SPDY/3\r\n\r\n",
            b"get /healthz HTTP/1.1\r\n\r\n",
            b"GET healthz HTTP/1.1\r\n\r\n",
            b"GET /a\x00b HTTP/1.1\r\n\r\n",
            b"\xff\xfe\xfd /x HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",  # a long line
            b"GET /healthz HTTP/1.1\r\n" + b"X: aaaaaaaaaa\r\n" * 1000 + b"\r\n",  # many
        ]:
            assert (await request(port, raw))[0] == 400, raw
    # A client's mistake is not the daemon's error: nothing at INFO or above.
    assert [r.getMessage() for r in caplog.records if r.name.startswith(("vrrpd", "aiohttp"))] == []


async def test_a_silent_client_is_dropped(served: tuple[int, State]) -> None:
    port, _ = served
    for raw in [b"", b"GET /healthz HTTP/1.1\r\n"]:  # nothing, or never the blank line
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed after idle_timeout_s
        writer.close()


async def test_client_that_leaves_early(served: tuple[int, State]) -> None:
    port, _ = served
    for raw in [b"", b"GET /hea"]:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        writer.close()
    assert (await get(port, "/healthz"))[0] == 200


async def test_garbage_never_kills_the_server(served: tuple[int, State]) -> None:
    port, _ = served
    rng = random.Random(5798)

    async def garbage() -> None:
        size = rng.choice([1, 10, 100, 1000, 10000])
        blob = rng.randbytes(size)
        if rng.random() < 0.5:
            blob += b"\r\n\r\n"
        try:
            status, _, _ = await request(port, blob)
        except (ConnectionError, ValueError, IndexError):
            return  # closed without an answer (no full head), or not HTTP at all
        assert 400 <= status < 500

    await asyncio.gather(*(garbage() for _ in range(100)))
    assert (await get(port, "/healthz"))[0] == 200


async def test_concurrent_requests(served: tuple[int, State]) -> None:
    port, _ = served
    paths = ["/healthz", "/readyz", "/metrics", "/status", "/nope"] * 10
    results = await asyncio.gather(*(get(port, p) for p in paths))
    assert [r[0] for r in results] == [200, 200, 200, 200, 404] * 10


async def test_connections_past_the_cap_are_dropped() -> None:
    async with HttpServer("127.0.0.1", 0, max_connections=2, idle_timeout_s=5) as server:
        port = server.address[1]
        holders = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.05)
        try:
            with pytest.raises((ConnectionError, IndexError)):  # reset, or closed unanswered
                await get(port, "/healthz")
        finally:
            for _, writer in holders:
                writer.close()
        await asyncio.sleep(0.05)
        assert (await get(port, "/healthz"))[0] == 200  # the slots are free again


async def test_without_metrics_or_status_callbacks() -> None:
    async with HttpServer("127.0.0.1", 0) as server:
        port = server.address[1]
        assert (await get(port, "/healthz"))[0] == 200
        assert (await get(port, "/readyz"))[::2] == (200, b"ready\n")
        assert (await get(port, "/metrics"))[0] == 404
        assert (await get(port, "/status"))[0] == 404


async def test_close_ends_open_connections() -> None:
    server = HttpServer("127.0.0.1", 0, idle_timeout_s=30)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.address[1])
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    await asyncio.sleep(0.05)
    await asyncio.wait_for(server.close(), 2)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


# --- `vrrpd status`: the client and the table -------------------------------------------------


async def test_fetch_status(served: tuple[int, State]) -> None:
    port, state = served
    state.status = {"node": "node-a", "instances": [{"name": "web"}]}
    assert await fetch_status("127.0.0.1", port) == state.status


async def test_fetch_status_wraps_a_bare_list() -> None:
    async with HttpServer("127.0.0.1", 0, status=lambda: [{"name": "web"}]) as server:  # type: ignore[arg-type, return-value]
        assert await fetch_status(*server.address) == {"instances": [{"name": "web"}]}


async def test_fetch_status_errors_say_why(served: tuple[int, State]) -> None:
    port, state = served
    state.fail = "status"
    with pytest.raises(StatusFetchError, match=r"answered 500 Internal Server Error"):
        await fetch_status("127.0.0.1", port)
    async with HttpServer("127.0.0.1", 0) as server:
        closed_port = server.address[1]
        with pytest.raises(StatusFetchError, match=r"answered 404 Not Found: 404: Not Found"):
            await fetch_status(*server.address)
    with pytest.raises(StatusFetchError, match=r"cannot reach the daemon at 127.0.0.1:\d+"):
        await fetch_status("127.0.0.1", closed_port)

    hung_up = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()
        hung_up.set()

    silent = await asyncio.start_server(mute, "127.0.0.1", 0)
    try:
        with pytest.raises(StatusFetchError, match=r"no answer .* within 0.2s"):
            await fetch_status("127.0.0.1", silent.sockets[0].getsockname()[1], timeout_s=0.2)
        await asyncio.wait_for(hung_up.wait(), 2)
    finally:
        silent.close()


STATUS = {
    "node": "node-a",
    "instances": [
        {
            "name": "web",
            "state": "MASTER",
            "priority": 100,
            "effectivePriority": 80,
            "master": "192.168.77.10",
            "since": 1_700_000_000.0 - 125,
            "reason": "higher priority than master 192.168.77.11 (70)",
            "probes": [
                {"name": "haproxy", "ok": False, "detail": "connection refused"},
                {"name": "gw", "ok": True},
            ],
        },
        {"name": "api", "state": "BACKUP", "priority": 100, "effectivePriority": 100},
    ],
}


def test_status_table() -> None:
    table = format_status_table(STATUS, now=1_700_000_000.0)
    assert table.splitlines() == [
        "node: node-a",
        "INSTANCE  STATE   PRIORITY  MASTER         SINCE     REASON" + " " * 42 + "PROBES",
        "web       MASTER  100/80    192.168.77.10  2m5s ago  "
        "higher priority than master 192.168.77.11 (70)  haproxy:FAIL gw:ok",
        "api       BACKUP  100/100   -              -         -" + " " * 47 + "-",
    ]


def test_status_table_names_a_split_brain_below_the_table() -> None:
    detail = "another master for this VRID: 02:77:00:00:00:02 announces 192.168.77.100"
    web = {**STATUS["instances"][0], "splitBrain": {"evidence": "announcement", "detail": detail}}
    table = format_status_table({"instances": [web, STATUS["instances"][1]]}, now=1_700_000_000)
    assert table.splitlines()[-1] == f"SPLIT BRAIN web: {detail}"


def test_status_table_copes_with_odd_documents() -> None:
    assert "(no instances)" in format_status_table({})
    odd = {
        "instances": [
            {"name": "x", "reason": "line one\nline two " + "z" * 80, "since": "2024-01-01T00:00Z"},
            "not a row",
            {"name": "y", "probes": {"a": {"healthy": True}, "b": None}, "since": 12.5},
        ]
    }
    lines = format_status_table(odd).splitlines()
    assert len(lines) == 3
    assert "line one line two zzz" in lines[1] and lines[1].rstrip().endswith("…  -")
    assert "2024-01-01T00:00Z" in lines[1]
    assert "a:ok b:-" in lines[2] and " 12.5 " in lines[2]


# --- metrics ----------------------------------------------------------------------------------


def scrape(text: str) -> dict[str, dict[str, Any]]:
    """{name as scraped: {type, samples}}, read by prometheus_client's own parser."""
    families = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        samples = [(sample.labels, sample.value) for sample in family.samples]
        families[name] = {"type": family.type, "samples": samples}
    return families


def test_daemon_metrics_names_and_helpers() -> None:
    m = DaemonMetrics()
    m.set_state("web", "eth0", 51, ["192.168.77.100/24", "fd00:77::100/64"], "BACKUP")
    m.record_transition("web", "eth0", 51, "BACKUP", "MASTER", at_unix=1_700_000_000)
    m.set_state("web", "eth0", 51, ["192.168.77.100/24"], "MASTER")
    m.record_transition("web", "eth0", 51, "MASTER", "FAULT", at_unix=1_700_000_100)
    m.adverts_sent.labels(iname="web", intf="eth0", vrid=51).inc(3)
    m.record_drop("web", "eth0", 51, "ttl")
    m.record_drop("web", "eth0", 51, "auth")  # no keepalived counter of its own
    m.record_probe("web", "haproxy", False, 0.012)
    m.effective_priority.labels(iname="web").set(80)
    m.record_split_brain("web", "announcement")
    m.record_split_brain("web", None)
    m.record_split_brain("web", "mismatch")
    text = m.render().decode()
    assert "_created" not in text  # keepalived-exporter has no such series
    parsed = scrape(text)
    assert {
        "keepalived_up",
        "keepalived_vrrp_state",
        "keepalived_advertisements_sent_total",
        "keepalived_advertisements_received_total",
        "keepalived_become_master_total",
        "keepalived_release_master_total",
        "keepalived_priority_zero_sent_total",
        "keepalived_priority_zero_received_total",
        "keepalived_packet_length_errors_total",
        "keepalived_advertisements_interval_errors_total",
        "keepalived_ip_ttl_errors_total",
        "keepalived_invalid_type_received_total",
        "keepalived_address_list_errors_total",
        "keepalived_script_status",
        "vrrpd_probe_success",
        "vrrpd_probe_duration_seconds",
        "vrrpd_effective_priority",
        "vrrpd_transitions_total",
        "vrrpd_state_since_seconds",
        "vrrpd_adverts_dropped_total",
        "vrrpd_split_brain",
        "vrrpd_split_brain_detected_total",
    } == set(parsed)
    assert all(f["type"] == "counter" for n, f in parsed.items() if n.endswith("_total"))
    vrrp = {"iname": "web", "intf": "eth0", "vrid": "51"}
    assert parsed["keepalived_up"]["samples"] == [({}, 1.0)]
    assert parsed["keepalived_vrrp_state"]["samples"] == [
        ({**vrrp, "ip_address": "192.168.77.100"}, 2.0)  # the IPv6 series went with the address
    ]
    assert parsed["keepalived_become_master_total"]["samples"] == [(vrrp, 1.0)]
    assert parsed["keepalived_release_master_total"]["samples"] == [(vrrp, 1.0)]
    assert parsed["keepalived_ip_ttl_errors_total"]["samples"] == [(vrrp, 1.0)]
    assert parsed["vrrpd_adverts_dropped_total"]["samples"] == [
        ({"iname": "web", "reason": "ttl"}, 1.0),
        ({"iname": "web", "reason": "auth"}, 1.0),
    ]
    assert parsed["vrrpd_transitions_total"]["samples"] == [
        ({"iname": "web", "to": "MASTER"}, 1.0),
        ({"iname": "web", "to": "FAULT"}, 1.0),
    ]
    assert parsed["vrrpd_state_since_seconds"]["samples"] == [({"iname": "web"}, 1_700_000_100)]
    assert parsed["vrrpd_split_brain"]["samples"] == [({"iname": "web"}, 1.0)]
    assert parsed["vrrpd_split_brain_detected_total"]["samples"] == [
        ({"iname": "web", "evidence": "announcement"}, 1.0),
        ({"iname": "web", "evidence": "mismatch"}, 1.0),
    ]
    assert parsed["keepalived_script_status"]["samples"] == [({"name": "web/haproxy"}, 0.0)]
    assert parsed["vrrpd_probe_duration_seconds"]["samples"] == [
        ({"iname": "web", "probe": "haproxy"}, 0.012)
    ]

    m.forget_instance("web")
    after = scrape(m.render().decode())
    assert [n for n, f in after.items() if f["samples"]] == ["keepalived_up"]


def test_state_numbers_are_keepalived_s() -> None:
    assert [state_value(s) for s in ("INITIALIZE", "BACKUP", "MASTER", "FAULT", "STOPPED")] == [
        0,
        1,
        2,
        3,
        4,
    ]
    with pytest.raises(ValueError, match="unknown VRRP state"):
        state_value("LEARNING")


async def test_on_scrape_callbacks_run_at_each_scrape() -> None:
    m = DaemonMetrics()
    priority = {"web": 100}

    def collect() -> None:
        for name, value in priority.items():
            m.effective_priority.labels(iname=name).set(value)

    m.on_scrape(collect)
    async with HttpServer("127.0.0.1", 0, metrics=m.render) as server:
        first = scrape((await get(server.address[1], "/metrics"))[2].decode())
        priority["web"] = 80
        second = scrape((await get(server.address[1], "/metrics"))[2].decode())
    assert first["vrrpd_effective_priority"]["samples"] == [({"iname": "web"}, 100.0)]
    assert second["vrrpd_effective_priority"]["samples"] == [({"iname": "web"}, 80.0)]
