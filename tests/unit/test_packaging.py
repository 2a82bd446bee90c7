"""The wheel carries the top-level templates/ and images/ as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from labctl.resources import data_dir

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_templates_and_recipes(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("labctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("templates", "images"):
        for path in (ROOT / top).rglob("*"):
            if path.is_file():
                assert f"labctl/_data/{path.relative_to(ROOT)}" in names
    assert "labctl/cli/__init__.py" in names


def test_checkout_finds_its_data():
    assert data_dir("templates") == ROOT / "templates"
    assert (data_dir("images") / "README.md").is_file()
