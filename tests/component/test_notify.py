"""Notifications: real scripts in tmp_path, a webhook receiver and an SMTP server on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import ssl
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.handlers import Message
from aiosmtpd.smtp import SMTP

from tests.component.test_httpclient import self_signed, server_context
from vrrpd import notify
from vrrpd.config import EmailConfig, GarpConfig, InstanceConfig, NotifyConfig, WebhookConfig
from vrrpd.groupnotify import GroupNotifiers
from vrrpd.notify import Event, Notifier, build_email, normalize_state
from vrrpd.vrrp.fsm import PreemptMode

LOG = "vrrpd.notify"


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def recorder(tmp_path: Path, name: str = "rec.sh") -> tuple[str, Path]:
    """A script that appends one JSON-ish record (argv and VRRPD_ env) per run to out."""
    out = tmp_path / f"{name}.out"
    body = f"""\
        {{
          echo "argv:$#"
          for a in "$@"; do echo "arg:$a"; done
          env | grep '^VRRPD_' | sort
          echo "--"
        }} >> {out}
        """
    return script(tmp_path, name, body), out


def records(out: Path) -> list[dict[str, Any]]:
    result = []
    for chunk in out.read_text().split("--\n"):
        if not chunk.strip():
            continue
        rec: dict[str, Any] = {"args": [], "env": {}}
        for line in chunk.splitlines():
            if line.startswith("arg:"):
                rec["args"].append(line[4:])
            elif line.startswith("VRRPD_"):
                key, _, value = line.partition("=")
                rec["env"][key] = value
        result.append(rec)
    return result


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return False


# --- scripts ----------------------------------------------------------------------------------


async def test_state_script_runs_as_given_with_environment(tmp_path: Path) -> None:
    rec, out = recorder(tmp_path)
    n = Notifier(NotifyConfig(master=(rec, "master", "two words")), instance="web", node="node-a")
    n.notify("MASTER", 150, "preempted backup at 100")
    await n.join()
    [run] = records(out)
    assert run["args"] == ["master", "two words"]
    assert run["env"] == {
        "VRRPD_INSTANCE": "web",
        "VRRPD_STATE": "MASTER",
        "VRRPD_PRIORITY": "150",
        "VRRPD_REASON": "preempted backup at 100",
        "VRRPD_NODE": "node-a",
    }


async def test_all_script_gets_keepalived_arguments(tmp_path: Path) -> None:
    rec, out = recorder(tmp_path)
    n = Notifier(NotifyConfig(all=(rec, "--flag")), instance="web", group="edge")
    n.notify("BACKUP", 100, "higher priority master seen")
    await n.join()
    [run] = records(out)
    assert run["args"] == ["--flag", "INSTANCE", "web", "BACKUP", "100"]
    assert run["env"]["VRRPD_GROUP"] == "edge"


async def test_each_state_its_script_and_all_in_event_order(tmp_path: Path) -> None:
    rec, out = recorder(tmp_path)
    rec_all, out_all = recorder(tmp_path, "all.sh")  # they run side by side: one file each
    config = NotifyConfig(
        master=(rec, "m"), backup=(rec, "b"), fault=(rec, "f"), stop=(rec, "s"), all=(rec_all,)
    )
    n = Notifier(config, instance="web")
    for state in ("INITIALIZE", "master", "BACKUP", "Fault", "STOPPED"):
        n.notify(state, 100, "")
    await n.join()
    assert [r["args"] for r in records(out)] == [["m"], ["b"], ["f"], ["s"]]
    assert [r["args"][:3] for r in records(out_all)] == [
        ["INSTANCE", "web", "MASTER"],
        ["INSTANCE", "web", "BACKUP"],
        ["INSTANCE", "web", "FAULT"],
        ["INSTANCE", "web", "STOP"],
    ]


def test_state_words() -> None:
    assert normalize_state("STOPPED") == "STOP"
    assert normalize_state(" master ") == "MASTER"
    assert normalize_state("INITIALIZE") is None
    assert normalize_state("bogus") is None


async def test_missing_script_logs_and_later_ones_still_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec, out = recorder(tmp_path)
    config = NotifyConfig(master=(str(tmp_path / "nope.sh"),), all=(rec,))
    n = Notifier(config, instance="web")
    with caplog.at_level(logging.INFO, LOG):
        n.notify("MASTER", 100, "")
        await n.join()
    assert len(records(out)) == 1
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "nope.sh" in error.getMessage() and "not found" in error.getMessage()
    assert getattr(error, "instance", None) == "web"


async def test_unexecutable_script_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("echo hi\n")
    n = Notifier(NotifyConfig(master=(str(path),)), instance="web")
    with caplog.at_level(logging.ERROR, LOG):
        n.notify("MASTER", 100, "")
        await n.join()
    assert "cannot run" in caplog.text and "plain.txt" in caplog.text


async def test_hanging_script_is_killed_with_its_group_and_never_delays_notify(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pids = tmp_path / "pids"
    hang = script(
        tmp_path,
        "hang.sh",
        f"""\
        sleep 30 &
        echo $$ $! > {pids}
        wait
        """,
    )
    rec, out = recorder(tmp_path)
    n = Notifier(NotifyConfig(master=(hang,), backup=(rec,), timeout_cs=30), instance="web")
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.INFO, LOG):
        start = loop.time()
        n.notify("MASTER", 100, "")
        await asyncio.sleep(0.15)
        returned_at = loop.time()
        n.notify("BACKUP", 100, "")  # queued behind the hanging one, yet returns at once
        assert loop.time() - returned_at < 0.05
        await n.join()
        elapsed = loop.time() - start
    assert 0.25 < elapsed < 2.0
    leader, child = (int(p) for p in pids.read_text().split())
    assert not alive(leader) and not alive(child)
    assert "killing its process group" in caplog.text
    assert len(records(out)) == 1  # the next one ran after the kill


async def test_order_is_kept_per_instance(tmp_path: Path) -> None:
    log_file = tmp_path / "order"
    # The first run is the slowest: without serialization it would finish last.
    slow = script(
        tmp_path,
        "slow.sh",
        f"""\
        [ "$4" = 1 ] && sleep 0.2
        echo "$4" >> {log_file}
        """,
    )
    n = Notifier(NotifyConfig(all=(slow,)), instance="web")
    for priority in range(1, 7):
        n.notify("MASTER" if priority % 2 else "BACKUP", priority, "")
    await n.join()
    assert log_file.read_text().split() == ["1", "2", "3", "4", "5", "6"]


async def test_instances_run_in_parallel(tmp_path: Path) -> None:
    slow = script(tmp_path, "slow.sh", "sleep 0.4\n")
    a = Notifier(NotifyConfig(master=(slow,)), instance="a")
    b = Notifier(NotifyConfig(master=(slow,)), instance="b")
    loop = asyncio.get_running_loop()
    start = loop.time()
    a.notify("MASTER", 100, "")
    b.notify("MASTER", 100, "")
    await asyncio.gather(a.join(), b.join())
    assert loop.time() - start < 0.75  # serial would be 0.8 or more


async def test_output_is_logged_line_by_line_with_the_instance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    talk = script(tmp_path, "talk.sh", "echo one; echo two; echo oops >&2; printf tail\nexit 3\n")
    n = Notifier(NotifyConfig(fault=(talk,)), instance="web")
    with caplog.at_level(logging.INFO, LOG):
        n.notify("FAULT", 0, "link down")
        await n.join()
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.endswith("talk.sh stdout: one") for m in lines)
    assert any(m.endswith("talk.sh stdout: two") for m in lines)
    assert any(m.endswith("talk.sh stdout: tail") for m in lines)
    assert any(m.endswith("talk.sh stderr: oops") for m in lines)
    assert any("exit 3" in m for m in lines)
    assert all(getattr(r, "instance", None) == "web" for r in caplog.records)


async def test_output_flood_is_capped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flood = script(tmp_path, "flood.sh", "seq 1 5000\n")
    n = Notifier(NotifyConfig(master=(flood,)), instance="web")
    with caplog.at_level(logging.INFO, LOG):
        n.notify("MASTER", 100, "")
        await n.join()
    numbers = [
        int(m.rsplit(" ", 1)[1])
        for r in caplog.records
        if "flood.sh stdout: " in (m := r.getMessage()) and m.rsplit(" ", 1)[1].isdigit()
    ]
    assert numbers == list(range(1, notify.MAX_LINES + 1))
    assert "4900 more lines not logged" in caplog.text


async def test_background_child_holding_output_does_not_hold_the_queue(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    daemonize = script(tmp_path, "bg.sh", f"sleep 30 &\necho $! > {pid_file}\necho started\n")
    n = Notifier(NotifyConfig(master=(daemonize,)), instance="web")
    loop = asyncio.get_running_loop()
    start = loop.time()
    n.notify("MASTER", 100, "")
    await n.join()
    try:
        assert loop.time() - start < 1.5
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_aclose_waits_then_cancels_and_kills(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hang = script(tmp_path, "hang.sh", f"echo $$ > {pid_file}\nexec sleep 30\n")
    _, out = recorder(tmp_path)
    n = Notifier(NotifyConfig(master=(hang,), timeout_cs=3000), instance="web")
    n.notify("MASTER", 100, "")
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await n.aclose(timeout=0.2)
    assert loop.time() - start < 1.0
    assert not alive(int(pid_file.read_text()))
    n.notify("BACKUP", 100, "")  # after close: ignored, no error
    assert not out.exists()


async def test_aclose_lets_quick_work_finish(tmp_path: Path) -> None:
    rec, out = recorder(tmp_path)
    n = Notifier(NotifyConfig(stop=(rec,)), instance="web")
    n.notify("STOPPED", 0, "shutdown")
    await n.aclose(timeout=5)
    assert len(records(out)) == 1


def test_notify_outside_an_event_loop_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(NotifyConfig(master=("/bin/true",)), instance="web")
    with caplog.at_level(logging.ERROR, LOG):
        n.notify("MASTER", 100, "")
    assert "outside the event loop" in caplog.text


async def test_no_config_is_a_quiet_no_op() -> None:
    n = Notifier(None, instance="web")
    n.notify("MASTER", 100, "")
    await n.join()
    await n.aclose(0.1)


# --- webhook ----------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A loopback HTTP server that answers with the next scripted status (or hangs)."""

    answers: list[int | None] = field(default_factory=list)  # None: never answer
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ")
            headers = {
                k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            status = self.answers.pop(0) if self.answers else 200
            if status is None:
                # Returning normally when cancelled: asyncio's stream callback in Python 3.11
                # logs a cancelled handler as an error.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(3600)
                return
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.handlers.discard(task)
            writer.close()


@contextlib.asynccontextmanager
async def receiver(
    answers: list[int | None], ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Receiver]:
    rec = Receiver(answers=list(answers))
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    rec.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/hooks/vrrp?src=test"
    try:
        yield rec
    finally:
        server.close()
        for task in list(rec.handlers):  # those parked in their "never answer" sleep
            task.cancel()
        await asyncio.gather(*rec.handlers, return_exceptions=True)
        await server.wait_closed()


def hook_notifier(url: str, **kw: Any) -> Notifier:
    webhook = WebhookConfig(
        url=url, timeout_cs=kw.pop("timeout_cs", 100), retries=kw.pop("retries", 3)
    )
    return Notifier(NotifyConfig(webhook=webhook), instance="web", backoff_s=0.01, **kw)


async def test_webhook_posts_the_event() -> None:
    async with receiver([]) as rec:
        n = hook_notifier(rec.url, node="node-a", group="edge")
        before = time.time()
        n.notify("MASTER", 150, "preempted")
        n.notify("BACKUP", 100, "higher priority seen")
        await n.join()
    first, second = rec.requests
    assert first["method"] == "POST" and first["path"] == "/hooks/vrrp?src=test"
    assert first["headers"]["content-type"] == "application/json"
    assert first["headers"]["host"] == rec.url.split("/")[2]
    event = json.loads(first["body"])
    stamp = event.pop("time")
    assert event == {
        "instance": "web",
        "group": "edge",
        "state": "MASTER",
        "priority": 150,
        "reason": "preempted",
        "node": "node-a",
    }
    assert stamp.endswith("Z") and stamp[:4] == time.strftime("%Y", time.gmtime(before))
    later = json.loads(second["body"])
    assert later["state"] == "BACKUP" and later["previousState"] == "MASTER"


async def test_webhook_retries_5xx_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    async with receiver([500, 503, 200]) as rec:
        n = hook_notifier(rec.url)
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
    assert len(rec.requests) == 3
    assert "attempt 1/4 failed (HTTP 500)" in caplog.text
    assert "delivered (HTTP 200)" in caplog.text


async def test_webhook_gives_up_after_its_retries(caplog: pytest.LogCaptureFixture) -> None:
    async with receiver([500] * 10) as rec:
        n = hook_notifier(rec.url, retries=2)
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
    assert len(rec.requests) == 3
    assert "not delivered after 3 attempts: HTTP 500" in caplog.text


async def test_webhook_backoff_doubles(caplog: pytest.LogCaptureFixture) -> None:
    async with receiver([500] * 10) as rec:
        n = hook_notifier(rec.url, retries=3)
        n.backoff_s = 0.05
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
    assert [
        r.getMessage().rsplit(" ", 1)[1] for r in caplog.records if "retrying" in r.message
    ] == [
        "0.05s",
        "0.1s",
        "0.2s",
    ]


async def test_webhook_client_error_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    async with receiver([404]) as rec:
        n = hook_notifier(rec.url)
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
    assert len(rec.requests) == 1
    assert "rejected MASTER with HTTP 404; not retrying" in caplog.text


async def test_webhook_timeout_counts_as_a_failed_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with receiver([None, None]) as rec:
        n = hook_notifier(rec.url, timeout_cs=10, retries=1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
        elapsed = loop.time() - start
    assert len(rec.requests) == 2
    assert 0.2 <= elapsed < 1.0
    assert "not delivered after 2 attempts: no answer within 0.1s" in caplog.text


async def test_webhook_connection_refused_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    async with receiver([]) as rec:
        url = rec.url  # the server closes at the end of the block: nobody listens after
    n = hook_notifier(url, retries=1)
    with caplog.at_level(logging.INFO, LOG):
        n.notify("MASTER", 150, "")
        await n.join()
    assert "not delivered after 2 attempts: connection refused" in caplog.text


async def test_webhook_bad_url_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    n = hook_notifier("ftp://example.test/x")
    with caplog.at_level(logging.ERROR, LOG):
        n.notify("MASTER", 150, "")
        await n.join()
    assert "scheme must be http or https" in caplog.text


async def test_webhook_credentials_go_in_a_header_not_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with receiver([]) as rec:
        url = rec.url.replace("http://", "http://alice:s%40cret@")
        n = hook_notifier(url)
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
    [request] = rec.requests
    assert (
        request["headers"]["authorization"] == "Basic " + base64.b64encode(b"alice:s@cret").decode()
    )
    assert request["headers"]["host"] == rec.url.split("/")[2]
    assert "cret" not in caplog.text and "delivered" in caplog.text


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context)."""
    cert, key = self_signed(tmp_path)
    return server_context(cert, key), ssl.create_default_context(cafile=str(cert))


async def test_webhook_over_https(
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server_ctx, client_ctx = tls_pair
    async with receiver([], ssl_context=server_ctx) as rec:
        trusting = hook_notifier(rec.url, ssl_context=client_ctx)
        default = hook_notifier(rec.url, retries=0)  # system trust store: self-signed refused
        with caplog.at_level(logging.INFO, LOG):
            trusting.notify("MASTER", 150, "")
            default.notify("MASTER", 150, "")
            await asyncio.gather(trusting.join(), default.join())
    assert len(rec.requests) == 1
    assert json.loads(rec.requests[0]["body"])["state"] == "MASTER"
    assert "TLS certificate not accepted" in caplog.text


# --- email ------------------------------------------------------------------------------------


def event(**kw: Any) -> Event:
    base: dict[str, Any] = {
        "instance": "web",
        "group": None,
        "state": "MASTER",
        "previous": "BACKUP",
        "priority": 150,
        "reason": "preempted",
        "node": "node-a",
        "time": 1_700_000_000.0,
    }
    base.update(kw)
    return Event(**base)


def test_mail_reads_like_keepalived_smtp_alert() -> None:
    message = build_email(event(), sender="vrrp@example.test", to=("a@x.test", "b@x.test"))
    assert message["Subject"] == "[node-a] VRRP instance web is now MASTER"
    assert message["To"] == "a@x.test, b@x.test"
    assert message["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    text = message.get_content()
    assert "is now MASTER (was BACKUP)" in text and "reason:    preempted" in text
    stop = build_email(event(state="STOP"), sender="v@x.test", to=("a@x.test",))
    assert stop["Subject"].endswith("is now STOPPED")


def test_mail_header_cannot_be_injected() -> None:
    message = build_email(event(node="evil\r\nBcc: x@y"), sender="v@x.test", to=("a@x.test",))
    raw = message.as_bytes()
    assert b"\nBcc:" not in raw


@dataclass
class Relay:
    """An SMTP relay (aiosmtpd) on loopback that keeps what it gets and refuses some RCPTs."""

    port: int = 0
    received: list[Any] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)


@contextlib.asynccontextmanager
async def relay(tls: ssl.SSLContext | None = None) -> AsyncIterator[Relay]:
    """With ``tls``, the relay offers STARTTLS (not required), as Debian's postfix does."""
    found = Relay()

    class Keep(Message):
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if address in found.refuse:
                return "550 5.1.1 no such mailbox here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        def handle_message(self, message: Any) -> None:
            found.received.append(message)

    # In this loop rather than aiosmtpd's threaded Controller, which cannot take port 0.
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Keep(), tls_context=tls), "127.0.0.1", 0)
    found.port = int(server.sockets[0].getsockname()[1])
    try:
        yield found
    finally:
        server.close()


