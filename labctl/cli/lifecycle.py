"""labctl plan / up / down: bring a lab to what its file says, or remove it."""

from __future__ import annotations

from pathlib import Path

import typer

from labctl import classroom, orchestrate
from labctl.cli.app import STATE, app
from labctl.cli.classroom import down_class, up_class
from labctl.cli.common import (
    ALL_COPIES_OPTION,
    COPY_OPTION,
    LAB_ARG,
    NO_WAIT_OPTION,
    TEMPLATES_OPTION,
    URI_OPTION,
    VAR_OPTION,
    WAIT_LOCK_OPTION,
    ProgressPrinter,
    is_lab_file,
    lab_name,
    load,
    locked,
    settings,
)
from labctl.cli.output import out, print_json
from labctl.errors import UsageError
from labctl.labschema import MAX_COPIES
from labctl.plan import summary
from labctl.ssh.wait import STAGES
from labctl.values import libvirt_uri


def checked_uri(value: str) -> str:
    try:
        return libvirt_uri(value)
    except ValueError as exc:
        raise UsageError(str(exc), getattr(exc, "hint", None)) from None


@app.command()
def plan(lab_file: Path = LAB_ARG, var: list[str] = VAR_OPTION, uri: str = URI_OPTION,
         copy: str = COPY_OPTION) -> None:
    """Show what 'up' would create, start, recreate or delete (per copy for a class)."""
    lab = load(lab_file, var)
    labs = classroom.expand(lab, only=copy) if classroom.is_class(lab) or copy else [lab]
    plans = [(one, orchestrate.plan_lab(one, settings(uri))) for one in labs]
    if STATE.json:
        rows = [{"lab": one.name, "verb": a.verb, "kind": a.kind, "name": a.name,
                 "reason": a.reason} for one, actions in plans for a in actions]
        print_json(rows if len(labs) > 1 else [{k: v for k, v in r.items() if k != "lab"}
                                               for r in rows])
        return
    for one, actions in plans:
        if len(labs) > 1 or one.copy:
            out.print(f"copy {one.copy} ({one.name}):", markup=False)
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
    copies: int = typer.Option(None, "--copies", min=1, max=MAX_COPIES,
                               help="Isolated copies of the lab, LAB-1..LAB-N (one per "
                                    "student); overrides the file's copies/students."),
    copy: str = COPY_OPTION,
    max_parallel: int = typer.Option(None, "--max-parallel", min=1, max=64,
                                     help="Copies brought up at once (default: what the "
                                          "host's cores boot at full speed)."),
    host: list[str] = typer.Option([], "--host", metavar="URI",
                                   help="A libvirt host for the copies (repeatable); "
                                        "overrides the file's hosts:."),
) -> None:
    """Create what is missing, start what is stopped, wait until every VM answers SSH."""
    lab = load(lab_file, var)
    budgets = {} if timeout is None else {s: timeout for s in STAGES}
    if total_timeout is not None:
        budgets["total"] = total_timeout
    for h in host:
        checked_uri(h)
    if classroom.is_class(lab, copies) or copy:
        up_class(lab, uri, templates, copies, copy, max_parallel, workers=parallel,
                 budgets=budgets, hosts=tuple(host))
        return
    if host:
        raise UsageError("--host places the copies of a class", "add --copies N, or use "
                         "--uri to put this lab on one host")
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
    copy: str = COPY_OPTION,
    all_copies: bool = ALL_COPIES_OPTION,
) -> None:
    """Remove every VM, network, volume and local file of a lab (or of its copies)."""
    if lab and name:
        raise UsageError("give the lab file or --name, not both")
    if lab and is_lab_file(lab):
        from_file = load(Path(lab), [])
        group, a_class = from_file.name, classroom.is_class(from_file)
    else:
        group, a_class = lab_name(lab or name, uri), False
    if all_copies or copy or a_class:
        down_class(group, uri, copy)
        return
    target = group
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
