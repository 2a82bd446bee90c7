"""The typer application and its global options. Command modules import `app`
and register themselves; they parse, call the core, and print."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from labctl.datadir import default_data_dir

app = typer.Typer(
    name="labctl",
    help="Declarative labs of libvirt VMs and the OCI containers inside them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # main() turns errors into one line
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Globals:
    json: bool = False
    verbose: bool = False
    data_dir: Path = Path()


STATE = Globals(data_dir=default_data_dir())


@app.callback()
def _global_options(
    json: bool = typer.Option(False, "--json", help="Print data as JSON where output is data."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say more while working."),
    data_dir: Path = typer.Option(
        None, "--data-dir", envvar="LABCTL_DATA_DIR", show_default="~/.local/share/labctl",
        help="Where labctl keeps keys, images, results and logs.",
    ),
) -> None:
    STATE.json = json
    STATE.verbose = verbose
    STATE.data_dir = (data_dir or default_data_dir()).expanduser()
