"""The Helm chart: lint, render with several value sets, validate every object against the
Kubernetes 1.31 schemas, reject bad values with the schema's message, and agree with the
CRD source of truth, the operator's settings, labels and API calls."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kopf
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kube-vrrp"
CRD_SOURCE = REPO / "crds" / "virtualips.kubevrrp.io.yaml"
CRD_COPY = CHART / "files" / "virtualips.kubevrrp.io.yaml"
CRD_SOURCES = sorted((REPO / "crds").glob("*.kubevrrp.io.yaml"))
PEERING_CRD = CHART / "crds" / "clusterkopfpeerings.kopf.dev.yaml"
OPERATOR_SOURCES = REPO / "operator" / "vrrp_operator"
RELEASE = "kv"
NAMESPACE = "kube-vrrp"
KUBE_VERSION = "1.31"

SCHEDULING = {
    "image": {"digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
    "operator": {
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [
            {
                "key": "node-role.kubernetes.io/control-plane",
                "operator": "Exists",
                "effect": "NoSchedule",
            },
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                            ]
                        },
                    ]
                }
            }
        },
        "podAnnotations": {"example.com/team": "network"},
        "podLabels": {"example.com/tier": "infra"},
        "resources": {"requests": {"cpu": "100m", "memory": "160Mi"}, "limits": {"memory": 1e9}},
    },
    "daemon": {
        "priorityClassName": "system-node-critical",
        "tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
            {
                "key": "dedicated",
                "operator": "Equal",
                "value": "edge",
                "effect": "NoExecute",
                "tolerationSeconds": 30,
            },
        ],
        "httpPort": 9700,
        "logFormat": "text",
        "excludeCordonedNodes": False,
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    },
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "standalone": {"operator": {"replicas": 1, "peering": {"enabled": False}}},
    "two-replicas": {"operator": {"replicas": 2, "peering": {"name": "vrrp-peering"}}},
    "podmonitor": {
        "metrics": {
            "podMonitor": {"enabled": True, "scrapeTimeout": "10s", "labels": {"release": "prom"}}
        }
    },
    "servicemonitor": {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s"}}},
    "crds-off": {"crds": {"enabled": False}},
    "crds-not-kept": {"crds": {"keep": False}},
    "scheduling": SCHEDULING,
    "auth-secret-namespaces": {
        "rbac": {"authSecretNamespaces": ["ingress-nginx", "default"]},
        "operator": {"serviceAccount": {"name": "vrrp-op", "annotations": {"a.example/b": "c"}}},
    },
    "external-rbac": {
        "rbac": {"create": False},
        "operator": {"serviceAccount": {"create": False, "name": "my-operator"}},
        "daemon": {"serviceAccount": {"create": False, "name": "my-daemon"}},
    },
    "name-overrides": {"fullnameOverride": "vrrp", "operator": {"replicas": 0}},
}


# --- helm --------------------------------------------------------------------------------------


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="session")
def render(
    helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """values -> the rendered objects (helm template --include-crds), cached per value set."""
    directory = tmp_path_factory.mktemp("values")

    @cache
    def rendered(key: str) -> tuple[str, ...]:
        values = directory / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.yaml"
        values.write_text(key)
        result = run_helm(
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--include-crds",
            "--kube-version",
            f"{KUBE_VERSION}.0",
            "--values",
            str(values),
        )
        assert result.returncode == 0, result.stderr
        return tuple(
            json.dumps(doc) for doc in yaml.safe_load_all(result.stdout) if doc is not None
        )

    def objects(values: dict[str, Any]) -> list[dict[str, Any]]:
        return [json.loads(doc) for doc in rendered(json.dumps(values, sort_keys=True))]

    return objects


def template_error(helm: Path, tmp_path: Path, values: dict[str, Any]) -> str:
    """helm template's error output for values that must be refused."""
    path = tmp_path / "bad-values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = run_helm(helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(path))
    assert result.returncode != 0, f"{values} was accepted:\n{result.stdout[:2000]}"
    return result.stderr


