"""The HTTP face on loopback, the `vrrpd status` client and table, and the metrics text format."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from vrrpd.httpd import HttpServer, StatusFetchError, fetch_status, format_status_table
from vrrpd.metrics import (
    CONTENT_TYPE,
    Counter,
    DaemonMetrics,
    Gauge,
    Registry,
    format_value,
    state_value,
)

Response = tuple[int, dict[str, str], bytes]


async def request(port: int, raw: bytes, *, read: bool = True) -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5) if read else b""
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


async def get(port: int, path: str, method: str = "GET") -> Response:
    return await request(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


class State:
    """What the callbacks answer; tests flip it."""

    alive = True
    ready: tuple[bool, str] = (True, "all probes pass")
    metrics = "# HELP m h\n# TYPE m gauge\nm 1\n"
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
        metrics=lambda: str(state.call("metrics")),
        status=lambda: state.call("status"),
        request_timeout_s=0.3,
    )
    await server.start()
    try:
        yield server.address[1], state
    finally:
        await server.close()


async def test_healthz(served: tuple[int, State]) -> None:
    port, state = served
    assert await get(port, "/healthz") == (
        200,
        {
            "content-type": "text/plain; charset=utf-8",
            "content-length": "3",
            "cache-control": "no-store",
            "connection": "close",
        },
        b"ok\n",
    )
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
    assert body == state.metrics.encode()
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
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    assert (await get(port, "/status", "DELETE"))[0] == 405


async def test_absolute_form_and_lf_only_requests(served: tuple[int, State]) -> None:
    port, _ = served
    assert (await get(port, "http://127.0.0.1/healthz"))[0] == 200
    assert (await request(port, b"\r\nGET /healthz HTTP/1.0\n\n"))[0] == 200


async def test_a_failing_callback_is_a_500_not_a_dead_server(
    served: tuple[int, State], caplog: pytest.LogCaptureFixture
) -> None:
    port, state = served
    state.fail = "status"
    with caplog.at_level(logging.ERROR, "vrrpd.httpd"):
        status, _, body = await get(port, "/status")
    assert (status, body) == (500, b"internal error: RuntimeError\n")
    assert "callback failed" in caplog.text
    state.status = {"not json": object()}  # default=str copes
    state.fail = None
    assert (await get(port, "/status"))[0] == 200
    assert (await get(port, "/healthz"))[0] == 200


async def test_malformed_requests(served: tuple[int, State]) -> None:
    port, _ = served
    for raw in [
        b"GET\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET /healthz SPDY/3\r\n\r\n",
        b"get /healthz HTTP/1.1\r\n\r\n",
        b"GET healthz HTTP/1.1\r\n\r\n",
        b"GET /a\x00b HTTP/1.1\r\n\r\n",
        b"\xff\xfe\xfd /x HTTP/1.1\r\n\r\n",
    ]:
        assert (await request(port, raw))[0] == 400, raw


async def test_oversized_head_is_refused(served: tuple[int, State]) -> None:
    port, _ = served
    long_header = b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await request(port, long_header))[0] == 431
    many_headers = b"GET /healthz HTTP/1.1\r\n" + b"X: aaaaaaaaaa\r\n" * 1000 + b"\r\n"
    assert (await request(port, many_headers))[0] == 431


async def test_slow_client_times_out(served: tuple[int, State]) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # and never the blank line
    data = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ")


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
        assert status in (400, 408, 431, 503)  # 503: more than max_connections at once

    await asyncio.gather(*(garbage() for _ in range(100)))
    assert (await get(port, "/healthz"))[0] == 200


async def test_concurrent_requests(served: tuple[int, State]) -> None:
    port, _ = served
    paths = ["/healthz", "/readyz", "/metrics", "/status", "/nope"] * 10
    results = await asyncio.gather(*(get(port, p) for p in paths))
    assert [r[0] for r in results] == [200, 200, 200, 200, 404] * 10


async def test_connection_cap_answers_busy() -> None:
    server = HttpServer("127.0.0.1", 0, max_connections=2, request_timeout_s=2)
    await server.start()
    port = server.address[1]
    holders = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    await asyncio.sleep(0.05)
    try:
        status, _, body = await request(port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert (status, body) == (503, b"busy\n")
    finally:
        for _, writer in holders:
            writer.close()
        await server.close()


async def test_without_metrics_or_status_callbacks() -> None:
    async with HttpServer("127.0.0.1", 0) as server:
        port = server.address[1]
        assert (await get(port, "/healthz"))[0] == 200
        assert (await get(port, "/readyz"))[::2] == (200, b"ready\n")
        assert (await get(port, "/metrics"))[0] == 404
        assert (await get(port, "/status"))[0] == 404


async def test_close_ends_open_connections() -> None:
    server = HttpServer("127.0.0.1", 0, request_timeout_s=30)
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
        with pytest.raises(StatusFetchError, match=r"answered 404 Not Found: no such path"):
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

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)\Z")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|\Z)')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def parse_exposition(text: str) -> dict[str, dict[str, Any]]:
    """A strict little parser of the text format: {name: {help, type, samples}}."""
    families: dict[str, dict[str, Any]] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"second HELP for {name}"
            families[name] = {"help": _unescape(help_text), "type": None, "samples": []}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert families[name]["type"] is None and not families[name]["samples"]
            assert kind in ("counter", "gauge")
            families[name]["type"] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels_text, value = match.groups()
            labels: dict[str, str] = {}
            rest = labels_text or ""
            while rest:
                label = _LABEL.match(rest)
                assert label, f"bad labels in {line!r}"
                labels[label.group(1)] = _unescape(label.group(2))
                rest = rest[label.end() :]
            families[name]["samples"].append((labels, float(value)))
    return families


def test_render_format_and_escaping() -> None:
    registry = Registry()
    counter = registry.counter("x_total", 'Help with \\ and\nnewline and "quotes"', ("a", "b"))
    gauge = registry.gauge("y", "plain")
    counter.inc(a='q"uote', b="back\\slash\nnl")
    counter.inc(2.5, a='q"uote', b="back\\slash\nnl")
    counter.inc(a="z", b=7)
    gauge.set(float("inf"))
    text = registry.render()
    assert text.startswith(
        '# HELP x_total Help with \\\\ and\\nnewline and "quotes"\n# TYPE x_total counter\n'
    )
    assert 'x_total{a="q\\"uote",b="back\\\\slash\\nnl"} 3.5\n' in text
    parsed = parse_exposition(text)
    assert parsed["x_total"]["help"] == 'Help with \\ and\nnewline and "quotes"'
    assert parsed["x_total"]["samples"] == [
        ({"a": 'q"uote', "b": "back\\slash\nnl"}, 3.5),
        ({"a": "z", "b": "7"}, 1.0),
    ]
    assert parsed["y"] == {"help": "plain", "type": "gauge", "samples": [({}, float("inf"))]}


def test_values_print_like_prometheus() -> None:
    assert [format_value(v) for v in (0.0, 3.0, -2.0, 0.25, 1e300, float("nan"))] == [
        "0",
        "3",
        "-2",
        "0.25",
        "1e+300",
        "NaN",
    ]
    assert format_value(float("-inf")) == "-Inf"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Counter("bad name", "h"), "not a valid Prometheus name"),
        (lambda: Counter("ok", "h", ("__reserved",)), "label name"),
        (lambda: Counter("ok", "h", ("a", "a")), "duplicate"),
        (lambda: Counter("ok", "h", ("a",)).inc(b="x"), "expected"),
        (lambda: Counter("ok", "h").inc(-1), "only goes up"),
    ],
)
def test_misuse_is_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_registry_refuses_a_second_family_of_one_name() -> None:
    registry = Registry()
    registry.gauge("g", "h")
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("g", "h")


def test_gauge_and_series_removal() -> None:
    gauge = Gauge("g", "h", ("iname", "probe"))
    gauge.set(5, iname="web", probe="a")
    gauge.inc(iname="web", probe="a")
    gauge.dec(0.5, iname="web", probe="b")
    gauge.set(1, iname="api", probe="a")
    assert gauge.value(iname="web", probe="a") == 6
    assert gauge.remove_matching(iname="web") == 2
    assert [labels for labels, _ in gauge.samples()] == [{"iname": "api", "probe": "a"}]
    gauge.remove(iname="api", probe="a")
    assert gauge.value(iname="api", probe="a") is None


def test_daemon_metrics_names_and_helpers() -> None:
    m = DaemonMetrics()
    m.set_state("web", "eth0", 51, ["192.168.77.100/24", "fd00:77::100/64"], "BACKUP")
    m.record_transition("web", "eth0", 51, "BACKUP", "MASTER", at_unix=1_700_000_000)
    m.set_state("web", "eth0", 51, ["192.168.77.100/24"], "MASTER")
    m.record_transition("web", "eth0", 51, "MASTER", "FAULT", at_unix=1_700_000_100)
    m.adverts_sent.inc(3, iname="web", intf="eth0", vrid=51)
    m.record_drop("web", "eth0", 51, "ttl")
    m.record_drop("web", "eth0", 51, "auth")  # no keepalived counter of its own
    m.record_probe("web", "haproxy", False, 0.012)
    m.effective_priority.set(80, iname="web")
    parsed = parse_exposition(m.render())
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
        ({"iname": "web", "reason": "auth"}, 1.0),
        ({"iname": "web", "reason": "ttl"}, 1.0),
    ]
    assert parsed["vrrpd_transitions_total"]["samples"] == [
        ({"iname": "web", "to": "FAULT"}, 1.0),
        ({"iname": "web", "to": "MASTER"}, 1.0),
    ]
    assert parsed["vrrpd_state_since_seconds"]["samples"] == [({"iname": "web"}, 1_700_000_100)]
    assert parsed["keepalived_script_status"]["samples"] == [({"name": "web/haproxy"}, 0.0)]
    assert parsed["vrrpd_probe_duration_seconds"]["samples"] == [
        ({"iname": "web", "probe": "haproxy"}, 0.012)
    ]

    m.forget_instance("web")
    after = parse_exposition(m.render())
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


async def test_collectors_run_at_scrape_time(served: tuple[int, State]) -> None:
    port, state = served
    m = DaemonMetrics()
    priority = {"web": 100}

    def collect() -> None:
        for name, value in priority.items():
            m.effective_priority.set(value, iname=name)

    m.registry.add_collector(collect)
    state.metrics = m.render()
    priority["web"] = 80
    state.metrics = m.render()
    _, _, body = await get(port, "/metrics")
    parsed = parse_exposition(body.decode())
    assert parsed["vrrpd_effective_priority"]["samples"] == [({"iname": "web"}, 80.0)]
