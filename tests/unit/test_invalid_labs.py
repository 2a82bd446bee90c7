"""Golden error messages: every bad lab file gives exactly its expected lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import LabFileError
from labctl.lab.loader import load_lab

INVALID = Path(__file__).parent.parent / "data" / "labs" / "invalid"
CASES = sorted(INVALID.glob("*.yaml"))


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("lab_file", CASES, ids=[p.stem for p in CASES])
def test_error_message(lab_file: Path, golden):
    with pytest.raises(LabFileError) as info:
        load_lab(lab_file)
    lines = info.value.lines(relative_to=INVALID)
    assert 1 <= len(lines) <= 2, "one line, plus at most one hint"
    golden(lab_file.with_suffix(".expected"), "\n".join(lines) + "\n")
