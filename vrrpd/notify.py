"""Notifications of VRRP state changes: keepalived-style scripts, a JSON webhook, an SMTP alert.

Nothing here can block or influence the election: ``Notifier.notify`` only queues the event
and returns, and every failure (missing script, dead webhook, unreachable mail server) ends
as a log line. Each of the three channels keeps its own ordered queue and worker task, so a
webhook retrying for a minute never delays a script, and one instance's hanging script
never delays another instance's (each instance has its own Notifier).

The FIFO follows keepalived's notify_fifo: a line ``INSTANCE "<name>" <state> <priority>``
written at once, without waiting (a FIFO nobody reads loses lines, never delays a state).

Scripts follow keepalived: the per-state argv (notify_master, notify_backup, notify_fault,
notify_stop) runs as given; the catch-all ``all`` argv (keepalived's ``notify``) gets
``INSTANCE <name> <state> <priority>`` appended, or ``GROUP <name> <state> 0`` for a sync
group's own notifier (`vrrpd.groupnotify`); a member's scripts find its group in
VRRPD_GROUP.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import datetime
import json
import logging
import os
import signal
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from vrrpd import httpclient
from vrrpd.config import NotifyConfig
from vrrpd.httpclient import describe

if TYPE_CHECKING:
    import aiosmtplib

log = logging.getLogger("vrrpd.notify")

STATES: Final = ("MASTER", "BACKUP", "FAULT", "STOP")  # keepalived's words, as scripts get them
_ALIASES: Final = {"STOPPED": "STOP"}  # vrrpd.vrrp.fsm.State.STOPPED
_IGNORED: Final = {"INIT", "INITIALIZE"}  # keepalived notifies no INIT either

MAX_PENDING: Final = 64  # queued events per channel; past it the oldest queued one is dropped
OUTPUT_GRACE_S: Final = 0.2  # after a script exits, how long a child may keep its output open
REAP_S: Final = 2.0  # how long to wait for a SIGKILLed script to be reaped
MAX_LINES: Final = 100  # output lines logged per stream and run; a chatty script cannot flood
MAX_LINE_BYTES: Final = 1024
MAX_BACKOFF_S: Final = 30.0


@dataclass(frozen=True)
class Event:
    instance: str
    group: str | None
    state: str  # one of STATES
    previous: str | None  # the state of the previous notify() call, None for the first
    priority: int
    reason: str
    node: str
    time: float  # Unix time of the notify() call, not of the delivery

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "instance": self.instance,
            "group": self.group,
            "state": self.state,
            "priority": self.priority,
            "reason": self.reason,
            "node": self.node,
            "time": rfc3339(self.time),
        }
        if self.previous is not None:
            doc["previousState"] = self.previous
        return doc


def rfc3339(unix: float) -> str:
    moment = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_state(state: str) -> str | None:
    """keepalived's word for a state (MASTER/BACKUP/FAULT/STOP), None if it is not notified."""
    word = str(state).strip().upper()
    word = _ALIASES.get(word, word)
    return word if word in STATES else None


# --- the queue behind each channel ------------------------------------------------------------


class _Channel:
    """An ordered queue with one worker task that exists only while there is work."""

    def __init__(
        self, name: str, instance: str, handler: Callable[[Event], Awaitable[None]]
    ) -> None:
        self.name = name
        self.instance = instance
        self.handler = handler
        self.pending: collections.deque[Event] = collections.deque()
        self.worker: asyncio.Task[None] | None = None

    def put(self, event: Event) -> None:
        if len(self.pending) >= MAX_PENDING:
            # Dropping the oldest keeps the newest state, the one that matters now.
            lost = self.pending.popleft()
            log.warning(
                "%s: %s notification of %s dropped: %d notifications already queued",
                self.instance,
                self.name,
                lost.state,
                MAX_PENDING,
                extra={"instance": self.instance},
            )
        self.pending.append(event)
        # Single-threaded: a worker that is not done will still see this event, and one
        # that returned is done (no await between its last check and its end).
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._run(), name=f"notify-{self.name}")

    async def _run(self) -> None:
        while self.pending:
            event = self.pending.popleft()
            try:
                await self.handler(event)
            except Exception:  # a bug in one delivery must not stop the next ones
                log.exception(
                    "%s: %s notification of %s failed",
                    self.instance,
                    self.name,
                    event.state,
                    extra={"instance": self.instance},
                )

    @property
    def busy(self) -> bool:
        return self.worker is not None and not self.worker.done()


