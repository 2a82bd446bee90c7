"""Options and helpers shared by the command modules.

Every command module imports this at start-up, for `--help` too, so it stays
light: the lab loader, the use cases, libvirt and paramiko are imported inside
the commands that need them (a command pays only for what it uses)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from labctl.cli.app import (  # noqa: F401  (the panels, for the command modules)
    ACCESS,
    BENCH,
    CLASS,
    CONTAINERS,
    IMAGES,
    LIFECYCLE,
    MAINTENANCE,
    REGISTRY,
    STATE,
)
from labctl.errors import LabctlError, UsageError
from labctl.events import Event, Report
from labctl.names import copy_name, name_problem

if TYPE_CHECKING:
    from labctl.lab.model import Lab
    from labctl.usecases.session import Session

DEFAULT_URI = "qemu:///system"  # labctl.virt.connection.DEFAULT_URI, without importing libvirt
LAB_ARG = typer.Argument(..., metavar="LAB.yaml", help="The lab file.")
VAR_OPTION = typer.Option([], "--var", metavar="KEY=VALUE",
                          help="Set or override a lab variable (repeatable).")
URI_OPTION = typer.Option(None, "--uri", envvar="LABCTL_URI", show_default=DEFAULT_URI,
                          help="Where VMs run: a libvirt URI or openstack:CLOUD.")
LAB_OPTION = typer.Option(None, "--lab", "-l", metavar="LAB",
                          help="Lab file or lab name (default: the only lab that has VMs).")
TEMPLATES_OPTION = typer.Option(None, "--templates", metavar="DIR",
                                help="Use your own copy of labctl's templates/ directory.")
NO_WAIT_OPTION = typer.Option(False, "--no-wait",
                              help="Fail at once if another labctl is working on this lab.")
WAIT_LOCK_OPTION = typer.Option(None, "--wait-lock", metavar="SECONDS", min=0,
                                help="Wait at most this long for another labctl working on "
                                     "this lab (default: as long as it takes).")
COPY_OPTION = typer.Option(None, "--copy", metavar="ID",
                           help="One copy of a class lab: a student's name or 1..N.")
ALL_COPIES_OPTION = typer.Option(False, "--all-copies", help="Every copy of a class lab.")


def session(uri: str | None, templates: Path | None = None, report: Report | None = None,
            no_wait: bool = False, wait_lock: float | None = None, **extra) -> Session:
    """The one Session of this command; progress goes to `report` (default:
    one line per event on stderr)."""
    from labctl.usecases.session import Session, Settings

    settings = Settings.from_env(uri, STATE.data_dir, templates=templates,
                                 lock_wait=not no_wait, lock_timeout=wait_lock, **extra)
    return Session(settings, report or ProgressPrinter())


def load(path: Path, var: list[str]) -> Lab:
    from labctl.lab.loader import load_lab, parse_var_overrides

    return load_lab(path, parse_var_overrides(var))


class ProgressPrinter:
    """Renders core Events as one line each on stderr (stdout stays for data)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, event: Event) -> None:
        from labctl.cli.output import err

        if event.stage in ("busy", "stopping"):  # said in words, --json or not
            subject = event.subject.removeprefix("lab ")
            err.print(f"lab '{subject}' is busy: {event.detail}" if event.stage == "busy"
                      else f"stopping {event.detail}", markup=False)
            return
        if STATE.json:
            return
        elapsed = time.monotonic() - self.start
        detail = f"  {event.detail}" if event.detail else ""
        err.print(f"[dim]{elapsed:6.1f}s[/dim] {event.subject:<18} [bold]{event.stage}[/bold]"
                  f"{detail}", highlight=False)


def lab_name(lab: str | None, uri: str | None, copy: str | None = None) -> str:
    """--lab as a file or a name (with --copy: that copy); without it, the only
    lab this data dir has (else the only one libvirt has)."""
    if lab:
        if is_lab_file(lab):
            from labctl.lab.loader import load_lab

            name = load_lab(Path(lab)).name
        else:
            name = checked_name(lab, "lab")
        return copy_name(name, checked_name(copy, "copy")) if copy else name
    if copy:
        raise UsageError("--copy needs the lab: pass LAB.yaml or its name")
    names = sorted(_labs_with_ssh_files()) or sorted(session(uri).host().lab_names())
    if len(names) == 1:
        return names[0]
    raise LabctlError("which lab?" if names else "no lab has VMs here",
                      f"pass --lab NAME ({', '.join(names)})" if names else "run 'labctl up LAB'")


def _labs_with_ssh_files() -> set[str]:
    """Labs this data dir can log into: found without asking libvirt."""
    labs = STATE.data_dir / "labs"
    return {p.parent.name for p in labs.glob("*/ssh_config")} if labs.is_dir() else set()


def is_lab_file(value: str) -> bool:
    """A lab argument names a file (else it is a lab's name)."""
    return value.endswith((".yaml", ".yml")) or Path(value).is_file()


def split_target(target: str, lab: str | None, uri: str | None,
                 copy: str | None = None) -> tuple[str, str]:
    """'VM' (with --lab or a single lab) or 'LAB.VM' -> (lab name, VM name)."""
    if "." in target and not lab:
        name, _, vm = target.partition(".")
        if copy:
            name = copy_name(checked_name(name, "lab"), checked_name(copy, "copy"))
        return checked_name(name, "lab"), checked_name(vm, "VM")
    return lab_name(lab, uri, copy), checked_name(target, "VM")


def checked_name(value: str, what: str) -> str:
    """A name from the command line: it becomes part of paths and libvirt names."""
    problem = name_problem(value, 63)
    if problem:
        message, hint = problem
        raise UsageError(message.replace("a valid name", f"a valid {what} name"), hint)
    return value
