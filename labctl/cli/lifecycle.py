"""labctl plan / up / down: bring a lab to what its file says, or remove it."""

from __future__ import annotations

from pathlib import Path

import typer

from labctl import orchestrate
from labctl.cli.app import STATE, app
from labctl.cli.common import (
    LAB_ARG,
    NO_WAIT_OPTION,
    TEMPLATES_OPTION,
    URI_OPTION,
    VAR_OPTION,
    WAIT_LOCK_OPTION,
    ProgressPrinter,
    lab_name,
    load,
    locked,
    settings,
)
from labctl.cli.output import out, print_json
from labctl.errors import UsageError
from labctl.plan import summary
from labctl.ssh.wait import STAGES


@app.command()
def plan(lab_file: Path = LAB_ARG, var: list[str] = VAR_OPTION, uri: str = URI_OPTION) -> None:
    """Show what 'up' would create, start, recreate or delete."""
    lab = load(lab_file, var)
    actions = orchestrate.plan_lab(lab, settings(uri))
    if STATE.json:
        print_json([{"verb": a.verb, "kind": a.kind, "name": a.name, "reason": a.reason}
                    for a in actions])
        return
    for action in actions:
        out.print(str(action), markup=False)
    out.print(summary(actions), markup=False)


@app.command()
def up(
    lab_file: Path = LAB_ARG,
    var: list[str] = VAR_OPTION,
    uri: str = URI_OPTION,
    templates: Path = TEMPLATES_OPTION,
    parallel: int = typer.Option(None, "--parallel", min=1, max=32,
                                 help="VMs provisioned at once (default 2 under TCG, 4 with KVM)."),
    timeout: float = typer.Option(None, "--timeout", min=1,
                                  help="Seconds each readiness stage may take."),
    total_timeout: float = typer.Option(None, "--total-timeout", min=1,
                                        help="Seconds a VM may take to be ready (default 900)."),
    no_wait: bool = NO_WAIT_OPTION,
    wait_lock: float = WAIT_LOCK_OPTION,
) -> None:
    """Create what is missing, start what is stopped, wait until every VM answers SSH."""
    lab = load(lab_file, var)
    budgets = {} if timeout is None else {s: timeout for s in STAGES}
    if total_timeout is not None:
        budgets["total"] = total_timeout
    with locked(lab.name, "up", no_wait, wait_lock):
        result = orchestrate.up(lab, settings(uri, templates, workers=parallel,
                                              budgets=budgets), ProgressPrinter())
    if STATE.json:
        print_json({"lab": result.lab, "changed": result.changed,
                    "accel": result.accel.domain_type, "seconds": round(result.seconds, 2),
                    "ssh_config": str(result.ssh_config),
                    "vms": [{"name": v.name, "domain": v.domain, "action": v.verb,
                             "containers": [{"name": a.name, "action": a.verb}
                                            for a in v.containers],
                             "stages": v.readiness.stages if v.readiness else {},
                             "detection_lag": v.readiness.detection_lag if v.readiness else None}
                            for v in result.vms]})
        return
    for vm in result.vms:
        r = vm.readiness
        if r is None:
            continue
        lag = f"{1000 * r.detection_lag:.0f} ms" if r.detection_lag is not None else "-"
        ssh_ready = r.stages.get("auth", 0)
        out.print(f"{vm.name}: {vm.verb}, SSH ready {ssh_ready:.1f} s after start "
                  f"(banner {r.stages.get('banner', 0):.1f} s, readiness detection lag {lag}), "
                  f"at {r.endpoint}", markup=False)
        if vm.containers:
            out.print("  containers: " + ", ".join(f"{a.name.split('/', 1)[1]} {a.verb}"
                                                   for a in vm.containers), markup=False)
    if result.changed:
        out.print(f"lab '{result.lab}' is up ({result.seconds:.1f} s).", markup=False)
    else:
        out.print(f"lab '{result.lab}' is up to date: nothing changed "
                  f"({len(result.vms)} VM(s) checked over SSH).", markup=False)
    out.print(f"ssh: labctl ssh {result.lab}.{result.vms[0].name}   or   "
              f"ssh -F {result.ssh_config} {result.vms[0].domain}", markup=False)


@app.command()
def down(
    lab: str = typer.Argument(None, metavar="[LAB.yaml|NAME]",
                              help="Lab file or lab name; works when the file is gone."),
    name: str = typer.Option(None, "--name", help="The lab's name (instead of the file)."),
    uri: str = URI_OPTION,
    no_wait: bool = NO_WAIT_OPTION,
    wait_lock: float = WAIT_LOCK_OPTION,
) -> None:
    """Remove every VM, network, volume and local file of a lab."""
    if lab and name:
        raise UsageError("give the lab file or --name, not both")
    target = lab_name(lab or name, uri)
    with locked(target, "down", no_wait, wait_lock):
        result = orchestrate.down(target, settings(uri), ProgressPrinter())
    if STATE.json:
        print_json(result.__dict__)
    elif result.removed_anything:
        out.print(f"lab '{target}' removed: {len(result.domains)} VM(s), "
                  f"{len(result.networks)} network(s), "
                  f"{len(result.volumes)} leftover volume(s).", markup=False)
    else:
        out.print(f"lab '{target}' has nothing to remove.", markup=False)
