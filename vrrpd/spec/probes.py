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
    PROBE_INTERVAL_MAX_CS,
    PROBE_RISE_FALL_MAX,
    PROBE_WEIGHT_MAX,
)
from vrrpd.spec.errors import Problem, fail, show, validate_adding
from vrrpd.spec.fields import (
    DNS_LABEL,
    DURATION_PATTERN,
    HOST_PORT,
    AbsolutePath,
    DurationRange,
    Host,
    InterfaceName,
    IntRange,
    Port,
    Sha256Hex,
    SpecModel,
    argv,
    as_string,
    dns_label,
    enum_value,
    environment,
    format_duration_cs,
    host_port,
    list_once,
)
from vrrpd.spec.openapi import Crd, Rule


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
    crd = Crd(
        description="Run a command in the vrrpd container (no shell); exit status 0 is success "
        "(keepalived vrrp_script). In a cluster the program must exist in the daemon's image "
        "or a host path it mounts."
    )

    command: Annotated[
        tuple[Annotated[str, Crd(maxLength=4096)], ...],
        BeforeValidator(argv(["/usr/local/bin/check", "arg"], absolute=False)),
        Crd(
            minItems=1,
            maxItems=64,
            rules=[
                Rule(
                    "size(self) == 0 || self[0].size() > 0",
                    "the first item is the program and cannot be empty",
                )
            ],
        ),
    ] = Field(
        description="The program and its arguments, one item each, e.g. "
        "[/usr/local/bin/check, arg]; a relative program is looked up in PATH."
    )
    env: Annotated[
        dict[str, Annotated[str, Crd(maxLength=4096)]],
        BeforeValidator(environment),
        Crd(maxProperties=64),
    ] = Field(
        default_factory=dict,
        description="Environment variables added to the daemon's environment for the command "
        "({NAME: value}).",
    )

    def to_config(self) -> ExecCheck:
        return ExecCheck(command=self.command, env=tuple(sorted(self.env.items())))


class TcpCheckSpec(CheckSpec):
    """Open a TCP connection: connected within the timeout is success."""

    example = "{port: 443}"
    crd = Crd(
        description="Open a TCP connection; connected within the timeout is success "
        "(keepalived TCP_CHECK)."
    )

    host: Host = Field(
        default="127.0.0.1",
        description="An IP address or a DNS name. Default 127.0.0.1 (the node: the daemon "
        "runs on the host network).",
    )
    port: Port = Field(description="The TCP port, 1..65535.")

    def to_config(self) -> TcpCheck:
        return TcpCheck(host=self.host, port=self.port)


class HttpCheckSpec(CheckSpec):
    """GET a URL: an expected status (and body, when asked) within the timeout is success."""

    example = "{port: 8080, path: /healthz}"
    crd = Crd(
        description="GET a URL; an expected status (and body, when asked) within the timeout "
        "is success (keepalived HTTP_GET / SSL_GET).",
        rules=[
            Rule(
                "!self.insecureSkipVerify || self.scheme == 'https'",
                "insecureSkipVerify only applies to scheme: https; remove it or set scheme: https",
                field_path=".insecureSkipVerify",
            )
        ],
    )

    scheme: Annotated[HttpScheme, BeforeValidator(enum_value(HttpScheme, "an HTTP scheme"))] = (
        Field(default=HttpScheme.HTTP, description="http (the default) or https.")
    )
    host: Host = Field(
        default="127.0.0.1", description="An IP address or a DNS name. Default 127.0.0.1."
    )
    port: Port | None = Field(
        default=None, description="The port, 1..65535. Default 80 for http, 443 for https."
    )
    path: Annotated[str, Crd(maxLength=2048, pattern=r"^/\S*$")] = Field(
        default="/", description="The request path, starting with /. Default /."
    )
    host_header: (
        Annotated[str, BeforeValidator(host_port("example.test:8443")), HOST_PORT] | None
    ) = Field(
        default=None,
        description="The Host header (and TLS server name), host[:port]. Default: "
        "host[:port] of the request.",
    )
    expect_status: Annotated[
        tuple[
            Annotated[
                int,
                BeforeValidator(
                    IntRange(HTTP_STATUS_MIN, HTTP_STATUS_MAX, " (an HTTP status code)")
                ),
            ],
            ...,
        ],
        Crd(minItems=1, maxItems=16, x_kubernetes_list_type="set"),
    ] = Field(
        default=(200,),
        description="The status codes that mean healthy, 100..599. Default [200].",
    )
    body_contains: Annotated[str, Crd(minLength=1, maxLength=1024)] | None = Field(
        default=None, description="Healthy only if the body contains this text."
    )
    body_sha256: Sha256Hex | None = Field(
        default=None,
        description="Healthy only if the SHA-256 digest of the whole body is this, 64 hex "
        "digits (as sha256sum prints them).",
    )
    insecure_skip_verify: StrictBool = Field(
        default=False,
        description="With https: do not verify the server's certificate. Default false.",
    )

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
    crd = Crd(
        description="Ping a host (ICMP / ICMPv6 echo); a reply within the timeout is success, "
        "e.g. the default gateway."
    )

    host: Host = Field(description="An IP address or a DNS name.")

    def to_config(self) -> IcmpCheck:
        return IcmpCheck(host=self.host)


