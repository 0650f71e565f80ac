"""Notifications on state changes (keepalived notify_*, smtp_alert): scripts, a webhook,
e-mail. They never influence the election."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from vrrpd.config import EmailConfig, NotifyConfig, WebhookConfig
from vrrpd.limits import (
    NOTIFY_TIMEOUT_MAX_CS,
    SMTP_CONNECT_TIMEOUT_MAX_CS,
    SMTP_PORT,
    WEBHOOK_RETRIES_MAX,
    WEBHOOK_TIMEOUT_MAX_CS,
)
from vrrpd.spec.errors import Problem, validate_adding
from vrrpd.spec.fields import (
    HOST_PORT,
    AbsolutePath,
    DurationRange,
    EmailAddress,
    HttpUrl,
    IntRange,
    SpecModel,
    argv,
    format_duration_cs,
    host_port,
    list_once,
    split_host_port,
)
from vrrpd.spec.openapi import Crd, Rule


class WebhookSpec(SpecModel):
    """HTTP POST of a JSON event on every state change."""

    example = '{url: "http://hooks.example.test/vrrp"}'

    url: HttpUrl = Field(description="An http:// or https:// URL.")
    timeout_cs: Annotated[int, BeforeValidator(DurationRange(1, WEBHOOK_TIMEOUT_MAX_CS))] = Field(
        default=500,
        alias="timeout",
        description="How long one attempt may take, 10ms..5m. Default 5s.",
    )
    retries: Annotated[
        int, BeforeValidator(IntRange(0, WEBHOOK_RETRIES_MAX, " (0: one attempt only)"))
    ] = Field(
        default=3,
        description="Attempts after a failed one, 0..10 (0: one attempt only). Default 3.",
    )

    @field_serializer("timeout_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> WebhookConfig:
        return WebhookConfig(url=self.url, timeout_cs=self.timeout_cs, retries=self.retries)


class EmailSpec(SpecModel):
    """E-mail on state changes: keepalived notification_email / smtp_server / smtp_alert."""

    example = "{to: [ops@example.test], from: vrrp@example.test, smtpServer: 127.0.0.1}"

    to: Annotated[
        tuple[EmailAddress, ...], Crd(minItems=1, maxItems=16, x_kubernetes_list_type="set")
    ] = Field(description="The recipients, e.g. [ops@example.test].")
    sender: EmailAddress = Field(
        alias="from", description="The sender address, e.g. vrrp@example.test."
    )
    smtp_server: Annotated[str, BeforeValidator(host_port("127.0.0.1:25")), HOST_PORT] = Field(
        description="The SMTP server, host[:port] (port default 25), e.g. 127.0.0.1:25 or "
        "[fd00::25]:25."
    )
    connect_timeout_cs: Annotated[
        int, BeforeValidator(DurationRange(1, SMTP_CONNECT_TIMEOUT_MAX_CS))
    ] = Field(
        default=3000,
        alias="connectTimeout",
        description="How long to wait for the SMTP server (keepalived smtp_connect_timeout), "
        "10ms..5m. Default 30s.",
    )

    @field_validator("to", mode="wrap")
    @classmethod
    def _recipients(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return list_once(value, handler, "[ops@example.test]", "list at least one address")

    @field_serializer("connect_timeout_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> EmailConfig:
        host, port = split_host_port(self.smtp_server)
        return EmailConfig(
            to=self.to,
            sender=self.sender,
            smtp_host=host,
            smtp_port=SMTP_PORT if port is None else port,
            connect_timeout_cs=self.connect_timeout_cs,
        )


_NotifyArgv = Annotated[
    tuple[Annotated[str, Crd(maxLength=4096)], ...],
    BeforeValidator(argv(["/usr/local/bin/notify.sh", "master"], absolute=True)),
    Crd(
        minItems=1,
        maxItems=64,
        rules=[
            Rule(
                "size(self) == 0 || self[0].startsWith('/')",
                "the first item is the program's absolute path, e.g. /usr/local/bin/notify.sh",
            )
        ],
    ),
]
_NOTIFY_HOOKS = ("master", "backup", "fault", "stop", "all", "fifo", "webhook", "email")


class NotifySpec(SpecModel):
    """Notifications on state changes (keepalived notify_*): scripts, a webhook, e-mail.

    They never influence the election."""

    example = '{webhook: {url: "http://hooks.example.test/vrrp"}}'
    crd = Crd(
        rules=[
            Rule(
                " || ".join(f"has(self.{hook})" for hook in _NOTIFY_HOOKS),
                "nothing to notify: set at least one of master, backup, fault, stop, all "
                "(scripts), fifo, webhook or email, or remove notify",
            )
        ]
    )

    master: _NotifyArgv | None = Field(
        default=None,
        description="Run on becoming MASTER (keepalived notify_master): the program's absolute "
        "path and its arguments, one item each.",
    )
    backup: _NotifyArgv | None = Field(
        default=None, description="Run on becoming BACKUP (keepalived notify_backup); as master."
    )
    fault: _NotifyArgv | None = Field(
        default=None, description="Run on entering FAULT (keepalived notify_fault); as master."
    )
    stop: _NotifyArgv | None = Field(
        default=None,
        description="Run when the instance stops (keepalived notify_stop); as master.",
    )
    all: _NotifyArgv | None = Field(
        default=None,
        description="Run on every change (keepalived notify), with four arguments appended as "
        "keepalived does: INSTANCE (or GROUP), the instance name, the new state (MASTER, "
        "BACKUP, FAULT, STOP) and the priority.",
    )
    fifo: AbsolutePath | None = Field(
        default=None,
        description="A named pipe on the node that gets a line per change, in keepalived's "
        'notify_fifo format: INSTANCE "<instance>" <state> <priority> (the instance is '
        '<namespace>/<name>/ipv4 or ipv6; in syncGroupNotify GROUP "<namespace>/<group>" '
        "<state> 0). Made if missing (mode 0644); written without "
        "waiting, so a line is dropped while no reader keeps up. E.g. /run/vrrp/notify.fifo.",
    )
    timeout_cs: Annotated[int, BeforeValidator(DurationRange(1, NOTIFY_TIMEOUT_MAX_CS))] = Field(
        default=1000,
        alias="timeout",
        description="Scripts still running after this are killed with their process group, "
        "10ms..1h. Default 10s.",
    )
    webhook: WebhookSpec | None = Field(
        default=None, description="An HTTP POST of a JSON event on every state change."
    )
    email: EmailSpec | None = Field(
        default=None,
        description="E-mail on state changes (keepalived notification_email, "
        "notification_email_from, smtp_server, smtp_connect_timeout).",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _something_to_notify(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[Problem] = []
        if isinstance(data, Mapping) and all(data.get(hook) is None for hook in _NOTIFY_HOOKS):
            problems.append(
                (
                    "",
                    "nothing to notify; set at least one of master, backup, fault, stop, all "
                    '(scripts), fifo, webhook or email, e.g. {webhook: {url: "http://..."}}, '
                    "or remove notify",
                )
            )
        return validate_adding(handler, data, problems)

    @field_serializer("timeout_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> NotifyConfig:
        return NotifyConfig(
            master=self.master or (),
            backup=self.backup or (),
            fault=self.fault or (),
            stop=self.stop or (),
            all=self.all or (),
            fifo=self.fifo,
            timeout_cs=self.timeout_cs,
            webhook=None if self.webhook is None else self.webhook.to_config(),
            email=None if self.email is None else self.email.to_config(),
        )
