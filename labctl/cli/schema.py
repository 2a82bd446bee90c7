"""labctl schema: the lab file's JSON Schema, for editors."""

from __future__ import annotations

from labctl.cli.app import app
from labctl.cli.common import MAINTENANCE
from labctl.cli.output import print_json


@app.command(rich_help_panel=MAINTENANCE)
def schema() -> None:
    """Print the JSON Schema of lab files (point your editor's YAML plugin at it)."""
    from labctl.lab.labschema import json_schema

    print_json(json_schema())
