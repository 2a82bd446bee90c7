"""Running host commands: one place that turns failures into LabctlErrors
with the tail of their output, and keeps full output in a log when asked."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from labctl.errors import LabctlError


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise LabctlError(f"'{program}' is not installed",
                          f"install the Debian package '{package}' (scripts/setup does)")
    return path


def run(argv: Sequence[str], *, what: str, log: Path | None = None,
        timeout: float | None = None, input_text: str | None = None) -> str:
    """Run argv; return stdout. On failure raise one line naming `what`."""
    argv = [str(a) for a in argv]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                input=input_text)
    except subprocess.TimeoutExpired:
        raise LabctlError(f"{what} did not finish within {timeout:.0f} s",
                          f"command: {' '.join(argv[:3])} ...") from None
    except FileNotFoundError:
        raise LabctlError(f"{what}: '{argv[0]}' is not installed") from None
    if log is not None:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        # Debian tools print the cause as the first "E: " line and a generic one last.
        errors = [line for line in lines if line.startswith("E: ")]
        last = errors[0] if errors else (lines[-1] if lines else f"exit status {result.returncode}")
        where = f"; full output in {log}" if log else ""
        raise LabctlError(f"{what} failed: {last}", f"exit status {result.returncode}{where}")
    return result.stdout
