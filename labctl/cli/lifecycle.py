"""labctl plan / up / down / status / reset: bring a lab (or a class of copies)
to what its file says, look at it, or remove it."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from labctl.cli.app import STATE, app
from labctl.cli.common import (
    ALL_COPIES_OPTION,
    COPY_OPTION,
    LAB_ARG,
    LIFECYCLE,
    NO_WAIT_OPTION,
    TEMPLATES_OPTION,
    URI_OPTION,
    VAR_OPTION,
    WAIT_LOCK_OPTION,
    is_lab_file,
    lab_name,
    load,
    session,
)
from labctl.cli.output import out, print_json
from labctl.errors import UsageError

MAX_COPIES = 200  # labctl.lab.labschema.MAX_COPIES (checked there too)


def checked_uri(value: str) -> str:
    from labctl.lab.values import host_uri

    try:
        return host_uri(value)
    except ValueError as exc:
        raise UsageError(str(exc), getattr(exc, "hint", None)) from None


@app.command(rich_help_panel=LIFECYCLE)
def plan(lab_file: Path = LAB_ARG, var: list[str] = VAR_OPTION, uri: str = URI_OPTION,
         copy: str = COPY_OPTION) -> None:
    """Show what 'up' would create, start, recreate or delete (per copy for a class)."""
    from labctl.plan import classroom
    from labctl.plan.actions import summary
    from labctl.usecases import lab as lab_cases
    from labctl.usecases import values

    lab = load(lab_file, var)
    s = session(uri)
    labs = classroom.expand(lab, only=copy, render=values.renderer(s.data_dir, lab)) \
        if classroom.is_class(lab) or copy else [values.own(s.data_dir, lab)]
    plans = [(one, lab_cases.plan(s, one)) for one in labs]
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


COLD_OPTION = typer.Option(False, "--cold", help="Boot every VM; never restore a template.")


@app.command(rich_help_panel=LIFECYCLE)
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
    cold: bool = COLD_OPTION,
    replace_lost: bool = typer.Option(False, "--replace-lost",
                                      help="A class's host that cannot be reached is left "
                                           "out: its copies are re-created on the others."),
) -> None:
    """Create what is missing, start what is stopped, wait until every VM answers SSH.
    A VM is restored from a template of its shape (booted once) unless it cannot be."""
    from labctl.cli.classroom import ClassProgress, print_class
    from labctl.ssh.wait import STAGES
    from labctl.usecases import classes

    lab = load(lab_file, var)
    budgets = {} if timeout is None else {s: timeout for s in STAGES}
    if total_timeout is not None:
        budgets["total"] = total_timeout
    for h in host:
        checked_uri(h)
    ids = classes.copies_of(lab, copies, copy)
    s = session(uri, templates, no_wait=no_wait, wait_lock=wait_lock, workers=parallel,
                budgets=budgets, cold=cold)
    if ids:
        with ClassProgress(ids) as progress:
            try:
                result = classes.up_any(s, lab, progress, copies, copy, max_parallel,
                                        tuple(host), replace_lost)
            except classes.ClassFailed as failed:
                print_class(failed.result)
                raise
        print_class(result)
        return
    result = classes.up_any(s, lab, lambda _copy, event: s.report(event), hosts=tuple(host),
                            replace_lost=replace_lost)
    print_up(result)


def print_up(result) -> None:
    if STATE.json:
        print_json({"lab": result.lab, "changed": result.changed,
                    "accel": result.accel.label, "seconds": round(result.seconds, 2),
                    "ssh_config": result.ssh_config,
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
                  f"at {r.endpoint.describe() if r.endpoint else '-'}", markup=False)
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


@app.command(rich_help_panel=LIFECYCLE)
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
    from labctl.plan import classroom
    from labctl.usecases import classes

    if lab and name:
        raise UsageError("give the lab file or --name, not both")
    if lab and is_lab_file(lab):
        from_file = load(Path(lab), [])
        group, a_class = from_file.name, classroom.is_class(from_file)
    else:
        group, a_class = lab_name(lab or name, uri), False
    a_class = a_class or all_copies
    s = session(uri, no_wait=no_wait, wait_lock=wait_lock)
    results = classes.down_any(s, group, lambda _c, _e: None, a_class, copy)
    if a_class or copy:
        if STATE.json:
            print_json([r.__dict__ for r in results])
            return
        vms = sum(len(r.domains) for r in results)
        out.print(f"class '{group}': {len(results)} copies removed ({vms} VM(s))."
                  if results else f"class '{group}' has no copies to remove.", markup=False)
        return
    result = results[0]
    if STATE.json:
        print_json(result.__dict__)
    elif result.removed_anything:
        out.print(f"lab '{group}' removed: {len(result.domains)} VM(s), "
                  f"{len(result.networks)} network(s), "
                  f"{len(result.volumes)} other object(s) (stray volumes; on a cloud, "
                  "its router, addresses, ports).", markup=False)
    else:
        out.print(f"lab '{group}' has nothing to remove.", markup=False)


@app.command(rich_help_panel=LIFECYCLE)
def reset(
    lab_file: Path = typer.Argument(..., metavar="LAB.yaml"),
    vms: list[str] = typer.Argument(None, metavar="[VM...]"),
    copy: str = COPY_OPTION,
    var: list[str] = VAR_OPTION,
    uri: str = URI_OPTION,
    cold: bool = COLD_OPTION,
) -> None:
    """Return VMs (default: all of the lab or copy) to their post-'up' state, containers
    deployed again: a VM's first reset restores its template (or boots cold) and keeps a
    reset point, later ones return to it in seconds. Says how long."""
    from labctl.usecases import classes

    lab = load(lab_file, var)
    began = time.monotonic()
    s = session(uri, cold=cold)
    names, target = classes.reset(s, lab, vms, copy, lambda _copy, event: s.report(event))
    seconds = time.monotonic() - began
    if STATE.json:
        print_json({"reset": sorted(names), "target": target, "seconds": round(seconds, 2)})
    else:
        out.print(f"reset {', '.join(sorted(names))} of {target} in {seconds:.1f} s",
                  markup=False)
