"""labctl's command line: `main()` is the console script."""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
import traceback
from pathlib import Path

from labctl.cli import (  # noqa: F401  (importing registers the commands)
    access,
    bench,
    containers,
    doctor,
    image,
    lifecycle,
    registry,
    schema,
    validate,
    version,
)
from labctl.cli.app import STATE, app
from labctl.cli.output import print_error_lines
from labctl.errors import EXIT_INTERNAL, LabctlError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors are one line (+ hint), bugs go to the debug log."""
    # typer's standalone mode handles usage errors (exit 2) and typer.Exit.
    try:
        app(args=argv, prog_name="labctl")
    except LabctlError as exc:
        print_error_lines(exc.lines())
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print_error_lines(["error: interrupted"])
        sys.exit(130)
    except Exception:  # a bug: keep the traceback for the report, not the screen
        log = write_debug_log(traceback.format_exc())
        print_error_lines([
            f"error: internal error: {sys.exc_info()[1]!s:.200}",
            f"  hint: this is a bug in labctl; details are in {log}",
        ])
        sys.exit(EXIT_INTERNAL)


def write_debug_log(text: str) -> Path:
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
