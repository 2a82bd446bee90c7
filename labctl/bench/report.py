"""Reports of one bench run: rows for the terminal table, CSV, one matplotlib
picture (every layer on one logarithmic axis, the VM boot's phases on a linear
one) and a self-contained HTML page that opens with the picture, then the
headlines, the table and host facts."""

from __future__ import annotations

import base64
import csv
import html
import io
from typing import Any

from labctl.bench.analysis import headline_text, host_headline_text

COLUMNS = ("what", "n", "min", "median", "p95", "stdev", "cv", "noisy")


def rows(analysis: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for runtime, metrics in analysis["host"]["containers"].items():
        for metric, summary in metrics.items():
            out.append((f"host {runtime}: {metric.replace('_', ' ')}", summary))
    for metric, summary in analysis["host"]["process"].items():
        out.append((f"process on host: {metric}", summary))
    if analysis["vm"]:
        out += [(f"VM phase: {p}", summary) for p, summary in analysis["vm"]["phases"].items()]
        out.append(("VM: boot to SSH command", analysis["vm"]["ssh_ready"]))
        out.append(("VM: total (boot finished)", analysis["vm"]["total"]))
        for part, summary in analysis["vm"]["guest"].items():
            out.append((f"VM guest view: {part}", summary))
    for runtime, metrics in analysis["containers"].items():
        for metric, summary in metrics.items():
            out.append((f"{runtime} in VM: {metric.replace('_', ' ')}", summary))
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


def layers(analysis: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The picture's rows, fastest layer first: a process and a container on
    this machine, the same inside the VM, the VM's boot to SSH."""
    out = [("process on this machine", analysis["host"]["process"].get("true"))]
    out += [(f"{rt} run on this machine", m.get("run_true"))
            for rt, m in analysis["host"]["containers"].items()]
    out.append(("process inside the VM", analysis["process"].get("true")))
    out += [(f"{rt} run inside the VM", m.get("run_true"))
            for rt, m in analysis["containers"].items()]
    if analysis["vm"]:
        out.append(("VM boot to SSH", analysis["vm"]["ssh_ready"]))
    return [(label, s) for label, s in out if s]


def plot_png(data: dict[str, Any], analysis: dict[str, Any]) -> bytes:
    """Every layer on one logarithmic time axis (median, whiskers from min to
    p95); under it, the VM's boot on a linear axis, its phases stacked, so a
    phase's width is its share (on the log axis a 23 ms `define` drew as a
    third of a 21 s boot). Legends under their axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows_ = layers(analysis)
    phases = _vm_phases(analysis)
    heights = [1.2 + 0.6 * max(len(rows_), 1)] + ([1.9] if phases else [])
    fig, axes = plt.subplots(len(heights), 1, figsize=(11, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    ax = axes[0][0]
    floor = min([s["min"] for _, s in rows_] + [1.0]) / 3
    for y, (label, s) in enumerate(rows_):
        ax.barh(y, s["median"] - floor, left=floor,
                color="#dd8452" if label == "VM boot to SSH" else "#4c72b0")
        ax.errorbar(s["median"], y, xerr=[[s["median"] - s["min"]], [s["p95"] - s["median"]]],
                    fmt="k|", capsize=4)
        ax.annotate(_seconds_label(s["median"]), (s["p95"], y), xytext=(6, -4),
                    textcoords="offset points", fontsize=9)
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows_)), [label for label, _ in rows_])
    ax.set_xlabel("seconds, logarithmic (median; whiskers: min to p95)")
    ax.set_xlim(floor, max([s["p95"] for _, s in rows_] + [1.0]) * 4)
    heads = [f"{rt} on this machine {h['ratio']:.0f}x faster than the VM"
             for rt, h in analysis["headline_host"].items()]
    ax.set_title("What starts how fast" + (f": {'; '.join(heads)}" if heads else ""))
    if phases:
        _plot_phases(axes[1][0], phases, plt.get_cmap("tab10").colors)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def _vm_phases(analysis: dict[str, Any]) -> list[tuple[str, float]]:
    """The VM boot's phases to SSH and their medians, in order."""
    if not analysis["vm"]:
        return []
    return [(p, summary["median"]) for p, summary in analysis["vm"]["phases"].items()
            if p != "boot-finished"]


def _plot_phases(ax, phases: list[tuple[str, float]], colors) -> None:
    """One bar, linear seconds: each phase as wide as its share of the boot."""
    total = sum(width for _, width in phases) or 1.0
    left = 0.0
    for i, (phase, width) in enumerate(phases):
        ax.barh(0, width, left=left, color=colors[i % 10],
                label=f"{phase} {_seconds_label(width)} ({100 * width / total:.0f} %)")
        left += width
    ax.set_yticks([0], ["VM boot to SSH"])
    ax.set_xlim(0, total * 1.02)
    ax.set_xlabel("seconds, linear: the VM's boot by phase (medians)")
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.45))


def _seconds_label(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def html_page(run_id: str, data: dict[str, Any], analysis: dict[str, Any],
              png: bytes | None) -> str:
    e = html.escape
    headlines = "".join(f"<li><b>{e(host_headline_text(r, h))}</b></li>"
                        for r, h in analysis["headline_host"].items())
    headlines += "".join(f"<li>{e(headline_text(r, h))}</li>"
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
{image}<ul>{headlines}</ul>{noisy}
<h2>Measurements (seconds)</h2>
<table><tr><th>what</th><th>n</th><th>min</th><th>median</th><th>p95</th><th>stdev</th>
<th>cv</th></tr>{table}</table>
<p>{phase_note}Container times are taken inside the guest; the SSH round trip is shown
apart.</p>
<h2>Host</h2><table>{facts}</table></body></html>
"""
