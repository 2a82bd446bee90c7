"""Quoting for commands that run in a guest shell: the one place it happens."""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def quote(word: str) -> str:
    return shlex.quote(word)


def join(argv: Sequence[str]) -> str:
    """argv as one POSIX shell command line, every word quoted."""
    return " ".join(shlex.quote(str(w)) for w in argv)
