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
    SpecModel,
    argv,
    duration_between,
    email_address,
    format_duration_cs,
    host_port,
    http_url,
    list_once,
    ranged_int,
    split_host_port,
)


class WebhookSpec(SpecModel):
    """HTTP POST of a JSON event on every state change."""

    example = '{url: "http://hooks.example.test/vrrp"}'

    url: Annotated[str, BeforeValidator(http_url)]
    timeout_cs: Annotated[int, BeforeValidator(duration_between(1, WEBHOOK_TIMEOUT_MAX_CS))] = (
        Field(default=500, alias="timeout")
    )
    retries: Annotated[
        int, BeforeValidator(ranged_int(0, WEBHOOK_RETRIES_MAX, " (0: one attempt only)"))
    ] = 3

    @field_serializer("timeout_cs")
    def _duration_text(self, cs: int) -> str:
        return format_duration_cs(cs)

    def to_config(self) -> WebhookConfig:
        return WebhookConfig(url=self.url, timeout_cs=self.timeout_cs, retries=self.retries)


class EmailSpec(SpecModel):
    """E-mail on state changes: keepalived notification_email / smtp_server / smtp_alert."""

    example = "{to: [ops@example.test], from: vrrp@example.test, smtpServer: 127.0.0.1}"

    to: tuple[Annotated[str, BeforeValidator(email_address)], ...]
    sender: Annotated[str, BeforeValidator(email_address)] = Field(alias="from")
    smtp_server: Annotated[str, BeforeValidator(host_port("127.0.0.1:25"))]
    connect_timeout_cs: Annotated[
        int, BeforeValidator(duration_between(1, SMTP_CONNECT_TIMEOUT_MAX_CS))
    ] = Field(default=3000, alias="connectTimeout")

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
    tuple[str, ...],
    BeforeValidator(argv(["/usr/local/bin/notify.sh", "master"], absolute=True)),
]
_NOTIFY_HOOKS = ("master", "backup", "fault", "stop", "all", "webhook", "email")


class NotifySpec(SpecModel):
    """Notifications on state changes (keepalived notify_*): scripts, a webhook, e-mail.

    They never influence the election."""

    example = '{webhook: {url: "http://hooks.example.test/vrrp"}}'

    master: _NotifyArgv | None = None  # keepalived notify_master
    backup: _NotifyArgv | None = None
    fault: _NotifyArgv | None = None
    stop: _NotifyArgv | None = None
    all: _NotifyArgv | None = None  # keepalived notify: argv + INSTANCE name state priority
    timeout_cs: Annotated[int, BeforeValidator(duration_between(1, NOTIFY_TIMEOUT_MAX_CS))] = Field(
        default=1000, alias="timeout"
    )
    webhook: WebhookSpec | None = None
    email: EmailSpec | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _something_to_notify(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[Problem] = []
        if isinstance(data, Mapping) and all(data.get(hook) is None for hook in _NOTIFY_HOOKS):
            problems.append(
                (
                    "",
                    "nothing to notify; set at least one of master, backup, fault, stop, all "
                    '(scripts), webhook or email, e.g. {webhook: {url: "http://..."}}, or '
                    "remove notify",
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
            timeout_cs=self.timeout_cs,
            webhook=None if self.webhook is None else self.webhook.to_config(),
            email=None if self.email is None else self.email.to_config(),
        )
