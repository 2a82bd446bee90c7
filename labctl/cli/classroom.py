"""A class of copies: live progress for `up`, `handout`, `reset`, and the
class halves of `up`/`down` that lifecycle.py hands over to."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from labctl import class_run, classroom, handout, orchestrate
from labctl.cli.app import STATE, app
from labctl.cli.common import (
    COPY_OPTION,
    URI_OPTION,
    VAR_OPTION,
    ProgressPrinter,
    lab_name,
    load,
    locked,
    settings,
)
from labctl.cli.output import err, out, print_json
from labctl.errors import LabctlError, UsageError
from labctl.events import Event
from labctl.model import Lab


class ClassProgress:
    """One live line per copy (its latest stage and time) on a terminal; plain
    lines prefixed with the copy otherwise (CI logs, pipes)."""

    def __init__(self, copies: list[str]):
        self.start = time.monotonic()
        self.rows: dict[str, tuple[str, str, float]] = {c: ("waiting", "", 0.0) for c in copies}
        self.lock = threading.Lock()
        self.live = Live(self._table(), console=err, refresh_per_second=4) \
            if err.is_terminal and not STATE.json else None

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def __call__(self, copy: str, event: Event) -> None:
        if STATE.json:
            return
        elapsed = time.monotonic() - self.start
        with self.lock:
            if copy != "*":
                self.rows[copy] = (f"{event.subject} {event.stage}", event.detail[:60], elapsed)
            if self.live is not None and copy != "*":
                self.live.update(self._table())
                return
        err.print(f"[dim]{elapsed:6.1f}s[/dim] {copy if copy != '*' else '':<10} "
                  f"{event.subject:<16} [bold]{event.stage}[/bold]  {event.detail}",
                  highlight=False)

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for column in ("copy", "stage", "detail", "at"):
            table.add_column(column)
        for copy, (stage, detail, at) in self.rows.items():
            table.add_row(copy, stage, detail, f"{at:5.1f}s" if at else "")
        return table


def up_class(lab: Lab, uri: str | None, templates: Path | None, copies: int | None,
             only: str | None, max_parallel: int | None, reset: frozenset[str] = frozenset(),
             summary: bool = True, hosts: tuple[str, ...] = (),
             **extra) -> class_run.ClassResult:
    s = settings(uri, templates, **extra)
    ids = [only] if only else classroom.copy_ids(lab, copies)
    with locked(lab.name, "up (class)", no_wait=False), ClassProgress(ids) as progress:
        result = class_run.up_class(lab, s, progress, copies, only, max_parallel, reset,
                                    hosts)
    if summary:
        print_class(result)
    if result.failed:
        first = result.failed[0]
        raise LabctlError(f"{len(result.copies) - len(result.failed)} of {len(result.copies)} "
                          f"copies ready; copy '{first.copy}': {first.error}",
                          "'labctl up' again resumes; 'labctl down NAME --all-copies' removes")
    return result


def print_class(result: class_run.ClassResult) -> None:
    if STATE.json:
        print_json({"class": result.group, "seconds": round(result.seconds, 2),
                    "max_parallel": result.max_parallel,
                    "copies": [{"copy": c.copy, "lab": c.lab, "host": result.placement.get(c.lab),
                                "seconds": round(c.seconds, 2),
                                "error": c.error, "stages": c.stage_times()}
                               for c in result.copies]})
        return
    table = Table(title=f"class {result.group}", title_justify="left")
    several = len(set(result.placement.values())) > 1
    for column in ("copy", "lab", *(["host"] if several else []), "result", "time",
                   "slowest stage"):
        table.add_column(column)
    worst: tuple[float, str, str] | None = None
    for c in result.copies:
        slow = c.slowest_stage
        if slow and (worst is None or slow[1] > worst[0]):
            worst = (slow[1], slow[0], c.copy)
        table.add_row(c.copy, c.lab, *([result.placement.get(c.lab, "")] if several else []),
                      "failed" if c.error else "ready", f"{c.seconds:.1f} s",
                      f"{slow[0]} {slow[1]:.1f} s" if slow else "-")
    out.print(table)
    ready = len(result.copies) - len(result.failed)
    line = (f"class '{result.group}': {ready} of {len(result.copies)} copies ready in "
            f"{result.seconds:.1f} s ({result.max_parallel} at a time)")
    if worst:
        line += f"; slowest stage: {worst[1]} {worst[0]:.1f} s (copy {worst[2]})"
    out.print(line, markup=False)


def down_class(group: str, uri: str | None, only: str | None) -> None:
    with locked(group, "down (class)", no_wait=False):
        results = class_run.down_class(group, settings(uri), lambda _c, _e: None, only)
    if STATE.json:
        print_json([r.__dict__ for r in results])
        return
    vms = sum(len(r.domains) for r in results)
    out.print(f"class '{group}': {len(results)} copies removed ({vms} VM(s))."
              if results else f"class '{group}' has no copies to remove.", markup=False)


@app.command(name="handout")
def handout_cmd(
    lab: str = typer.Argument(..., metavar="LAB.yaml|NAME"),
    out_dir: Path = typer.Option(..., "--out", metavar="DIR", help="Where the folders go."),
    copy: str = COPY_OPTION,
    jump: str = typer.Option(None, "--jump", metavar="USER@HOST",
                             help="Add a ProxyJump through the lab host (students' laptops)."),
    as_zip: bool = typer.Option(False, "--zip", help="Also zip each student's folder."),
    uri: str = URI_OPTION,
) -> None:
    """Per student: their key, an OpenSSH config, their VMs' addresses and a README;
    and roster.csv for the instructor."""
    group = lab_name(lab, uri)  # the file's lab name, or the name given
    made = handout.write(group, settings(uri), out_dir, copy, jump, as_zip)
    if STATE.json:
        print_json([{"copy": h.copy, "lab": h.lab, "folder": str(h.folder),
                     "vms": [e.alias for e in h.entries]} for h in made])
        return
    for h in made:
        out.print(f"{h.copy}: {h.folder} ({len(h.entries)} VM(s))", markup=False)
    out.print(f"roster: {out_dir / 'roster.csv'}; a student runs: cd FOLDER && "
              "ssh -F ssh_config LAB-COPY.VM", markup=False)


@app.command()
def reset(
    lab_file: Path = typer.Argument(..., metavar="LAB.yaml"),
    vms: list[str] = typer.Argument(None, metavar="[VM...]"),
    copy: str = COPY_OPTION,
    var: list[str] = VAR_OPTION,
    uri: str = URI_OPTION,
) -> None:
    """Return VMs (default: all of the lab or copy) to their post-'up' state: a fresh
    overlay on the base image, containers deployed again. Says how long it took."""
    lab = load(lab_file, var)
    names = frozenset(vms or [vm.name for vm in lab.vms])
    unknown = sorted(names - {vm.name for vm in lab.vms})
    if unknown:
        raise UsageError(f"lab '{lab.name}' has no VM '{unknown[0]}'",
                         f"its VMs: {', '.join(vm.name for vm in lab.vms)}")
    began = time.monotonic()
    if classroom.is_class(lab) or copy:
        if not copy:
            raise UsageError(f"lab '{lab.name}' is a class: say which copy to reset",
                             "--copy ID (a student's name or 1..N)")
        up_class(lab, uri, None, None, copy, 1, reset=names, summary=False)
        target = f"copy '{copy}' of '{lab.name}'"
    else:
        with locked(lab.name, "reset", no_wait=False):
            orchestrate.up(lab, settings(uri), ProgressPrinter(), reset=names)
        target = f"lab '{lab.name}'"
    seconds = time.monotonic() - began
    if STATE.json:
        print_json({"reset": sorted(names), "target": target, "seconds": round(seconds, 2)})
    else:
        out.print(f"reset {', '.join(sorted(names))} of {target} in {seconds:.1f} s",
                  markup=False)

