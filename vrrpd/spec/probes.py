"""Health probes (keepalived vrrp_script + track_script): one check each, and its timing.

`PROBE_KINDS` is the registry of the kinds of check, one entry each: its field in a probe,
its spec (what is written) and its config (what the daemon runs). A probe's fields, the
"set one check" messages and the CRD's probe schema are made from it; the daemon's
runners are registered per config class (`vrrpd.probes.runners.runner`), and a test
keeps the three in step. Adding a kind: its spec and config here and in vrrpd.config, an
entry, a runner, tests, and `make crds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    Check,
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


class CheckSpec(SpecModel):
    """What a probe checks, as written: one subclass per kind of check."""

    def to_config(self) -> Check:
        raise NotImplementedError


class ExecCheckSpec(CheckSpec):
    """Run a command (argv, no shell): exit status 0 is success. keepalived vrrp_script."""

    example = '{command: ["/usr/local/bin/check"]}'

    command: Annotated[
        tuple[str, ...],
        BeforeValidator(argv(["/usr/local/bin/check", "arg"], absolute=False)),
    ]
    env: Annotated[dict[str, str], BeforeValidator(environment)] = Field(default_factory=dict)

    def to_config(self) -> ExecCheck:
        return ExecCheck(command=self.command, env=tuple(sorted(self.env.items())))


class TcpCheckSpec(CheckSpec):
    """Open a TCP connection: connected within the timeout is success."""

    example = "{port: 443}"

    host: Annotated[str, BeforeValidator(ip_or_dns_name)] = "127.0.0.1"
    port: Annotated[int, BeforeValidator(ranged_int(PORT_MIN, PORT_MAX))]

    def to_config(self) -> TcpCheck:
        return TcpCheck(host=self.host, port=self.port)


class HttpCheckSpec(CheckSpec):
    """GET a URL: an expected status (and body, when asked) within the timeout is success."""

    example = "{port: 8080, path: /healthz}"

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


class IcmpCheckSpec(CheckSpec):
    """Ping a host (ICMP / ICMPv6 echo): a reply within the timeout is success."""

    example = "{host: 192.168.77.1}"

    host: Annotated[str, BeforeValidator(ip_or_dns_name)]

    def to_config(self) -> IcmpCheck:
        return IcmpCheck(host=self.host)


class FileCheckSpec(CheckSpec):
    """keepalived track_file: the file holds a number; 0 is success."""

    example = "{path: /run/vrrp/maintenance}"

    path: Annotated[str, BeforeValidator(absolute_path)]

    def to_config(self) -> FileCheck:
        return FileCheck(path=self.path)


class InterfaceCheckSpec(CheckSpec):
    """A network interface's link: up (operationally) is success."""

    example = "{name: eth1}"

    name: Annotated[str, BeforeValidator(interface_name)]

    def to_config(self) -> InterfaceCheck:
        return InterfaceCheck(name=self.name)


@dataclass(frozen=True)
class ProbeKind:
    """One kind of check: its field in a probe, what is written there, what the daemon runs."""

    name: str
    spec: type[CheckSpec]
    config: type[Check]


PROBE_KINDS = (
    ProbeKind("exec", ExecCheckSpec, ExecCheck),
    ProbeKind("tcp", TcpCheckSpec, TcpCheck),
    ProbeKind("http", HttpCheckSpec, HttpCheck),
    ProbeKind("icmp", IcmpCheckSpec, IcmpCheck),
    ProbeKind("file", FileCheckSpec, FileCheck),
    ProbeKind("interface", InterfaceCheckSpec, InterfaceCheck),
)
_KIND_NAMES = [kind.name for kind in PROBE_KINDS]
_ONE_OF_THE_KINDS = ", ".join(_KIND_NAMES[:-1]) + " or " + _KIND_NAMES[-1]


class ProbeSpec(SpecModel):
    """A health probe (keepalived vrrp_script + track_script): one check, run every interval;
    rise successes / fall failures in a row change its state, and its weight what that does
    to the priority."""

    name: Annotated[str, BeforeValidator(lambda v: dns_label(v, "haproxy"))]
    # exec: ExecCheckSpec | None = None, tcp: ...: one optional field per kind of check.
    __annotations__.update({kind.name: kind.spec | None for kind in PROBE_KINDS})
    locals().update(dict.fromkeys(_KIND_NAMES))
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
            given = [kind for kind in _KIND_NAMES if data.get(kind) is not None]
            if not given:
                problems.append(
                    (
                        "",
                        f"set one check: {_ONE_OF_THE_KINDS}, e.g. "
                        f"{{name: haproxy, tcp: {TcpCheckSpec.example}}}",
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
        found: CheckSpec = next(c for k in _KIND_NAMES if (c := getattr(self, k)) is not None)
        return found  # _one_check made sure there is one

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
