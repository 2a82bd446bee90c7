"""Students' snapshots: a running VM's state (memory and disk, inside its own
overlay) saved under a name, restored, listed, removed. Before a risky step a
student checkpoints; an instructor rolls one back. Each change holds the lab's
lock, like every change to a lab."""

from __future__ import annotations

import re
import time

from labctl.backend import Snapshot
from labctl.cloud.records import is_cloud
from labctl.errors import LabctlError, UsageError
from labctl.usecases.session import Session

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
RESERVED = "labctl-"  # labctl's own (a template's, a VM's reset point): not listed
BACK_SECONDS = 600  # a rebuilt cloud server boots cold: ~60 s on a 2-core TCG host


def students(found: list[Snapshot]) -> list[Snapshot]:
    return [s for s in found if not s.name.startswith(RESERVED)]


def _domain(session: Session, lab: str, vm: str) -> str:
    host = session.lab_host(lab)
    found = host.domain(lab, vm)
    if found is None:
        known = ", ".join(f.meta.name for f in host.domains(lab)) or "none"
        raise LabctlError(f"lab '{lab}' has no VM '{vm}'", f"its VMs: {known}")
    return found.libvirt_name


def _checked(name: str) -> str:
    if not NAME.fullmatch(name) or name.startswith(RESERVED):
        raise UsageError(f"'{name}' is not a snapshot name",
                         "lowercase letters, digits, '.', '_' and '-' (max 40), e.g. before-nginx")
    return name


def save(session: Session, lab: str, vm: str, name: str, description: str = "") -> None:
    domain = _domain(session, lab, vm)
    host = session.lab_host(lab)
    if not host.is_running(domain):
        raise LabctlError(f"VM '{vm}' of lab '{lab}' is not running",
                          "a snapshot keeps a running VM's state: 'labctl up' first")
    if any(s.name == name for s in host.snapshots(domain)):
        raise UsageError(f"VM '{vm}' already has a snapshot '{name}'",
                         f"pick another name, or 'labctl snapshot rm {lab}.{vm} {name}' first")
    with session.changing(lab, "snapshot"):
        host.take_snapshot(domain, _checked(name), description)


def restore(session: Session, lab: str, vm: str, name: str) -> None:
    domain = _domain(session, lab, vm)
    with session.changing(lab, "snapshot restore"):
        host = session.lab_host(lab)
        host.revert_snapshot(domain, _known(session, lab, domain, vm, name))
        if is_cloud(host.uri):  # disk only: the server was rebuilt and boots again
            _answering(session, lab, vm)


def _answering(session: Session, lab: str, vm: str) -> None:
    """Back when labctl logs in again, like after `up` (the same pinned key)."""
    deadline = time.monotonic() + BACK_SECONDS
    while True:
        try:
            session.connect_vm(lab, vm).close()
            return
        except (LabctlError, OSError) as exc:
            if time.monotonic() > deadline:
                raise LabctlError(f"VM '{vm}' of lab '{lab}' did not answer SSH within "
                                  f"{BACK_SECONDS} s of its restore: {exc}",
                                  f"see its state: labctl status {lab}") from None
            time.sleep(2)


def remove(session: Session, lab: str, vm: str, name: str) -> None:
    domain = _domain(session, lab, vm)
    with session.changing(lab, "snapshot rm"):
        session.lab_host(lab).delete_snapshot(domain, _known(session, lab, domain, vm, name))


def listed(session: Session, lab: str, vm: str | None = None) -> dict[str, list[Snapshot]]:
    """VM name -> its snapshots (every VM of the lab, or one)."""
    host = session.lab_host(lab)
    return {f.meta.name: students(host.snapshots(f.libvirt_name)) for f in host.domains(lab)
            if vm is None or f.meta.name == vm}


def _known(session: Session, lab: str, domain: str, vm: str, name: str) -> str:
    names = [s.name for s in students(session.lab_host(lab).snapshots(domain))]
    if name not in names:
        raise LabctlError(f"VM '{vm}' has no snapshot '{name}'",
                          f"its snapshots: {', '.join(names) or 'none'}")
    return name
