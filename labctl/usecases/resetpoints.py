"""A VM's reset point: its own running state (memory and disk, an internal
snapshot in its overlay) kept right after it was ready from a reset, before
the lab's mirrors, registry and containers. Every later reset of that VM
returns to it instead of recreating it: a revert (~2 s) and a fresh clock and
randomness, no boot and no new identity -- the point is the VM's own, with
its own host key, hostname and machine-id.

Kept by a VM's first reset, not by `up`: it pauses the VM (~0.3 s here), a
cost on every `up`'s path for VMs most of which are never reset. (On disk it
is ~7 MiB: the saved memory reuses the space the template's state left in
the overlay.) It goes with the
VM's volume (`down`, a recreate); `--cold` neither uses nor keeps one. A run
killed between the revert and the refresh leaves the `restoring` mark (as a
restore from a template does), and the next `up` recreates the VM."""

from __future__ import annotations

import time
from pathlib import Path

from labctl.backend import Backend
from labctl.datadir import ensure
from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.ssh.transport import SSHTransport
from labctl.usecases.identity import RESEED, set_clock_running
from labctl.usecases.templates import restoring

RESET_POINT = "labctl-reset"


def has_point(host: Backend, domain: str) -> bool:
    return any(s.name == RESET_POINT for s in host.snapshots(domain))


def keep_point(host: Backend, domain: str, vm: str, report: Report) -> None:
    """Take the reset point of a VM that has just become ready from a reset.
    A VM that cannot have one (e.g. libvirt refuses internal snapshots of
    UEFI guests) is reset by recreating it, as before: said, not failed."""
    began = time.monotonic()
    try:
        host.take_snapshot(domain, RESET_POINT, "labctl: the state a reset returns to")
    except LabctlError as exc:
        report(Event(f"vm {vm}", "reset-point", f"none kept ({exc.message}): "
                                                "its next reset recreates it"))
        return
    report(Event(f"vm {vm}", "reset-point", "kept: its next reset returns to it",
                 time.monotonic() - began))


def return_to_point(host: Backend, lab_dir: Path, domain: str, vm: str,
                    report: Report) -> float:
    """Revert the VM to its reset point (running); the time it started from.
    Students' snapshots go, as they would with a recreated VM."""
    began = time.monotonic()
    mark = restoring(lab_dir, domain)
    ensure(mark.parent)
    mark.touch()
    host.revert_snapshot(domain, RESET_POINT)
    for snapshot in host.snapshots(domain):
        if snapshot.name != RESET_POINT:
            host.delete_snapshot(domain, snapshot.name)
    report(Event(f"vm {vm}", "started", "returned to its reset point",
                 time.monotonic() - began))
    return began


def refresh(transport: SSHTransport, lab_dir: Path, domain: str, vm: str) -> None:
    """The reverted VM resumes its old clock and the CRNG it had then."""
    set_clock_running(transport, RESEED, f"VM '{vm}': setting the clock and randomness "
                                         "after its reset point")
    restoring(lab_dir, domain).unlink(missing_ok=True)
