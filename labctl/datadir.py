"""The one local directory labctl writes to (keys, known_hosts, images,
results, logs). Chosen by --data-dir, then LABCTL_DATA_DIR, then XDG."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LABCTL_DATA_DIR"


def default_data_dir() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "labctl"


def ensure(path: Path) -> Path:
    """Create `path` (and parents) private to the user: keys live below it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
