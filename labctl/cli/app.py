"""The typer application and its global options. Command modules import `app`
and register themselves; they parse, call the core, and print."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import typer
from typer.core import TyperGroup

from labctl.datadir import default_data_dir

# The --help panels, in the order people use them.
LIFECYCLE, ACCESS, CONTAINERS, CLASS = "Lab lifecycle", "Access", "Containers", "Class"
CHECKS, IMAGES, REGISTRY = "Checks and inventory", "Images", "Registry"
BENCH, MAINTENANCE = "Benchmark", "Maintenance"
PANELS = (LIFECYCLE, ACCESS, CONTAINERS, CLASS, CHECKS, IMAGES, REGISTRY, BENCH, MAINTENANCE)


class InPanelOrder(TyperGroup):
    """Lists commands panel by panel (typer lists plain commands before groups)."""

    def list_commands(self, ctx) -> list[str]:
        def rank(name: str) -> int:
            panel = getattr(self.commands[name], "rich_help_panel", None)
            return PANELS.index(panel) if panel in PANELS else len(PANELS)

        return sorted(super().list_commands(ctx), key=rank)


class Typer(typer.Typer):
    """Docstrings are written wrapped at the source's width; help shows them
    wrapped at the terminal's: each paragraph becomes one line before typer
    sees it (typer keeps single line breaks, so --help broke mid-sentence)."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def reflowed(func):
            if func.__doc__:
                func.__doc__ = reflow(func.__doc__)
            return register(func)

        return reflowed


def reflow(doc: str) -> str:
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


app = Typer(
    cls=InPanelOrder,
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
