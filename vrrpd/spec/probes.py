"""Health probes (keepalived vrrp_script + track_script): one check each, and its timing."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from vrrpd.config import (
    ExecCheck,
    FileCheck,
    HttpCheck,
    IcmpCheck,
    InterfaceCheck,
    ProbeConfig,
    TcpCheck,
)
from vrrpd.limits import (
    HTTP_STATUS_MAX,
    HTTP_STATUS_MIN,
    PORT_MAX,
    PORT_MIN,
    PROBE_INTERVAL_MAX_CS,
    PROBE_RISE_FALL_MAX,
    PROBE_WEIGHT_MAX,
)
from vrrpd.spec.errors import Problem, fail, show, validate_adding
from vrrpd.spec.fields import (
    SpecModel,
    absolute_path,
    argv,
    as_string,
    dns_label,
    duration_between,
    enum_value,
    environment,
    format_duration_cs,
    host_port,
    interface_name,
    ip_or_dns_name,
    list_once,
    ranged_int,
    sha256_hex,
)


class HttpScheme(StrEnum):
    HTTP = "http"
    HTTPS = "https"


class ExecCheckSpec(SpecModel):
    """Run a command (argv, no shell): exit status 0 is success. keepalived vrrp_script."""

    command: Annotated[
        tuple[str, ...],
        BeforeValidator(argv(["/usr/local/bin/check", "arg"], absolute=False)),
    ]
    env: Annotated[dict[str, str], BeforeValidator(environment)] = Field(default_factory=dict)

    def to_config(self) -> ExecCheck:
        return ExecCheck(command=self.command, env=tuple(sorted(self.env.items())))


class TcpCheckSpec(SpecModel):
    """Open a TCP connection: connected within the timeout is success."""

    host: Annotated[str, BeforeValidator(ip_or_dns_name)] = "127.0.0.1"
    port: Annotated[int, BeforeValidator(ranged_int(PORT_MIN, PORT_MAX))]

    def to_config(self) -> TcpCheck:
        return TcpCheck(host=self.host, port=self.port)


class HttpCheckSpec(SpecModel):
    """GET a URL: an expected status (and body, when asked) within the timeout is success."""

    scheme: Annotated[HttpScheme, BeforeValidator(enum_value(HttpScheme, "an HTTP scheme"))] = (
        HttpScheme.HTTP
    )
    host: Annotated[str, BeforeValidator(ip_or_dns_name)] = "127.0.0.1"
    port: Annotated[int, BeforeValidator(ranged_int(PORT_MIN, PORT_MAX))] | None = None
    path: str = "/"
    host_header: Annotated[str, BeforeValidator(host_port("example.test:8443"))] | None = None
    expect_status: tuple[
        Annotated[
            int,
            BeforeValidator(ranged_int(HTTP_STATUS_MIN, HTTP_STATUS_MAX, " (an HTTP status code)")),
        ],
        ...,
    ] = (200,)
    body_contains: str | None = None
    body_sha256: Annotated[str, BeforeValidator(sha256_hex)] | None = None
    insecure_skip_verify: StrictBool = False

    @field_validator("path", mode="before")
    @classmethod
    def _request_path(cls, value: Any) -> str:
        text = as_string(value, '"/healthz"')
        if not text.startswith("/"):
            raise fail(f"{show(text)} does not start with /; e.g. /{text.lstrip('/')}")
        if any(c.isspace() or not c.isprintable() for c in text):
            raise fail(f"{show(text)} contains spaces or control characters; percent-encode them")
        return text

    @field_validator("expect_status", mode="wrap")
    @classmethod
    def _status_list(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return list_once(value, handler, "[200]", "list the codes that mean healthy")

    @field_validator("body_contains", mode="before")
    @classmethod
    def _body_text(cls, value: Any) -> str:
        text = as_string(value, '"ok"')
        if not text:
            raise fail("is empty, which every body contains; remove it to accept any body")
        return text

    @field_validator("insecure_skip_verify")
    @classmethod
    def _tls_only(cls, skip: bool, info: ValidationInfo) -> bool:
        scheme = info.data.get("scheme")
        if skip and scheme is HttpScheme.HTTP:
            raise fail(
                "only applies to scheme: https (scheme is http); remove it or set scheme: https"
            )
        return skip

    def to_config(self) -> HttpCheck:
        default_port = 443 if self.scheme is HttpScheme.HTTPS else 80
        return HttpCheck(
            scheme=self.scheme.value,
            host=self.host,
            port=default_port if self.port is None else self.port,
            path=self.path,
            host_header=self.host_header,
            expect_status=self.expect_status,
            body_contains=self.body_contains,
            body_sha256=self.body_sha256,
            verify_tls=not self.insecure_skip_verify,
        )


class IcmpCheckSpec(SpecModel):
    """Ping a host (ICMP / ICMPv6 echo): a reply within the timeout is success."""

    host: Annotated[str, BeforeValidator(ip_or_dns_name)]

    def to_config(self) -> IcmpCheck:
        return IcmpCheck(host=self.host)


class FileCheckSpec(SpecModel):
    """keepalived track_file: the file holds a number; 0 is success."""

    path: Annotated[str, BeforeValidator(absolute_path)]

    def to_config(self) -> FileCheck:
        return FileCheck(path=self.path)


class InterfaceCheckSpec(SpecModel):
    """A network interface's link: up (operationally) is success."""

    name: Annotated[str, BeforeValidator(interface_name)]

    def to_config(self) -> InterfaceCheck:
        return InterfaceCheck(name=self.name)


