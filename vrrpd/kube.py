"""Cluster mode: the configuration comes from the node's ConfigMap, the state goes on the pod.

The operator renders one ConfigMap per node (key virtualips.yaml: standalone VirtualIP
documents whose passwords are secretRefs into the node's Secret, mounted as files). The
daemon polls it through the API, applies only the difference, and keeps the last good copy
on the host, so neither an API-server outage nor a restart during one stops VRRP. It
reports its instances in its own pod's kubevrrp.io/status annotation (docs/operator.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from vrrpd import httpclient
from vrrpd.model import (
    ConfigError,
    InstanceConfig,
    _parse_yaml,  # the loader standalone files use: same errors, duplicate keys refused
    instances_for_node,
    load_manifests,
)

log = logging.getLogger("vrrpd")

CONFIG_KEY = "virtualips.yaml"
STATUS_ANNOTATION = "kubevrrp.io/status"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LAST_GOOD = "virtualips.yaml"
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")  # what Kubernetes allows: no path separators


class ApiError(Exception):
    """The API server could not be asked or refused; the message says which."""


@dataclass(frozen=True)
class ApiServer:
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    token_file: str | None = None  # re-read on every request: projected tokens rotate

    @classmethod
    def from_url(
        cls, url: str, *, token_file: str | None = None, ca_file: str | None = None
    ) -> ApiServer:
        try:
            scheme, host, port, _, _ = httpclient.split_url(url)
        except ValueError as exc:
            raise ApiError(f"--kube-api {url!r}: {exc}") from None
        tls = httpclient.tls_context(ca_file=ca_file) if scheme == "https" else None
        return cls(host, port, tls, token_file)

    @classmethod
    def in_cluster(cls) -> ApiServer:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ApiError("not in a pod (KUBERNETES_SERVICE_HOST unset): give --kube-api URL")
        return cls(
            host,
            int(port),
            httpclient.tls_context(ca_file=str(SERVICE_ACCOUNT / "ca.crt")),
            str(SERVICE_ACCOUNT / "token"),
        )

    async def call(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:  # a projected token mid-rotation
                raise ApiError(f"{method} {path}: token {self.token_file}: {exc}") from None
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            response = await httpclient.request(
                method, self.host, self.port, path, headers=headers, body=data,
                tls=self.tls, timeout_s=5.0, max_body_bytes=8 << 20,
            )  # fmt: skip
        except OSError as exc:
            raise ApiError(f"{method} {path}: {httpclient.describe(exc)}") from None
        try:
            document = json.loads(response.body) if response.body else None
        except ValueError:
            document = None
        return response.status, document


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


class KubeConfig:
    """The node's ConfigMap, its Secret's files and the last good copy on the host."""

    def __init__(
        self,
        api: ApiServer,
        *,
        node: str,
        namespace: str,
        configmap: str,
        pod: str | None,
        secrets_dir: str,
        state_dir: str,
    ) -> None:
        self.api = api
        self.node = node
        self.namespace = namespace
        self.configmap = configmap
        self.pod = pod
        self.secrets_dir = Path(secrets_dir)
        self.state_dir = Path(state_dir)
        self.applied: str | None = None  # the text running now
        self.error: str | None = None  # why the newest text was refused
        self._reported: str | None = None

    @property
    def applied_hash(self) -> str | None:
        if self.applied is None:
            return None
        return "sha256:" + hashlib.sha256(self.applied.encode()).hexdigest()

    async def fetch(self) -> str | None:
        """The ConfigMap's text; None when it does not exist (yet). Raises ApiError."""
        path = f"/api/v1/namespaces/{self.namespace}/configmaps/{self.configmap}"
        status, document = await self.api.call("GET", path)
        if status == 404:
            return None
        if status != 200 or not isinstance(document, Mapping):
            raise ApiError(f"GET {path}: HTTP {status}")
        data = document.get("data") or {}
        text = data.get(CONFIG_KEY)
        if not isinstance(text, str):
            raise ApiError(f"ConfigMap {self.configmap} has no {CONFIG_KEY}")
        return text

    def parse(self, text: str) -> list[InstanceConfig]:
        """Validate a rendered configuration, resolving secretRefs from the mounted Secret.

        Raises ConfigError for anything wrong with the text (YAML syntax, documents of the
        wrong shape, unreadable secrets): the caller keeps the running configuration.
        """
        source = f"ConfigMap {self.configmap}"
        documents = [d for d in _parse_yaml(text, source) if d is not None]
        problems: list[str] = []
        for doc in documents:
            spec = doc.get("spec") if isinstance(doc, dict) else None
            auth = spec.get("authentication") if isinstance(spec, dict) else None
            ref = auth.get("secretRef") if isinstance(auth, dict) else None
            if not isinstance(ref, Mapping):
                continue  # no secretRef, or a shape the validation below reports
            assert isinstance(doc, dict) and isinstance(spec, dict)
            meta = doc.get("metadata")
            name = meta.get("name") if isinstance(meta, dict) else None
            key = ref.get("key")
            if not isinstance(key, str) or not _SECRET_KEY.fullmatch(key) or key in (".", ".."):
                problems.append(
                    f"{name}: authentication.secretRef.key {key!r} is not a Secret key "
                    "(letters, digits, '-', '_', '.')"
                )
                continue
            key_file = self.secrets_dir / key
            try:
                password = key_file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                problems.append(
                    f"{name}: authentication.secretRef {dict(ref)}: cannot read {key_file}: {why}"
                )
                continue
            spec["authentication"] = {"password": password}
        if problems:
            raise ConfigError(problems)
        rendered = yaml.safe_dump_all(documents, sort_keys=False)
        return instances_for_node(load_manifests(rendered, source=source), self.node)

    def last_good(self) -> str | None:
        try:
            return (self.state_dir / LAST_GOOD).read_text()
        except OSError:
            return None

    def keep(self, text: str) -> None:
        """Write the applied text atomically: a crash mid-write must not lose the last copy."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.state_dir / f".{LAST_GOOD}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.state_dir / LAST_GOOD)
        except OSError as exc:
            log.warning("cannot keep the configuration in %s: %s", self.state_dir, exc)

    async def report(self, status: Mapping[str, Any], healthy: Mapping[str, bool]) -> None:
        """Patch the pod's status annotation when what it says has changed."""
        if self.pod is None:
            return
        rows = []
        for row in status.get("instances", []):
            rows.append({
                "name": row["name"], "vrid": row["vrid"], "state": row["state"],
                "priority": row["priority"], "effectivePriority": row["effectivePriority"],
                "healthy": healthy.get(row["name"], row["state"] != "FAULT"),
                "since": _iso(row["since"]), "reason": row["reason"], "master": row["master"],
            })  # fmt: skip
        document = {
            "node": self.node,
            "configHash": self.applied_hash,
            "configError": self.error,
            "instances": rows,
        }
        text = json.dumps(document, sort_keys=True)
        if text == self._reported:
            return
        body = {"metadata": {"annotations": {STATUS_ANNOTATION: json.dumps(
            {**document, "updated": _iso(datetime.now(UTC).timestamp())}
        )}}}  # fmt: skip
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}"
        code, _ = await self.api.call(
            "PATCH", path, body, content_type="application/merge-patch+json"
        )
        if code not in (200, 201):
            raise ApiError(f"PATCH {path}: HTTP {code}")
        self._reported = text