# --- the notifier -----------------------------------------------------------------------------


class Notifier:
    """Runs one instance's notifications; ``notify`` never blocks, raises or waits.

    ``node`` names this host in webhook events and mail subjects (default: the hostname);
    ``backoff_s`` is the first webhook retry delay, doubled after each failure;
    ``ssl_context`` verifies https webhooks (default: the system's trust store).
    """

    def __init__(
        self,
        config: NotifyConfig | None,
        *,
        instance: str,
        group: str | None = None,
        kind: str = "INSTANCE",
        node: str | None = None,
        backoff_s: float = 0.5,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.instance = instance
        self.group = group
        self.kind = kind  # "GROUP": a sync group's own notifier, `instance` its name
        self.node = node or socket.gethostname()
        self.backoff_s = backoff_s
        self.ssl_context = ssl_context
        self._previous: str | None = None
        self._closed = False
        self._fifo: int | None = None  # the notify fifo's descriptor, opened on first use
        self._extra = {"instance": instance}
        self._scripts = _Channel("script", instance, self._run_scripts)
        self._webhook = _Channel("webhook", instance, self._post_webhook)
        self._email = _Channel("email", instance, self._send_email)

    def notify(self, state: str, priority: int, reason: str) -> None:
        """Queue notifications of entering ``state``; returns at once, never raises."""
        try:
            self._notify(state, priority, reason)
        except Exception:  # the caller is the VRRP engine: nothing may reach it
            log.exception("%s: notify(%r) failed", self.instance, state, extra=self._extra)

    def _notify(self, state: str, priority: int, reason: str) -> None:
        word = normalize_state(state)
        if word is None:
            if str(state).strip().upper() not in _IGNORED:
                log.warning(
                    "%s: no notification for state %r", self.instance, state, extra=self._extra
                )
            return
        if self._closed:
            log.warning(
                "%s: %s not notified: the notifier is closed",
                self.instance,
                word,
                extra=self._extra,
            )
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            log.error("%s: notify(%s) called outside the event loop", self.instance, word)
            return
        event = Event(
            instance=self.instance,
            group=self.group,
            state=word,
            previous=self._previous,
            priority=int(priority),
            reason=str(reason),
            node=self.node,
            time=time.time(),
        )
        self._previous = word
        config = self.config
        if config is None:
            return
        if config.fifo is not None:
            self._write_fifo(config.fifo, fifo_line(self.kind, self.instance, word, priority))
        if config.all or _script_for(config, word):
            self._scripts.put(event)
        if config.webhook is not None:
            self._webhook.put(event)
        if config.email is not None and config.email.to:
            self._email.put(event)

    def _write_fifo(self, path: str, line: str) -> None:
        """keepalived's notify_fifo: one write of a whole line (atomic below PIPE_BUF, so
        writers sharing the FIFO never interleave), never waiting for the reader."""
        try:
            if self._fifo is None:
                self._fifo = open_fifo(path)
            os.write(self._fifo, line.encode())
        except BlockingIOError:
            log.warning("%s: notify fifo %s is full (no reader keeps up): %r dropped",
                        self.instance, path, line.strip(), extra=self._extra)  # fmt: skip
        except OSError as exc:
            log.error("%s: notify fifo %s: %s; %r not written", self.instance, path,
                      describe(exc), line.strip(), extra=self._extra)  # fmt: skip

    @property
    def _channels(self) -> tuple[_Channel, ...]:
        return (self._scripts, self._webhook, self._email)

    async def join(self) -> None:
        """Wait until everything queued so far has been delivered (or given up on)."""
        while busy := [c.worker for c in self._channels if c.busy and c.worker is not None]:
            await asyncio.wait(busy)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop taking events; let queued ones finish for up to ``timeout`` seconds, then
        cancel them (a running script is killed with its process group)."""
        self._closed = True
        if self._fifo is not None:
            os.close(self._fifo)
            self._fifo = None
        workers = [c.worker for c in self._channels if c.busy and c.worker is not None]
        if not workers:
            return
        _, late = await asyncio.wait(workers, timeout=max(0.0, timeout))
        if not late:
            return
        log.warning(
            "%s: notifications still running after %gs; cancelling them",
            self.instance,
            timeout,
            extra=self._extra,
        )
        for task in late:
            task.cancel()
        await asyncio.wait(late)

    # --- scripts ------------------------------------------------------------------------------

    async def _run_scripts(self, event: Event) -> None:
        config = self.config
        assert config is not None
        scripts = []
        if argv := _script_for(config, event.state):
            scripts.append(self._run_script(tuple(argv), event))
        if config.all:
            # keepalived's notify arguments: INSTANCE|GROUP, name, state, priority.
            extra_args = (self.kind, event.instance, event.state, str(event.priority))
            scripts.append(self._run_script((*config.all, *extra_args), event))
        # The state's script and the catch-all run side by side, as keepalived forks both;
        # the next event waits for both, so one instance's notifications stay in order.
        await asyncio.gather(*scripts)

    async def _run_script(self, argv: tuple[str, ...], event: Event) -> None:
        config = self.config
        assert config is not None
        timeout_s = config.timeout_cs / 100
        name = argv[0]
        env = dict(os.environ)
        env.update(
            VRRPD_INSTANCE=event.instance,
            VRRPD_STATE=event.state,
            VRRPD_PRIORITY=str(event.priority),
            VRRPD_REASON=event.reason,
            VRRPD_NODE=event.node,
        )
        if event.group is not None:
            env["VRRPD_GROUP"] = event.group
        # Our own pipes rather than asyncio's PIPE: Python 3.11's Process.wait() also waits
        # for the pipes to close, so a background child that inherited them would keep us
        # waiting long after the script itself has exited.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                env=env,
                start_new_session=True,  # its own process group, so a kill takes its children
            )
        except OSError as exc:
            os.close(out_r)
            os.close(err_r)
            why = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror or exc
            log.error(
                "%s: notify script %s for %s cannot run: %s",
                self.instance,
                name,
                event.state,
                why,
                extra=self._extra,
            )
            return
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        loop = asyncio.get_running_loop()
        start = loop.time()
        # The files are ours, not the pumps': a pump cancelled before it ever ran would
        # otherwise leak its descriptor. Closing them twice is harmless.
        pipes = [os.fdopen(out_r, "rb", buffering=0), os.fdopen(err_r, "rb", buffering=0)]
        pumps = [
            asyncio.create_task(self._pump(pipes[0], name, "stdout")),
            asyncio.create_task(self._pump(pipes[1], name, "stderr")),
        ]
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    returncode = await proc.wait()
            except TimeoutError:
                log.warning(
                    "%s: notify script %s for %s still running after %gs: killing its "
                    "process group",
                    self.instance,
                    name,
                    event.state,
                    timeout_s,
                    extra=self._extra,
                )
                _kill_group(proc)
                returncode = await proc.wait()
            # Children left behind may still hold the output open: read what they have
            # written by now, then stop listening (they are not ours to kill on success).
            await asyncio.wait(pumps, timeout=OUTPUT_GRACE_S)
        finally:
            if proc.returncode is None:  # cancelled (aclose): take the whole group down
                _kill_group(proc)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), REAP_S)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for pipe in pipes:
                pipe.close()
        elapsed = loop.time() - start
        if returncode == 0:
            log.info(
                "%s: notify script %s for %s done in %.2fs",
                self.instance,
                name,
                event.state,
                elapsed,
                extra=self._extra,
            )
        else:
            how = f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
            log.warning(
                "%s: notify script %s for %s failed (%s) after %.2fs",
                self.instance,
                name,
                event.state,
                how,
                elapsed,
                extra=self._extra,
            )

    async def _pump(self, pipe: BinaryIO, name: str, stream: str) -> None:
        """Log a script's output line by line, at most MAX_LINES lines."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        logged = suppressed = 0
        buffer = b""

        def emit(raw: bytes) -> None:
            nonlocal logged, suppressed
            if logged >= MAX_LINES:
                suppressed += 1
                return
            logged += 1
            text = raw[:MAX_LINE_BYTES].decode("utf-8", "replace").rstrip("\r")
            if len(raw) > MAX_LINE_BYTES:
                text += " [...]"
            log.info("%s: %s %s: %s", self.instance, name, stream, text, extra=self._extra)

        try:
            while chunk := await reader.read(65536):
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    emit(line)
                if len(buffer) > MAX_LINE_BYTES:  # no newline in sight: log what there is
                    emit(buffer)
                    buffer = b""
            if buffer:
                emit(buffer)
        finally:
            transport.close()
            if suppressed:
                log.info(
                    "%s: %s %s: %d more lines not logged",
                    self.instance,
                    name,
                    stream,
                    suppressed,
                    extra=self._extra,
                )

    # --- webhook ------------------------------------------------------------------------------

    async def _post_webhook(self, event: Event) -> None:
        config = self.config
        assert config is not None and config.webhook is not None
        hook = config.webhook
        try:
            scheme, host, port, target, userinfo = httpclient.split_url(hook.url)
        except ValueError as exc:
            log.error("%s: webhook not sent: %s", self.instance, exc, extra=self._extra)
            return
        shown = f"{scheme}://{httpclient.hostport(host, port)}{target.partition('?')[0]}"
        headers = {"Content-Type": "application/json"}
        if userinfo is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
        tls = (self.ssl_context or httpclient.tls_context()) if scheme == "https" else None
        body = json.dumps(event.to_json()).encode()
        timeout_s = hook.timeout_cs / 100
        attempts = 1 + max(0, hook.retries)
        delay = self.backoff_s
        for attempt in range(1, attempts + 1):
            try:
                response = await httpclient.request(
                    "POST", host, port, target, headers=headers, body=body,
                    tls=tls, timeout_s=timeout_s, read_body=False,
                )  # fmt: skip
            except TimeoutError:
                problem = f"no answer within {timeout_s:g}s"
            except httpclient.ConnectError as exc:
                problem = exc.reason  # the log line names the URL already
            except OSError as exc:
                problem = describe(exc)
            else:
                status = response.status
                if 200 <= status < 300:
                    log.info(
                        "%s: webhook %s: %s delivered (HTTP %d)",
                        self.instance,
                        shown,
                        event.state,
                        status,
                        extra=self._extra,
                    )
                    return
                if status < 500 and status not in (408, 429):
                    # The receiver refuses this request; sending it again will not help.
                    log.error(
                        "%s: webhook %s rejected %s with HTTP %d; not retrying",
                        self.instance,
                        shown,
                        event.state,
                        status,
                        extra=self._extra,
                    )
                    return
                problem = f"HTTP {status}"
            if attempt == attempts:
                log.error(
                    "%s: webhook %s: %s not delivered after %d attempts: %s",
                    self.instance,
                    shown,
                    event.state,
                    attempts,
                    problem,
                    extra=self._extra,
                )
                return
            log.warning(
                "%s: webhook %s: attempt %d/%d failed (%s); retrying in %gs",
                self.instance,
                shown,
                attempt,
                attempts,
                problem,
                delay,
                extra=self._extra,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    # --- email --------------------------------------------------------------------------------

    async def _send_email(self, event: Event) -> None:
        import aiosmtplib  # here: only a daemon that sends mail loads the client

        config = self.config
        assert config is not None and config.email is not None
        mail = config.email
        server = f"{mail.smtp_host}:{mail.smtp_port}"
        timeout_s = mail.connect_timeout_cs / 100
        try:
            refused, _ = await aiosmtplib.send(
                build_email(event, sender=mail.sender, to=mail.to),
                sender=mail.sender,
                recipients=list(mail.to),
                hostname=mail.smtp_host,
                port=mail.smtp_port,
                local_hostname=_hostname_for_helo(self.node),
                timeout=timeout_s,  # the connection and each answer
                # Plain SMTP to a relay, as keepalived's smtp_alert: a relay that offers
                # STARTTLS with a self-signed certificate (Debian's postfix does) still works.
                start_tls=False,
            )
        except aiosmtplib.SMTPTimeoutError:
            problem = f"no answer within {timeout_s:g}s"
        except aiosmtplib.SMTPRecipientsRefused as exc:
            problem = "no recipient accepted: " + "; ".join(_smtp_answer(r) for r in exc.recipients)
        except aiosmtplib.SMTPResponseException as exc:
            problem = _smtp_answer(exc)
        except aiosmtplib.SMTPException as exc:
            # A connection that failed says why in its cause ("connection refused").
            problem = describe(exc.__cause__) if exc.__cause__ is not None else str(exc)
        else:
            for recipient, (code, text) in refused.items():
                log.warning(
                    "%s: mail to %s refused: %d %s", self.instance, recipient, code, text,
                    extra=self._extra,
                )  # fmt: skip
            log.info(
                "%s: mail about %s sent through %s",
                self.instance,
                event.state,
                server,
                extra=self._extra,
            )
            return
        log.error(
            "%s: mail about %s not sent through %s: %s",
            self.instance,
            event.state,
            server,
            problem,
            extra=self._extra,
        )


def fifo_line(kind: str, name: str, state: str, priority: int) -> str:
    """keepalived's notify_fifo line (vrrp_notify.c): INSTANCE "VI_1" MASTER 100."""
    return f'{kind} "{name}" {state} {priority}\n'


def open_fifo(path: str) -> int:
    """Open the FIFO for writing without blocking, making it first if missing (as keepalived:
    mode 0644, read-write so that opening does not wait for a reader, no symlink)."""
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o644)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} exists and is not a FIFO (remove it, or pick another path)")
    return fd


