"""Each copy's own `per_copy:` values (lab/percopy.py derives them): the key
they come from, kept in the data dir and never in a VM, and the lab file
rendered again for a copy with its values, wherever a copy's lab is needed
(up, reset, plan, check, hand-outs, the dashboard)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.datadir import ensure
from labctl.lab.loader import load_lab
from labctl.lab.model import Lab
from labctl.lab.percopy import copy_values

KEY_FILE = "per-copy.key"


def values_key(data_dir: Path) -> bytes:
    """The data dir's key for per-copy values, made once (0600): whoever holds
    it can compute every copy's values, so it never leaves this machine."""
    path = ensure(data_dir) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    return path.read_bytes()


def class_order(lab: Lab, copy: str) -> list[str]:
    """The class's copies up to `copy`, in order (a copy's values depend on
    the copies before it only)."""
    if not copy:
        return [""]
    if lab.students:
        return list(lab.students)
    last = max(int(copy), lab.copies) if copy.isdigit() else lab.copies
    return [str(i) for i in range(1, last + 1)]


def values_of(data_dir: Path, lab: Lab, copy: str) -> dict[str, Any]:
    """The values of copy `copy` of the class `lab` ("" for a lab that is
    not a class)."""
    return copy_values(lab.per_copy, values_key(data_dir), lab.name, class_order(lab, copy),
                       copy)


def renderer(data_dir: Path, lab: Lab) -> Callable[[str], Lab]:
    """copy id -> the lab file rendered with that copy's values (before it is
    made a copy: classroom.make_copy does that)."""
    if not lab.per_copy:
        return lambda _copy: lab
    return lambda copy: load_lab(lab.source, lab.variables,
                                 copy_values=values_of(data_dir, lab, copy))


def own(data_dir: Path, lab: Lab) -> Lab:
    """A lab that is not a class, with its own values (a copy already has them)."""
    if not lab.per_copy or lab.copy:
        return lab
    return renderer(data_dir, lab)("")
