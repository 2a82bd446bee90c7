"""`labctl snapshot save|restore|list|rm VM [NAME]`: a VM's running state."""

from __future__ import annotations

import typer

from labctl.cli.app import LIFECYCLE, STATE, Typer, app
from labctl.cli.common import COPY_OPTION, LAB_OPTION, URI_OPTION, session, split_target
from labctl.cli.output import out, print_json

snapshot_app = Typer(help="A VM's running state saved under a name, restored, "
                                "listed, removed (before a risky step; a roll-back).",
                           no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot", rich_help_panel=LIFECYCLE)

VM_ARG = typer.Argument(..., metavar="VM", help="LAB.VM, or VM with --lab or a single lab.")
NAME_ARG = typer.Argument(..., metavar="NAME", help="e.g. before-nginx")


@snapshot_app.command("save")
def save(vm: str = VM_ARG, name: str = NAME_ARG, lab: str = LAB_OPTION,
         copy: str = COPY_OPTION, uri: str = URI_OPTION,
         description: str = typer.Option("", "--description", "-m")) -> None:
    """Save the running VM's state (memory and disk) as NAME."""
    from labctl.usecases import snapshots

    lab_name, vm_name = split_target(vm, lab, uri, copy)
    snapshots.save(session(uri), lab_name, vm_name, name, description)
    out.print(f"saved snapshot '{name}' of {lab_name}.{vm_name}", markup=False)


@snapshot_app.command("restore")
def restore(vm: str = VM_ARG, name: str = NAME_ARG, lab: str = LAB_OPTION,
            copy: str = COPY_OPTION, uri: str = URI_OPTION) -> None:
    """Put the VM back to the state saved as NAME (it keeps running from there)."""
    from labctl.usecases import snapshots

    lab_name, vm_name = split_target(vm, lab, uri, copy)
    snapshots.restore(session(uri), lab_name, vm_name, name)
    out.print(f"restored {lab_name}.{vm_name} to snapshot '{name}'", markup=False)


@snapshot_app.command("rm")
def rm(vm: str = VM_ARG, name: str = NAME_ARG, lab: str = LAB_OPTION,
       copy: str = COPY_OPTION, uri: str = URI_OPTION) -> None:
    """Delete the snapshot NAME."""
    from labctl.usecases import snapshots

    lab_name, vm_name = split_target(vm, lab, uri, copy)
    snapshots.remove(session(uri), lab_name, vm_name, name)
    out.print(f"removed snapshot '{name}' of {lab_name}.{vm_name}", markup=False)


@snapshot_app.command("list")
def list_(vm: str = VM_ARG, lab: str = LAB_OPTION, copy: str = COPY_OPTION,
          uri: str = URI_OPTION) -> None:
    """The VM's snapshots, oldest first."""
    from labctl.usecases import snapshots

    lab_name, vm_name = split_target(vm, lab, uri, copy)
    found = snapshots.listed(session(uri), lab_name, vm_name).get(vm_name, [])
    if STATE.json:
        print_json([s.__dict__ for s in found])
        return
    for s in found:
        out.print(f"{s.name:<24} {s.created}  {s.description}", markup=False)
    if not found:
        out.print(f"{lab_name}.{vm_name} has no snapshots", markup=False)