def find(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(objects: Iterable[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = find(objects, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return dict(containers[0])


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the process sees it (fieldRefs filled in)."""
    field_values = {"metadata.name": "kv-kube-vrrp-operator-abc12", "metadata.namespace": NAMESPACE}
    env = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = field_values[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


# --- lint and schemas of the rendered objects ------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict(helm: Path, tmp_path: Path, name: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUE_SETS[name]))
    result = run_helm(
        helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--values", str(values)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def _crd_schema(path: Path, version: str = "v1") -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return dict(served["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_is_valid(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]], name: str
) -> None:
    """Built-in kinds against the Kubernetes 1.31 schemas (strict: unknown fields fail);
    ClusterKopfPeering against its CRD; Prometheus Operator kinds have no schema here and
    are checked field by field in test_monitors_select_the_daemon_pods."""
    custom = {("kopf.dev/v1", "ClusterKopfPeering"): _crd_schema(PEERING_CRD)}
    unvalidated = {
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
    }
    objects = render(VALUE_SETS[name])
    assert objects
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        where = f"{obj['kind']} {obj['metadata'].get('name')}"
        if key in custom:
            jsonschema.validate(obj, custom[key])
        elif key not in unvalidated:
            try:
                kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
        if obj["kind"] in (
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterKopfPeering",
        ):
            assert "namespace" not in obj["metadata"], where
        else:
            assert obj["metadata"].get("namespace"), f"{where} has no namespace"


def test_the_value_sets_render_what_they_switch(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    base = kinds(render({}))
    assert base == sorted(
        [
            "ClusterKopfPeering",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Pod",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
        ]
    )
    assert kinds(render(VALUE_SETS["standalone"])).count("ClusterKopfPeering") == 0
    assert "PodMonitor" in kinds(render(VALUE_SETS["podmonitor"]))
    monitored = kinds(render(VALUE_SETS["servicemonitor"]))
    assert "ServiceMonitor" in monitored and monitored.count("Service") == 2
    assert kinds(render(VALUE_SETS["crds-off"])).count("CustomResourceDefinition") == 1  # peering
    external = kinds(render(VALUE_SETS["external-rbac"]))
    assert not {"ServiceAccount", "Role", "ClusterRole", "RoleBinding"} & set(external)


# --- values and their schema ------------------------------------------------------------------

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
FREE_FORM = {
    "global",
    "operator.affinity.nodeAffinity",
    "operator.affinity.podAffinity",
    "operator.affinity.podAntiAffinity",
}
KUBERNETES_TYPED = {"operator.resources", "daemon.resources", "operator.affinity"}


def _schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _schema_nodes(child, f"{path}.{key}".lstrip("."))
    for keyword in ("items", "additionalProperties"):
        if isinstance(node.get(keyword), dict):
            yield from _schema_nodes(node[keyword], f"{path}[]")
    for option in node.get("anyOf", []):
        yield from _schema_nodes(option, path)


def test_schema_is_closed_everywhere() -> None:
    """Every object with named keys refuses unknown ones (additionalProperties: false); the
    exceptions are maps (additionalProperties is a schema) and Kubernetes' own structures."""
    open_objects = [
        path
        for path, node in _schema_nodes(SCHEMA)
        if node.get("type") == "object"
        and not isinstance(node.get("additionalProperties"), dict)
        and node.get("additionalProperties") is not False
        and path not in FREE_FORM
    ]
    assert open_objects == []


def _values_lines() -> Iterator[tuple[str, bool]]:
    """(dotted path, has a comment right above) for every key in values.yaml."""
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9_.-]*):", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2)))
            yield ".".join(k for _, k in stack), previous.lstrip().startswith("#")
        if line.strip():
            previous = line


def _declared(path: str) -> bool:
    node = SCHEMA
    for key in path.split("."):
        if key not in node.get("properties", {}):
            return False
        node = node["properties"][key]
    return True


def test_every_value_is_declared_and_commented() -> None:
    seen = dict(_values_lines())
    chart_keys = {p for p in seen if not any(p.startswith(f"{t}.") for t in KUBERNETES_TYPED)}
    assert sorted(p for p in chart_keys if not _declared(p)) == []
    assert sorted(p for p in chart_keys if not seen[p]) == [], "keys without a comment above"
    declared = {
        p
        for p, _ in _schema_nodes(SCHEMA)
        if p and "[]" not in p and p not in FREE_FORM and not p.startswith("global")
    }
    assert sorted(declared - set(seen)) == [], "schema keys with no default in values.yaml"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"operator": {"replica": 2}},
            "at '/operator': additional properties 'replica' not allowed",
        ),
        ({"crd": {"enabled": False}}, "additional properties 'crd' not allowed"),
        ({"daemon": {"serviceAccount": {"nmae": "x"}}}, "additional properties 'nmae' not allowed"),
        ({"operator": {"replicas": "two"}}, "at '/operator/replicas': got string, want integer"),
        ({"operator": {"replicas": 1.5}}, "at '/operator/replicas': got number, want integer"),
        ({"crds": {"keep": "yes"}}, "at '/crds/keep': got string, want boolean"),
        (
            {"daemon": {"httpPort": 70000}},
            "at '/daemon/httpPort': maximum: got 70,000, want 65,535",
        ),
        ({"daemon": {"logFormat": "xml"}}, "at '/daemon/logFormat': value must be one of"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"metrics": {"podMonitor": {"interval": "soon"}}}, "at '/metrics/podMonitor/interval'"),
        ({"operator": {"statusIntervalSeconds": 0}}, "at '/operator/statusIntervalSeconds'"),
        (
            {"daemon": {"tolerations": [{"key": "a", "operator": "Maybe"}]}},
            "at '/daemon/tolerations/0/operator': value must be one of",
        ),
        ({"imagePullSecrets": ["regcred"]}, "at '/imagePullSecrets/0': got string, want object"),
        (
            {"rbac": {"authSecretNamespaces": ["Not_A_Namespace"]}},
            "at '/rbac/authSecretNamespaces/0'",
        ),
        # Combinations the templates refuse, in words.
        (
            {"operator": {"replicas": 2, "peering": {"enabled": False}}},
            "operator.replicas=2 needs operator.peering.enabled=true",
        ),
        (
            {"metrics": {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}},
            "each daemon would be scraped twice",
        ),
        (
            {"rbac": {"create": False}, "operator": {"serviceAccount": {"create": False}}},
            "operator.serviceAccount.name is required",
        ),
    ],
)
def test_bad_values_fail_with_the_schema_message(
    helm: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    assert message in template_error(helm, tmp_path, values)


# --- the CRDs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", CRD_SOURCES, ids=lambda p: p.name)
def test_chart_crd_is_a_copy_of_the_source_of_truth(source: Path) -> None:
    copy = CHART / "files" / source.name
    assert copy.read_bytes() == source.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from {source.relative_to(REPO)}: "
        f"cp {source.relative_to(REPO)} {copy.relative_to(REPO)}"
    )


