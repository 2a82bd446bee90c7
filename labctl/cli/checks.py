"""`labctl check` (a lab's checks in one copy or every copy, as a table, JSON,
CSV or a self-contained HTML page; `check history`) and `labctl inventory`."""

from __future__ import annotations

from pathlib import Path

import typer

from labctl.cli.app import CHECKS, STATE, app
from labctl.cli.common import ALL_COPIES_OPTION, COPY_OPTION, URI_OPTION, VAR_OPTION, load, session
from labctl.cli.output import err, out, print_json


@app.command(rich_help_panel=CHECKS)
def check(
    lab_file: Path = typer.Argument(..., metavar="LAB.yaml|history",
                                    help="The lab file; or 'history' and a lab's name."),
    history_of: str = typer.Argument(None, metavar="[LAB]", hidden=True),
    copy: str = COPY_OPTION,
    all_copies: bool = ALL_COPIES_OPTION,
    csv_file: Path = typer.Option(None, "--csv", metavar="FILE", help="Also write a CSV."),
    html_file: Path = typer.Option(None, "--html", metavar="FILE",
                                   help="Also write a self-contained HTML page."),
    var: list[str] = VAR_OPTION,
    uri: str = URI_OPTION,
    students: bool = typer.Option(False, "--students",
                                  help="With history: the students' own attempts "
                                       "(\"check my work\" on their page), copy by copy."),
) -> None:
    """Run the lab file's checks in every copy and show a copy x check table.

    ✓ passed, ✗ failed, ? could not run (never a pass). Copies are checked in
    parallel; results are kept ('labctl check history LAB' shows a class's
    progress). Checks only read: they never change a VM."""
    if str(lab_file) == "history":
        _attempts(history_of, uri) if students else _history(history_of)
        return
    from labctl.checks.results import SYMBOLS
    from labctl.render import render_html
    from labctl.usecases.checks import run_checks

    lab = load(lab_file, var)
    s = session(uri)

    def progress(result) -> None:
        if not STATE.json:
            err.print(f"[dim]checked[/dim] {result.copy or result.lab}: {result.passed} of "
                      f"{len(result.outcomes)} passed", highlight=False)

    run = run_checks(s, lab, copy, all_copies, progress)
    if csv_file:
        csv_file.write_text(run.csv_text())
    if html_file:
        html_file.write_text(render_html("reports/checks.html.j2", run=run, symbols=SYMBOLS))
    if STATE.json:
        print_json(run.to_dict())
        return
    _table(run)


def _table(run) -> None:
    from rich.table import Table

    from labctl.checks.results import SYMBOLS

    table = Table(box=None, pad_edge=False)
    table.add_column("copy")
    for info in run.checks:
        table.add_column(f"{info.name}\n[dim]{info.points} pt[/dim]")
    table.add_column("points", justify="right")
    for copy in run.copies:
        cells = [f"{SYMBOLS[o.status]} {o.reason}".strip()[:40] for o in copy.outcomes]
        table.add_row(copy.copy or copy.lab, *cells, f"{copy.earned}/{run.total_points}")
    out.print(table)
    passed = sum(c.passed for c in run.copies)
    errors = sum(c.could_not_run for c in run.copies)
    cells = len(run.copies) * len(run.checks)
    out.print(f"{passed} of {cells} checks passed"
              + (f", {errors} could not run" if errors else "")
              + f" ({run.seconds:.1f} s; run {run.run_id})", markup=False)


def _attempts(group: str | None, uri: str | None) -> None:
    from labctl.usecases import students as cases

    if not group:
        raise typer.BadParameter("say which class: labctl check history LAB --students")
    found = cases.class_attempts(session(uri), group)
    if STATE.json:
        print_json({name: [r.to_dict() for r in runs] for name, runs in found.items()})
        return
    if not any(found.values()):
        out.print(f"no student of '{group}' has checked their work yet", markup=False)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("copy", "at (UTC)", "points", "passed"):
        table.add_column(column)
    for name, runs in sorted(found.items()):
        for r in runs:
            for c in r.copies:
                table.add_row(c.copy or name, r.created.replace("+00:00", ""),
                              f"{c.earned}/{r.total_points}",
                              ", ".join(o.check for o in c.outcomes if o.status == "pass"))
    out.print(table)


def _history(lab: str | None) -> None:
    from labctl.checks.store import CheckHistory

    if not lab:
        raise typer.BadParameter("say which lab: labctl check history LAB")
    runs = CheckHistory(STATE.data_dir).runs(lab)
    if STATE.json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        out.print(f"no check runs of '{lab}' yet: run 'labctl check {lab}.yaml'", markup=False)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    copies = sorted({c.copy or c.lab for r in runs for c in r.copies})
    for column in ("run", "at (UTC)", *copies):
        table.add_column(column)
    for r in runs:
        by_copy = {c.copy or c.lab: f"{c.earned}/{r.total_points}" for c in r.copies}
        table.add_row(r.run_id, r.created.replace("+00:00", ""),
                      *(by_copy.get(c, "-") for c in copies))
    out.print(table)


@app.command(rich_help_panel=CHECKS)
def inventory(
    lab: str = typer.Argument(..., metavar="LAB", help="A lab's or a class's name."),
    all_copies: bool = ALL_COPIES_OPTION,
    ini: bool = typer.Option(False, "--ini", help="INI instead of YAML."),
    uri: str = URI_OPTION,
) -> None:
    """An Ansible inventory of the lab's running VMs, with its key and pinned host keys.

    Groups: the lab or class, each copy, each VM name. For example:
    ansible -i <(labctl inventory LAB) all -m ping"""
    import yaml

    from labctl.usecases import inventory as inv

    found = inv.hosts(session(uri), lab, all_copies)
    if ini:
        out.print(inv.as_ini(lab, found), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(yaml.safe_dump(inv.as_yaml_dict(lab, found), sort_keys=False).rstrip(),
                  markup=False, highlight=False, soft_wrap=True)
