"""Cluster mode: the configuration comes from the node's ConfigMap, the state goes on the pod.

The operator renders one ConfigMap per node (key virtualips.yaml: standalone VirtualIP
documents whose passwords are secretRefs into the node's Secret, mounted as files). The
daemon lists it once, then watches it (resourceVersion, bookmarks; a relist after 410 Gone,
backoff on errors) through the official kubernetes client in a thread of its own, so VRRP
never waits on the API server. Each document is applied on its own merits: a bad one is
reported, the others run (`select`). What runs is also kept on the host, and a daemon that
starts while the API server is unreachable starts from it. The state goes into the pod's
kubevrrp.io/status annotation (docs/operator.md), patched only when something a reader
cares about changed, at most once a second. Everything here is imported in --kube mode
only, and of the client only what is used (`import_client_only`: ~4 MB of RSS).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import yaml

from vrrpd.config import InstanceConfig
from vrrpd.contract import CONFIG_KEY as CONFIG_KEY
from vrrpd.contract import STATUS_ANNOTATION, InstanceRow, RefusedRow, Report, config_hash
from vrrpd.lean import skip_package_init
from vrrpd.resolve import instances_for_node
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.load import (
    conflicts_between,
    document_key,  # the names standalone files use in their messages
    parse_virtualip,
    parse_yaml,  # the loader standalone files use: same errors, duplicate keys refused
)
from vrrpd.spec.virtualip import VirtualIP

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger("vrrpd")

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LAST_GOOD = "virtualips.yaml"
# The server ends each watch after a random time in this range (client-go's reflector does
# the same, so that a fleet of daemons does not reconnect at once); the next one resumes
# from the last resourceVersion seen: one request per watch, ~0.15 a minute.
WATCH_TIMEOUT_S = (300, 600)
# No byte for this long past the server's timeout: the connection is dead (bookmarks and
# TCP keepalive normally say so much sooner).
WATCH_READ_MARGIN_S = 60
REQUEST_TIMEOUT_S = (5.0, 10.0)  # connect, read: a LIST or a PATCH
BACKOFF_S = (0.5, 5.0)  # after a failed request, doubling, jittered; short enough that
# the status is right again within seconds of an API-server outage's end
REPORT_INTERVAL_S = 1.0  # at most one status patch a second
REPORT_POLL_S = 0.2  # how often the daemon's state is compared with the last report
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")  # what Kubernetes allows: no path separators


class ApiError(Exception):
    """The API server could not be asked or refused; the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def backoff_s(failures: int, rand: Callable[[], float] = random.random) -> float:
    """The wait after `failures` failed attempts in a row: doubling from BACKOFF_S[0] up to
    BACKOFF_S[1], the upper half jittered (a fleet of daemons must not retry in step)."""
    low, cap = BACKOFF_S
    ceiling = min(cap, low * float(2 ** max(0, failures - 1)))
    return ceiling / 2 + rand() * ceiling / 2


# --- the API server ------------------------------------------------------------------------


class Api(Protocol):
    """What cluster mode asks of the API server; `KubeApi` is the real one."""

    def get_configmap(self, namespace: str, name: str) -> tuple[str | None, str | None]: ...

    def watch_configmap(
        self, namespace: str, name: str, resource_version: str, timeout_s: int
    ) -> Iterator[tuple[str, str | None, str | None]]: ...

    def stop_watch(self) -> None: ...

    def patch_pod_annotation(self, namespace: str, pod: str, key: str, value: str) -> None: ...


def import_client_only() -> None:
    """Let `import kubernetes.client` (and `.watch`) skip the package's __init__.

    kubernetes/__init__.py imports config, dynamic, stream, leaderelection and informer, and
    with them requests, oauthlib and websocket-client, none of which the daemon uses:
    measured, `import kubernetes` adds 11.5 MB of RSS, the client and the watch alone
    ~4 MB (the daemon's target is 60 MB in all). For the daemon's own process only
    (vrrpd.lean), before anything imports kubernetes; otherwise a no-op.
    """
    skip_package_init("kubernetes")


