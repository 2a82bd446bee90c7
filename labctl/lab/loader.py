"""Lab file -> validated model.Lab, or one LabFileError naming file:line:col.

Order: read -> take the plain-YAML `variables:` block -> merge --var overrides ->
render the whole file with jinja2 (sandboxed, StrictUndefined) -> YAML with
marks -> schema (labschema.LAB) -> cross checks (checks.py) -> model.build_lab.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from labctl.errors import LabctlError, LabFileError, Mark, UsageError
from labctl.lab import rules as checks
from labctl.lab import yamlmarks
from labctl.lab.labschema import LAB
from labctl.lab.model import Lab, build_lab
from labctl.lab.percopy import class_values
from labctl.lab.schema import SchemaError, suggest

MAX_FILE_BYTES = 1 << 20
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VARIABLES_LINE = re.compile(r"^variables\s*:")
_TOP_LEVEL_LINE = re.compile(r"^[^\s#]")


def parse_var_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--var key=value` pairs; values read as YAML scalars (3 -> int)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not _VAR_NAME.fullmatch(key):
            raise UsageError(f"--var '{pair}' is not KEY=VALUE", "e.g. --var students=4")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out[key] = value if isinstance(value, str | int | float | bool) else raw
    return out


def load_lab(path: Path | str, overrides: dict[str, Any] | None = None,
             copy_values: dict[str, Any] | None = None) -> Lab:
    """`copy_values`: the `per_copy:` values of the copy being made (see
    lab/percopy.py; usecases/values.py derives them); without them the file
    renders with stand-ins, good for validation, names and plans only."""
    path = Path(path)
    text = _read(path)
    variables = {**_file_block(path, text, "variables"), **(overrides or {})}
    per_copy = _file_block(path, text, "per_copy")
    values = copy_values if copy_values is not None else stand_ins(per_copy)
    rendered = _render(path, text, {**variables, **values})
    shifted = rendered.count("\n") != text.count("\n")

    def fail(mark: Mark | None, message: str, hint: str | None) -> LabFileError:
        if shifted and mark is not None:
            note = "line numbers are those of the file after jinja2 expanded it"
            hint = f"{hint}; {note}" if hint else note
        return LabFileError(path, mark, message, hint)

    try:
        doc, marks = yamlmarks.parse(rendered)
    except yamlmarks.YamlError as exc:
        raise fail(exc.mark, exc.message, exc.hint) from None
    if doc is None:
        raise LabFileError(path, None, "the lab file is empty",
                           "start from one of the examples/, e.g. examples/hello.yaml")
    if not isinstance(doc, dict):
        raise fail(marks.value(()), "the lab file must be a mapping (name:, vms:, ...), "
                   f"not {_kind(doc)}", "see examples/hello.yaml")
    try:
        doc = LAB.check(doc, ())
        checks.check_lab(doc, path.resolve().parent)
    except SchemaError as exc:
        mark = marks.key(exc.path) if exc.at_key else marks.value(exc.path)
        raise fail(mark, exc.message, exc.hint) from None
    return build_lab(doc, path.resolve(), variables, values)


def stand_ins(per_copy: dict[str, Any]) -> dict[str, Any]:
    """Values of the right kind and no secret (an all-zero key): what a lab
    file renders with when no copy is being made. A malformed spec gets ""
    here and its one-line error from the schema afterwards."""
    try:
        return class_values(per_copy, b"", "", [""])[""]
    except (TypeError, ValueError, KeyError, AttributeError, LabctlError):
        return {name: "" for name in per_copy if isinstance(name, str)}


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string"}.get(type(value), "a single value")


def _read(path: Path) -> str:
    if not path.exists():
        raise LabFileError(path, None, "no such lab file", "check the path")
    if not path.is_file():
        raise LabFileError(path, None, "not a file", "give the path of a lab .yaml file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LabFileError(path, None, f"lab file is larger than {MAX_FILE_BYTES >> 20} MiB")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LabFileError(path, Mark(line, 1), "the lab file is not UTF-8 text") from None


def _file_block(path: Path, text: str, key: str) -> dict[str, Any]:
    """A top-level block (`variables:`, `per_copy:`), read as plain YAML before
    rendering (it is what the rest of the file renders with, so it cannot use
    jinja2)."""
    lines = text.split("\n")
    line_re = _VARIABLES_LINE if key == "variables" else re.compile(rf"^{key}\s*:")
    start = next((i for i, line in enumerate(lines) if line_re.match(line)), None)
    if start is None:
        return {}
    end = next((i for i in range(start + 1, len(lines)) if _TOP_LEVEL_LINE.match(lines[i])),
               len(lines))
    block = "\n".join(lines[start:end])
    if "{{" in block or "{%" in block:
        col = next(i for i, line in enumerate(lines[start:end]) if "{{" in line or "{%" in line)
        what = key if key == "variables" else f"{key} values"
        raise LabFileError(path, Mark(start + col + 1, 1), f"{what} cannot use jinja2 themselves",
                           "give plain values here; use them in the rest of the file")
    try:
        doc, marks = yamlmarks.parse(block)
    except yamlmarks.YamlError as exc:
        mark = Mark(exc.mark.line + start, exc.mark.column) if exc.mark else None
        raise LabFileError(path, mark, exc.message, exc.hint) from None
    found = (doc or {}).get(key) if isinstance(doc, dict) else None
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise LabFileError(path, Mark(start + 1, 1), f"{key} must be a mapping of name: value")
    for name in found:
        if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
            mark = marks.key((key, name))
            raise LabFileError(path, Mark(mark.line + start, mark.column),
                               f"'{name}' is not a valid variable name",
                               "use letters, digits and '_', not starting with a digit")
    return found


# A lab file is someone else's code: its jinja2 gets a time and a size.
RENDER_SECONDS = 5.0
RENDER_BYTES = 4 << 20


class _Bounded(SandboxedEnvironment):
    """The sandbox, with `*` and `**` refused where the result would be huge
    ('x' * 10**9 is one expression, long before any output is counted)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * times > RENDER_BYTES:
                    raise SecurityError(f"a result of {len(seq) * times} items is too large")
        if operator == "**" and isinstance(right, int) and right > 64:
            raise SecurityError(f"an exponent of {right} is too large")
        return super().call_binop(context, operator, left, right)


