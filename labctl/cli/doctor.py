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
    all_hosts: bool = typer.Option(False, "--all-hosts",
                                   help="Every host labctl knows of (labctl hosts), a "
                                        "table each."),
) -> None:
    """Check libvirtd, KVM or TCG, qemu, tools, memory, disk and images."""
    from rich.table import Table

    from labctl.usecases.doctor import run_checks
    from labctl.usecases.hosts import known_uris

    lab = load(lab_file, var) if lab_file else None
    s = session(uri)
    uris = known_uris(s) if all_hosts else [s.settings.uri]
    per_host = {where: run_checks(where, s.data_dir, lab) for where in uris}
    if STATE.json:
        print_json([{**c.__dict__, "host": where} for where, checks in per_host.items()
                    for c in checks] if all_hosts else [c.__dict__ for c in per_host[uris[0]]])
    else:
        for where, checks in per_host.items():
            table = Table(show_header=False, box=None, title=where if all_hosts else None,
                          title_justify="left")
            for check in checks:
                table.add_row(check.name, f"[{STYLE[check.status]}]{check.status}[/]",
                              check.detail)
            out.print(table)
    if any(c.status == "fail" for checks in per_host.values() for c in checks):
        raise typer.Exit(1)