class KubeApi:
    """The API server through the official `kubernetes` client.

    One urllib3 pool: the watch holds one kept-alive connection, the rare LIST and PATCH
    share another. The generated CoreV1Api is not used: its module alone costs 22 MB of RSS
    (the daemon's target is 60 MB), and three calls need no more than the client's
    ApiClient, its authentication and `kubernetes.watch.Watch`.
    """

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._watch: Any = None
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        url: str | None,
        *,
        token_file: str | None = None,
        ca_file: str | None = None,
        user_agent: str = "vrrpd",
    ) -> KubeApi:
        """`url` None: in a pod (the ServiceAccount's token, CA and the service address).
        `user_agent` names the node in the API server's audit log (one ServiceAccount
        serves every node)."""
        from kubernetes import client

        ca_what = "--kube-ca-file"
        if url is None:  # the pod's ServiceAccount, as client-go's in-cluster config
            ca_what = "the ServiceAccount's CA (not in a pod? give --kube-api URL)"
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ApiError("not in a pod (KUBERNETES_SERVICE_HOST unset): give --kube-api URL")
            url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
            token_file = token_file or str(SERVICE_ACCOUNT / "token")
            ca_file = ca_file or str(SERVICE_ACCOUNT / "ca.crt")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(f"--kube-api {url!r}: use http(s)://HOST[:PORT]")
        if ca_file is not None and not os.access(ca_file, os.R_OK):
            raise ApiError(f"cannot read {ca_file}, {ca_what}")
        configuration = client.Configuration()
        configuration.host = url.rstrip("/")
        configuration.ssl_ca_cert = ca_file
        if token_file is not None:
            _authenticate_with(configuration, token_file)
        configuration.keep_alive = True  # TCP keepalive: a dead watch connection shows
        configuration.connection_pool_maxsize = 2  # the watch's connection and the others'
        configuration.retries = 0  # ours, with backoff (urllib3's: 3 at once, each logged)
        api = client.ApiClient(configuration)
        api.user_agent = user_agent
        return cls(api)

    def _request(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        *,
        content_type: str | None = None,
        timeout: Any = REQUEST_TIMEOUT_S,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self.client.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        return self.client.call_api(method, url, headers, body, _request_timeout=timeout)

    def _json(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        what = f"{method} {path}"
        try:
            response = self._request(method, path, *args, **kwargs)
            data = response.read()
        except Exception as exc:  # urllib3's, ssl's, the client's: all "not reachable"
            raise ApiError(f"{what}: {_describe(exc)}") from None
        if not 200 <= response.status < 300:
            raise ApiError(f"{what}: {_http_error(response.status, data)}", response.status)
        try:
            return json.loads(data) if data else None
        except ValueError:
            raise ApiError(f"{what}: the answer is not JSON") from None

    def get_configmap(self, namespace: str, name: str) -> tuple[str | None, str | None]:
        """(its text, None when absent; the resourceVersion to watch from). Raises ApiError."""
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        answer = self._json("GET", path, [("fieldSelector", f"metadata.name={name}")])
        if not isinstance(answer, Mapping):
            raise ApiError(f"GET {path}: not a ConfigMapList")
        version = (answer.get("metadata") or {}).get("resourceVersion")
        for item in answer.get("items") or ():
            if isinstance(item, Mapping) and (item.get("metadata") or {}).get("name") == name:
                return _config_text(item), version
        return None, version

    def watch_configmap(
        self, namespace: str, name: str, resource_version: str, timeout_s: int
    ) -> Iterator[tuple[str, str | None, str | None]]:
        """(event type, text, resourceVersion) until the server ends the watch; bookmarks
        move the resourceVersion only. Raises ApiError (status 410: relist)."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch import Watch

        path = f"/api/v1/namespaces/{namespace}/configmaps"

        def list_configmaps(**kwargs: Any) -> Any:
            query = [
                ("fieldSelector", f"metadata.name={name}"),
                ("watch", "true"),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", str(timeout_s)),
            ]
            if kwargs.get("resource_version"):
                query.append(("resourceVersion", kwargs["resource_version"]))
            response = self._request(
                "GET", path, query, timeout=(REQUEST_TIMEOUT_S[0], timeout_s + WATCH_READ_MARGIN_S)
            )
            return response.response  # the urllib3 response Watch streams from

        watch = Watch(return_type="object")  # type: ignore[no-untyped-call]  # plain dicts
        with self._lock:
            self._watch = watch
        try:
            stream = watch.stream(  # type: ignore[no-untyped-call]
                list_configmaps, resource_version=resource_version, timeout_seconds=timeout_s
            )
            for event in stream:
                kind, obj, version = (
                    event.get("type"),
                    event.get("raw_object"),
                    watch.resource_version,
                )
                ours = isinstance(obj, Mapping) and (obj.get("metadata") or {}).get("name") == name
                if ours and kind in ("ADDED", "MODIFIED", "DELETED"):
                    yield str(kind), None if kind == "DELETED" else _config_text(obj), version
                else:  # a bookmark, or another object (a server that ignores fieldSelector)
                    yield "BOOKMARK", None, version
        except ApiException as exc:
            detail = exc.reason if exc.status == 410 else _http_error(exc.status, exc.body)
            raise ApiError(f"watch {path}: {detail}", exc.status) from None
        except Exception as exc:
            raise ApiError(f"watch {path}: {_describe(exc)}") from None
        finally:
            with self._lock:
                self._watch = None

    def stop_watch(self) -> None:
        """Make the watching thread's blocked read return (from any thread)."""
        with self._lock:
            if self._watch is not None:
                self._watch.stop()

    def patch_pod_annotation(self, namespace: str, pod: str, key: str, value: str) -> None:
        body = {"metadata": {"annotations": {key: value}}}
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        self._json("PATCH", path, body=body, content_type="application/merge-patch+json")


def _authenticate_with(configuration: Any, token_file: str) -> None:
    """A bearer token from a file, read again whenever the file changes: projected
    ServiceAccount tokens are rotated by the kubelet."""
    seen: list[Any] = [None]

    def refresh(conf: Any) -> None:
        try:
            stat = os.stat(token_file)
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp != seen[0]:
                conf.api_key["BearerToken"] = Path(token_file).read_text().strip()
                seen[0] = stamp
        except (OSError, UnicodeDecodeError) as exc:  # mid-rotation: the last token stands
            log.warning("token file %s: %s", token_file, exc)

    configuration.api_key_prefix["BearerToken"] = "Bearer"
    configuration.refresh_api_key_hook = refresh
    refresh(configuration)


def _config_text(configmap: Mapping[str, Any]) -> str:
    text = (configmap.get("data") or {}).get(CONFIG_KEY)
    name = (configmap.get("metadata") or {}).get("name")
    if not isinstance(text, str):
        raise ApiError(f"ConfigMap {name} has no key {CONFIG_KEY}")
    return text


def _http_error(status: int | None, body: Any) -> str:
    try:
        message = json.loads(body).get("message") if body else None
    except (ValueError, AttributeError):
        message = None
    text = f"HTTP {status}" + (f": {message}" if message else "")
    if status == 403:
        text += " (the daemon's Role needs configmaps list and watch, pods patch)"
    return text


def _describe(exc: BaseException) -> str:
    # urllib3 wraps the cause (MaxRetryError(reason=NewConnectionError(...))): show the cause.
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return _describe(reason)
    return str(exc) or type(exc).__name__


# --- the ConfigMap's documents, one by one ---------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One valid VirtualIP document for this node."""

    number: int  # 1-based, in the text it came from
    key: str  # <namespace>/<name>
    raw: Mapping[str, Any]  # as rendered: secretRefs, never passwords (kept on the host)
    vip: VirtualIP
    instances: tuple[InstanceConfig, ...]

    @property
    def ref(self) -> str:
        return f"{self.key} (document {self.number})"


@dataclass(frozen=True)
class Refused:
    """A document this node does not run as written; the others are not held back by it."""

    virtualip: str | None  # <namespace>/<name>; None when the document has no usable name
    document: int
    error: str
    previous: bool = False  # an earlier version of that VirtualIP still runs here

    def report(self) -> RefusedRow:
        return {
            "virtualip": self.virtualip,
            "document": self.document,
            "error": self.error[:2048],
            "previous": self.previous,
        }


@dataclass(frozen=True)
class Selection:
    """What a node runs from one ConfigMap text."""

    running: dict[str, Document]  # by VirtualIP key
    refused: tuple[Refused, ...]

    @property
    def instances(self) -> list[InstanceConfig]:
        return [i for d in self.documents for i in d.instances]

    @property
    def documents(self) -> list[Document]:
        return sorted(self.running.values(), key=lambda d: d.number)


def select(
    text: str,
    *,
    node: str,
    secrets_dir: Path,
    running: Mapping[str, Document] | None = None,
    source: str = "ConfigMap",
) -> Selection:
    """Validate every document on its own; run the valid ones that do not collide.

    Raises ConfigError only when the text as a whole cannot be read (YAML syntax): then
    nothing of it is applied. Otherwise a document is refused, alone, when it is not a
    valid VirtualIP, its secretRef cannot be read, it does not fit this node, it repeats
    a name, or it collides (an address, or a VRID on one link) with a document that is
    kept. Of two colliding documents the one already `running` here is kept, else the
    earlier one, so a newcomer never displaces a working VIP. A refused VirtualIP that
    was running keeps its earlier version (`previous`) unless that collides too.
    """
    running = running or {}
    valid: list[Document] = []
    refused: list[Refused] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(parse_yaml(text, source), start=1):
        if raw is None:
            continue
        key = document_key(raw) if isinstance(raw, Mapping) else None
        try:
            if not isinstance(raw, Mapping):
                raise ConfigError([f"a {type(raw).__name__}, not a VirtualIP object"])
            if key in seen:
                raise ConfigError([
                    f"metadata.name: {key} is already defined in document {seen[key]}; "
                    "give each VirtualIP its own name"
                ])  # fmt: skip
            vip = parse_virtualip(_resolve_secret_refs(raw, secrets_dir), standalone=True)
            instances = tuple(instances_for_node([vip], node))
        except ConfigError as exc:
            refused.append(Refused(key, number, "; ".join(exc.problems)))
            continue
        seen[vip.key] = number
        valid.append(Document(number, vip.key, raw, vip, instances))
    kept: dict[str, Document] = {}
    for doc in sorted(valid, key=lambda d: (d.key not in running, d.number)):
        problems = [p for k in kept.values() for p in conflicts_between(doc.vip, k.vip, k.ref)]
        if problems:
            refused.append(Refused(doc.key, doc.number, "; ".join(problems)))
        else:
            kept[doc.key] = doc
    for i, r in enumerate(refused):
        earlier = running.get(r.virtualip) if r.virtualip is not None else None
        if earlier is None or r.virtualip in kept:
            continue
        if not any(conflicts_between(earlier.vip, k.vip, k.ref) for k in kept.values()):
            kept[earlier.key] = earlier
            refused[i] = Refused(r.virtualip, r.document, r.error, previous=True)
    return Selection(kept, tuple(sorted(refused, key=lambda r: r.document)))


def _resolve_secret_refs(raw: Mapping[str, Any], secrets_dir: Path) -> Any:
    """The document with its secretRef replaced by the password from the mounted Secret."""
    spec = raw.get("spec")
    auth = spec.get("authentication") if isinstance(spec, Mapping) else None
    ref = auth.get("secretRef") if isinstance(auth, Mapping) else None
    if not isinstance(ref, Mapping):
        return raw  # no secretRef, or a shape the validation reports
    key = ref.get("key")
    if not isinstance(key, str) or not _SECRET_KEY.fullmatch(key) or key in (".", ".."):
        raise ConfigError([
            f"spec.authentication.secretRef.key {key!r} is not a Secret key "
            "(letters, digits, '-', '_', '.')"
        ])  # fmt: skip
    key_file = secrets_dir / key
    try:
        password = key_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([
            f"spec.authentication.secretRef {dict(ref)}: cannot read {key_file}: {why} "
            "(the kubelet refreshes the node's Secret volume within about a minute)"
        ]) from None  # fmt: skip
    resolved = copy.deepcopy(dict(raw))
    resolved["spec"]["authentication"] = {"password": password}
    return resolved


# --- the status report ---------------------------------------------------------------------


def iso(unix: float, timespec: str = "milliseconds") -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def report_document(
    node: str,
    status: Mapping[str, Any],
    healthy: Mapping[str, bool],
    *,
    config_hash: str | None,
    config_error: str | None,
    refused: Sequence[Refused],
) -> Report:
    """The report without its `updated` stamp: what a reader cares about, and nothing that
    changes while the daemon's state does not (`since` is fixed at the transition)."""
    rows: list[InstanceRow] = []
    for row in status.get("instances", []):
        split = row.get("splitBrain")
        rows.append({
            "name": row["name"], "vrid": row["vrid"], "interface": row["interface"],
            "state": row["state"], "priority": row["priority"],
            "effectivePriority": row["effectivePriority"],
            "healthy": healthy.get(row["name"], row["state"] != "FAULT"),
            "since": iso(row["since"]), "reason": row["reason"], "master": row["master"],
            "transitions": row["transitions"],
            # What this master hears of another (vrrpd.vrrp.splitbrain), without its time:
            # the report changes when the verdict or what it hears does, not every second.
            "splitBrain": split and {k: split[k] for k in ("evidence", "peer", "detail")},
        })  # fmt: skip
    return {
        "node": node,
        "configHash": config_hash,
        "configError": config_error,
        "refused": [r.report() for r in refused],
        "instances": rows,
    }


class Reporter:
    """Patches the pod's status annotation when the report changed, at most once every
    REPORT_INTERVAL_S (the caller retries, with backoff, what failed)."""

    def __init__(
        self, api: Api, call: Callable[..., Any], *, namespace: str, pod: str | None
    ) -> None:
        self.api, self.call, self.namespace, self.pod = api, call, namespace, pod
        self.sent: Report | None = None
        self.last_patch = -float("inf")  # loop time

    async def send(self, document: Report, *, force: bool = False) -> bool:
        """Patch now if due; True when the report on the pod is `document`."""
        if self.pod is None or document == self.sent:
            return True
        loop = asyncio.get_running_loop()
        if not force and loop.time() < self.last_patch + REPORT_INTERVAL_S:
            return False
        text = json.dumps({**document, "updated": iso(time.time(), "seconds")}, sort_keys=True)
        self.last_patch = loop.time()
        await self.call(
            self.api.patch_pod_annotation, self.namespace, self.pod, STATUS_ANNOTATION, text
        )
        self.sent = document
        return True


# --- the watch, in its own thread ------------------------------------------------------------


class ConfigMapWatcher:
    """LIST once, then WATCH from its resourceVersion, for as long as the daemon runs.

    Every text seen (and None when the ConfigMap is absent) goes to `deliver`, from this
    thread. A watch that the server ends resumes from the last resourceVersion (bookmarks
    keep it fresh while nothing changes); 410 Gone (that version was compacted away) means
    a new LIST; any other failure a backoff, then the same again.
    """

    def __init__(
        self,
        api: Api,
        namespace: str,
        name: str,
        deliver: Callable[[str | None], None],
        *,
        resource_version: str | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.api, self.namespace, self.name, self.deliver = api, namespace, name, deliver
        self.resource_version = resource_version
        self._stopped = threading.Event()
        self._wait = wait or self._stopped.wait
        self.failures = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="vrrpd-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.api.stop_watch()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.step()
            except Exception:  # a bug here must not end the watch for good
                log.exception("watching ConfigMap %s failed; retrying", self.name)
                self._wait(BACKOFF_S[1])

    def step(self) -> None:
        """One LIST or one WATCH, and the backoff after a failure."""
        try:
            if self.resource_version is None:
                text, self.resource_version = self.api.get_configmap(self.namespace, self.name)
                self.deliver(text)
            else:
                timeout = random.randint(*WATCH_TIMEOUT_S)
                events = self.api.watch_configmap(
                    self.namespace, self.name, self.resource_version, timeout
                )
                for kind, text, version in events:
                    self.resource_version = version or self.resource_version
                    if kind != "BOOKMARK":
                        self.deliver(text)
                    if self._stopped.is_set():
                        return
            if self.failures:
                log.info("API server reachable again: ConfigMap %s watched", self.name)
            self.failures = 0
        except ApiError as exc:
            if self._stopped.is_set():
                return
            if exc.status == 410:  # our resourceVersion is gone: start again from a LIST
                log.info("ConfigMap %s: %s; listing it again", self.name, exc)
                self.resource_version = None
                return
            self.failures += 1
            if self.failures == 1:  # once per outage: VRRP goes on regardless
                log.warning("API server unavailable, VRRP goes on unchanged: %s", exc)
            self._wait(backoff_s(self.failures))


# --- cluster mode, as the daemon runs it -----------------------------------------------------


class Daemonish(Protocol):
    def apply(self, configs: list[InstanceConfig]) -> Any: ...

    def status(self) -> dict[str, Any]: ...

    def health(self) -> dict[str, bool]: ...


class ClusterSource:
    """The node's ConfigMap (watched), its Secret's files and the last good copy on the host,
    applied to the daemon; the daemon's state reported on its pod."""

    def __init__(
        self,
        api: Api,
        *,
        node: str,
        namespace: str,
        configmap: str,
        pod: str | None,
        secrets_dir: str,
        state_dir: str,
        poll_s: float = 1.0,
    ) -> None:
        self.api = api
        self.node, self.namespace, self.configmap = node, namespace, configmap
        self.secrets_dir, self.state_dir = Path(secrets_dir), Path(state_dir)
        self.poll_s = poll_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vrrpd-api")
        self.reporter = Reporter(api, self._call, namespace=namespace, pod=pod)
        self.text: str | None = None  # the newest ConfigMap text
        self.applied_hash: str | None = None  # of the ConfigMap text applied
        self.error: str | None = None  # why the newest text was refused as a whole
        self.selection = Selection({}, ())
        self.resource_version: str | None = None
        self.watcher: ConfigMapWatcher | None = None
        self._new_text = asyncio.Event()
        self._attempted: tuple[str, tuple[Any, ...]] | None = None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---------------------------------------------------------------- start

    async def initial(self) -> list[InstanceConfig]:
        """The ConfigMap if the API answers, else what ran last on this host: VRRP starts."""
        try:
            text, self.resource_version = await self._call(
                self.api.get_configmap, self.namespace, self.configmap
            )
        except ApiError as exc:
            kept = self.last_good()
            log.warning("API server unavailable (%s); starting from the last good "
                        "configuration%s", exc, "" if kept else ": none kept yet")  # fmt: skip
            if kept is not None:
                self._select(kept, source=str(self.state_dir / LAST_GOOD))
            return self.selection.instances
        if text is None:
            log.info("ConfigMap %s does not exist (yet): waiting for it", self.configmap)
            return []
        self.text = text
        self._attempted = (config_hash(text), self._secrets_stamp())
        self._select(text)
        return self.selection.instances

    # ---------------------------------------------------------------- follow

    async def follow(self, daemon: Daemonish) -> None:
        """Apply each new text (or new secret files) at once; report state changes."""
        loop = asyncio.get_running_loop()

        def deliver(text: str | None) -> None:  # in the watcher's thread
            with contextlib.suppress(RuntimeError):  # the loop closed: the daemon is gone
                loop.call_soon_threadsafe(self._on_text, text)

        self.watcher = ConfigMapWatcher(
            self.api, self.namespace, self.configmap, deliver,
            resource_version=self.resource_version,
        )  # fmt: skip
        self.watcher.start()
        reporting = asyncio.create_task(self._report_loop(daemon))
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_text.wait(), self.poll_s)
                try:
                    self._apply_news(daemon)
                except Exception:  # a bug here must not stop configuration for good
                    log.exception("applying the ConfigMap failed")
        finally:
            reporting.cancel()
            self.watcher.stop()

    def _on_text(self, text: str | None) -> None:
        if text is None:
            if self.text is not None:
                log.warning("ConfigMap %s is gone; keeping the running configuration",
                            self.configmap)  # fmt: skip
            return
        self.text = text
        self._new_text.set()

    def _apply_news(self, daemon: Daemonish) -> None:
        """A new text, or new secret files (a refused secretRef may now resolve): select
        and apply again. The same text with the same files is not looked at twice."""
        self._new_text.clear()
        if self.text is None:
            return
        attempt = (config_hash(self.text), self._secrets_stamp())
        if attempt == self._attempted:
            return
        self._attempted = attempt
        if self._select(self.text):
            daemon.apply(self.selection.instances)

    def reload(self, daemon: Daemonish, why: str) -> None:
        """SIGHUP: read the secret files and apply the newest text again."""
        log.info("%s: applying ConfigMap %s again", why, self.configmap)
        if self.text is not None and self._select(self.text):
            daemon.apply(self.selection.instances)

    def _select(self, text: str, source: str | None = None) -> bool:
        """Select what runs from `text`; False when it is refused as a whole."""
        try:
            selection = select(
                text, node=self.node, secrets_dir=self.secrets_dir,
                running=self.selection.running, source=source or f"ConfigMap {self.configmap}",
            )  # fmt: skip
        except ConfigError as exc:
            if self.error != str(exc):
                log.error("ConfigMap %s refused, keeping the running configuration:\n%s",
                          self.configmap, exc)  # fmt: skip
            self.error = str(exc)
            return False
        for r in selection.refused:
            if r not in self.selection.refused:
                log.error(
                    "%s refused, the other VirtualIPs are applied%s: %s",
                    r.virtualip or f"document {r.document}",
                    "; its earlier version keeps running" if r.previous else "",
                    r.error,
                )
        self.error = None
        self.selection = selection
        self.applied_hash = None if source else config_hash(text)
        self.keep(selection)
        return True

    def _secrets_stamp(self) -> tuple[Any, ...]:
        """Changes when the kubelet updates the Secret volume (it swaps a ..data link)."""
        try:
            entries = sorted(os.scandir(self.secrets_dir), key=lambda e: e.name)
            return tuple((e.name, e.stat().st_ino, e.stat().st_mtime_ns) for e in entries)
        except OSError:
            return ()

    # ---------------------------------------------------------------- the last good copy

    def last_good(self) -> str | None:
        try:
            return (self.state_dir / LAST_GOOD).read_text()
        except OSError:
            return None

    def keep(self, selection: Selection) -> None:
        """Write what runs, atomically: a crash mid-write must not lose the last copy."""
        docs = [d.raw for d in selection.documents]
        text = f"# What vrrpd ran last on {self.node}, from ConfigMap {self.configmap}.\n"
        text += yaml.safe_dump_all(docs, sort_keys=False) if docs else ""
        try:
            if (self.state_dir / LAST_GOOD).read_text() == text:
                return
        except OSError:
            pass
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.state_dir / f".{LAST_GOOD}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.state_dir / LAST_GOOD)
        except OSError as exc:
            log.warning("cannot keep the configuration in %s: %s", self.state_dir, exc)

    # ---------------------------------------------------------------- reports

    def report(self, daemon: Daemonish) -> Report:
        return report_document(
            self.node, daemon.status(), daemon.health(), config_hash=self.applied_hash,
            config_error=self.error, refused=self.selection.refused,
        )  # fmt: skip

    async def _report_loop(self, daemon: Daemonish) -> None:
        failures = 0
        while True:
            await asyncio.sleep(REPORT_POLL_S)
            try:
                await self.reporter.send(self.report(daemon))
                failures = 0
            except ApiError as exc:
                failures += 1
                if failures == 1:
                    log.warning("status report not sent, retrying: %s", exc)
                await asyncio.sleep(backoff_s(failures))
            except Exception:  # a bug here must not silence reports for good
                log.exception("status report failed; retrying")
                await asyncio.sleep(BACKOFF_S[1])

    async def finish(self, daemon: Daemonish) -> None:
        """One last report after the handover, so the operator sees this node let go."""
        if self.watcher is not None:
            self.watcher.stop()
        try:
            await asyncio.wait_for(self.reporter.send(self.report(daemon), force=True), 2.0)
        except Exception as exc:
            log.warning("final status report not sent: %s", exc)
        self._executor.shutdown(wait=False, cancel_futures=True)
