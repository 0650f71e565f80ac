"""The CRDs are generated from vrrpd/spec (`make crds`): the checked-in files, in crds/ and
the chart, are exactly what the models make."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrrpd.spec import crds

FILES = crds.files()


def test_every_resource_is_written_to_crds_and_the_chart() -> None:
    assert {path.parent for path in FILES} == set(crds.PLACES)
    assert len(FILES) == len(crds.RESOURCES) * len(crds.PLACES)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(crds.ROOT)) for p in FILES])
def test_checked_in_crd_is_what_the_models_make(path: Path) -> None:
    assert path.read_text() == FILES[path], f"{path.relative_to(crds.ROOT)}: run make crds"


def test_make_crds_writes_what_is_stale_and_check_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(crds, "ROOT", tmp_path)
    monkeypatch.setattr(crds, "PLACES", (tmp_path / "crds", tmp_path / "chart"))
    for place in crds.PLACES:
        place.mkdir()
    (tmp_path / "crds" / crds.VIRTUALIP.file_name).write_text("# edited by hand\n")
    assert crds.main(["--check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{place.name}/{crds.VIRTUALIP.file_name} is not what the models make: run make crds"
        for place in crds.PLACES
    ]
    assert crds.main([]) == 0
    assert all(path.read_text() == text for path, text in crds.files().items())
    assert crds.main(["--check"]) == 0
