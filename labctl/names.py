"""Names of labs, VMs, networks and copies: they become parts of libvirt names
and paths. Kept free of imports so the command line checks a name cheaply."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
NAME_HINT = "use lowercase letters, digits and '-', starting and ending with a letter or digit"


def name_problem(value: str, max_len: int) -> tuple[str, str] | None:
    """(message, hint) if `value` is not a valid name, else None."""
    if not NAME_RE.fullmatch(value):
        return f"'{value}' is not a valid name", NAME_HINT
    if len(value) > max_len:
        return f"'{value}' is longer than {max_len} characters", "use a shorter name"
    return None


def copy_name(group: str, copy: str) -> str:
    """The lab name of one copy of a class: GROUP-COPY."""
    return f"{group}-{copy}"
