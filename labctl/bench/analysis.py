"""From raw samples to what the report says: summaries per metric, the VM
phases (which add up to the total by construction), the headline ratio with
its bootstrap interval, and which measurements are too noisy to call clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl.bench.measure import CONTAINER_METRICS, PROCESS_METRICS
from labctl.bench.stats import NOISY_CV, Summary, ratio_of_medians, summarize


def _summary(values: list[float]) -> dict[str, Any]:
    s: Summary = summarize(values)
    return {**s.__dict__, "noisy": s.noisy}


def ssh_ready(boot: dict[str, Any]) -> float:
    """Define to an authenticated SSH command: what 'VM boot to SSH' means
    (every phase but the last, boot-finished)."""
    names = list(boot["phases"])
    return sum(boot["phases"][p] for p in names[: names.index("login") + 1])


def phase_names(boots: list[dict[str, Any]]) -> list[str]:
    """The boots' phases in order: libvirt's (define, start, ...) or a
    cloud's (api-accepted, scheduled, active, ...)."""
    return list(boots[0]["phases"]) if boots else []


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    boots = data["vm_boot"]  # empty when bench.compare left out vm-boot
    vm = {
        "phases": {p: _summary([b["phases"][p] for b in boots]) for p in phase_names(boots)},
        "total": _summary([b["total"] for b in boots]),
        "ssh_ready": _summary([ssh_ready(b) for b in boots]),
        "phase_sum_error": max(abs(sum(b["phases"].values()) - b["total"]) for b in boots),
        "guest": {k: _summary([b["guest"][k] for b in boots if k in b["guest"]])
                  for k in ("kernel", "initrd", "userspace")
                  if any(k in b["guest"] for b in boots)},
    } if boots else None
    layer = data.get("host_layer") or {}  # runs recorded before the host layer had none
    containers = _per_runtime(data["containers"])
    process = _metrics(data["process"], PROCESS_METRICS)
    host = {"containers": _per_runtime(layer.get("containers", {})),
            "process": _metrics(layer.get("process", []), PROCESS_METRICS)}
    headline = _headlines(boots, data["containers"])
    # The course's own comparison: a VM's boot against the container on metal.
    headline_host = _headlines(boots, layer.get("containers", {}))
    noisy = [name for name, summary in _all(vm, containers, process, host) if summary["noisy"]]
    return {"vm": vm, "containers": containers, "process": process, "host": host,
            "headline_host": headline_host,
            "ssh_round_trip": _summary(data["ssh_round_trip"]) if data["ssh_round_trip"] else None,
            "headline": headline, "noisy": noisy, "noisy_cv": NOISY_CV}


def _metrics(samples: list[dict[str, float]], names: tuple[str, ...]) -> dict[str, Any]:
    """A summary of each metric the samples hold."""
    return {m: _summary([s[m] for s in samples if m in s]) for m in names
            if any(m in s for s in samples)}


def _per_runtime(by_runtime: dict[str, list]) -> dict[str, Any]:
    return {runtime: _metrics(samples, CONTAINER_METRICS)
            for runtime, samples in by_runtime.items() if samples}


def _headlines(boots: list[dict[str, Any]], by_runtime: dict[str, list]) -> dict[str, Any]:
    """Per runtime: how many times faster `run --rm true` is than a boot to SSH."""
    out = {}
    for runtime, samples in by_runtime.items():
        starts = [s["run_true"] for s in samples if "run_true" in s]
        if starts and boots:
            r = ratio_of_medians([ssh_ready(b) for b in boots], starts)
            out[runtime] = {"ratio": r.value, "low": r.low, "high": r.high}
    return out


def _all(vm, containers, process, host):
    for runtime, metrics in host["containers"].items():
        for metric, summary in metrics.items():
            yield f"host {runtime} {metric}", summary
    for metric, summary in host["process"].items():
        yield f"host process {metric}", summary
    if vm:
        yield "vm ssh_ready", vm["ssh_ready"]
    for runtime, metrics in containers.items():
        for metric, summary in metrics.items():
            yield f"{runtime} {metric}", summary
    for metric, summary in process.items():
        yield f"process {metric}", summary


def headline_text(runtime: str, h: dict[str, float], where: str = "inside the VM") -> str:
    return (f"a {runtime} container {where} starts {h['ratio']:.0f}x faster than a VM boots "
            f"to SSH (95% CI {h['low']:.0f}x-{h['high']:.0f}x)")


def host_headline_text(runtime: str, h: dict[str, float]) -> str:
    return headline_text(runtime, h, "on this machine")


def recent_headlines(data_dir: Path, count: int = 10) -> list[dict[str, Any]]:
    """The latest bench runs with their headline (runtime -> how many times a
    VM boot a container start is), for the dashboard."""
    from labctl.bench.store import Results

    return [{"run_id": run_id, "created": created, "lab": lab, "headline": _headline(data)}
            for run_id, created, lab, data in Results(data_dir).history()[-count:]]


def _headline(data: dict[str, Any]) -> dict[str, float]:
    try:
        return {rt: round(h["ratio"], 1) for rt, h in analyse(data).get("headline", {}).items()}
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return {}
