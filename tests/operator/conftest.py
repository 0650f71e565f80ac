"""Operator tests: put operator/ on sys.path (the folder is not a package: a top-level
`operator` package would shadow the standard library's) and share small builders."""

from __future__ import annotations

import sys
from pathlib import Path

OPERATOR_DIR = Path(__file__).resolve().parents[2] / "operator"
if str(OPERATOR_DIR) not in sys.path:
    sys.path.insert(0, str(OPERATOR_DIR))
