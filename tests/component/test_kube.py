"""Cluster mode without a cluster: document selection, the report and its rate limit, the
watch loop's relist and backoff, the last good copy, and the client against a small fake
API server on loopback. (The real API server: tests/realapi/test_daemon_kube.py.)"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vrrpd.config import InstanceConfig
from vrrpd.kube import (
    CONFIG_KEY,
    REPORT_INTERVAL_S,
    STATUS_ANNOTATION,
    ApiError,
    ClusterSource,
    ConfigMapWatcher,
    KubeApi,
    Refused,
    Reporter,
    backoff_s,
    report_document,
    select,
)
from vrrpd.spec.errors import ConfigError


def vip(
    name: str,
    address: str = "192.168.77.100/24",
    vrid: int = 51,
    *,
    namespace: str = "default",
    priority: int = 150,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "addresses": [address],
            "vrid": vrid,
            "nodePriorities": [{"nodeName": "n1", "priority": priority}],
            **spec,
        },
    }


def text(*docs: Any) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


AUTH = {"version": 2, "authentication": {"secretRef": {"name": "vrrpd-n1", "key": "ns_s_k"}}}


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    return folder


def names(instances: list[InstanceConfig]) -> list[str]:
    return [i.name for i in instances]


# --- select: every document on its own ---------------------------------------------------------


def test_a_conflicting_document_is_refused_alone(secrets: Path) -> None:
    docs = [vip("web", namespace="a"), vip("web", namespace="b", vrid=52)]
    chosen = select(text(*docs, vip("other", "192.168.77.101/24", 53)), node="n1",
                    secrets_dir=secrets)  # fmt: skip
    assert names(chosen.instances) == ["a/web/ipv4", "default/other/ipv4"]
    (refused,) = chosen.refused
    assert (refused.virtualip, refused.document, refused.previous) == ("b/web", 2, False)
    assert refused.error == (
        "spec.addresses: 192.168.77.100 is also a virtual address of a/web (document 1); "
        "an address belongs to one VirtualIP only"
    )


def test_a_running_virtualip_keeps_its_claim_against_an_earlier_newcomer(secrets: Path) -> None:
    first = select(text(vip("late", namespace="z")), node="n1", secrets_dir=secrets)
    both = text(vip("early", namespace="a", vrid=52), vip("late", namespace="z"))
    chosen = select(both, node="n1", secrets_dir=secrets, running=first.running)
    assert names(chosen.instances) == ["z/late/ipv4"]
    assert [r.virtualip for r in chosen.refused] == ["a/early"]
    # Without it running, document order decides.
    fresh = select(both, node="n1", secrets_dir=secrets)
    assert names(fresh.instances) == ["a/early/ipv4"]


def test_a_refused_new_version_leaves_the_earlier_one_running(secrets: Path) -> None:
    before = select(text(vip("web", priority=150)), node="n1", secrets_dir=secrets)
    broken = vip("web", priority=150)
    broken["spec"]["advertInterval"] = "15ms"
    chosen = select(text(broken), node="n1", secrets_dir=secrets, running=before.running)
    assert chosen.instances == before.instances
    (refused,) = chosen.refused
    assert refused.previous and "spec.advertInterval: 15ms" in refused.error


def test_an_earlier_version_that_now_collides_is_not_kept(secrets: Path) -> None:
    before = select(text(vip("web")), node="n1", secrets_dir=secrets)
    broken = vip("web", advertInterval="15ms")
    newcomer = vip("api", vrid=52)  # takes web's address while web's new version is refused
    chosen = select(text(broken, newcomer), node="n1", secrets_dir=secrets, running=before.running)
    assert names(chosen.instances) == ["default/api/ipv4"]
    assert [(r.virtualip, r.previous) for r in chosen.refused] == [("default/web", False)]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("just a string", "a str, not a VirtualIP object"),
        (vip("web", vrid=0), "spec.vrid: 0"),
        (vip("web", unicast=True, peers=[{"nodeName": "n2", "address": "192.168.77.12"},
                                         {"nodeName": "n3", "address": "192.168.77.13"}]),
         "spec.peers: no entry for node n1"),
        ({**vip("web"), "spec": {**vip("web")["spec"], **AUTH}}, "cannot read"),
        ({**vip("web"), "spec": {**vip("web")["spec"], **AUTH, "authentication":
          {"secretRef": {"name": "x", "key": "../../etc/shadow"}}}}, "is not a Secret key"),
    ],
)  # fmt: skip
def test_an_invalid_document_is_refused_with_the_field_named(
    secrets: Path, doc: Any, expected: str
) -> None:
    chosen = select(text(doc, vip("other", "192.168.77.101/24", 53)), node="n1",
                    secrets_dir=secrets)  # fmt: skip
    assert names(chosen.instances) == ["default/other/ipv4"]
    (refused,) = chosen.refused
    assert refused.document == 1 and expected in refused.error


def test_a_repeated_name_is_refused_the_first_runs(secrets: Path) -> None:
    chosen = select(text(vip("web"), vip("web", "192.168.77.101/24", 53)), node="n1",
                    secrets_dir=secrets)  # fmt: skip
    assert [i.addresses[0].ip.exploded for i in chosen.instances] == ["192.168.77.100"]
    assert "already defined in document 1" in chosen.refused[0].error


def test_a_secret_ref_is_resolved_from_the_mounted_file_and_kept_as_a_ref(secrets: Path) -> None:
    (secrets / "ns_s_k").write_text("lab-pass")
    doc = vip("web", **AUTH)
    chosen = select(text(doc), node="n1", secrets_dir=secrets)
    (inst,) = chosen.instances
    assert inst.auth_password == b"lab-pass"
    assert chosen.documents[0].raw == doc  # what is kept on the host has no password


def test_unreadable_yaml_refuses_the_whole_text(secrets: Path) -> None:
    with pytest.raises(ConfigError, match="line 1"):
        select("a: [", node="n1", secrets_dir=secrets)


# --- the report --------------------------------------------------------------------------------


STATUS = {
    "instances": [
        {"name": "default/web/ipv4", "vrid": 51, "interface": "eth0", "state": "MASTER",
         "priority": 150, "effectivePriority": 150, "since": 1_700_000_000.25, "reason": "x",
         "master": "192.168.77.11", "transitions": 2, "probes": [], "peers": [{"lastSeen": 1}]},
    ]
}  # fmt: skip


def test_the_report_holds_what_readers_use_and_no_clock_of_its_own() -> None:
    refused = (Refused("b/web", 2, "spec.addresses: taken"),)
    doc = report_document("n1", STATUS, {}, config_hash="sha256:x", config_error=None,
                          refused=refused)  # fmt: skip
    assert doc == {
        "node": "n1", "configHash": "sha256:x", "configError": None,
        "refused": [{"virtualip": "b/web", "document": 2, "error": "spec.addresses: taken",
                     "previous": False}],
        "instances": [{
            "name": "default/web/ipv4", "vrid": 51, "interface": "eth0", "state": "MASTER",
            "priority": 150, "effectivePriority": 150, "healthy": True,
            "since": "2023-11-14T22:13:20.250Z", "reason": "x", "master": "192.168.77.11",
            "transitions": 2, "splitBrain": None,
        }],
    }  # fmt: skip
    again = report_document("n1", STATUS, {}, config_hash="sha256:x", config_error=None,
                            refused=refused)  # fmt: skip
    assert again == doc


def test_the_report_names_another_master_without_its_clock() -> None:
    split = {
        "evidence": "announcement",
        "peer": "02:00:00:00:00:02",
        "since": 1_700_000_001.5,
        "detail": "another master for this VRID: 02:00:00:00:00:02 announces 192.0.2.1",
    }
    status = {"instances": [{**STATUS["instances"][0], "splitBrain": split}]}
    doc = report_document("n1", status, {}, config_hash=None, config_error=None, refused=())
    assert doc["instances"][0]["splitBrain"] == {
        "evidence": "announcement", "peer": "02:00:00:00:00:02", "detail": split["detail"]
    }  # fmt: skip


class FakeApi:
    """The Api protocol in memory: a ConfigMap, a scripted watch, the pod's annotation."""

    def __init__(self) -> None:
        self.configmap: str | None = None
        self.version = "10"
        self.streams: list[Any] = []  # each: a list of events, or an ApiError to raise
        self.patches: list[tuple[str, str, str, str]] = []
        self.fail: ApiError | None = None
        self.calls: list[str] = []

    def get_configmap(self, namespace: str, name: str) -> tuple[str | None, str | None]:
        self.calls.append("list")
        if self.fail is not None:
            raise self.fail
        return self.configmap, self.version

    def watch_configmap(
        self, namespace: str, name: str, resource_version: str, timeout_s: int
    ) -> Iterator[tuple[str, str | None, str | None]]:
        self.calls.append(f"watch from {resource_version}")
        script = self.streams.pop(0) if self.streams else []
        if isinstance(script, ApiError):
            raise script
        yield from script

    def stop_watch(self) -> None:
        pass

    def patch_pod_annotation(self, namespace: str, pod: str, key: str, value: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.patches.append((namespace, pod, key, value))


async def inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


@pytest.mark.looptime
async def test_the_pod_is_patched_on_change_only_and_at_most_once_a_second() -> None:
    api = FakeApi()
    reporter = Reporter(api, inline, namespace="kube-vrrp", pod="vrrpd-n1")
    doc = {"node": "n1", "instances": [{"state": "BACKUP"}]}
    assert await reporter.send(doc)
    assert await reporter.send(dict(doc))  # the same: no request
    assert len(api.patches) == 1
    assert not await reporter.send({**doc, "instances": [{"state": "MASTER"}]})  # too soon
    await asyncio.sleep(REPORT_INTERVAL_S)
    assert await reporter.send({**doc, "instances": [{"state": "MASTER"}]})
    assert len(api.patches) == 2
    assert await reporter.send({**doc, "instances": []}, force=True)  # the last, at stop
    ns, pod, key, value = api.patches[-1]
    assert (ns, pod, key) == ("kube-vrrp", "vrrpd-n1", STATUS_ANNOTATION)
    assert json.loads(value)["updated"].endswith("Z")


# --- the watch loop ------------------------------------------------------------------------------


def watcher(api: FakeApi, waits: list[float]) -> tuple[ConfigMapWatcher, list[str | None]]:
    seen: list[str | None] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return ConfigMapWatcher(api, "kube-vrrp", "vrrpd-n1", seen.append, wait=wait), seen


def test_the_watch_lists_once_then_follows_from_the_resource_version() -> None:
    api, waits = FakeApi(), []
    api.configmap = "one"
    api.streams = [
        [("MODIFIED", "two", "11"), ("BOOKMARK", None, "15")],
        [("DELETED", None, "16")],
    ]
    w, seen = watcher(api, waits)
    for _ in range(3):
        w.step()
    assert api.calls == ["list", "watch from 10", "watch from 15"]
    assert seen == ["one", "two", None]  # a bookmark moves the version, delivers nothing
    assert w.resource_version == "16" and waits == []


def test_410_gone_means_a_new_list_and_other_errors_a_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, waits = FakeApi(), []
    api.configmap = "one"
    api.streams = [ApiError("too old resource version", 410)]
    w, seen = watcher(api, waits)
    w.step()
    w.step()
    assert w.resource_version is None and waits == []
    api.fail = ApiError("connection refused")
    for _ in range(4):
        w.step()
    assert waits == [pytest.approx(w, abs=w / 2) for w in (0.5, 1.0, 2.0, 4.0)]
    assert all(b <= c for b, c in zip(waits, (0.5, 1.0, 2.0, 4.0), strict=True))
    assert caplog.text.count("API server unavailable") == 1  # once per outage
    api.fail = None
    w.step()
    assert api.calls == ["list", "watch from 10", *["list"] * 5]
    assert seen == ["one", "one"] and w.failures == 0


def test_the_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() -> None:
    assert [backoff_s(n, lambda: 1.0) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1, 2, 4, 5, 5]
    assert [backoff_s(n, lambda: 0.0) for n in (1, 4, 9)] == [0.25, 2, 2.5]


# --- the source: start, the last good copy, secrets ---------------------------------------------


class FakeDaemon:
    def __init__(self) -> None:
        self.applied: list[list[str]] = []

    def apply(self, configs: list[InstanceConfig]) -> None:
        self.applied.append(names(configs))

    def status(self) -> dict[str, Any]:
        return {"instances": []}

    def health(self) -> dict[str, bool]:
        return {}


def source(api: FakeApi, tmp_path: Path, secrets: Path) -> ClusterSource:
    return ClusterSource(
        api, node="n1", namespace="kube-vrrp", configmap="vrrpd-n1", pod="vrrpd-n1",
        secrets_dir=str(secrets), state_dir=str(tmp_path / "state"),
    )  # fmt: skip


async def test_start_from_the_api_then_from_the_copy_kept_on_the_host(
    tmp_path: Path, secrets: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi()
    broken = vip("bad", "192.168.77.102/24", 54, advertInterval="15ms")
    api.configmap = text(vip("web"), broken)
    first = source(api, tmp_path, secrets)
    assert names(await first.initial()) == ["default/web/ipv4"]
    assert first.applied_hash is not None and first.resource_version == "10"
    kept = (tmp_path / "state" / "virtualips.yaml").read_text()
    assert list(yaml.safe_load_all(kept)) == [vip("web")]  # what ran, not the refused one
    api.fail = ApiError("connection refused")
    caplog.set_level(logging.WARNING)
    second = source(api, tmp_path, secrets)
    assert names(await second.initial()) == ["default/web/ipv4"]
    assert "starting from the last good configuration" in caplog.text
    assert second.applied_hash is None  # it reports no ConfigMap hash until it read one


async def test_a_refused_secret_ref_is_applied_once_the_secret_file_appears(
    tmp_path: Path, secrets: Path
) -> None:
    api = FakeApi()
    api.configmap = text(vip("web"), vip("auth", "192.168.77.101/24", 53, **AUTH))
    src = source(api, tmp_path, secrets)
    daemon = FakeDaemon()
    assert names(await src.initial()) == ["default/web/ipv4"]
    src._apply_news(daemon)
    assert daemon.applied == []  # the same text and files: not looked at again
    (secrets / "ns_s_k").write_text("lab-pass")  # the kubelet refreshed the volume
    src._apply_news(daemon)
    assert daemon.applied == [["default/web/ipv4", "default/auth/ipv4"]]
    assert src.selection.refused == ()


async def test_a_new_text_from_the_watch_is_applied_and_a_broken_one_kept_out(
    tmp_path: Path, secrets: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi()
    api.configmap = text(vip("web"))
    src = source(api, tmp_path, secrets)
    daemon = FakeDaemon()
    await src.initial()
    src._on_text(text(vip("web", priority=200)))
    src._apply_news(daemon)
    assert daemon.applied == [["default/web/ipv4"]]
    assert src.selection.instances[0].priority == 200
    src._on_text("a: [")
    src._apply_news(daemon)
    src._apply_news(daemon)
    assert len(daemon.applied) == 1 and src.selection.instances[0].priority == 200
    assert src.error is not None and caplog.text.count("ConfigMap vrrpd-n1 refused") == 1
    report = src.report(daemon)
    assert report["configError"] == src.error and report["configHash"] == src.applied_hash
    src._on_text(None)  # deleted: the running configuration stays
    assert src.text == "a: ["


# --- the client against a fake API server --------------------------------------------------------


class FakeServer:
    """Answers each request from `answers` (status, body or list of watch lines)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.answers: list[tuple[int, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        method, path, _ = head.split("\r\n")[0].split(" ")
        headers = {
            k.lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((method, path, headers, json.loads(body) if body else None))
        status, answer = self.answers.pop(0) if self.answers else (500, {"message": "no"})
        if isinstance(answer, list):  # a watch: one JSON event per line, then EOF
            data = b"".join(json.dumps(e).encode() + b"\n" for e in answer)
        else:
            data = json.dumps(answer).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[FakeServer, KubeApi, Path]]:
    fake = FakeServer()
    srv = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    api = KubeApi.connect(f"http://127.0.0.1:{port}", token_file=str(token), user_agent="vrrpd/n1")
    yield fake, api, token
    srv.close()
    await srv.wait_closed()


def configmap(data: str, version: str = "7") -> dict[str, Any]:
    return {"metadata": {"name": "vrrpd-n1", "resourceVersion": version},
            "data": {CONFIG_KEY: data}}  # fmt: skip


async def test_the_client_lists_its_configmap_with_the_token_read_again_when_it_changes(
    server: tuple[FakeServer, KubeApi, Path],
) -> None:
    fake, api, token = server
    fake.answers = [
        (200, {"metadata": {"resourceVersion": "42"}, "items": [configmap("hello")]}),
        (200, {"metadata": {"resourceVersion": "43"}, "items": []}),
    ]
    assert await asyncio.to_thread(api.get_configmap, "kube-vrrp", "vrrpd-n1") == ("hello", "42")
    token.write_text("rotated-token\n")  # the kubelet rotated the projected token
    assert await asyncio.to_thread(api.get_configmap, "kube-vrrp", "vrrpd-n1") == (None, "43")
    (m1, p1, h1, _), (_, _, h2, _) = fake.requests
    assert (m1, p1) == (
        "GET", "/api/v1/namespaces/kube-vrrp/configmaps?fieldSelector=metadata.name%3Dvrrpd-n1"
    )  # fmt: skip
    assert (h1["authorization"], h2["authorization"]) == (
        "Bearer s3cr3t-token", "Bearer rotated-token"
    )  # fmt: skip
    assert h1["user-agent"] == "vrrpd/n1"


async def test_the_client_watches_with_bookmarks_and_reports_410(
    server: tuple[FakeServer, KubeApi, Path],
) -> None:
    fake, api, _ = server
    fake.answers = [
        (200, [{"type": "MODIFIED", "object": configmap("two", "8")},
               {"type": "MODIFIED", "object": {"data": {CONFIG_KEY: "not ours"}, "metadata":
                                               {"name": "vrrpd-n2", "resourceVersion": "9"}}},
               {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}]),
        (200, [{"type": "ERROR", "object": {"kind": "Status", "code": 410,
                "reason": "Expired", "message": "too old resource version"}}]),
    ]  # fmt: skip

    def watch(version: str) -> list[Any]:
        return list(api.watch_configmap("kube-vrrp", "vrrpd-n1", version, 300))

    assert await asyncio.to_thread(watch, "7") == [
        ("MODIFIED", "two", "8"), ("BOOKMARK", None, "9"), ("BOOKMARK", None, "12")
    ]  # fmt: skip
    with pytest.raises(ApiError) as gone:
        await asyncio.to_thread(watch, "12")
    assert gone.value.status == 410
    _, path, _, _ = fake.requests[0]
    assert path.endswith(
        "fieldSelector=metadata.name%3Dvrrpd-n1&watch=true&allowWatchBookmarks=true"
        "&timeoutSeconds=300&resourceVersion=7"
    )


async def test_the_client_patches_the_annotation_and_names_what_failed(
    server: tuple[FakeServer, KubeApi, Path],
) -> None:
    fake, api, _ = server
    fake.answers = [(200, {}), (403, {"message": "pods is forbidden"})]
    await asyncio.to_thread(api.patch_pod_annotation, "kube-vrrp", "vrrpd-n1", "k", "v")
    method, path, headers, body = fake.requests[0]
    assert (method, path, headers["content-type"]) == (
        "PATCH", "/api/v1/namespaces/kube-vrrp/pods/vrrpd-n1", "application/merge-patch+json"
    )  # fmt: skip
    assert body == {"metadata": {"annotations": {"k": "v"}}}
    with pytest.raises(ApiError, match=r"HTTP 403: pods is forbidden \(the daemon's Role"):
        await asyncio.to_thread(api.patch_pod_annotation, "kube-vrrp", "vrrpd-n1", "k", "v")


async def test_an_unreachable_server_is_an_api_error() -> None:
    api = KubeApi.connect("http://127.0.0.1:1")
    with pytest.raises(ApiError, match=r"GET /api/v1/namespaces/ns/configmaps: .*refused"):
        await asyncio.to_thread(api.get_configmap, "ns", "c")


def test_a_bad_url_or_ca_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ApiError, match="use http"):
        KubeApi.connect("ftp://x")
    with pytest.raises(ApiError, match=r"cannot read .*none.crt, --kube-ca-file"):
        KubeApi.connect("https://127.0.0.1:6443", ca_file=str(tmp_path / "none.crt"))


def test_in_a_pod_the_service_account_is_used_and_outside_one_the_flag_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ApiError, match=r"not in a pod .*give --kube-api URL"):
        KubeApi.connect(None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    with pytest.raises(ApiError, match=r"serviceaccount/ca\.crt, the ServiceAccount.s CA"):
        KubeApi.connect(None)


def test_the_daemon_imports_the_client_without_what_it_does_not_use() -> None:
    """requests, oauthlib, websocket-client come with kubernetes/__init__.py (8 MB of RSS)."""
    code = (
        "import sys\n"
        "from vrrpd.kube import KubeApi, import_client_only\n"
        "import_client_only()\n"
        "KubeApi.connect('https://127.0.0.1:1')\n"
        "import kubernetes.watch\n"
        "kubernetes.watch.Watch(return_type='object')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'requests', 'oauthlib', 'websocket', 'kubernetes'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    assert out.strip() == "['kubernetes']"
