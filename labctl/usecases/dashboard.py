"""What the instructor's dashboard shows and does, as data: every lab and
class of this data dir (per copy, each VM's state, latest stage, SSH address,
snapshots; containers as last seen; the latest check run with points), the
bench runs; and the actions it offers, through the same use cases as the CLI
(and their locks). No HTTP here: labctl/dashboard/ serves it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labctl.checks.store import ATTEMPTS, CheckHistory
from labctl.errors import LabctlError, UsageError
from labctl.fileio import read_json
from labctl.lab.loader import load_lab
from labctl.lab.model import Lab
from labctl.usecases import containers as container_cases
from labctl.usecases import lab as lab_cases
from labctl.usecases.session import Session

TEMPLATE_LABS = "tpl-"  # labctl's own template labs: not the instructor's


def lab_names(session: Session) -> list[str]:
    labs = session.data_dir / "labs"
    if not labs.is_dir():
        return []
    return sorted(p.name for p in labs.iterdir()
                  if p.is_dir() and not p.name.startswith(TEMPLATE_LABS))


def state(session: Session, only: str | None = None,
          containers: dict[str, list[dict]] | None = None) -> dict[str, Any]:
    """The whole view; `containers`: lab -> rows last seen (refreshed apart:
    listing them costs an SSH round trip per VM)."""
    groups: dict[str, dict[str, Any]] = {}
    listed: dict[str, list] = {}  # each host's domains, listed once for every copy
    for name in lab_names(session):
        files = session.files(name)
        placement = files.placement()
        group = placement.get("group") or name
        if only and only not in (group, name):
            continue
        entry = groups.setdefault(group, {"name": group, "source": placement.get("source", ""),
                                          "is_class": bool(placement.get("group")),
                                          "copies": [], "checks": None})
        entry["copies"].append(_copy(session, name, placement, files,
                                     (containers or {}).get(name), listed))
    for group, entry in groups.items():
        entry["copies"].sort(key=lambda c: (len(c["copy"]), c["copy"]))
        runs = CheckHistory(session.data_dir).runs(group, limit=1)
        entry["checks"] = runs[-1].to_dict() if runs else None
        entry["summary"] = summary(entry)
    return {"labs": list(groups.values()), "at": time.time()}


def summary(entry: dict[str, Any]) -> dict[str, int]:
    """A class at a glance (thirty rows are not read one by one): VMs running,
    copies whose VMs are all ready, and of the latest check run the copies
    with full marks and those where a check could not run."""
    vms = [vm for copy in entry["copies"] for vm in copy["vms"]]
    checks = entry["checks"] or {"copies": [], "total_points": 0}
    return {"copies": len(entry["copies"]), "vms": len(vms),
            "running": sum(vm["state"] == "running" for vm in vms),
            "ready": sum(bool(c["vms"]) and all(vm["state"] == "running" and
                                                vm["stage"] == "boot-finished"
                                                for vm in c["vms"]) for c in entry["copies"]),
            "checked": len(checks["copies"]),
            "full_marks": sum(c["earned"] == checks["total_points"] for c in checks["copies"]),
            "could_not_run": sum(c["could_not_run"] > 0 for c in checks["copies"])}


def _copy(session: Session, name: str, placement: dict, files, rows,
          listed: dict[str, list] | None = None) -> dict[str, Any]:
    progress = files.progress()
    readiness = read_json(files.dir / "readiness.json")
    try:
        vms = lab_cases.status(session, name, listed)
        reachable = True
    except LabctlError:
        vms, reachable = [], False
    return {
        "lab": name, "copy": placement.get("copy", ""), "host": placement.get("uri", ""),
        "reachable": reachable, "values": files.own_values(),
        "attempts": [{"created": r.created, "earned": c.earned, "total": r.total_points}
                     for r in CheckHistory(session.data_dir).runs(ATTEMPTS + name, limit=20)
                     for c in r.copies],
        "vms": [{"name": v.name, "state": v.state, "ssh": v.endpoint, "user": v.user,
                 "stage": progress.get(v.name, {}).get("stage", ""),
                 "detail": progress.get(v.name, {}).get("detail", ""),
                 "ready_after": readiness.get(v.name, {}).get("stages", {}).get("auth"),
                 "snapshots": list(v.snapshots)} for v in vms],
        "containers": rows,
    }


def containers_of(session: Session, lab: str) -> list[dict]:
    return [row.__dict__ for row in container_cases.list_containers(session, lab)]


def lab_of(session: Session, group: str) -> Lab:
    """The lab file a lab or class was brought up from (recorded by `up`)."""
    for name in lab_names(session):
        placement = session.files(name).placement()
        if (placement.get("group") or name) == group and placement.get("source"):
            source = Path(placement["source"])
            if not source.is_file():
                raise LabctlError(f"the lab file of '{group}' is gone ({source})",
                                  "run 'labctl up' from the lab file again")
            return load_lab(source)
    raise UsageError(f"no lab or class '{group}' in this data dir",
                     "'labctl status' lists the labs")
