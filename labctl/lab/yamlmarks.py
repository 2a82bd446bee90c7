"""YAML to plain Python values, remembering where every key and value stood.

We compose the node tree ourselves instead of using yaml.safe_load so that we can
(1) keep line/column marks for error messages, (2) refuse duplicate keys, which
PyYAML silently overwrites, (3) bound alias expansion (billion-laughs documents),
and (4) keep plain scalars like 8080:80 as strings, not YAML 1.1 base-60 ints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from labctl.errors import Mark

Path_ = tuple[str | int, ...]

MAX_NODES = 100_000  # far above any real lab; stops alias bombs early


@dataclass
class Marks:
    """Marks by path: the value's, and for mapping entries the key's."""

    values: dict[Path_, Mark] = field(default_factory=dict)
    keys: dict[Path_, Mark] = field(default_factory=dict)

    def value(self, path: Path_) -> Mark | None:
        return self._nearest(self.values, path)

    def key(self, path: Path_) -> Mark | None:
        return self.keys.get(tuple(path)) or self.value(path)

    @staticmethod
    def _nearest(table: dict[Path_, Mark], path: Path_) -> Mark | None:
        path = tuple(path)
        while True:
            if path in table:
                return table[path]
            if not path:
                return None
            path = path[:-1]


class YamlError(Exception):
    """A YAML problem at a mark; config.py turns it into a LabFileError."""

    def __init__(self, mark: Mark | None, message: str, hint: str | None = None):
        super().__init__(message)
        self.mark = mark
        self.message = message
        self.hint = hint


def _mark(node_or_mark: Any) -> Mark:
    m = getattr(node_or_mark, "start_mark", node_or_mark)
    return Mark(m.line + 1, m.column + 1)


MAX_DEPTH = 64  # a lab file is a few levels deep; PyYAML's composer recurses


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the parser's events (a loop, not recursion)
    before the composer recurses into it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlError(_mark(event.start_mark),
                                f"nested more than {MAX_DEPTH} levels deep",
                                "a lab file is a few levels deep: look for unclosed brackets")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def parse(text: str) -> tuple[Any, Marks]:
    """Parse one YAML document into (value, marks). Raises YamlError."""
    try:
        _check_depth(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except yaml.reader.ReaderError as exc:  # a control character; it has a position only
        before = text[: exc.position]
        mark = Mark(before.count("\n") + 1, exc.position - before.rfind("\n"))
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlError(mark, f"character U+{code:04X} is not allowed in YAML",
                        "remove it; a lab file is plain text") from None
    marks = Marks()
    if node is None:
        return None, marks
    return _Converter(marks).convert(node, ()), marks


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlError:
    mark = _mark(exc.problem_mark) if exc.problem_mark else None
    problem = exc.problem or exc.context or "invalid YAML"
    hint = None
    if "end of stream" in problem and exc.context and exc.context_mark:
        # Point at what was left open, not at the end of the file.
        what = exc.context.removeprefix("while scanning ").removeprefix("while parsing ")
        mark, problem = _mark(exc.context_mark), f"{what} is never closed"
        hint = "close the quote or bracket opened here"
    elif "'\\t'" in problem or "\\t" in problem:
        hint = "indent with spaces; YAML does not allow tabs"
    elif "expected a single document" in str(exc.context or ""):
        problem, hint = "more than one YAML document", "a lab file holds one document; remove '---'"
    elif "mapping values are not allowed" in problem:
        hint = "a value containing ': ' must be quoted, or a key is mis-indented"
    elif "could not find expected ':'" in problem or "expected <block end>" in problem:
        hint = "check the indentation of this line and the one before it"
    return YamlError(mark, f"YAML syntax error: {problem}", hint)


class _Converter:
    def __init__(self, marks: Marks):
        self.marks = marks
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                _mark(node),
                f"document expands to more than {MAX_NODES} values",
                "YAML aliases (*name) are expanding without bound; remove them",
            )
        self.marks.values.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        # YAML 1.1 reads 22:22 as the base-60 integer 1342; nobody means that.
        if node.style is None and ":" in node.value and node.tag.endswith((":int", ":float")):
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise YamlError(_mark(node), f"bad YAML value: {exc.problem}") from None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.update(self._merge_sources(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError(_mark(key_node), "a mapping key must be a plain name")
            key = self._scalar(key_node)
            if not isinstance(key, str):
                key = str(key_node.value)
            if key in out:
                first = self.marks.keys[(*path, key)]
                raise YamlError(
                    _mark(key_node),
                    f"duplicate key '{key}'",
                    f"it is already set on line {first.line}; keep one",
                )
            self.marks.keys[(*path, key)] = _mark(key_node)
            out[key] = self.convert(value_node, (*path, key))
        return {**merged, **out}

    def _merge_sources(self, node: yaml.Node, path: Path_) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            value = self.convert(source, path)
            if not isinstance(value, dict):
                raise YamlError(_mark(source), "'<<' merges only mappings")
            merged.update(value)
        return merged
