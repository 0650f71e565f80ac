"""The VirtualIP examples in the README are valid: documentation that rots misleads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vrrpd.model import parse_virtualip

ROOT = Path(__file__).resolve().parents[2]


def test_every_virtualip_in_the_readme_validates() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    objects = [yaml.safe_load(block) for block in blocks]
    vips = [o for o in objects if isinstance(o, dict) and o.get("kind") == "VirtualIP"]
    assert vips, "the README shows no VirtualIP"
    for obj in vips:
        parse_virtualip(obj)  # cluster mode: vrid and peers come from the operator
