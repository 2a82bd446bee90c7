"""The error family users see: one line, an optional hint, an exit code.

Anything that is not a LabctlError is a bug; the CLI logs its traceback to the
debug log and prints one line pointing there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

EXIT_USAGE = 2  # bad input: lab file, arguments
EXIT_FAILED = 1  # the request was fine but something it drove failed
EXIT_INTERNAL = 70  # a bug in labctl (EX_SOFTWARE)


class LabctlError(Exception):
    """An error meant for the user: `message` is one line, `hint` says what to do."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None):
        # one line, whatever a lab file or a guest put in it ("web\n", escapes);
        # a hint may run over lines (a guest's last lines), each one escaped
        message = one_line(message)
        hint = "\n".join(map(one_line, hint.split("\n"))) if hint is not None else None
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        out = [f"error: {self.message}"]
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return out


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """Control characters shown as escapes: a message stays one line and a
    terminal never takes anything in it as a command."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class BackendError(LabctlError):
    """The place VMs run (a libvirt host) failed or went away. Backends raise
    it at their boundary: nothing above them knows their own error types."""


class UsageError(LabctlError):
    """Bad arguments on the command line."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Mark:
    """Where a value stands in a file; line and column are 1-based."""

    line: int
    column: int


class LabFileError(LabctlError):
    """Bad lab file: printed as FILE:LINE:COL: message."""

    exit_code = EXIT_USAGE

    def __init__(self, path: Path | str, mark: Mark | None, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.path = Path(path)
        self.mark = mark

    def location(self, relative_to: Path | None = None) -> str:
        shown = self.path
        if relative_to is not None:
            try:
                shown = self.path.resolve().relative_to(relative_to.resolve())
            except ValueError:
                pass
        if self.mark is None:
            return str(shown)
        return f"{shown}:{self.mark.line}:{self.mark.column}"

    def lines(self, relative_to: Path | None = None) -> list[str]:
        out = [f"{self.location(relative_to)}: {self.message}"]
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return out
