"""Kube I/O: the only module that talks to the API server, with plain dicts in and out.

A thin asyncio facade over the official client's ApiClient (it owns TLS, the service
account token and its refresh, kubeconfig). Requests go through the generic serializer,
not the typed API classes: the operator's objects are dicts from `manifests`, and typed
models would only be converted back. The client is synchronous, so each request runs in a
worker thread; the event loop (kopf's) never blocks on the network.

Patches are JSON merge patches (RFC 7386) for every kind: one semantics everywhere (null
deletes a key), which the real API server and kmock both implement.

Every write names its field manager, kube-vrrp-operator: `managedFields` (and the conflict a
user's server-side apply of a daemon object meets) then say who owns what, where the
client's default would say "OpenAPI-Generator". The User-Agent says the same to audit logs.

Two failures, two exceptions: the server answered with an error status (`ApiError`, with
it), or it did not answer at all (`ApiUnreachable`: down, restarting, a broken connection;
the client's own urllib3 errors, which are no OSError, become this ConnectionError).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_S = 30.0
FIELD_MANAGER = "kube-vrrp-operator"


@dataclass(frozen=True, slots=True)
class Kind:
    api_version: str  # "v1" or "group/version"
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


KINDS: Mapping[str, Kind] = {
    "ConfigMap": Kind("v1", "configmaps"),
    "Secret": Kind("v1", "secrets"),
    "Pod": Kind("v1", "pods"),
    "Service": Kind("v1", "services"),
    "Node": Kind("v1", "nodes", namespaced=False),
    "Namespace": Kind("v1", "namespaces", namespaced=False),
    "VirtualIP": Kind("kubevrrp.io/v1alpha1", "virtualips"),
    "VirtualIPPool": Kind("kubevrrp.io/v1alpha1", "virtualippools", namespaced=False),
}


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


class ApiUnreachable(ConnectionError):
    """No answer from the API server; retrying later is all there is to do."""


class KubeClient:
    def __init__(self, api: Any) -> None:
        self.api = api  # kubernetes.client.ApiClient
        api.user_agent = FIELD_MANAGER

    @classmethod
    def for_host(cls, host: str) -> KubeClient:
        """A client for a plain-HTTP API server without credentials (tests, kmock)."""
        config = k8s.Configuration(host=host)
        return cls(k8s.ApiClient(config))

    @classmethod
    def default(cls) -> KubeClient:
        """In-cluster service account, else the kubeconfig (as kopf's own login does)."""
        from kubernetes import config as k8s_config

        try:
            k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(k8s.ApiClient())

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.api.param_serialize(
            method,
            path,
            query_params=list(query.items()) if query else None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT_S)
            data = response.read()
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc  # MaxRetryError: the last failure
            raise ApiUnreachable(f"{method} {path}: {reason}") from exc
        if response.status >= 400:
            try:
                message = json.loads(data).get("message", "")
            except (ValueError, AttributeError):
                message = data[:200].decode(errors="replace") if data else ""
            raise ApiError(response.status, method, path, str(message))
        return json.loads(data) if data else None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        return await asyncio.to_thread(self._call, method, path, query, body, content_type)

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", KINDS[kind].path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def list(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", KINDS[kind].path(namespace), query=query)
        return list((result or {}).get("items") or [])

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind = KINDS[str(obj["kind"])]
        namespace = obj["metadata"].get("namespace")
        result: dict[str, Any] = await self.request(
            "POST", kind.path(namespace), query={"fieldManager": FIELD_MANAGER}, body=dict(obj)
        )
        return result

    async def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        path = KINDS[kind].path(namespace, name, subresource)
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            query={"fieldManager": FIELD_MANAGER},
            body=dict(patch),
            content_type=MERGE_PATCH,
        )
        return result

    async def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """False when it was already gone."""
        try:
            await self.request("DELETE", KINDS[kind].path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True
