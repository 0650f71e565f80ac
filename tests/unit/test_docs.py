"""Documentation that rots misleads: the README's VirtualIPs validate, the map's paths exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vrrpd.spec.load import parse_virtualip

ROOT = Path(__file__).resolve().parents[2]


def test_every_virtualip_in_the_readme_validates() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    objects = [yaml.safe_load(block) for block in blocks]
    vips = [o for o in objects if isinstance(o, dict) and o.get("kind") == "VirtualIP"]
    assert vips, "the README shows no VirtualIP"
    for obj in vips:
        parse_virtualip(obj)  # cluster mode: vrid and peers come from the operator


def test_every_path_the_architecture_map_names_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:vrrpd|operator|bench|tests|crds|charts)/[^`\s]*)`", text))
    named.discard("operator/__init__.py")  # named as what must never appear
    assert named, "the map names no paths"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