CheckSpec = (
    ExecCheckSpec
    | TcpCheckSpec
    | HttpCheckSpec
    | IcmpCheckSpec
    | FileCheckSpec
    | InterfaceCheckSpec
)
_CHECK_KINDS = ("exec", "tcp", "http", "icmp", "file", "interface")


class ProbeSpec(SpecModel):
    """A health probe (keepalived vrrp_script + track_script): one check, run every interval;
    rise successes / fall failures in a row change its state, and its weight what that does
    to the priority."""

    name: Annotated[str, BeforeValidator(lambda v: dns_label(v, "haproxy"))]
    exec: ExecCheckSpec | None = None
    tcp: TcpCheckSpec | None = None
    http: HttpCheckSpec | None = None
    icmp: IcmpCheckSpec | None = None
    file: FileCheckSpec | None = None
    interface: InterfaceCheckSpec | None = None
    interval_cs: Annotated[int, BeforeValidator(duration_between(1, PROBE_INTERVAL_MAX_CS))] = (
        Field(default=100, alias="interval")
    )
    timeout_cs: int | None = Field(default=None, alias="timeout")  # None: the interval
    rise: Annotated[int, BeforeValidator(ranged_int(1, PROBE_RISE_FALL_MAX))] = 1
    fall: Annotated[int, BeforeValidator(ranged_int(1, PROBE_RISE_FALL_MAX))] = 1
    weight: Annotated[
        int,
        BeforeValidator(
            ranged_int(
                -PROBE_WEIGHT_MAX, PROBE_WEIGHT_MAX, " (0, the default: failing means FAULT)"
            )
        ),
    ] = 0

    @model_validator(mode="wrap")
    @classmethod
    def _one_check(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[Problem] = []
        if isinstance(data, Mapping):
            given = [kind for kind in _CHECK_KINDS if data.get(kind) is not None]
            if not given:
                problems.append(
                    (
                        "",
                        "set one check: exec, tcp, http, icmp, file or interface, e.g. "
                        "{name: haproxy, tcp: {port: 443}}",
                    )
                )
            elif len(given) > 1:
                problems.append(
                    (
                        "",
                        f"has {' and '.join(given)}; a probe runs exactly one check: make one "
                        "probe per check, each with its own name",
                    )
                )
        return validate_adding(handler, data, problems)

    @field_validator("timeout_cs", mode="before")
    @classmethod
    def _timeout_within_interval(cls, value: Any, info: ValidationInfo) -> int:
        cs = duration_between(1, PROBE_INTERVAL_MAX_CS)(value)
        interval = info.data.get("interval_cs")  # absent when interval itself is invalid
        if interval is not None and cs > interval:
            raise fail(
                f"{show(value)} is longer than the interval ({format_duration_cs(interval)}); "
                "a check must end before the next one starts: use a timeout <= interval "
                "(default: the interval)"
            )
        return cs

    @field_serializer("interval_cs", "timeout_cs")
    def _duration_text(self, cs: int | None) -> str | None:
        return None if cs is None else format_duration_cs(cs)

    @property
    def check(self) -> CheckSpec:
        """The one check this probe runs."""
        found = self.exec or self.tcp or self.http or self.icmp or self.file or self.interface
        assert found is not None  # _one_check
        return found

    def to_config(self) -> ProbeConfig:
        return ProbeConfig(
            name=self.name,
            check=self.check.to_config(),
            interval_cs=self.interval_cs,
            timeout_cs=self.interval_cs if self.timeout_cs is None else self.timeout_cs,
            rise=self.rise,
            fall=self.fall,
            weight=self.weight,
        )
