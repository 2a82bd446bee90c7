"""The exported JSON Schema agrees with the loader on real lab files."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from labctl.lab import yamlmarks
from labctl.lab.labschema import json_schema

ROOT = Path(__file__).resolve().parents[2]
PLAIN_LABS = [ROOT / "examples" / "hello.yaml", ROOT / "examples" / "compare.yaml",
              ROOT / "tests" / "data" / "labs" / "valid" / "full.yaml"]


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("path", PLAIN_LABS, ids=[p.stem for p in PLAIN_LABS])
def test_schema_accepts_valid_labs(path: Path):
    doc, _ = yamlmarks.parse(path.read_text())
    jsonschema.validate(doc, json_schema())


def test_schema_rejects_unknown_keys():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "vms": [{"name": "a", "memroy": "1G"}]}, json_schema())
