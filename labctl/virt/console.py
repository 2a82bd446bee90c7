"""A VM's serial console: what it printed so far, read as a file on this
machine (cheap enough to poll) or through the storage pool on a remote host."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from pathlib import Path

from labctl.virt.storage import Storage

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Console:
    def __init__(self, local: bool, storage: Storage,
                 log_path: Callable[[str], Path | None]):
        self.local, self.storage, self.log_path = local, storage, log_path

    def reader(self, name: str) -> Callable[[], bytes]:
        """Reads the VM's serial console so far, each call. A local host's log
        is read as a file (cheap enough to poll); a remote one's through the pool."""
        path = self.log_path(name)
        if path is None:
            return lambda: b""
        if self.local:
            return lambda: _read_bytes(path)
        return lambda: self.storage.download(path.name)

    def tail(self, name: str, lines: int) -> str:
        tail = deque(self.reader(name)().splitlines(keepends=True), maxlen=lines)
        return _ANSI.sub("", b"".join(tail).decode(errors="replace"))



def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


