"""Progress from the core to whoever shows it. The core never prints: it calls
a Report with Events, and the CLI renders them (rich) or ignores them (--json)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    subject: str  # what it is about: "image debian-12", "vm web-1"
    stage: str  # short machine-friendly stage name: "mmdebstrap", "ssh-banner"
    detail: str = ""  # one human line
    elapsed: float | None = None  # seconds since the subject started, when known
    amount: tuple[int, int] | None = None  # (done, total) for transfers; total 0 if unknown


Report = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """A Report that drops everything."""
