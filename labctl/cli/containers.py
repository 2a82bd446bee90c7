"""labctl ps / logs / restart / port: the containers inside a lab's VMs.
(`labctl exec VM/CONTAINER -- CMD` lives with exec in access.py.)"""

from __future__ import annotations

import sys

import typer

from labctl.cli.app import STATE, app
from labctl.cli.common import (
    ALL_COPIES_OPTION,
    CONTAINERS,
    COPY_OPTION,
    LAB_OPTION,
    URI_OPTION,
    lab_name,
    session,
    split_target,
)
from labctl.cli.output import out, print_json
from labctl.errors import UsageError


def split_container(target: str, lab: str | None, uri: str | None,
                    copy: str | None = None) -> tuple[str, str, str]:
    """'VM/CONTAINER' or 'LAB.VM/CONTAINER' -> (lab, vm, container)."""
    vm_part, sep, container = target.partition("/")
    if not sep or not container:
        raise UsageError(f"'{target}' is not VM/CONTAINER", "e.g. labctl logs node/web")
    name, vm = split_target(vm_part, lab, uri, copy)
    return name, vm, container


@app.command(rich_help_panel=CONTAINERS)
def ps(lab: str = typer.Argument(None, metavar="[LAB.yaml|NAME]"), uri: str = URI_OPTION,
       copy: str = COPY_OPTION, all_copies: bool = ALL_COPIES_OPTION) -> None:
    """Every container in every running VM of a lab (or of every copy of a class)."""
    from rich.table import Table

    from labctl.usecases.classes import existing_copies
    from labctl.usecases.containers import containers_of_copies

    s = session(uri)
    if all_copies:
        group = lab_name(lab, uri)
        names = list(existing_copies(s, group))
    else:
        names = [lab_name(lab, uri, copy)]
    rows = containers_of_copies(s, names)
    if STATE.json:
        print_json([{"lab": name, **row.__dict__} for name, row in rows] if all_copies
                   else [row.__dict__ for _, row in rows])
        return
    title = f"class {lab}: containers" if all_copies else f"lab {names[0]}: containers"
    table = Table(title=title, title_justify="left")
    for column in (*(["lab"] if all_copies else []), "VM", "container", "runtime", "image",
                   "state", "ports", "started"):
        table.add_column(column)
    for name, r in rows:
        table.add_row(*([name] if all_copies else []), r.vm, r.name, r.runtime, r.image,
                      r.state, ", ".join(r.ports) or "-", r.started or "-")
    out.print(table)


@app.command(rich_help_panel=CONTAINERS)
def logs(target: str = typer.Argument(..., metavar="VM/CONTAINER"),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output."),
         lab: str = LAB_OPTION, uri: str = URI_OPTION, copy: str = COPY_OPTION) -> None:
    """A container's output."""
    from labctl.usecases.containers import find_container

    name, vm, container = split_container(target, lab, uri, copy)
    with session(uri).connect_vm(name, vm) as transport:
        runtime = find_container(transport, name, vm, container)
        code = transport.stream(runtime.logs(container, follow), sys.stdout.buffer,
                                sys.stderr.buffer)
    raise typer.Exit(code)


@app.command(rich_help_panel=CONTAINERS)
def restart(target: str = typer.Argument(..., metavar="VM/CONTAINER"),
            lab: str = LAB_OPTION, uri: str = URI_OPTION, copy: str = COPY_OPTION) -> None:
    """Restart one container."""
    from labctl.usecases.containers import restart as restart_container

    name, vm, container = split_container(target, lab, uri, copy)
    restart_container(session(uri), name, vm, container)
    out.print(f"restarted {vm}/{container}", markup=False)


@app.command(rich_help_panel=CONTAINERS)
def port(target: str = typer.Argument(..., metavar="VM|LAB.VM"),
         number: int = typer.Argument(..., metavar="PORT", min=1, max=65535),
         lab: str = LAB_OPTION, uri: str = URI_OPTION, copy: str = COPY_OPTION) -> None:
    """Where a port published in a VM is reached (HOST:PORT; on a host that does
    not expose its ports: HOST:PORT via USER@HOST, reach it with ssh -L)."""
    from labctl.usecases.containers import published_port

    name, vm = split_target(target, lab, uri, copy)
    out.print(published_port(session(uri), name, vm, number).describe(), markup=False)
