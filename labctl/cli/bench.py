"""labctl bench run | history | report | compare: the built-in comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from labctl.cli.app import STATE, Typer, app
from labctl.cli.common import (
    BENCH,
    LAB_ARG,
    NO_WAIT_OPTION,
    TEMPLATES_OPTION,
    URI_OPTION,
    VAR_OPTION,
    WAIT_LOCK_OPTION,
    load,
    session,
)
from labctl.cli.output import out, print_json

bench_app = Typer(help="VM boot versus container start, measured here.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench", rich_help_panel=BENCH)


@bench_app.command("run")
def run(
    lab_file: Path = LAB_ARG, var: list[str] = VAR_OPTION, uri: str = URI_OPTION,
    templates: Path = TEMPLATES_OPTION,
    repeat: int = typer.Option(None, "--repeat", min=1, max=100,
                               help="Measured repetitions (default: the lab's bench.repeat)."),
    warmup: int = typer.Option(None, "--warmup", min=0, max=10, help="Discarded runs."),
    runtime: list[str] = typer.Option(None, "--runtime", help="docker or podman (repeatable)."),
    csv: Path = typer.Option(None, "--csv", help="Also write the summary as CSV here."),
    html: Path = typer.Option(None, "--html", help="Write the HTML report here."),
    quick: bool = typer.Option(False, "--quick", help="For a classroom projection: 2 "
                               "repetitions, no warm-up, the lab's first runtime only "
                               "(wider intervals; the report shows them)."),
    no_wait: bool = NO_WAIT_OPTION,
    wait_lock: float = WAIT_LOCK_OPTION,
    host: str = typer.Option(None, "--host", metavar="URI",
                             help="Measure on this libvirt host (qemu+ssh://USER@HOST/system)."),
) -> None:
    """Boot fresh VMs and start containers in them; store and report the results."""
    from labctl.bench.run import run_bench
    from labctl.bench.store import Results
    from labctl.lab.model import Bench

    lab = load(lab_file, var)
    if quick:
        repeat, warmup = repeat or 2, 0 if warmup is None else warmup
        runtime = runtime or list((lab.bench or Bench()).runtimes[:1])
    s = session(host or uri, templates, no_wait=no_wait, wait_lock=wait_lock)
    data = run_bench(s, lab, repeat, warmup, tuple(runtime) if runtime else None)
    run_id = Results(s.data_dir).add(data)
    show(run_id, data, html or s.data_dir / "bench" / f"{run_id}.html", csv)


@bench_app.command("report")
def report(run_id: str = typer.Argument(...),
           html: Path = typer.Option(None, "--html", help="Write the HTML report here."),
           csv: Path = typer.Option(None, "--csv", help="Write the summary as CSV here.")) -> None:
    """Show a stored run again, and write its HTML or CSV report."""
    from labctl.bench.store import Results

    show(run_id, Results(STATE.data_dir).get(run_id), html, csv)


def show(run_id: str, data: dict[str, Any], html: Path | None, csv: Path | None) -> None:
    from rich.table import Table

    from labctl.bench import report as reports
    from labctl.bench.analysis import analyse, headline_text, host_headline_text

    analysis = analyse(data)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(reports.html_page(run_id, data, analysis,
                                          reports.plot_png(data, analysis)))
    if csv is not None:
        csv.write_text(reports.csv_text(analysis))
    if STATE.json:
        print_json({"run_id": run_id, "data": data, "analysis": analysis,
                    "html": str(html) if html else None})
        return
    table = Table(title=f"bench run {run_id} ({data['host']['accel']}, "
                  f"{data['settings']['repeat']} repetitions)", title_justify="left")
    for column in ("what", "n", "min", "median", "p95", "cv"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for what, s in reports.rows(analysis):
        style = "yellow" if s["noisy"] else None
        table.add_row(what, str(s["n"]), f"{s['min']:.3f}", f"{s['median']:.3f}",
                      f"{s['p95']:.3f}", f"{s['cv']:.0%}" + (" noisy" if s["noisy"] else ""),
                      style=style)
    out.print(table)
    for runtime, h in analysis["headline_host"].items():
        out.print(host_headline_text(runtime, h), markup=False)
    for runtime, h in analysis["headline"].items():
        out.print(headline_text(runtime, h), markup=False)
    if analysis["noisy"]:
        out.print(f"noisy (cv > {analysis['noisy_cv']:.0%}): {', '.join(analysis['noisy'])}",
                  markup=False)
    if html is not None:
        out.print(f"HTML report: {html}", markup=False)


@bench_app.command("history")
def history() -> None:
    """Every stored run: when, which lab, the headline ratios."""
    from rich.table import Table

    from labctl.bench.analysis import analyse
    from labctl.bench.store import Results

    runs = Results(STATE.data_dir).history()
    if STATE.json:
        print_json([{"run_id": r, "created": c, "lab": lab,
                     "headline": analyse(d)["headline"]} for r, c, lab, d in runs])
        return
    table = Table(title="bench runs", title_justify="left")
    for column in ("run", "created", "lab", "accel", "n", "VM to SSH", "container starts"):
        table.add_column(column)
    for run_id, created, lab, data in runs:
        a = analyse(data)
        heads = ", ".join(f"{rt} {h['ratio']:.0f}x" for rt, h in a["headline"].items())
        table.add_row(run_id, created, lab, data["host"]["accel"],
                      str(data["settings"]["repeat"]),
                      f"{a['vm']['ssh_ready']['median']:.1f} s" if a["vm"] else "-",
                      heads or "-")
    out.print(table)


@bench_app.command("compare")
def compare(a: str = typer.Argument(..., metavar="RUN_A"),
            b: str = typer.Argument(..., metavar="RUN_B")) -> None:
    """How the medians changed from run A to run B (e.g. TCG vs KVM, docker vs podman)."""
    from rich.table import Table

    from labctl.bench import report as reports
    from labctl.bench.analysis import analyse
    from labctl.bench.store import Results

    results = Results(STATE.data_dir)
    first, second = analyse(results.get(a)), analyse(results.get(b))
    rows_b = dict(reports.rows(second))
    changes = []
    for what, s in reports.rows(first):
        if what in rows_b:
            new = rows_b[what]["median"]
            change = (new - s["median"]) / s["median"] if s["median"] else 0.0
            changes.append({"what": what, "a": s["median"], "b": new, "change": change})
    if STATE.json:
        print_json({"a": a, "b": b, "changes": changes})
        return
    table = Table(title=f"bench {a} -> {b} (medians, seconds)", title_justify="left")
    for column in ("what", a, b, "change"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for c in changes:
        table.add_row(c["what"], f"{c['a']:.3f}", f"{c['b']:.3f}", f"{c['change']:+.0%}")
    out.print(table)
    for runtime in first["headline"].keys() & second["headline"].keys():
        h1, h2 = first["headline"][runtime], second["headline"][runtime]
        agree = h1["low"] <= h2["high"] and h2["low"] <= h1["high"]
        out.print(f"{runtime}: {h1['ratio']:.0f}x -> {h2['ratio']:.0f}x "
                  f"({'intervals overlap: no clear change' if agree else 'a real change'})",
                  markup=False)
