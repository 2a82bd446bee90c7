"""Shared builders for unit tests: a lab, its layout, fixed keys and paths."""

from __future__ import annotations

from pathlib import Path

from labctl.lab.loader import load_lab
from labctl.plan.layout import Layout, lab_layout

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
GOLDEN = DATA / "golden"
DIGEST = "ab" * 32  # a stand-in image sha256


def layout_of(name: str, **overrides) -> Layout:
    path = DATA / "labs" / "valid" / name if (DATA / "labs" / "valid" / name).exists() \
        else ROOT / "examples" / name
    return lab_layout(load_lab(path, overrides), {"debian-12": DIGEST})
