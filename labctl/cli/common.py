"""Options and helpers shared by the command modules."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from labctl import interrupt, values
from labctl.classroom import copy_name
from labctl.cli.app import STATE
from labctl.cli.output import err
from labctl.config import load_lab, parse_var_overrides
from labctl.errors import LabctlError, UsageError
from labctl.events import Event
from labctl.lock import lab_lock
from labctl.model import Lab
from labctl.orchestrate import Settings
from labctl.virt import inventory
from labctl.virt.connection import DEFAULT_URI, connect

LAB_ARG = typer.Argument(..., metavar="LAB.yaml", help="The lab file.")
VAR_OPTION = typer.Option([], "--var", metavar="KEY=VALUE",
                          help="Set or override a lab variable (repeatable).")
URI_OPTION = typer.Option(None, "--uri", envvar="LABCTL_URI", show_default=DEFAULT_URI,
                          help="libvirt connection URI.")
LAB_OPTION = typer.Option(None, "--lab", "-l", metavar="LAB",
                          help="Lab file or lab name (default: the only lab that has VMs).")
TEMPLATES_OPTION = typer.Option(None, "--templates", metavar="DIR",
                                help="Use your own copy of labctl's templates/ directory.")


NO_WAIT_OPTION = typer.Option(False, "--no-wait",
                              help="Fail at once if another labctl is working on this lab.")
WAIT_LOCK_OPTION = typer.Option(None, "--wait-lock", metavar="SECONDS", min=0,
                                help="Wait at most this long for another labctl working on "
                                     "this lab (default: as long as it takes).")


@contextlib.contextmanager
def locked(lab: str, action: str, no_wait: bool, wait_lock: float | None = None):
    """For commands that change a lab: its lock (saying so while it waits), and
    Ctrl-C deferred to the core's next safe point (see labctl.interrupt)."""
    def waiting(holder: str) -> None:
        limit = f"up to {wait_lock:.0f} s" if wait_lock is not None else "--no-wait to give up"
        err.print(f"lab '{lab}' is busy: {holder}; waiting ({limit})", markup=False)

    def stopping() -> None:
        err.print("stopping after the steps in flight (Ctrl-C again to abort at once)",
                  markup=False)

    with lab_lock(STATE.data_dir, lab, action, wait=not no_wait, timeout=wait_lock,
                  waiting=waiting), interrupt.deferred_sigint(stopping):
        yield


def settings(uri: str | None, templates: Path | None = None, **extra) -> Settings:
    return Settings(uri=uri or os.environ.get("LABCTL_URI") or DEFAULT_URI,
                    data_dir=STATE.data_dir, templates=templates, **extra)


def load(path: Path, var: list[str]) -> Lab:
    return load_lab(path, parse_var_overrides(var))


class ProgressPrinter:
    """Renders core Events as one line each on stderr (stdout stays for data)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, event: Event) -> None:
        if STATE.json:
            return
        elapsed = time.monotonic() - self.start
        detail = f"  {event.detail}" if event.detail else ""
        err.print(f"[dim]{elapsed:6.1f}s[/dim] {event.subject:<18} [bold]{event.stage}[/bold]"
                  f"{detail}", highlight=False)


class TransferBar:
    """A rich progress bar fed by Events that carry an amount (downloads)."""

    def __enter__(self):
        self.progress = Progress("{task.description}", BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=err,
                                 disable=STATE.json)
        self.progress.__enter__()
        self.task = None
        return self

    def __call__(self, event: Event) -> None:
        if event.amount is None:
            return
        done, total = event.amount
        if self.task is None:
            self.task = self.progress.add_task(event.subject, total=total or None)
        self.progress.update(self.task, completed=done)

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)


COPY_OPTION = typer.Option(None, "--copy", metavar="ID",
                           help="One copy of a class lab: a student's name or 1..N.")
ALL_COPIES_OPTION = typer.Option(False, "--all-copies", help="Every copy of a class lab.")


def lab_name(lab: str | None, uri: str | None, copy: str | None = None) -> str:
    """--lab as a file or a name (with --copy: that copy); without it, the only
    lab libvirt has."""
    if lab:
        if is_lab_file(lab):
            name = load_lab(Path(lab)).name
        else:
            name = checked_name(lab, "lab")
        return copy_name(name, checked_name(copy, "copy")) if copy else name
    if copy:
        raise UsageError("--copy needs the lab: pass LAB.yaml or its name")
    names = sorted({f.meta.lab for f in inventory.domains(connect(settings(uri).uri))})
    if len(names) == 1:
        return names[0]
    raise LabctlError("which lab?" if names else "no lab has VMs here",
                      f"pass --lab NAME ({', '.join(names)})" if names else "run 'labctl up LAB'")


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
    try:
        return values.name(63)(value)
    except values.Invalid as exc:
        raise UsageError(f"{exc.message.replace('a valid name', f'a valid {what} name')}",
                         exc.hint) from None
