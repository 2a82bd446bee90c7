"""Property: whatever the file holds, the loader returns a Lab or raises
LabFileError -- never another exception, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.errors import LabFileError
from labctl.lab.labschema import LAB, NETWORK, VM
from labctl.lab.loader import load_lab
from labctl.lab.model import Lab

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TEXTS = [p.read_text() for p in sorted((ROOT / "examples").glob("*.yaml"))]
KEYS = sorted({*LAB.fields, *VM.fields, *NETWORK.fields, "image", "ports", "volumes", "build",
               "command", "env", "restart", "archive", "context", "network", "ip", "{{ x }}"})
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def load_text(text: str | bytes) -> Lab | LabFileError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lab.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
        try:
            return load_lab(path)
        except LabFileError as exc:
            assert len(exc.lines()) <= 2 and all("\n" not in line for line in exc.lines())
            return exc


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 100_000), st.floats(),
                    st.text(max_size=20), st.sampled_from(["512M", "2G", "8080:80", "web",
                                                           "10.0.0.0/24", "./x:/y", "nat"]))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=6)),
    max_leaves=30,
)


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200)))
def test_random_text(text):
    load_text(text)


@SETTINGS
@given(documents)
def test_random_documents_with_lab_keys(doc):
    load_text(yaml.safe_dump(doc) if not isinstance(doc, float) else str(doc))


@st.composite
def mutated_example(draw):
    lines = draw(st.sampled_from(EXAMPLE_TEXTS)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "insert", "truncate", "indent"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "insert":
            col = draw(st.integers(0, len(lines[i])))
            junk = draw(st.text(alphabet=":-{}[]'\"\t #&*!|>%@`0123456789x", max_size=3))
            lines[i] = lines[i][:col] + junk + lines[i][col:]
        elif action == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
        if not lines:
            lines = [""]
    return "\n".join(lines)


@SETTINGS
@given(mutated_example())
def test_mutated_examples(text):
    load_text(text)