class _OutOfTime(Exception):
    pass


def _deadline_tracer(name: str, deadline: float):
    """A trace function for the template's own frames only: past the
    deadline, the next line of template code raises (loops that print
    nothing are stopped too)."""
    def local(frame, event, _arg):
        if event == "line" and time.monotonic() > deadline:
            raise _OutOfTime
        return local

    def on_call(frame, event, _arg):
        return local if frame.f_code.co_filename == name else None

    return on_call


def _render(path: Path, text: str, variables: dict[str, Any]) -> str:
    name = str(path)
    env = _Bounded(
        # A filename (unlike DictLoader) makes jinja2 tag traceback frames with it.
        loader=jinja2.FunctionLoader(lambda _: (text, name, lambda: True)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    previous = sys.gettrace()
    try:
        template = env.get_template(name)
        sys.settrace(_deadline_tracer(name, time.monotonic() + RENDER_SECONDS))
        chunks, size = [], 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > RENDER_BYTES:
                raise LabFileError(path, None, f"the file's jinja2 makes more than "
                                   f"{RENDER_BYTES >> 20} MiB of text",
                                   "a lab file is short: look for a loop that runs too long")
            chunks.append(chunk)
        return "".join(chunks)
    except _OutOfTime:
        raise LabFileError(path, None, f"the file's jinja2 ran for more than "
                           f"{RENDER_SECONDS:.0f} s", "look for nested loops over large ranges"
                           ) from None
    except LabFileError:
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise LabFileError(path, Mark(exc.lineno or 1, 1), f"jinja2 syntax error: {exc.message}",
                           "check the {{ }} and {% %} around here") from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc, name)
        missing = re.search(r"'([^']+)' is undefined", str(exc))
        if missing:
            var = missing.group(1)
            col = text.split("\n")[line - 1].find(var) + 1 if line else 0
            hint = suggest(var, variables) or (
                f"define it under 'variables:' or pass --var {var}=VALUE")
            raise LabFileError(path, Mark(line, max(col, 1)) if line else None,
                               f"undefined variable '{var}'", hint) from None
        raise LabFileError(path, Mark(line, 1) if line else None,
                           f"jinja2 error: {exc.message}") from None
    except RecursionError:
        raise LabFileError(path, None, "the file's jinja2 nests too deep",
                           "look for a macro that calls itself") from None
    except Exception as exc:  # an expression that fails: 1/0, 'a' + 1, sandbox refusals
        line = _template_line(exc, name)
        hint = "a lab file's jinja2 is sandboxed and bounded" \
            if isinstance(exc, SecurityError) else None
        raise LabFileError(path, Mark(line, 1) if line else None,
                           f"jinja2 error: {type(exc).__name__}: {exc}", hint) from None


    finally:
        sys.settrace(previous)


def _template_line(exc: BaseException, name: str) -> int:
    """jinja2 rewrites tracebacks so frames of the template carry its lines."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == name and frame.lineno:
            return frame.lineno
    return 0
