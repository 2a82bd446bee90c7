"""Reports of one bench run: rows for the terminal table, CSV, a matplotlib
plot (stacked VM phases, container distributions) and a self-contained HTML
page that bundles table, plot and host facts."""

from __future__ import annotations

import base64
import csv
import html
import io
from typing import Any

from labctl.bench.analysis import headline_text
from labctl.bench.measure import VM_PHASES

COLUMNS = ("what", "n", "min", "median", "p95", "stdev", "cv", "noisy")


def rows(analysis: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    if analysis["vm"]:
        out = [(f"VM phase: {p}", analysis["vm"]["phases"][p]) for p in VM_PHASES]
        out.append(("VM: boot to SSH command", analysis["vm"]["ssh_ready"]))
        out.append(("VM: total (boot finished)", analysis["vm"]["total"]))
        for part, summary in analysis["vm"]["guest"].items():
            out.append((f"VM guest view: {part}", summary))
    for runtime, metrics in analysis["containers"].items():
        for metric, summary in metrics.items():
            out.append((f"{runtime}: {metric.replace('_', ' ')}", summary))
    for metric, summary in analysis["process"].items():
        out.append((f"process in guest: {metric}", summary))
    if analysis["ssh_round_trip"]:
        out.append(("SSH round trip (host)", analysis["ssh_round_trip"]))
    return out


def csv_text(analysis: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for what, s in rows(analysis):
        writer.writerow([what, s["n"], *(f"{s[k]:.6f}" for k in ("min", "median", "p95",
                                                                 "stdev", "cv")), s["noisy"]])
    return buf.getvalue()


def plot_png(data: dict[str, Any], analysis: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    bottom = 0.0
    for phase in VM_PHASES if analysis["vm"] else ():
        median = analysis["vm"]["phases"][phase]["median"]
        left.bar(["VM boot"], [median], bottom=[bottom], label=phase)
        bottom += median
    left.set_ylabel("seconds (median per phase)")
    left.set_title("VM boot, phase by phase" if analysis["vm"] else "VM boot: not measured")
    if analysis["vm"]:
        left.legend(fontsize=7, loc="upper right")
    labels, series = [], []
    for runtime, samples in data["containers"].items():
        for metric in ("cold_run", "run_true", "run_cat"):
            values = [s[metric] for s in samples if metric in s]
            if values:
                labels.append(f"{runtime}\n{metric.replace('_', ' ')}")
                series.append(values)
    if series:
        right.boxplot(series, tick_labels=labels)
        right.set_ylabel("seconds (timed inside the guest)")
        right.set_title("container start")
        right.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def html_page(run_id: str, data: dict[str, Any], analysis: dict[str, Any],
              png: bytes | None) -> str:
    e = html.escape
    headlines = "".join(f"<li>{e(headline_text(r, h))}</li>"
                        for r, h in analysis["headline"].items())
    noisy = (f"<p class='noisy'>Noisy (coefficient of variation over "
             f"{analysis['noisy_cv']:.0%}): {e(', '.join(analysis['noisy']))}. Treat those "
             "numbers as rough.</p>" if analysis["noisy"] else
             "<p>Every measurement's spread is within the 10% noise threshold.</p>")
    table = "".join(
        f"<tr{' class=noisy' if s['noisy'] else ''}><td>{e(what)}</td><td>{s['n']}</td>"
        + "".join(f"<td>{s[k]:.3f}</td>" for k in ("min", "median", "p95", "stdev"))
        + f"<td>{s['cv']:.1%}</td></tr>" for what, s in rows(analysis))
    facts = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>"
                    for k, v in data["host"].items() if k != "measured_at_monotonic")
    image = (f"<img alt='plot' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
             if png else "")
    settings = e(", ".join(f"{k}={v}" for k, v in data["settings"].items()))
    phase_note = (f"VM phases add up to the total (largest difference "
                  f"{analysis['vm']['phase_sum_error']:.1e} s). " if analysis["vm"] else
                  "VM boots were not measured (bench.compare). ")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>labctl bench {e(run_id)}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}
td,th{{padding:.2em .6em;text-align:right}} td:first-child,th{{text-align:left}}
tr.noisy td{{color:#a40}} .noisy{{color:#a40}} img{{max-width:100%}}</style></head>
<body><h1>VM boot versus container start</h1>
<p>Run {e(run_id)} of lab '{e(data['lab'])}', {e(data['created'])}; {settings}.</p>
<ul>{headlines}</ul>{noisy}{image}
<h2>Measurements (seconds)</h2>
<table><tr><th>what</th><th>n</th><th>min</th><th>median</th><th>p95</th><th>stdev</th>
<th>cv</th></tr>{table}</table>
<p>{phase_note}Container times are taken inside the guest; the SSH round trip is shown
apart.</p>
<h2>Host</h2><table>{facts}</table></body></html>
"""
