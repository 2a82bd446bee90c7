"""A class of copies: live progress and the summary table for `up`, and `handout`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import typer

from labctl.cli.app import STATE, app
from labctl.cli.common import CLASS, COPY_OPTION, URI_OPTION, lab_name, load, session
from labctl.cli.output import err, out, print_json
from labctl.events import Event


class ClassProgress:
    """One live line per copy (its latest stage and time) on a terminal; plain
    lines prefixed with the copy otherwise (CI logs, pipes)."""

    def __init__(self, copies: list[str]):
        self.start = time.monotonic()
        self.rows: dict[str, tuple[str, str, float]] = {c: ("waiting", "", 0.0) for c in copies}
        self.lock = threading.Lock()
        from rich.live import Live

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

    def _table(self):
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("copy", "stage", "detail", "at"):
            table.add_column(column)
        for copy, (stage, detail, at) in self.rows.items():
            table.add_row(copy, stage, detail, f"{at:5.1f}s" if at else "")
        return table


def print_class(result) -> None:
    if STATE.json:
        print_json({"class": result.group, "seconds": round(result.seconds, 2),
                    "max_parallel": result.max_parallel,
                    "copies": [{"copy": c.copy, "lab": c.lab, "host": result.placement.get(c.lab),
                                "seconds": round(c.seconds, 2),
                                "error": c.error, "stages": c.stage_times()}
                               for c in result.copies]})
        return
    from rich.table import Table

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


@app.command(name="handout", rich_help_panel=CLASS)
def handout_cmd(
    lab: str = typer.Argument(..., metavar="LAB.yaml|NAME"),
    out_dir: Path = typer.Option(..., "--out", metavar="DIR", help="Where the folders go."),
    copy: str = COPY_OPTION,
    jump: str = typer.Option(None, "--jump", metavar="USER@HOST",
                             help="Add a ProxyJump through the lab host (students' laptops)."),
    as_zip: bool = typer.Option(False, "--zip", help="Also zip each student's folder."),
    page: str = typer.Option(None, "--page", metavar="URL",
                             help="The dashboard's address as students reach it "
                                  "(e.g. http://lab-host:8800): each README gets the "
                                  "student's own page."),
    uri: str = URI_OPTION,
) -> None:
    """Per student: their key, an OpenSSH config, their VMs' addresses and a README;
    and roster.csv for the instructor."""
    group = lab_name(lab, uri)  # the file's lab name, or the name given
    from labctl.usecases import handout

    # from a lab file, the README also lists the checks a student is assessed on
    # (and roster.csv each copy's own per-copy values)
    from_file = load(Path(lab), []) if Path(lab).is_file() else None
    made = handout.write(session(uri), group, out_dir, copy, jump, as_zip,
                         from_file.checks if from_file else (), from_file, page)
    if STATE.json:
        print_json([{"copy": h.copy, "lab": h.lab, "folder": str(h.folder),
                     "vms": [e.alias for e in h.entries]} for h in made])
        return
    for h in made:
        out.print(f"{h.copy}: {h.folder} ({len(h.entries)} VM(s))", markup=False)
    out.print(f"roster: {out_dir / 'roster.csv'}; a student runs: cd FOLDER && "
              "ssh -F ssh_config LAB-COPY.VM", markup=False)


@app.command("hosts", rich_help_panel=CLASS)
def hosts(
    lab_file: Path = typer.Argument(None, help="A lab file: its hosts: too.", show_default=False),
    host: list[str] = typer.Option([], "--host", metavar="URI", help="Also this host "
                                   "(repeatable)."),
    uri: str = URI_OPTION,
) -> None:
    """Each libvirt host: reachable, KVM or TCG, free RAM/disk/cores, the labs it holds."""
    from labctl.usecases.hosts import host_rows, known_uris

    s = session(uri)
    extra = (*((load(lab_file, []).hosts) if lab_file else ()), *host)
    rows = host_rows(s, known_uris(s, tuple(extra)))
    if STATE.json:
        print_json([row.__dict__ | {"labs": list(row.labs), "placed": list(row.placed)}
                    for row in rows])
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("host", "state", "accel", "free RAM", "free disk", "cores", "labs"):
        table.add_column(column)
    for row in rows:
        if not row.reachable:
            table.add_row(row.uri, "unreachable", "", "", "", "",
                          f"{row.error}; placed here: {', '.join(row.placed) or 'none'}")
            continue
        table.add_row(row.uri, "ok", "KVM" if row.accel == "kvm" else "TCG",
                      f"{row.memory_mib} MiB", f"{row.disk_mib} MiB", str(row.cpus),
                      ", ".join(row.labs) or "-")
    out.print(table)
