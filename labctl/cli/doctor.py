"""labctl doctor: what this host can run, and what a lab needs."""

from __future__ import annotations

from pathlib import Path

import typer

from labctl.cli.app import STATE, app
from labctl.cli.common import MAINTENANCE, URI_OPTION, VAR_OPTION, load, session
from labctl.cli.output import out, print_json

STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


@app.command(rich_help_panel=MAINTENANCE)
def doctor(
    lab_file: Path = typer.Argument(None, metavar="[LAB.yaml]",
                                    help="Also check this lab's RAM, disk and images."),
    var: list[str] = VAR_OPTION,
    uri: str = URI_OPTION,
) -> None:
    """Check libvirtd, KVM or TCG, qemu, tools, memory, disk and images."""
    from rich.table import Table

    from labctl.usecases.doctor import run_checks

    lab = load(lab_file, var) if lab_file else None
    conf = session(uri).settings
    checks = run_checks(conf.uri, conf.data_dir, lab)
    if STATE.json:
        print_json([c.__dict__ for c in checks])
    else:
        table = Table(show_header=False, box=None)
        for check in checks:
            table.add_row(check.name, f"[{STYLE[check.status]}]{check.status}[/]", check.detail)
        out.print(table)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
