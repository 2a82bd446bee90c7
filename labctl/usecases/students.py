"""The student's side: each copy of a class has a secret token of its own,
which opens that copy's page and nothing else, and the checks marked
`student: true` a student runs on their own copy ("check my work"). Every
attempt is kept (the instructor sees them all); the instructor's check runs
stay apart. No HTTP here (dashboard/student.py serves it)."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from labctl.checks.results import CheckInfo, CheckRun
from labctl.checks.store import ATTEMPTS, CheckHistory, now
from labctl.errors import LabctlError, UsageError
from labctl.lab.model import Lab
from labctl.usecases import dashboard as view
from labctl.usecases import lab as lab_cases
from labctl.usecases import values
from labctl.usecases.session import Session

TOKEN_BYTES = 20


def token(session: Session, lab: str) -> str:
    """The copy's page token: derived from the data dir's secret key (see
    usecases/values.py) and the copy's lab name, so nothing is stored and a
    token opens one copy only."""
    key = values.values_key(session.data_dir)
    return hmac.new(key, b"student page\0" + lab.encode(), hashlib.sha256
                    ).hexdigest()[: 2 * TOKEN_BYTES]


def copy_of(session: Session, given: str) -> str | None:
    """The copy lab a token opens, or None. Every copy's token is compared,
    each in constant time: which copy matched, or none, takes as long."""
    found = None
    for name in view.lab_names(session):
        if not session.files(name).placement().get("group"):
            continue  # a lab that is not a class has no student
        if hmac.compare_digest(token(session, name).encode(), given.encode()):
            found = name
    return found


def student_checks(lab: Lab) -> tuple:
    return tuple(c for c in lab.checks if c.student)


def copy_lab(session: Session, name: str) -> tuple[Lab, str]:
    """The class's lab file rendered for this copy (its own values), and the
    copy id. Kept while the file is unchanged: forty students' pages ask
    every 2 s, and loading and rendering the file is the dearest part."""
    placement = session.files(name).placement()
    group, copy = placement.get("group", ""), placement.get("copy", "")
    try:
        seen = Path(placement["source"]).stat()
        key = (str(session.data_dir), name, placement["source"], seen.st_mtime_ns, seen.st_size)
    except (KeyError, OSError):
        key = None
    if key is not None and key in _RENDERED:
        return _RENDERED[key], copy
    lab = values.renderer(session.data_dir, view.lab_of(session, group))(copy)
    if key is not None:
        if len(_RENDERED) >= 256:
            _RENDERED.clear()
        _RENDERED[key] = lab
    return lab, copy


_RENDERED: dict[tuple, Lab] = {}  # (data dir, copy, file, mtime, size) -> its rendered lab


def state(session: Session, name: str) -> dict[str, Any]:
    """What the copy's page shows: its VMs, the checks a student may run with
    their latest result, and the history of their own attempts."""
    placement = session.files(name).placement()
    try:
        vms = [{"name": v.name, "state": v.state, "ssh": v.endpoint, "user": v.user,
                "snapshots": list(v.snapshots)} for v in lab_cases.status(session, name)]
        reachable = True
    except LabctlError:
        vms, reachable = [], False
    try:
        lab, _copy = copy_lab(session, name)
        checks = [{"name": c.name, "description": c.description, "points": c.points,
                   "vm": c.vm} for c in student_checks(lab)]
    except LabctlError:
        checks = []
    runs = CheckHistory(session.data_dir).runs(ATTEMPTS + name, limit=50)
    attempts = [{"created": r.created, "earned": c.earned, "total": r.total_points,
                 "outcomes": [{"check": o.check, "status": o.status, "reason": o.reason}
                              for o in c.outcomes]}
                for r in runs for c in r.copies]
    return {"lab": name, "group": placement.get("group", ""), "copy": placement.get("copy", ""),
            "reachable": reachable, "vms": vms, "checks": checks, "attempts": attempts,
            "at": time.time()}


def check_my_work(session: Session, name: str) -> dict[str, Any]:
    """The student's checks on their own copy, kept as an attempt."""
    from labctl.usecases.checks import check_copy

    lab, copy = copy_lab(session, name)
    mine = student_checks(lab)
    if not mine:
        raise UsageError("this lab has no checks for students to run",
                         "ask your instructor (checks with student: true)")
    began = time.monotonic()
    created = now()
    result = check_copy(session, name, copy, mine)
    run = CheckRun(ATTEMPTS + name, created, round(time.monotonic() - began, 3),
                   tuple(CheckInfo.of(c) for c in mine), (result,))
    run = replace(run, run_id=CheckHistory(session.data_dir).add(run))
    return run.to_dict()


def attempts(session: Session, name: str) -> list[CheckRun]:
    """Every attempt of one copy, oldest first (the instructor's view)."""
    return CheckHistory(session.data_dir).runs(ATTEMPTS + name, limit=1000)


def class_attempts(session: Session, group: str) -> dict[str, list[CheckRun]]:
    """Every copy of a class -> its students' attempts, oldest first."""
    return {name: attempts(session, name) for name in view.lab_names(session)
            if session.files(name).placement().get("group") == group}
