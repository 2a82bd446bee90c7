"""Values of their own: a lab's `per_copy:` values, generated for each copy of
a class (a secret, a number such as a port, one of a list, a name), so one
student's answer does not pass for another's.

A value is derived from a key (the data dir's, kept secret from students),
the class's name, the copy and the value's name: the same on every `up`,
`reset` and `check`, different between copies. Numbers and choices are also
kept apart between the copies of a class: copies take their values in class
order and a copy whose value an earlier copy took moves to the next free one,
so a copy's value depends only on the copies before it (adding a student at
the end changes nobody's). Pure: the key is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from typing import Any

from labctl.errors import LabctlError

SECRET_ALPHABET = string.ascii_lowercase + string.digits
# names: an adjective and an animal, e.g. "amber-otter" (20 x 20 = 400 of them)
ADJECTIVES = ("amber", "brave", "calm", "coral", "dusty", "eager", "fuzzy", "gentle", "golden",
              "happy", "jolly", "lucky", "mellow", "misty", "noble", "quiet", "rapid", "silver",
              "sunny", "witty")
ANIMALS = ("badger", "beaver", "bison", "crane", "dingo", "eagle", "ferret", "gecko", "heron",
           "ibis", "koala", "lemur", "lynx", "marten", "otter", "panda", "puffin", "raven",
           "tapir", "walrus")
KINDS = ("secret", "number", "choice", "name")


def _stream(key: bytes, group: str, copy: str, name: str, attempt: int = 0) -> int:
    message = f"{group}\0{copy}\0{name}\0{attempt}".encode()
    return int.from_bytes(hmac.new(key, message, hashlib.sha256).digest(), "big")


def _choices(spec: dict[str, Any]) -> list[Any] | None:
    """The finite set a number, choice or name is drawn from (None: a secret)."""
    if "number" in spec:
        low, high = spec["number"]
        return list(range(low, high + 1))
    if "choice" in spec:
        return list(spec["choice"])
    if "name" in spec:
        return [f"{a}-{b}" for a in ADJECTIVES for b in ANIMALS]
    return None


def class_values(specs: dict[str, dict[str, Any]], key: bytes, group: str,
                 copies: list[str]) -> dict[str, dict[str, Any]]:
    """copy -> {value name -> value} for the copies of one class, in class
    order (a single lab: copies == [""])."""
    out: dict[str, dict[str, Any]] = {copy: {} for copy in copies}
    for name, spec in specs.items():
        pool = _choices(spec)
        if pool is None:
            length = spec["secret"]
            for copy in copies:  # a character a draw
                out[copy][name] = "".join(
                    SECRET_ALPHABET[_stream(key, group, copy, name, i) % len(SECRET_ALPHABET)]
                    for i in range(length))
            continue
        if len(copies) > len(pool):
            raise LabctlError(f"per_copy '{name}' has {len(pool)} values for {len(copies)} "
                              "copies: two copies would share one",
                              "widen its range or list, or run fewer copies")
        taken: set[int] = set()
        for copy in copies:
            index = _stream(key, group, copy, name) % len(pool)
            while index in taken:
                index = (index + 1) % len(pool)
            taken.add(index)
            out[copy][name] = pool[index]
    return out


def copy_values(specs: dict[str, dict[str, Any]], key: bytes, group: str,
                copies: list[str], copy: str) -> dict[str, Any]:
    """One copy's values: those of the copies before it decide (class order)."""
    if not specs:
        return {}
    before = copies[: copies.index(copy) + 1] if copy in copies else [copy]
    return class_values(specs, key, group, before)[copy]
