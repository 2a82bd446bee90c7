"""labctl's command line: `main()` is the console script."""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path

# Importing registers the commands, in the order --help shows their panels:
# lab lifecycle, access, containers, class, checks, images, registry, bench, maintenance.
# isort: off
from labctl.cli import (  # noqa: F401
    lifecycle,
    snapshots,
    access,
    containers,
    classroom,
    checks,
    dashboard,
    image,
    registry,
    bench,
    doctor,
    gc,
    validate,
    schema,
    version,
)
# isort: on
from labctl.cli.app import STATE, app
from labctl.cli.output import print_error_lines
from labctl.errors import EXIT_FAILED, EXIT_INTERNAL, LabctlError
from labctl.interrupt import EXIT_INTERRUPTED

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors are one line (+ hint), bugs go to the debug log."""
    # No command line can hold a NUL byte, but a caller's list can: the file
    # checks below it (os.stat) would raise instead of saying so.
    if any("\0" in arg for arg in (sys.argv[1:] if argv is None else argv)):
        print_error_lines(["error: an argument holds a NUL byte",
                           "  hint: no path, name or value can contain one"])
        sys.exit(2)
    _libraries_log_to_the_debug_log()
    # typer's standalone mode handles usage errors (exit 2) and typer.Exit.
    try:
        app(args=argv, prog_name="labctl")
    except LabctlError as exc:
        print_error_lines(exc.lines())
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print_error_lines(["error: interrupted at once; a lab being changed may be half-made",
                           "  hint: 'labctl up LAB.yaml' finishes it; 'labctl down LAB' "
                           "removes it; 'labctl gc' finds leftovers"])
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            _internal_error()
        where = exc.filename or f"in the data dir {STATE.data_dir}"
        print_error_lines([f"error: {exc.strerror.lower()}: {where}",
                           f"  hint: {USER_OS_ERRORS[exc.errno]}"])
        sys.exit(EXIT_FAILED)
    except Exception:
        _internal_error()  # a bug: keep the traceback for the report, not the screen


# Failures of the host, not of labctl: said in one line with what to do.
USER_OS_ERRORS = {
    errno.ENOSPC: "the disk is full: free space (labctl gc removes leftovers), then run again",
    errno.EDQUOT: "the disk quota is used up: free space, then run again",
    errno.EACCES: "labctl lacks permission there: check --data-dir and who owns it",
    errno.EPERM: "labctl lacks permission there: check --data-dir and who owns it",
    errno.EROFS: "that file system is read-only: choose another --data-dir",
}


def _internal_error() -> None:
    import traceback

    log = write_debug_log(traceback.format_exc())
    print_error_lines([
        f"error: internal error: {sys.exc_info()[1]!s:.200}",
        f"  hint: this is a bug in labctl; details are in {log}",
    ])
    sys.exit(EXIT_INTERNAL)


class _DebugLogHandler(logging.Handler):
    """A library's warning (keystoneauth's "Failed to discover available
    identity versions", paramiko's "Error reading SSH protocol banner") goes to
    the debug log: with no handler, Python's last resort prints it above
    labctl's one-line error."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_debug_log(f"{record.name}: {self.format(record)}")
        except Exception:  # a log line must never become the failure
            self.handleError(record)


def _libraries_log_to_the_debug_log() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _DebugLogHandler) for h in root.handlers):
        root.addHandler(_DebugLogHandler(logging.WARNING))


def write_debug_log(text: str) -> Path:
    import datetime
    import tempfile

    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    record = f"--- {stamp} labctl {' '.join(sys.argv[1:])}\n{text}\n"
    for directory in (STATE.data_dir / "logs", Path(tempfile.gettempdir())):
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            log = directory / "debug.log" if directory.name == "logs" else \
                directory / f"labctl-debug-{os.getuid()}.log"
            with log.open("a", encoding="utf-8") as fh:
                fh.write(record)
            return log
        except OSError:
            continue
    return Path("/dev/null")