def mail_to(port: int, *to: str) -> NotifyConfig:
    return NotifyConfig(
        email=EmailConfig(
            to=to or ("ops@example.test",), sender="vrrp@example.test", smtp_host="127.0.0.1",
            smtp_port=port, connect_timeout_cs=200,
        )
    )  # fmt: skip


async def test_mail_is_sent_over_smtp(caplog: pytest.LogCaptureFixture) -> None:
    async with relay() as smtp:
        n = Notifier(
            mail_to(smtp.port, "ops@example.test", "oncall@example.test"),
            instance="web",
            node="node-a",
        )
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, ".starts with a dot\n.and so does this line")
            await n.join()
    [message] = smtp.received
    assert message["Subject"] == "[node-a] VRRP instance web is now MASTER"
    assert message["X-MailFrom"] == "vrrp@example.test"
    assert message["X-RcptTo"] == "ops@example.test, oncall@example.test"
    # Lines that start with a dot arrive as written (RFC 5321 dot-stuffing, both ways).
    assert "reason:    .starts with a dot\r\n.and so does this line\r\n" in message.get_payload()
    assert "mail about MASTER sent through 127.0.0.1" in caplog.text


async def test_a_refused_recipient_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with relay() as smtp:
        smtp.refuse.add("gone@example.test")
        n = Notifier(mail_to(smtp.port, "gone@example.test", "ops@example.test"), instance="web")
        with caplog.at_level(logging.INFO, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
    [message] = smtp.received
    assert message["X-RcptTo"] == "ops@example.test"
    assert "mail to gone@example.test refused: 550 5.1.1 no such mailbox here" in caplog.text
    assert "mail about MASTER sent through" in caplog.text


async def test_no_recipient_accepted_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async with relay() as smtp:
        smtp.refuse.add("ops@example.test")
        n = Notifier(mail_to(smtp.port), instance="web")
        with caplog.at_level(logging.ERROR, LOG):
            n.notify("MASTER", 150, "")
            await n.join()
    assert smtp.received == []
    assert "not sent through 127.0.0.1" in caplog.text
    assert "no recipient accepted: 550 5.1.1 no such mailbox here" in caplog.text


async def test_starttls_offered_with_a_self_signed_certificate_still_delivers(
    tmp_path: Path,
) -> None:
    # keepalived's smtp_alert speaks plain SMTP; a relay's untrusted STARTTLS must not stop it.
    async with relay(tls=server_context(*self_signed(tmp_path))) as smtp:
        n = Notifier(mail_to(smtp.port), instance="web")
        n.notify("MASTER", 150, "")
        await n.join()
    assert len(smtp.received) == 1


async def test_mail_server_down_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with receiver([]) as rec:
        port = int(rec.url.split(":")[2].split("/")[0])  # a port nobody listens on afterwards
    mail = EmailConfig(to=("ops@x.test",), sender="v@x.test", smtp_host="127.0.0.1", smtp_port=port)
    n = Notifier(NotifyConfig(email=mail), instance="web")
    with caplog.at_level(logging.ERROR, LOG):
        n.notify("FAULT", 0, "")
        await n.join()
    assert "mail about FAULT not sent through 127.0.0.1" in caplog.text
    assert "connection refused" in caplog.text


async def test_mail_to_something_that_is_not_smtp(caplog: pytest.LogCaptureFixture) -> None:
    async def not_smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_smtp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mail = EmailConfig(to=("ops@x.test",), sender="v@x.test", smtp_host="127.0.0.1", smtp_port=port)
    n = Notifier(NotifyConfig(email=mail), instance="web")
    with caplog.at_level(logging.ERROR, LOG):
        n.notify("FAULT", 0, "")
        await n.join()
    server.close()
    assert "Malformed SMTP response line: SSH-2.0-OpenSSH" in caplog.text


async def test_a_failing_webhook_does_not_delay_scripts(tmp_path: Path) -> None:
    rec, out = recorder(tmp_path)
    async with receiver([None] * 5) as hook:
        config = NotifyConfig(
            master=(rec,), webhook=WebhookConfig(url=hook.url, timeout_cs=500, retries=3)
        )
        n = Notifier(config, instance="web")
        n.notify("MASTER", 150, "")
        for _ in range(100):
            if out.exists():
                break
            await asyncio.sleep(0.02)
        assert len(records(out)) == 1  # while the webhook is still waiting for its answer
        await n.aclose(timeout=0)


# --- notify fifo (keepalived notify_fifo) -------------------------------------------------------


def read_lines(fd: int) -> list[str]:
    try:
        return os.read(fd, 65536).decode().splitlines()
    except BlockingIOError:
        return []


async def test_fifo_gets_keepalived_lines_made_if_missing(tmp_path: Path) -> None:
    path = tmp_path / "notify.fifo"
    n = Notifier(NotifyConfig(fifo=str(path)), instance="default/web/ipv4")
    n.notify("BACKUP", 100, "start")  # nobody reads yet: the pipe holds it
    assert path.is_fifo() and oct(path.stat().st_mode & 0o777) == "0o644"
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        n.notify("MASTER", 150, "master down")
        n.notify("STOPPED", 150, "daemon stopping")
        assert read_lines(reader) == [
            'INSTANCE "default/web/ipv4" BACKUP 100',
            'INSTANCE "default/web/ipv4" MASTER 150',
            'INSTANCE "default/web/ipv4" STOP 150',
        ]
        await n.aclose()
    finally:
        os.close(reader)


async def test_a_full_fifo_drops_lines_and_never_waits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notify.fifo"
    n = Notifier(NotifyConfig(fifo=str(path)), instance="web")
    for _ in range(10_000):  # ~200 KB: more than a pipe holds, and nobody reads
        n.notify("MASTER", 100, "")  # a blocking write would hang here for good
    assert "is full (no reader keeps up)" in caplog.text
    await n.aclose()


async def test_a_fifo_path_that_is_a_file_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "plain"
    path.write_text("keep me\n")
    n = Notifier(NotifyConfig(fifo=str(path)), instance="web")
    n.notify("MASTER", 100, "")
    assert path.read_text() == "keep me\n"
    assert "exists and is not a FIFO" in caplog.text


# --- a sync group's own notifications -----------------------------------------------------------


def member(name: str, group: str | None, notify: NotifyConfig | None) -> InstanceConfig:
    return InstanceConfig(
        name=name, virtualip=name.rsplit("/", 1)[0], family=4, vrid=51, version=3,
        priority=100, advert_interval_cs=100, addresses=(), interface="eth0", label=None,
        preempt=PreemptMode.ALWAYS, preempt_delay_cs=0, accept=True, unicast=False,
        source_address=None, peers=(), auth_password=None, garp=GarpConfig(),
        sync_group=group, sync_group_notify=notify,
    )  # fmt: skip


async def test_a_group_notifies_once_per_change_of_its_state(tmp_path: Path) -> None:
    fifo = tmp_path / "group.fifo"
    os.mkfifo(fifo)  # there already: taken as it is
    rec, out = recorder(tmp_path)
    config = NotifyConfig(all=(rec,), fifo=str(fifo))
    groups = GroupNotifiers("node-a")
    groups.update([member("lb/a/ipv4", "lb/edge", config), member("lb/b/ipv4", "lb/edge", config)])
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        for state in ("BACKUP", "BACKUP", "MASTER", "MASTER", "STOPPED", "FAULT", "FAULT"):
            groups.member_changed("lb/edge", state, "")  # a member's STOP is not the group's
        groups.member_changed("lb/other", "MASTER", "")  # a group nobody notifies
        await groups.aclose()  # the daemon stops: the group too
        assert read_lines(reader) == [
            'GROUP "lb/edge" BACKUP 0',
            'GROUP "lb/edge" MASTER 0',
            'GROUP "lb/edge" FAULT 0',
            'GROUP "lb/edge" STOP 0',
        ]
    finally:
        os.close(reader)
    assert [r["args"] for r in records(out)] == [
        ["GROUP", "lb/edge", state, "0"] for state in ("BACKUP", "MASTER", "FAULT", "STOP")
    ]


async def test_group_notify_follows_a_reload_and_the_first_member_wins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = tmp_path / "one.fifo", tmp_path / "two.fifo"
    groups = GroupNotifiers("node-a")
    groups.update(
        [
            member("lb/b/ipv4", "lb/edge", NotifyConfig(fifo=str(two))),
            member("lb/a/ipv4", "lb/edge", NotifyConfig(fifo=str(one))),
            member("lb/c/ipv4", None, None),
        ]
    )
    assert "lb/b/ipv4 sets another syncGroupNotify" in caplog.text
    groups.member_changed("lb/edge", "MASTER", "")
    reader = os.open(one, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert read_lines(reader) == ['GROUP "lb/edge" MASTER 0']
        # No member notifies the group any more: it says STOP once and is gone.
        groups.update([member("lb/a/ipv4", "lb/edge", None)])
        groups.member_changed("lb/edge", "BACKUP", "")
        await groups.aclose()
        assert read_lines(reader) == ['GROUP "lb/edge" STOP 0']
    finally:
        os.close(reader)
    assert not two.exists()
