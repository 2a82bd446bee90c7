"""A small type system for the lab file: one description serves two ends.

`check()` validates and normalises a parsed document with messages written for
people (and a path for the file:line); `json_schema()` exports the same rules
for editors (`labctl schema`). Cross-references (duplicates, undefined
networks, port clashes) live in checks.py, not here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Path_ = tuple[str | int, ...]


class SchemaError(Exception):
    def __init__(self, path: Path_, message: str, hint: str | None = None, at_key: bool = False):
        super().__init__(message)
        self.path, self.message, self.hint, self.at_key = tuple(path), message, hint, at_key


class Invalid(ValueError):
    """Raised by value parsers; carries an optional hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def describe(value: Any) -> str:
    """How a YAML value looks to the person who wrote it."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", type(None): "nothing (null)"}
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "...'"
        return f"{kind} ({shown})"
    return kind


def field_name(path: Path_) -> str:
    """'vms[0].memory' style name for messages."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


class Type:
    what = "a value"  # noun phrase used in "expected ..."
    doc = ""

    def check(self, value: Any, path: Path_) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _wrong(self, value: Any, path: Path_, hint: str | None = None) -> SchemaError:
        return SchemaError(path, f"{field_name(path)}: expected {self.what}, got {describe(value)}",
                           hint)

    def _with_doc(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {**schema, "description": self.doc} if self.doc else schema


class Str(Type):
    what = "a string"

    def __init__(self, doc: str = "", max_len: int = 4096, scalars: bool = False):
        self.doc, self.max_len, self.scalars = doc, max_len, scalars

    def check(self, value: Any, path: Path_) -> str:
        if self.scalars and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # env values: `PORT: 80` means "80"
        if not isinstance(value, str):
            raise self._wrong(value, path, "quote the value")
        if len(value) > self.max_len:
            raise SchemaError(path, f"{field_name(path)}: longer than {self.max_len} characters")
        return value

    def json_schema(self) -> dict[str, Any]:
        types = ["string", "number"] if self.scalars else "string"
        return self._with_doc({"type": types, "maxLength": self.max_len})


class Int(Type):
    def __init__(self, low: int, high: int, doc: str = "", hint: str | None = None):
        self.low, self.high, self.doc, self.hint = low, high, doc, hint
        self.what = "a whole number"

    def check(self, value: Any, path: Path_) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(value, path)
        if not self.low <= value <= self.high:
            raise SchemaError(
                path, f"{field_name(path)}: {value} is out of range ({self.low} to {self.high})",
                self.hint)
        return value

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"type": "integer", "minimum": self.low, "maximum": self.high})


class Bool(Type):
    what = "true or false"

    def __init__(self, doc: str = ""):
        self.doc = doc

    def check(self, value: Any, path: Path_) -> bool:
        if not isinstance(value, bool):
            raise self._wrong(value, path, "write true or false (no quotes)")
        return value

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"type": "boolean"})


class Enum(Type):
    def __init__(self, *choices: str, doc: str = "", aliases: dict[Any, str] | None = None):
        self.choices, self.doc, self.aliases = choices, doc, aliases or {}
        self.what = "one of " + ", ".join(f"'{c}'" for c in choices)

    def check(self, value: Any, path: Path_) -> str:
        if not isinstance(value, str) and value in self.aliases and type(value) is bool:
            return self.aliases[value]
        if value in self.choices:
            return value
        hint = suggest(value, self.choices) if isinstance(value, str) else None
        raise SchemaError(path, f"{field_name(path)}: expected {self.what}, got {describe(value)}",
                          hint)

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"enum": [*self.choices, *self.aliases]})


class Parsed(Type):
    """A string (or number) parsed by a function that raises Invalid."""

    def __init__(self, parse: Callable[[Any], Any], what: str, doc: str = "",
                 schema: dict[str, Any] | None = None, accepts: tuple[type, ...] = (str,)):
        self.parse, self.what, self.doc = parse, what, doc
        self.schema = schema or {"type": "string"}
        self.accepts = accepts

    def check(self, value: Any, path: Path_) -> Any:
        if isinstance(value, bool) or not isinstance(value, self.accepts):
            raise self._wrong(value, path)
        try:
            return self.parse(value)
        except Invalid as exc:
            raise SchemaError(path, f"{field_name(path)}: {exc.message}", exc.hint) from None

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc(dict(self.schema))


class ListOf(Type):
    def __init__(self, item: Type, doc: str = "", max_items: int = 1000):
        self.item, self.doc, self.max_items = item, doc, max_items
        self.what = "a list"

    def check(self, value: Any, path: Path_) -> list[Any]:
        if not isinstance(value, list):
            raise self._wrong(value, path, "write each item on its own line starting with '- '")
        if len(value) > self.max_items:
            raise SchemaError(path, f"{field_name(path)}: more than {self.max_items} items")
        return [self.item.check(v, (*path, i)) for i, v in enumerate(value)]

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"type": "array", "items": self.item.json_schema(),
                               "maxItems": self.max_items})


class MapOf(Type):
    what = "a mapping"

    def __init__(self, value: Type, key: Type | None = None, doc: str = ""):
        self.value, self.key, self.doc = value, key, doc

    def check(self, value: Any, path: Path_) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._wrong(value, path)
        out = {}
        for k, v in value.items():
            if self.key is not None:
                try:
                    self.key.check(k, (*path, k))
                except SchemaError as exc:
                    raise SchemaError(exc.path, exc.message, exc.hint, at_key=True) from None
            out[k] = self.value.check(v, (*path, k))
        return out

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"type": "object", "additionalProperties": self.value.json_schema()})


@dataclass
class Field:
    type: Type
    required: bool = False


class Obj(Type):
    def __init__(self, what: str, fields: dict[str, Field], doc: str = ""):
        self.what, self.fields, self.doc = what, fields, doc

    def check(self, value: Any, path: Path_) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._wrong(value, path)
        for key in value:
            if key not in self.fields:
                where = f" in {field_name(path)}" if path else ""
                raise SchemaError((*path, key), f"unknown key '{key}'{where}",
                                  suggest(key, self.fields) or "allowed keys: "
                                  + ", ".join(self.fields), at_key=True)
        for key, f in self.fields.items():
            if f.required and key not in value:
                where = f"{field_name(path)}: " if path else ""
                raise SchemaError(path, f"{where}missing required key '{key}'",
                                  f"add '{key}:' to {self.what}")
        return {k: self.fields[k].type.check(v, (*path, k)) for k, v in value.items()}

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({
            "type": "object",
            "properties": {k: f.type.json_schema() for k, f in self.fields.items()},
            "required": [k for k, f in self.fields.items() if f.required],
            "additionalProperties": False,
        })


class Either(Type):
    """Picks a type by the Python type of the value (str, list, dict...)."""

    def __init__(self, what: str, by_kind: dict[type, Type], doc: str = ""):
        self.what, self.by_kind, self.doc = what, by_kind, doc

    def check(self, value: Any, path: Path_) -> Any:
        for kind, typ in self.by_kind.items():
            if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                return typ.check(value, path)
        raise self._wrong(value, path)

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"anyOf": [t.json_schema() for t in self.by_kind.values()]})


def suggest(word: str, choices: Any) -> str | None:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