def test_every_crd_is_in_the_chart() -> None:
    assert [p.name for p in CRD_SOURCES] == [
        "virtualippools.kubevrrp.io.yaml",
        "virtualips.kubevrrp.io.yaml",
    ]


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("source", CRD_SOURCES, ids=lambda p: p.name)
def test_rendered_crd_is_the_source_plus_chart_metadata(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]], keep: bool, source: Path
) -> None:
    name = source.name.removesuffix(".yaml")
    crd = find(render({"crds": {"keep": keep}}), "CustomResourceDefinition", name)
    source = yaml.safe_load(source.read_text())
    metadata = crd.pop("metadata")
    assert crd == {k: v for k, v in source.items() if k != "metadata"}
    assert metadata.pop("labels")["app.kubernetes.io/instance"] == RELEASE
    annotations = metadata.pop("annotations", {})
    assert annotations == ({"helm.sh/resource-policy": "keep"} if keep else {})
    assert metadata == source["metadata"]


def test_peering_crd_is_the_one_kopf_looks_for() -> None:
    from kopf._cogs.structs.references import CLUSTER_PEERINGS_K

    crd = yaml.safe_load(PEERING_CRD.read_text())
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["group"] == CLUSTER_PEERINGS_K.group
    assert crd["spec"]["versions"][0]["name"] == CLUSTER_PEERINGS_K.version
    assert crd["spec"]["names"]["plural"] == CLUSTER_PEERINGS_K.any_name
    # kopf merge-patches status on the main resource: no status subresource.
    assert "subresources" not in crd["spec"]["versions"][0]


