"""Ctrl-C that leaves a lab in a known state.

While `up` or `down` runs, the CLI holds `deferred_sigint()`: the first Ctrl-C
only sets a flag. The core calls `checkpoint()` between steps (before a VM is
defined or started, in every readiness poll, before each container action),
which raises Interrupted there, so a step in flight (a libvirt call, a
`podman run`) finishes instead of being cut in half. A second Ctrl-C is the
user insisting: it raises KeyboardInterrupt at once, like a normal Python
program. The core never installs handlers; without the CLI it runs as before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from labctl.errors import LabctlError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells expect

_requested = threading.Event()
_active = False  # a deferred_sigint block is open in the main thread


class Interrupted(LabctlError):
    """Ctrl-C, raised at the next safe point."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str = "interrupted", hint: str | None = None):
        super().__init__(message, hint)


def requested() -> bool:
    return _requested.is_set()


def checkpoint() -> None:
    """Raise Interrupted if Ctrl-C was pressed; call it only between steps."""
    if _requested.is_set():
        raise Interrupted()


def request() -> None:
    """What the first Ctrl-C does (tests call it directly)."""
    _requested.set()


@contextlib.contextmanager
def deferred_sigint(on_first=lambda: None) -> Iterator[None]:
    """First SIGINT: set the flag and call `on_first` (to say 'stopping...');
    second: KeyboardInterrupt. Only in the main thread, where signals arrive."""
    global _active
    if threading.current_thread() is not threading.main_thread() or _active:
        yield  # not where signals arrive, or an outer block already defers them
        return

    def handler(_signum, _frame):
        if _requested.is_set():
            raise KeyboardInterrupt
        _requested.set()
        on_first()

    previous = signal.signal(signal.SIGINT, handler)
    _requested.clear()
    _active = True
    try:
        yield
    finally:
        _active = False
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
