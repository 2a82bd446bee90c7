"""labctl gc: find what no lab can use any more, and remove it when told to."""

from __future__ import annotations

import sys

import typer

from labctl.cli.app import STATE, app
from labctl.cli.common import MAINTENANCE, URI_OPTION, session
from labctl.cli.output import err, out, print_json
from labctl.errors import UsageError


@app.command(rich_help_panel=MAINTENANCE)
def gc(
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
    uri: str = URI_OPTION,
    all_hosts: bool = typer.Option(False, "--all-hosts",
                                   help="Every host labctl knows of (labctl hosts), "
                                        "each on its own."),
) -> None:
    """Remove leftovers: VMs, networks and volumes of labs whose keys are gone,
    volumes of VMs never defined, unused old base images, files of removed labs."""
    from labctl.usecases import gc as collector
    from labctl.usecases.hosts import known_uris

    s = session(uri)
    uris = known_uris(s) if all_hosts else [s.settings.uri]
    rows: list[dict] = []  # --json: one document for every host
    for where, found in collector.find_on_hosts(s, uris).items():
        if isinstance(found, Exception):
            if not all_hosts:
                raise found
            err.print(f"host {where}: cannot be reached, skipped ({found.message})",
                      markup=False)
        else:
            rows += [{**g.__dict__, "host": where}
                     for g in _gc_host(s, where, found, yes, dry_run, all_hosts)]
    if STATE.json:
        print_json(rows)


def _gc_host(s, uri: str, garbage: list, yes: bool, dry_run: bool, label: bool) -> list:
    """What was removed on one host (with --dry-run: what would be)."""
    from labctl.usecases import gc as collector

    on = f"{uri}: " if label else ""
    if STATE.json and (dry_run or not garbage):
        return garbage
    if not garbage:
        out.print(f"{on}nothing to collect: every labctl resource belongs to a usable lab.",
                  markup=False)
        return []
    if not STATE.json:
        for g in garbage:
            out.print(f"{on}{g.kind:<8} {g.name}: {g.reason}", markup=False)
    if dry_run:
        out.print(f"{on}{len(garbage)} item(s) would be removed (run without --dry-run).",
                  markup=False)
        return garbage
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{len(garbage)} item(s) to remove; confirm with --yes",
                             "stdin is not a terminal, so labctl cannot ask")
        if not typer.confirm(f"remove these {len(garbage)} item(s)?"):
            raise typer.Exit(1)
    removed = collector.collect(
        s, garbage,
        busy=lambda lab: err.print(f"skipped lab '{lab}': a labctl is working on it",
                                   markup=False), uri=uri)
    if not STATE.json:
        out.print(f"{on}removed {len(removed)} of {len(garbage)} item(s).", markup=False)
    return removed
