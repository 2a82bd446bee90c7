"""Shared test options. `pytest --regenerate` rewrites golden files instead of
comparing against them; review the diff before committing."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regenerate", action="store_true", default=False,
                     help="rewrite golden files from the current output")


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """golden(path, text): compare text with the file, or rewrite it with --regenerate."""
    regenerate = request.config.getoption("--regenerate")

    def check(path: Path, text: str) -> None:
        if regenerate or not path.exists():
            if not regenerate:
                pytest.fail(f"golden file {path} is missing; run pytest --regenerate")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert text == path.read_text(), f"output differs from {path} (pytest --regenerate)"

    return check
