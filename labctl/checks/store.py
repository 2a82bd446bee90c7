"""Every check run of this data dir, in one SQLite file, so `labctl check
history` shows a class's progress over a session."""

from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path

from labctl.checks.results import CheckRun
from labctl.datadir import ensure

# the history key of one copy's own attempts (its student's "check my work"),
# kept apart from the instructor's runs of the class: student:LAB-COPY
ATTEMPTS = "student:"


class CheckHistory:
    def __init__(self, data_dir: Path):
        self.path = data_dir / "checks" / "results.sqlite"

    def _db(self) -> sqlite3.Connection:
        ensure(self.path.parent)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "created TEXT, lab TEXT, data TEXT)")
        return db

    def add(self, run: CheckRun) -> str:
        with self._db() as db:
            cursor = db.execute("INSERT INTO runs (created, lab, data) VALUES (?, ?, ?)",
                                (run.created, run.lab, "{}"))
            run_id = str(cursor.lastrowid)
            data = {**run.to_dict(), "run_id": run_id}
            db.execute("UPDATE runs SET data = ? WHERE id = ?", (json.dumps(data), run_id))
        return run_id

    def runs(self, lab: str | None = None, limit: int = 50) -> list[CheckRun]:
        """The newest `limit` runs (of one lab), oldest first."""
        query, args = "SELECT data FROM runs", ()
        if lab is not None:
            query, args = query + " WHERE lab = ?", (lab,)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [CheckRun.from_dict(json.loads(r[0])) for r in reversed(rows)]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
