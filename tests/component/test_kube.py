"""Cluster mode's API side against a small fake API server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from vrrpd.kube import STATUS_ANNOTATION, ApiError, ApiServer, KubeConfig
from vrrpd.model import ConfigError

CONFIG = """\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: web, namespace: default}
spec:
  addresses: ["192.168.77.100/24"]
  vrid: 51
  version: 2
  nodePriorities: [{nodeName: n1, priority: 150}]
  authentication: {secretRef: {name: vrrpd-n1, key: default.auth.password}}
"""


class FakeApi:
    def __init__(self) -> None:
        self.configmap: dict[str, Any] | None = {"data": {"virtualips.yaml": CONFIG}}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.fail = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        method, path, _ = head.split("\r\n")[0].split(" ")
        headers = {
            k.lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((method, path, headers, json.loads(body) if body else None))
        if self.fail:
            status, answer = 500, {"message": "etcd is sad"}
        elif method == "GET" and self.configmap is None:
            status, answer = 404, {"reason": "NotFound"}
        elif method == "GET":
            status, answer = 200, self.configmap
        else:
            status, answer = 200, {}
        data = json.dumps(answer).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[FakeApi, KubeConfig]]:
    fake = FakeApi()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "default.auth.password").write_text("lab-pass")
    config = KubeConfig(
        ApiServer.from_url(f"http://127.0.0.1:{port}", token_file=str(token)),
        node="n1", namespace="kube-vrrp", configmap="vrrpd-n1", pod="vrrpd-n1",
        secrets_dir=str(secrets), state_dir=str(tmp_path / "state"),
    )  # fmt: skip
    yield fake, config
    server.close()
    await server.wait_closed()


async def test_the_configmap_is_read_with_the_token_and_its_secret_refs_resolved(
    api: tuple[FakeApi, KubeConfig],
) -> None:
    fake, config = api
    text = await config.fetch()
    assert text == CONFIG
    method, path, headers, _ = fake.requests[0]
    assert (method, path) == ("GET", "/api/v1/namespaces/kube-vrrp/configmaps/vrrpd-n1")
    assert headers["authorization"] == "Bearer s3cr3t-token"
    (inst,) = config.parse(text)
    assert (inst.priority, inst.auth_password) == (150, b"lab-pass")


async def test_a_missing_configmap_is_none_and_a_failing_api_an_error(
    api: tuple[FakeApi, KubeConfig],
) -> None:
    fake, config = api
    fake.configmap = None
    assert await config.fetch() is None
    fake.fail = True
    with pytest.raises(ApiError, match="HTTP 500"):
        await config.fetch()


async def test_a_secret_ref_without_its_file_is_a_config_error(
    api: tuple[FakeApi, KubeConfig], tmp_path: Path
) -> None:
    _, config = api
    (tmp_path / "secrets" / "default.auth.password").unlink()
    with pytest.raises(ConfigError, match=r"secretRef .* cannot read"):
        config.parse(CONFIG)


def test_the_last_good_configuration_survives_on_disk(tmp_path: Path) -> None:
    config = KubeConfig(
        ApiServer("127.0.0.1", 1), node="n1", namespace="ns", configmap="c", pod=None,
        secrets_dir=str(tmp_path), state_dir=str(tmp_path / "state"),
    )  # fmt: skip
    assert config.last_good() is None
    config.keep(CONFIG)
    assert config.last_good() == CONFIG
    assert list((tmp_path / "state").iterdir()) == [tmp_path / "state" / "virtualips.yaml"]


async def test_the_report_patches_the_pod_once_per_change(
    api: tuple[FakeApi, KubeConfig],
) -> None:
    fake, config = api
    config.applied = CONFIG
    status = {
        "instances": [
            {"name": "default/web/ipv4", "vrid": 51, "state": "MASTER", "priority": 150,
             "effectivePriority": 150, "since": 1_700_000_000.0, "reason": "x",
             "master": "192.168.77.11"},
        ]
    }  # fmt: skip
    await config.report(status, {"default/web/ipv4": True})
    await config.report(status, {"default/web/ipv4": True})  # nothing new: no request
    patches = [r for r in fake.requests if r[0] == "PATCH"]
    assert len(patches) == 1
    _, path, headers, body = patches[0]
    assert path == "/api/v1/namespaces/kube-vrrp/pods/vrrpd-n1"
    assert headers["content-type"] == "application/merge-patch+json"
    report = json.loads(body["metadata"]["annotations"][STATUS_ANNOTATION])
    assert report["configHash"].startswith("sha256:") and report["node"] == "n1"
    (row,) = report["instances"]
    assert (row["state"], row["healthy"], row["since"]) == ("MASTER", True, "2023-11-14T22:13:20Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [", "line"),
        ("just a string", "expected a VirtualIP"),
        (CONFIG.replace("key: default.auth.password", "key: ../../etc/shadow"), "secretRef"),
    ],
)
def test_bad_rendered_text_is_a_config_error_never_a_crash(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = KubeConfig(
        ApiServer("127.0.0.1", 1), node="n1", namespace="ns", configmap="c", pod=None,
        secrets_dir=str(tmp_path), state_dir=str(tmp_path / "state"),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=expected):
        config.parse(text)
