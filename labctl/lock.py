"""One labctl at a time per lab: an advisory lock (flock) on
DATA_DIR/locks/LAB.lock. The kernel drops it when its holder dies, so a lock
left by a killed labctl is never stale; the file says who holds it, for the
message the second process prints while it waits or when it gives up."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from labctl.datadir import ensure
from labctl.errors import LabctlError

POLL = 0.2


@contextlib.contextmanager
def lab_lock(data_dir: Path, lab: str, action: str, wait: bool = True,
             timeout: float | None = None,
             waiting: Callable[[str], None] = lambda _holder: None) -> Iterator[None]:
    path = ensure(data_dir / "locks") / f"{lab}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if not wait:
                    raise LabctlError(f"lab '{lab}' is busy: {holder}",
                                      "wait for it, or run again without --no-wait") from None
                if deadline is not None and time.monotonic() > deadline:
                    raise LabctlError(f"lab '{lab}' is still busy after {timeout:.0f} s: "
                                      f"{holder}", "is that labctl stuck? stop it") from None
                if not told:
                    waiting(holder)
                    told = True
                time.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"labctl (pid {os.getpid()}) is running '{action}'".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    return text or "another labctl holds its lock"
