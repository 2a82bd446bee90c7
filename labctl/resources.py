"""Where labctl's shipped data (templates/, images/ recipes) lives.

An installed wheel carries them under labctl/_data/; a source checkout (editable
install) has them at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the shipped directory `name` ('templates' or 'images')."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"labctl's {name}/ directory is missing from the installation")