# --- the operator Deployment against the operator's code ---------------------------------------


@pytest.mark.parametrize("name", ["defaults", "standalone", "two-replicas", "scheduling"])
def test_operator_understands_the_environment_the_chart_sets(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]], name: str
) -> None:
    from vrrp_operator.settings import OperatorSettings

    values = VALUE_SETS[name]
    objects = render(values)
    container = operator_container(objects)
    env = plain_env(container)
    source = "\n".join(p.read_text() for p in OPERATOR_SOURCES.glob("*.py"))
    unread = [n for n in env if n.startswith("KUBEVRRP_") and f'"{n}"' not in source]
    assert unread == [], "the chart sets variables the operator does not read"

    settings = OperatorSettings.from_env(env)
    daemon = settings.daemon
    assert settings.namespace == NAMESPACE
    assert daemon.image == container["image"]
    assert daemon.image_pull_policy == container["imagePullPolicy"]
    daemon_sa = find(objects, "ServiceAccount", daemon.service_account)
    assert daemon_sa["metadata"]["labels"]["app.kubernetes.io/component"] == "daemon"
    pod_spec = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert list(daemon.image_pull_secrets) == [
        s["name"] for s in pod_spec.get("imagePullSecrets", [])
    ]
    merged = {
        **yaml.safe_load((CHART / "values.yaml").read_text())["daemon"],
        **values.get("daemon", {}),
    }
    assert daemon.http_port == merged["httpPort"]
    assert daemon.priority_class_name == (merged["priorityClassName"] or None)
    assert daemon.log_format == merged["logFormat"]
    assert [t.to_dict() for t in daemon.tolerations] == [
        {k: v for k, v in t.items() if k != "tolerationSeconds"} for t in merged["tolerations"]
    ]
    assert dict(daemon.resources) == merged["resources"]
    assert settings.render.exclude_cordoned == merged["excludeCordonedNodes"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
    assert settings.liveness_endpoint == f"http://0.0.0.0:{port}/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

    peering = (values.get("operator") or {}).get("peering", {}).get("enabled", True)
    peerings = [o for o in objects if o["kind"] == "ClusterKopfPeering"]
    if peering:
        assert settings.peering == "mandatory"
        assert [p["metadata"]["name"] for p in peerings] == [settings.peering_name]
        assert find(objects, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    else:
        assert settings.peering == "standalone"
        assert peerings == []
        assert find(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_daemon_pods_the_operator_renders_are_valid_with_the_charts_settings(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    """The operator's per-node objects, built with the settings the chart passes, against the
    Kubernetes 1.31 schemas; and the chart's daemon labels are the operator's."""
    from vrrp_operator.manifests import manifests
    from vrrp_operator.objects import DAEMON_LABELS
    from vrrp_operator.render import NodeConfig
    from vrrp_operator.settings import OperatorSettings

    for values in (VALUE_SETS["defaults"], SCHEDULING):
        objects = render(values)
        settings = OperatorSettings.from_env(plain_env(operator_container(objects)))
        config = NodeConfig(
            node="node-1", documents=(), node_uid="0b9d3c0e-1", advert_intervals_cs=(100,)
        )
        for obj in manifests(config, settings.daemon):
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
            assert obj["metadata"]["namespace"] == NAMESPACE
            labels = obj["metadata"]["labels"]
            assert {k: labels[k] for k in DAEMON_LABELS} == dict(DAEMON_LABELS)
        pod = manifests(config, settings.daemon)[-1]
        assert pod["spec"]["serviceAccountName"] == settings.daemon.service_account
        tolerated = {t.get("key") for t in pod["spec"]["tolerations"]}
        assert {t["key"] for t in values.get("daemon", {}).get("tolerations", [])} <= tolerated


def test_monitors_select_the_daemon_pods(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    from vrrp_operator.manifests import CONTAINER, DaemonSettings, pod
    from vrrp_operator.objects import DAEMON_LABELS
    from vrrp_operator.render import NodeConfig

    daemon_pod = pod(NodeConfig(node="n1", documents=()), DaemonSettings(http_port=9641))
    (container,) = [c for c in daemon_pod["spec"]["containers"] if c["name"] == CONTAINER]
    port_names = {p["name"] for p in container["ports"]}

    podmonitor = find(render(VALUE_SETS["podmonitor"]), "PodMonitor")
    assert podmonitor["metadata"]["labels"]["release"] == "prom"
    assert podmonitor["spec"]["selector"] == {"matchLabels": dict(DAEMON_LABELS)}
    assert podmonitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = podmonitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    assert endpoint["scrapeTimeout"] == "10s"

    objects = render(VALUE_SETS["servicemonitor"])
    monitor = find(objects, "ServiceMonitor")
    services = [o for o in objects if o["kind"] == "Service"]
    (selected,) = [
        s
        for s in services
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert selected["spec"]["selector"] == dict(DAEMON_LABELS)
    assert selected["spec"]["clusterIP"] == "None"
    assert selected["spec"]["ports"][0]["targetPort"] in port_names
    assert monitor["spec"]["endpoints"][0]["port"] == selected["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"


def test_helm_test_pod_reaches_the_operator_health_endpoint(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    objects = render({})
    test_pod = find(objects, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    url = {e["name"]: e["value"] for e in test_pod["spec"]["containers"][0]["env"]}["HEALTHZ_URL"]
    service = find(objects, "Service")
    port = service["spec"]["ports"][0]
    assert url == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port['port']}/healthz"
    template = find(objects, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    names = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    assert port["targetPort"] in names
    # The test pod runs the chart's image and needs no API access.
    assert test_pod["spec"]["containers"][0]["image"] == operator_container(objects)["image"]
    assert test_pod["spec"]["automountServiceAccountToken"] is False


def test_two_replicas_spread_and_surge_safely(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    deployment = find(render(VALUE_SETS["two-replicas"]), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    # A single replica gets no affinity of the chart's choosing.
    assert "affinity" not in find(render({}), "Deployment")["spec"]["template"]["spec"]


def test_scheduling_values_reach_the_operator_pod(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    spec = find(render(SCHEDULING), "Deployment")["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["tolerations"] == SCHEDULING["operator"]["tolerations"]
    assert spec["nodeSelector"] == SCHEDULING["operator"]["nodeSelector"]
    assert spec["affinity"] == SCHEDULING["operator"]["affinity"]
    assert spec["containers"][0]["image"] == "kube-vrrp/vrrpd@sha256:" + "ab" * 32


def test_operator_runs_unprivileged(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    spec = find(render({}), "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    context = spec["containers"][0]["securityContext"]
    assert context == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["containers"][0]["command"] == ["kube-vrrp-operator"]


# --- RBAC -------------------------------------------------------------------------------------

Grant = tuple[str, str, str, str | None]  # apiGroup, resource, verb, resourceName


def grants(role: dict[str, Any]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [None]:
                        out.add((group, resource, verb, name))
    return out


def expand(group: str, resource: str, verbs: str, name: str | None = None) -> set[Grant]:
    return {(group, resource, verb, name) for verb in verbs.split()}


# What the operator calls: kopf (watches, patches of finalizers/annotations/status, Events,
# peering, CRD observation) and kube.py (daemon objects, Secrets, Services). Each line is
# checked against the code where the code can say it (test_operator_rbac_covers_...).
OPERATOR_CLUSTER: set[Grant] = (
    expand("kubevrrp.io", "virtualips", "get list watch patch")
    | expand("kubevrrp.io", "virtualips/status", "get patch")
    | expand("kubevrrp.io", "virtualips/finalizers", "update")
    | expand("", "nodes", "get list watch")
    | expand("", "pods", "list watch")
    | expand("", "services", "get list watch")
    | expand("", "services/status", "patch")
    | expand("kubevrrp.io", "virtualippools", "get list watch patch")
    | expand("kubevrrp.io", "virtualippools/status", "get patch")
    | expand("discovery.k8s.io", "endpointslices", "list watch")
    | expand("", "namespaces", "get")
    | expand("", "events", "create")
    | expand("", "secrets", "get")
    | expand("apiextensions.k8s.io", "customresourcedefinitions", "list watch")
    | expand("kopf.dev", "clusterkopfpeerings", "list watch")
)
OPERATOR_NAMESPACED: set[Grant] = set().union(
    *(
        expand("", r, "get list watch create update patch delete")
        for r in ("configmaps", "secrets", "pods")
    )
) | expand("", "namespaces", "get", NAMESPACE)  # its own, checked at start (__main__.py)
# The daemon: its node's ConfigMap (listed, then watched), its own Pod (a merge patch of the
# status report annotation). Its Secret arrives as a mounted volume: no permission on Secrets.
# tests/realapi/test_daemon_kube.py runs it with this Role: no request is refused.
DAEMON_NAMESPACED: set[Grant] = expand("", "configmaps", "list watch") | expand("", "pods", "patch")


def rbac(objects: list[dict[str, Any]], kind: str, component: str) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == kind and o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]


def test_operator_rbac_is_exactly_what_it_needs(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    objects = render({})
    (cluster_role,) = rbac(objects, "ClusterRole", "operator")
    peering = find(objects, "ClusterKopfPeering")["metadata"]["name"]
    assert grants(cluster_role) == OPERATOR_CLUSTER | expand(
        "kopf.dev", "clusterkopfpeerings", "get patch", peering
    )
    (role,) = rbac(objects, "Role", "operator")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == OPERATOR_NAMESPACED

    standalone = rbac(render(VALUE_SETS["standalone"]), "ClusterRole", "operator")[0]
    assert grants(standalone) == OPERATOR_CLUSTER - expand(
        "kopf.dev", "clusterkopfpeerings", "list watch"
    )


def test_operator_rbac_covers_every_resource_its_handlers_watch_or_patch() -> None:
    """kopf lists and watches every resource a handler or index names, cluster-wide (the
    operator runs with clusterwide=True); change handlers and timers patch their resource
    (finalizer, progress annotations, status)."""
    from vrrp_operator.handlers import Runtime, register
    from vrrp_operator.settings import OperatorSettings

    registry = kopf.OperatorRegistry()
    register(registry, Runtime(OperatorSettings(), client=None))  # type: ignore[arg-type]
    needed: set[Grant] = set()
    for part in (registry._indexing, registry._watching, registry._changing, registry._spawning):
        for handler in part.get_all_handlers():
            selector = handler.selector
            assert selector is not None
            plural = selector.plural or selector.any_name
            needed |= expand(selector.group, plural, "list watch")
            if part in (registry._changing, registry._spawning):
                needed |= expand(selector.group, plural, "patch")
    assert needed, "no handlers found: has register() moved?"
    assert needed <= OPERATOR_CLUSTER


def test_auth_secret_namespaces_narrow_the_secret_grant(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    objects = render(VALUE_SETS["auth-secret-namespaces"])
    (cluster_role,) = rbac(objects, "ClusterRole", "operator")
    assert ("", "secrets", "get", None) not in grants(cluster_role)
    roles = {
        o["metadata"]["namespace"]: o
        for o in rbac(objects, "Role", "operator")
        if o["metadata"]["namespace"] != NAMESPACE
    }
    assert sorted(roles) == ["default", "ingress-nginx"]
    for namespace, role in roles.items():
        assert grants(role) == {("", "secrets", "get", None)}
        (binding,) = [
            b
            for b in objects
            if b["kind"] == "RoleBinding" and b["metadata"]["namespace"] == namespace
        ]
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "vrrp-op", "namespace": NAMESPACE}
        ]


VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
CORE_RESOURCES = ("pods/status", "configmaps", "secrets", "pods", "events", "nodes")


def _documented_daemon_grants() -> set[Grant] | None:
    """The daemon's RBAC as docs/operator.md lists it: in a section whose heading names the
    daemon and which talks about RBAC or permissions, every line that names core resources
    and verbs (a list item or a table row) grants those verbs on those resources."""
    doc = REPO / "docs" / "operator.md"
    if not doc.exists():
        return None
    out: set[Grant] = set()
    for section in re.split(r"(?m)^(?=#+ )", doc.read_text()):
        heading, _, body = section.partition("\n")
        if "daemon" not in heading.lower() or not re.search(r"(?i)rbac|permission", section):
            continue
        for line in body.splitlines():
            rest, resources = line, []
            for resource in CORE_RESOURCES:
                if re.search(rf"\b{re.escape(resource)}\b", rest):
                    resources.append(resource)
                    rest = re.sub(rf"\b{re.escape(resource)}\b", " ", rest)
            verbs = set(re.findall(r"[a-z]+", rest)) & VERBS
            out |= {("", r, v, None) for r in resources for v in verbs}
    return out or None


def test_daemon_rbac_is_what_the_daemon_needs(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    objects = render({})
    assert rbac(objects, "ClusterRole", "daemon") == []  # nothing cluster-wide
    (role,) = rbac(objects, "Role", "daemon")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == DAEMON_NAMESPACED
    documented = _documented_daemon_grants()
    if documented is not None:
        assert grants(role) == documented, "docs/operator.md lists other daemon permissions"
    (binding,) = rbac(objects, "RoleBinding", "daemon")
    daemon_sa = plain_env(operator_container(objects))["KUBEVRRP_DAEMON_SERVICE_ACCOUNT"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": daemon_sa, "namespace": NAMESPACE}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_role_grants_wildcards_or_escalation(
    render: Callable[[dict[str, Any]], list[dict[str, Any]]], name: str
) -> None:
    objects = render(VALUE_SETS[name])
    roles = {
        (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")): o
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    for role in roles.values():
        for group, resource, verb, _ in grants(role):
            assert "*" not in (group, resource, verb)
            assert verb not in ("escalate", "bind", "impersonate")
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        role_kind = binding["roleRef"]["kind"]
        namespace = binding["metadata"].get("namespace") if role_kind == "Role" else None
        assert (role_kind, binding["roleRef"]["name"], namespace) in roles


# --- NOTES.txt --------------------------------------------------------------------------------


def notes(helm: Path, tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "notes-values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = run_helm(
        helm, "install", RELEASE, str(CHART), "--dry-run=client", "-n", NAMESPACE, "-f", str(path)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\nNOTES:\n", 1)[1]


def test_notes_give_the_next_step_with_a_valid_virtualip(helm: Path, tmp_path: Path) -> None:
    from tests.unit.cel_support import validate, version_schema

    text = notes(helm, tmp_path, {})
    assert "kubectl get vip" in text and "helm test kv -n kube-vrrp" in text
    assert "rollout status deployment/kv-kube-vrrp-operator" in text
    example = text.split("cat <<'YAML' | kubectl apply -f -\n", 1)[1].split("\n  YAML\n", 1)[0]
    virtualip = yaml.safe_load(example)
    assert virtualip["kind"] == "VirtualIP"
    schema = version_schema(yaml.safe_load(CRD_SOURCE.read_text()), "v1alpha1")
    assert [str(v) for v in validate(virtualip, schema)] == []
    assert "install the VirtualIP and VirtualIPPool CRDs yourself" in notes(
        helm, tmp_path, {"crds": {"enabled": False}}
    )
    pool = yaml.safe_load(
        text.split("cat <<'YAML' | kubectl apply -f -\n", 2)[2].split("\n  YAML\n", 1)[0]
    )
    assert pool["kind"] == "VirtualIPPool"
    pool_schema = version_schema(
        yaml.safe_load((REPO / "crds" / "virtualippools.kubevrrp.io.yaml").read_text()), "v1alpha1"
    )
    assert [str(v) for v in validate(pool, pool_schema)] == []
    assert "standalone" in notes(helm, tmp_path, VALUE_SETS["standalone"])
