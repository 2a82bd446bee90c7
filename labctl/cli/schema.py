"""labctl schema: the lab file's JSON Schema, for editors."""

from __future__ import annotations

from labctl.cli.app import app
from labctl.cli.output import print_json
from labctl.labschema import json_schema


@app.command()
def schema() -> None:
    """Print the JSON Schema of lab files (point your editor's YAML plugin at it)."""
    print_json(json_schema())