class FileCheckSpec(CheckSpec):
    """keepalived track_file: the number in the file times the probe's weight."""

    example = "{path: /run/vrrp/maintenance}"
    crd = Crd(
        description="Read a number from a file on the node, every interval (keepalived "
        "track_file). The number times the probe's weight is added to the priority (the product "
        "held to -254..253; -254 puts the instance in FAULT); with weight 0 any number but 0 "
        "is FAULT, so an operator drains a node by writing 1. A missing file or one without a "
        "number reads as 0; a number out of the 32-bit range is ignored. No rise or fall: "
        "each number read counts at once."
    )

    path: AbsolutePath = Field(description="The file's absolute path, e.g. /run/vrrp/maintenance.")

    def to_config(self) -> FileCheck:
        return FileCheck(path=self.path)


class InterfaceCheckSpec(CheckSpec):
    """A network interface's link: up (operationally) is success."""

    example = "{name: eth1}"
    crd = Crd(
        description="A network interface's link: operationally up is success (as "
        "trackInterfaces, but with rise, fall and weight)."
    )

    name: InterfaceName = Field(description="The interface name, e.g. eth1.")

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
_PROBE_TIMEOUT = DurationRange(1, PROBE_INTERVAL_MAX_CS, example="1s")


class ProbeSpec(SpecModel):
    """A health probe (keepalived vrrp_script + track_script): one check, run every interval;
    rise successes / fall failures in a row change its state, and its weight what that does
    to the priority."""

    crd = Crd(
        description=f"One probe: a name, exactly one check ({_ONE_OF_THE_KINDS}) and its timing.",
        rules=[
            Rule(
                " + ".join(f"(has(self.{kind}) ? 1 : 0)" for kind in _KIND_NAMES) + " == 1",
                f"a probe runs exactly one check: set one of {_ONE_OF_THE_KINDS} (make one "
                "probe per check)",
            ),
            Rule(
                "!has(self.file) || ((!has(self.rise) || self.rise == 1) && "
                "(!has(self.fall) || self.fall == 1))",
                "a file probe takes each number it reads at once (keepalived track_file has no "
                "rise or fall): remove rise and fall",
            ),
            Rule(
                f"!has(self.timeout) || !self.timeout.matches('{DURATION_PATTERN}') || "
                f"!self.interval.matches('{DURATION_PATTERN}') || "
                "duration(self.timeout) <= duration(self.interval)",
                "timeout must not exceed interval: a check must end before the next one starts",
                field_path=".timeout",
            ),
        ],
    )

    name: Annotated[str, BeforeValidator(lambda v: dns_label(v, "haproxy")), DNS_LABEL] = Field(
        description="The probe's name, unique in this VirtualIP (a DNS-1123 label, e.g. "
        "haproxy); shown in status and Events."
    )
    # exec: ExecCheckSpec | None = None, tcp: ...: one optional field per kind of check,
    # described by the kind's own Crd.
    __annotations__.update({kind.name: kind.spec | None for kind in PROBE_KINDS})
    locals().update(dict.fromkeys(_KIND_NAMES))
    interval_cs: Annotated[
        int, BeforeValidator(DurationRange(1, PROBE_INTERVAL_MAX_CS, example="2s"))
    ] = Field(
        default=100,
        alias="interval",
        description="How often the check runs (keepalived vrrp_script interval), a duration of "
        "10ms..1h in 10 ms steps. Default 1s.",
    )
    timeout_cs: Annotated[int, _PROBE_TIMEOUT] | None = Field(  # None: the interval
        default=None,
        alias="timeout",
        description="How long one check may take before it counts as a failure (keepalived "
        "vrrp_script timeout), 10ms..1h in 10 ms steps and at most interval. Default: the "
        "interval.",
    )
    rise: Annotated[int, BeforeValidator(IntRange(1, PROBE_RISE_FALL_MAX))] = Field(
        default=1,
        description="Successes in a row that make a failing probe healthy (keepalived rise), "
        "1..255. Default 1.",
    )
    fall: Annotated[int, BeforeValidator(IntRange(1, PROBE_RISE_FALL_MAX))] = Field(
        default=1,
        description="Failures in a row that make a healthy probe fail (keepalived fall), "
        "1..255. Default 1.",
    )
    weight: Annotated[
        int,
        BeforeValidator(
            IntRange(-PROBE_WEIGHT_MAX, PROBE_WEIGHT_MAX, " (0, the default: failing means FAULT)")
        ),
    ] = Field(
        default=0,
        description="What the probe does to the priority (keepalived weight), -254..254. 0 "
        "(the default): failing puts the instance in FAULT. Positive: added while the probe "
        "succeeds. Negative: subtracted while it fails. A file probe: times the number read "
        "(keepalived track_file). The effective priority stays within 1..254.",
    )

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
            if data.get("file") is not None:
                problems.extend(
                    (
                        f".{counter}",
                        f"{show(data[counter])}: a file probe takes each number it reads at "
                        "once (keepalived track_file has no rise or fall); remove "
                        f"{counter}, or use 1",
                    )
                    for counter in ("rise", "fall")
                    if isinstance(data.get(counter), int) and data[counter] != 1
                )
        return validate_adding(handler, data, problems)

    @field_validator("timeout_cs", mode="before")
    @classmethod
    def _timeout_within_interval(cls, value: Any, info: ValidationInfo) -> int:
        cs = _PROBE_TIMEOUT(value)
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