def _script_for(config: NotifyConfig, state: str) -> Sequence[str]:
    argv: Sequence[str] = {
        "MASTER": config.master,
        "BACKUP": config.backup,
        "FAULT": config.fault,
        "STOP": config.stop,
    }[state]
    return argv


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    # start_new_session made the script its group's leader: its pid is the group id. Only
    # called while the script is unreaped, so the group id cannot belong to someone else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


# --- email: keepalived's smtp_alert --------------------------------------------------------


def build_email(event: Event, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """keepalived's smtp_alert, reworded: ``[node] VRRP instance X is now MASTER``."""
    shown = "STOPPED" if event.state == "STOP" else event.state
    # Names reach a header: a line break there would let them add headers of their own.
    node = " ".join(event.node.split())
    instance = " ".join(event.instance.split())
    message = EmailMessage()
    message["Subject"] = f"[{node}] VRRP instance {instance} is now {shown}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(event.time, usegmt=True)
    # make_msgid's default domain comes from socket.getfqdn(), a DNS lookup: never here.
    message["Message-ID"] = make_msgid("vrrpd", domain=_hostname_for_helo(event.node))
    was = f" (was {event.previous})" if event.previous else ""
    body = "\n".join(
        [
            f"VRRP instance {instance} on {node} is now {shown}{was}.",
            "",
            f"instance:  {instance}",
            f"group:     {event.group or '-'}",
            f"state:     {event.state}",
            f"previous:  {event.previous or '-'}",
            f"priority:  {event.priority}",
            f"reason:    {event.reason or '-'}",
            f"node:      {node}",
            f"time:      {rfc3339(event.time)}",
            "",
        ]
    )
    # 7bit when it can be: a relay without 8BITMIME would otherwise mangle the body.
    message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return message


def _hostname_for_helo(node: str) -> str:
    # EHLO wants a domain; keep only characters a hostname may have.
    name = "".join(c for c in node if c.isascii() and (c.isalnum() or c in "-."))
    return name or "localhost"


def _smtp_answer(exc: aiosmtplib.SMTPResponseException) -> str:
    text = " ".join(exc.message.split())
    return f"{exc.code} {text}" if exc.code > 0 else text  # -1: no code, not SMTP at all
