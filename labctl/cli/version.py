"""labctl version."""

from __future__ import annotations

import platform

from labctl import __version__
from labctl.cli.app import STATE, app
from labctl.cli.common import MAINTENANCE
from labctl.cli.output import out, print_json


def _libvirt_version() -> str:
    try:
        from labctl.virt.connection import library_version
    except ImportError:
        return "not installed"
    return library_version()


@app.command(rich_help_panel=MAINTENANCE)
def version() -> None:
    """Print labctl's version and the versions it runs with."""
    info = {"labctl": __version__, "python": platform.python_version(),
            "libvirt": _libvirt_version()}
    if STATE.json:
        print_json(info)
    else:
        out.print(" ".join(f"{k} {v}" for k, v in info.items()), markup=False)
