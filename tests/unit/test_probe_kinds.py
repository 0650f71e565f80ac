"""The kinds of probe check are one registry (vrrpd.spec.probes.PROBE_KINDS): the spec's
fields, the CRD's probe schema and the daemon's runners all have exactly its kinds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.cel_support import load_crd, version_schema
from vrrpd.config import ProbeConfig
from vrrpd.probes.runners import probe_for, runner
from vrrpd.spec.probes import PROBE_KINDS, ProbeKind, ProbeSpec

ROOT = Path(__file__).resolve().parents[2]
KINDS = {kind.name for kind in PROBE_KINDS}
TIMING = {"name", "interval", "timeout", "rise", "fall", "weight"}  # what every probe has


def test_kinds_are_distinct() -> None:
    assert len(KINDS) == len(PROBE_KINDS) >= 6
    assert len({kind.spec for kind in PROBE_KINDS}) == len(PROBE_KINDS)
    assert len({kind.config for kind in PROBE_KINDS}) == len(PROBE_KINDS)


def test_a_probe_has_one_field_per_kind() -> None:
    aliases = {info.alias or name for name, info in ProbeSpec.model_fields.items()}
    assert aliases == KINDS | TIMING


@pytest.mark.parametrize("path", ["crds", "charts/kube-vrrp/files"])
def test_the_crds_probe_kinds_are_the_registrys(path: str) -> None:
    crd = load_crd(ROOT / path / "virtualips.kubevrrp.io.yaml")
    probe = version_schema(crd, "v1alpha1")["properties"]["spec"]["properties"]["probes"]["items"]
    assert set(probe["properties"]) - TIMING == KINDS
    (exactly_one,) = (r for r in probe["x-kubernetes-validations"] if "exactly one" in r["message"])
    assert {kind for kind in KINDS if f"has(self.{kind})" in exactly_one["rule"]} == KINDS


def test_every_kind_has_a_runner_and_nothing_else_does() -> None:
    assert set(runner.registry) - {object} == {kind.config for kind in PROBE_KINDS}


@pytest.mark.parametrize("kind", PROBE_KINDS, ids=[kind.name for kind in PROBE_KINDS])
def test_a_kinds_example_resolves_to_its_config_and_runs(kind: ProbeKind) -> None:
    # The example the error messages show is a valid check of that kind.
    assert kind.spec.example is not None
    probe = ProbeSpec.model_validate({"name": "p", kind.name: yaml.safe_load(kind.spec.example)})
    config = probe.to_config()
    assert isinstance(probe.check, kind.spec) and type(config.check) is kind.config
    assert isinstance(config, ProbeConfig)
    assert callable(probe_for(config).check)
