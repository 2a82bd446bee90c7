"""labctl status / ssh / exec / cp / ssh-config: look at and into a lab's VMs.

`ssh` and `exec` in a VM hand over to OpenSSH with the lab's own ssh_config
(pinned host keys): a student's most frequent commands then cost no more than
plain `ssh` plus starting labctl."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from labctl.cli.app import STATE, app
from labctl.cli.common import (
    ACCESS,
    ALL_COPIES_OPTION,
    COPY_OPTION,
    LAB_OPTION,
    LIFECYCLE,
    URI_OPTION,
    lab_name,
    session,
    split_target,
)
from labctl.cli.output import out, print_json
from labctl.errors import UsageError
from labctl.ssh.openssh import exec_ssh, ssh_config_path


@app.command(rich_help_panel=LIFECYCLE)
def status(
    lab: str = typer.Argument(None, metavar="[LAB.yaml|NAME]"),
    uri: str = URI_OPTION,
    copy: str = COPY_OPTION,
    all_copies: bool = ALL_COPIES_OPTION,
) -> None:
    """VMs of a lab: state, SSH address, and how long each readiness stage took."""
    from labctl.usecases.classes import status_of_copies
    from labctl.usecases.lab import status as status_of

    s = session(uri)
    if not all_copies:
        name = lab_name(lab, uri, copy)
        _print_status(name, status_of(s, name), s.placed_uri(name))
        return
    copies = status_of_copies(s, lab_name(lab, uri))
    if STATE.json:
        print_json([{"lab": c.lab, "host": c.host, "unreachable": c.unreachable,
                     "vms": [row.__dict__ for row in c.vms]} for c in copies])
        return
    for c in copies:
        if c.unreachable:
            out.print(f"lab {c.lab}: host unreachable ({c.host}): {c.unreachable}",
                      markup=False)
        else:
            _print_status(c.lab, list(c.vms), c.host)


def _print_status(name: str, rows: list, host: str = "") -> None:
    from rich.table import Table

    from labctl.cloud.records import is_cloud

    if STATE.json:
        print_json([row.__dict__ for row in rows])
        return
    if not rows:
        out.print(f"lab '{name}' has no VMs.", markup=False)
        return
    table = Table(title=f"lab {name}", title_justify="left")
    for column in ("VM", "state", "ssh", "user", "uptime", "ready after", "banner lag",
                   "snapshots"):
        table.add_column(column)
    for row in rows:
        ready = row.stages.get("auth")
        lag = row.detection_lag
        where = f"{row.endpoint} via {row.jump}" if row.endpoint and row.jump else row.endpoint
        table.add_row(row.name, row.state, where or "-", row.user,
                      _duration(row.uptime), f"{ready:.1f} s" if ready is not None else "-",
                      f"{1000 * lag:.0f} ms" if lag is not None else "-",
                      ", ".join(row.snapshots) or "-")
    out.print(table)
    if is_cloud(host):  # what the libvirt backend keeps that a cloud cannot
        out.print(f"on {host}: VMs boot cold (no templates) and snapshots are disk images "
                  "(no memory state)", markup=False)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@app.command(rich_help_panel=ACCESS)
def ssh(
    target: str = typer.Argument(..., metavar="VM|LAB.VM"),
    lab: str = LAB_OPTION,
    uri: str = URI_OPTION,
    copy: str = COPY_OPTION,
    args: list[str] = typer.Argument(None, metavar="[-- SSH ARGS]"),
) -> None:
    """Open an interactive shell in a VM with OpenSSH (host key pinned)."""
    name, vm = split_target(target, lab, uri, copy)
    _exec_ssh(name, vm, [*(args or [])], [])


def _ssh_config(name: str) -> Path:
    return ssh_config_path(STATE.data_dir, name)


def _exec_ssh(name: str, vm: str, options: list[str], command: list[str]) -> None:
    exec_ssh(STATE.data_dir, name, vm, options, command)


@app.command(name="exec", context_settings={"allow_interspersed_args": False},
             rich_help_panel=ACCESS)
def exec_(
    target: str = typer.Argument(..., metavar="VM|LAB.VM|VM/CONTAINER"),
    command: list[str] = typer.Argument(..., metavar="-- COMMAND..."),
    lab: str = LAB_OPTION,
    uri: str = URI_OPTION,
    copy: str = COPY_OPTION,
) -> None:
    """Run a command in a VM, or in a container (VM/CONTAINER); output and exit code pass."""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given", "e.g. labctl exec node -- uname -a")
    from labctl.shell import join

    vm_part, _, container = target.partition("/")
    name, vm = split_target(vm_part, lab, uri, copy)
    if not container:  # one argument is a shell command line; several are quoted word by word
        _exec_ssh(name, vm, ["-T"], [command[0] if len(command) == 1 else join(command)])
    from labctl.usecases.containers import find_container

    with session(uri).connect_vm(name, vm) as transport:  # the runtime's exec, in the container
        runtime = find_container(transport, name, vm, container)
        line = runtime.command("exec", container, *(
            ["sh", "-c", command[0]] if len(command) == 1 else command))
        code = transport.stream(line, sys.stdout.buffer, sys.stderr.buffer)
    raise typer.Exit(code)


@app.command(rich_help_panel=ACCESS)
def cp(
    source: str = typer.Argument(..., metavar="SRC"),
    destination: str = typer.Argument(..., metavar="DST"),
    lab: str = LAB_OPTION,
    uri: str = URI_OPTION,
    copy: str = COPY_OPTION,
) -> None:
    """Copy a file to or from a VM: 'labctl cp f.txt VM:/tmp/', 'labctl cp VM:/etc/hosts .'"""
    src_vm, src_path = _remote(source)
    dst_vm, dst_path = _remote(destination)
    if (src_vm is None) == (dst_vm is None):
        raise UsageError("exactly one of SRC and DST must be VM:PATH",
                         "e.g. labctl cp notes.txt node:/tmp/notes.txt")
    name, vm = split_target(src_vm or dst_vm, lab, uri, copy)
    with session(uri).connect_vm(name, vm) as transport:
        if dst_vm is not None:
            local = Path(src_path)
            if not local.is_file():
                raise UsageError(f"{local}: no such file")
            remote = dst_path + local.name if dst_path.endswith("/") else dst_path
            transport.put(local, remote)
        else:
            local = Path(dst_path)
            if local.is_dir():
                local = local / Path(src_path).name
            transport.get(src_path, local)


def _remote(spec: str) -> tuple[str | None, str]:
    head, sep, tail = spec.partition(":")
    if sep and head and "/" not in head:
        return head, tail
    return None, spec


@app.command(name="ssh-config", rich_help_panel=ACCESS)
def ssh_config(lab: str = typer.Argument(None, metavar="[LAB.yaml|NAME]"),
               uri: str = URI_OPTION, copy: str = COPY_OPTION) -> None:
    """Print an OpenSSH config for the lab's VMs (pinned host keys included)."""
    sys.stdout.write(_ssh_config(lab_name(lab, uri, copy)).read_text())
