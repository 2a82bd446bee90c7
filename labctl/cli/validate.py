"""labctl validate LAB.yaml...: load each lab file and report."""

from __future__ import annotations

from pathlib import Path

import typer

from labctl.cli.app import STATE, app
from labctl.cli.common import MAINTENANCE, VAR_OPTION
from labctl.cli.output import out, print_error_lines, print_json
from labctl.errors import EXIT_USAGE, LabFileError


def lab_summary(lab) -> dict:
    return {
        "lab": lab.name,
        "vms": len(lab.vms),
        "containers": sum(len(vm.containers) for vm in lab.vms),
        "networks": len(lab.networks),
    }


@app.command(rich_help_panel=MAINTENANCE)
def validate(
    files: list[Path] = typer.Argument(..., metavar="LAB.yaml...", help="Lab files to check."),
    var: list[str] = VAR_OPTION,
) -> None:
    """Check lab files: syntax, types, names, references. Exit 2 if any is bad."""
    from labctl.lab.loader import load_lab, parse_var_overrides

    overrides = parse_var_overrides(var)
    results, failed = [], False
    for path in files:
        try:
            lab = load_lab(path, overrides)
        except LabFileError as exc:
            failed = True
            results.append({"file": str(path), "ok": False, "error": exc.message,
                            "location": exc.location(), "hint": exc.hint})
            if not STATE.json:
                print_error_lines(exc.lines())
            continue
        summary = lab_summary(lab)
        results.append({"file": str(path), "ok": True, **summary})
        if not STATE.json:
            out.print(f"{path}: ok (lab '{lab.name}': {summary['vms']} VM(s), "
                      f"{summary['containers']} container(s), {summary['networks']} network(s))",
                      markup=False)
    if STATE.json:
        print_json(results)
    if failed:
        raise typer.Exit(EXIT_USAGE)
