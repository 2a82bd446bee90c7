"""jinja2 rendering of labctl's templates (templates/, or a user's directory).

Templates place values; they never decide defaults (model.py does). Filters:
`sh` quotes for POSIX shell, `json` gives a JSON/YAML-safe scalar, `b64`
base64-encodes, `xml` escapes for XML text and attributes.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import jinja2

from labctl import shell
from labctl.resources import data_dir


def _b64(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return base64.b64encode(data).decode()


@cache
def _environment(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["sh"] = lambda v: shell.quote(str(v))
    env.filters["json"] = lambda v: json.dumps(v)
    env.filters["b64"] = _b64
    env.filters["xml"] = lambda v: quoteattr(str(v))[1:-1]
    return env


def render_html(name: str, **context: Any) -> str:
    """A page from the shipped templates with HTML escaping on: its values
    (a student's command output, a check's reason) are not markup."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
                             undefined=jinja2.StrictUndefined, autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name).render(**context)


def render(name: str, templates: Path | None = None, **context: Any) -> str:
    return _environment(templates or data_dir("templates")).get_template(name).render(**context)
