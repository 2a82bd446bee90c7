"""The results history: every bench run in one SQLite file under the data dir."""

from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path
from typing import Any

from labctl.datadir import ensure
from labctl.errors import LabctlError


class Results:
    def __init__(self, data_dir: Path):
        self.path = data_dir / "bench" / "results.sqlite"

    def _db(self) -> sqlite3.Connection:
        ensure(self.path.parent)
        db = sqlite3.connect(self.path)
        db.execute("CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, created TEXT, "
                   "lab TEXT, data TEXT)")
        return db

    def add(self, data: dict[str, Any]) -> str:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        with self._db() as db:
            n = db.execute("SELECT COUNT(*) FROM runs WHERE id LIKE ?", (stamp + "%",)).fetchone()
            run_id = stamp if n[0] == 0 else f"{stamp}-{n[0]}"
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?)",
                       (run_id, data["created"], data["lab"], json.dumps(data)))
        return run_id

    def get(self, run_id: str) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise LabctlError(f"no bench run '{run_id}'", "'labctl bench history' lists them")
        return json.loads(row[0])

    def history(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        with self._db() as db:
            rows = db.execute("SELECT id, created, lab, data FROM runs ORDER BY id").fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]
