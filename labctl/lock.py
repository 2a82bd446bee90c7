"""One labctl at a time per lab: an advisory lock (flock) on
DATA_DIR/locks/LAB.lock. The kernel drops it when its holder dies, so a lock
left by a killed labctl is never stale; the file says who holds it, for the
message the second process prints while it waits or when it gives up."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
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


class HostStep:
    """One step on one libvirt host taken by one thread at a time, in this
    process and in every other labctl on this machine (choosing a free subnet
    then defining the network that takes it; uploading a base image): two
    labctl runs at once, like two threads of a class, picked the same subnet.
    The flock lives in /run/lock (machine-wide, whatever the data dir)."""

    def __init__(self, uri: str, step: str):
        self._thread = threading.Lock()
        tag = hashlib.sha256(uri.encode()).hexdigest()[:12]
        base = Path("/run/lock") if os.access("/run/lock", os.W_OK) else \
            Path(tempfile.gettempdir())
        self.path = base / f"labctl-{step}-{tag}.lock"
        self._fd: int | None = None

    def __enter__(self) -> HostStep:
        self._thread.acquire()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread.release()
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the flock
        self._thread.release()
