"""Results of one `labctl check` run: a copy x check grid of verdicts with
points, and what is made of it (a dict for --json and the history, CSV rows,
totals). Nothing here runs anything."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import Any

from labctl.checks.probes import ERROR, PASS
from labctl.lab.model import Check

SYMBOLS = {"pass": "✓", "fail": "✗", "error": "?"}  # error: could not run


@dataclass(frozen=True)
class Outcome:
    check: str
    status: str  # pass | fail | error
    reason: str
    points: int  # what it is worth
    seconds: float = 0.0

    @property
    def earned(self) -> int:
        return self.points if self.status == PASS else 0


@dataclass(frozen=True)
class CopyResult:
    lab: str  # the libvirt-level lab name (LAB-ID for a copy)
    copy: str  # the copy id ("" for a single lab)
    outcomes: tuple[Outcome, ...]

    @property
    def earned(self) -> int:
        return sum(o.earned for o in self.outcomes)

    @property
    def passed(self) -> int:
        return sum(o.status == PASS for o in self.outcomes)

    @property
    def could_not_run(self) -> int:
        return sum(o.status == ERROR for o in self.outcomes)


@dataclass(frozen=True)
class CheckInfo:
    name: str
    description: str
    points: int
    vm: str
    kind: str

    @classmethod
    def of(cls, check: Check) -> CheckInfo:
        return cls(check.name, check.description, check.points, check.vm, check.kind)


@dataclass(frozen=True)
class CheckRun:
    lab: str  # the lab file's name (the class's, for copies)
    created: str  # ISO 8601, UTC
    seconds: float
    checks: tuple[CheckInfo, ...]
    copies: tuple[CopyResult, ...]
    run_id: str = ""

    @property
    def total_points(self) -> int:
        return sum(c.points for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "lab": self.lab, "created": self.created,
            "seconds": round(self.seconds, 3), "total_points": self.total_points,
            "checks": [asdict(c) for c in self.checks],
            "copies": [{"lab": c.lab, "copy": c.copy, "earned": c.earned, "passed": c.passed,
                        "could_not_run": c.could_not_run,
                        "outcomes": [{**asdict(o), "earned": o.earned} for o in c.outcomes]}
                       for c in self.copies],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckRun:
        return cls(
            lab=data["lab"], created=data["created"], seconds=data["seconds"],
            run_id=data.get("run_id", ""),
            checks=tuple(CheckInfo(**c) for c in data["checks"]),
            copies=tuple(CopyResult(c["lab"], c["copy"], tuple(
                Outcome(o["check"], o["status"], o["reason"], o["points"], o["seconds"])
                for o in c["outcomes"])) for c in data["copies"]))

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["copy", "lab", "check", "status", "points", "earned", "reason"])
        for copy in self.copies:
            for o in copy.outcomes:
                writer.writerow([copy.copy, copy.lab, o.check, o.status, o.points, o.earned,
                                 o.reason])
        return out.getvalue()
