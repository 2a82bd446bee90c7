"""The console script. Students type `labctl exec LAB.VM -- CMD` and
`labctl ssh LAB.VM` all day: those plain forms go straight to OpenSSH with
the lab's ssh_config, without loading typer or any command (anything with
options goes the long way, through labctl.cli.main). `labctl --help` is asked
often and its text changes only with labctl itself: the text typer and rich
render is kept in a small cache (keyed by labctl's version, its command
modules and the terminal), so a later `--help` prints it in ~50 ms."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path

HELP_ARGS = (["--help"], ["-h"])


def main() -> None:
    args = sys.argv[1:]
    plain = _plain_ssh(args)
    if plain is not None:
        _exec_plain(*plain)
        return
    if args in HELP_ARGS:
        cached = _help_path()
        if cached is not None and cached.is_file():
            sys.stdout.write(cached.read_text())
            return
        _render_help_into(cached)
        return
    from labctl.cli import main as run

    run()


def _plain_ssh(args: list[str]) -> tuple[str, str, list[str], list[str]] | None:
    """(lab, vm, ssh options, remote command) for `exec LAB.VM [--] CMD...` and
    `ssh LAB.VM`; None for every other form (containers, options, copies)."""
    from labctl.names import name_problem

    if len(args) < 2 or args[0] not in ("exec", "ssh"):
        return None
    lab, dot, vm = args[1].partition(".")
    if not dot or name_problem(lab, 63) or name_problem(vm, 63):
        return None
    rest = args[2:]
    if args[0] == "ssh":
        return (lab, vm, [], []) if not rest else None
    if rest[:1] == ["--"]:
        rest = rest[1:]
    elif not rest or rest[0].startswith("-"):
        return None
    if not rest:
        return None
    from labctl.shell import join

    return lab, vm, ["-T"], [rest[0] if len(rest) == 1 else join(rest)]


def _exec_plain(lab: str, vm: str, options: list[str], command: list[str]) -> None:
    from labctl.datadir import default_data_dir
    from labctl.errors import LabctlError
    from labctl.ssh.openssh import exec_ssh

    try:
        exec_ssh(default_data_dir(), lab, vm, options, command)
    except LabctlError as exc:
        sys.stderr.write("".join(f"{line}\n" for line in exc.lines()))
        sys.exit(exc.exit_code)


def _help_path() -> Path | None:
    """Where this labctl's help for this terminal is kept; None if unknowable."""
    try:
        cli = Path(__file__).parent / "cli"
        stats = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                       for p in cli.glob("*.py"))
        columns = os.get_terminal_size(sys.stdout.fileno()).columns \
            if sys.stdout.isatty() else 0
    except (OSError, ValueError):
        return None
    from labctl import __version__

    key = repr((__version__, stats, columns, sys.stdout.isatty(),
                [os.environ.get(v) for v in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TERM",
                                             "LABCTL_DATA_DIR")]))
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labctl"
    return base / "help" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.txt"


class _Tee(io.TextIOBase):
    """stdout as rich sees it (a terminal or not, its width), also copied."""

    def __init__(self, real):
        self.real, self.copy = real, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()


def _render_help_into(cached: Path | None) -> None:
    from labctl.cli import main as run

    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        run()
    except SystemExit as done:
        if done.code not in (0, None):
            raise
    finally:
        sys.stdout = tee.real
    if cached is None:
        return
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(tee.copy.getvalue())
        partial.replace(cached)
    except OSError:
        pass  # no cache: the next --help renders it again
