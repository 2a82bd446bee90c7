"""Values of their own: per_copy values are derived from the data dir's key,
the class and the copy -- the same every time, different between copies --
and reach everything rendered for a copy (files, checks), the roster and
the dashboard, never another copy."""

from __future__ import annotations

import csv
import string
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.lab.percopy import class_values, copy_values
from labctl.usecases import classes, handout
from labctl.usecases import dashboard as board
from labctl.usecases import lab as lab_cases
from labctl.usecases.values import KEY_FILE, values_key, values_of

from .fake_backend import FakeBackend
from .test_fake_backend import on_fake

SPECS = {"secret": {"secret": 12}, "port": {"number": [20000, 20004]},
         "colour": {"choice": ["red", "green", "blue"]}, "codename": {"name": True}}

LAB = """\
name: own
variables:
  greeting: hello
per_copy:
  secret: {secret: 12}
  port: {number: [20000, 20999]}
vms:
  - name: node
    write_files:
      - path: /etc/flag
        content: "{{ greeting }} {{ secret }} {{ port }}"
checks:
  - name: flag
    vm: node
    file: {path: /etc/flag, contains: "{{ secret }}"}
"""


def test_values_are_the_same_every_time_and_differ_between_copies():
    key = b"k" * 32
    first = class_values(SPECS, key, "own", ["1", "2", "3"])
    assert first == class_values(SPECS, key, "own", ["1", "2", "3"])
    assert first != class_values(SPECS, b"x" * 32, "own", ["1", "2", "3"])  # another key
    for name in SPECS:  # numbers and choices are kept apart within a class
        assert len({first[c][name] for c in first}) == 3, name
    secret = first["1"]["secret"]
    assert len(secret) == 12 and set(secret) <= set(string.ascii_lowercase + string.digits)
    assert 20000 <= first["2"]["port"] <= 20004 and first["3"]["colour"] in ("red", "green", "blue")
    assert "-" in first["1"]["codename"]
    # a copy's values depend on the copies before it only: adding one keeps the others
    wide = {k: v for k, v in SPECS.items() if k != "colour"}  # 3 colours: 3 copies at most
    more = class_values(wide, key, "own", ["1", "2", "3", "4", "5"])
    assert all(more[c] == {k: v for k, v in first[c].items() if k != "colour"} for c in first)
    assert copy_values(SPECS, key, "own", ["1", "2", "3", "4"], "2") == first["2"]


def test_more_copies_than_a_choice_has_values_is_refused():
    with pytest.raises(LabctlError, match="'colour' has 3 values for 4 copies"):
        class_values({"colour": SPECS["colour"]}, b"k", "own", ["1", "2", "3", "4"])


def test_the_key_is_made_once_and_kept_private(tmp_path):
    key = values_key(tmp_path)
    assert len(key) == 32 and values_key(tmp_path) == key
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_a_lab_renders_stand_ins_until_a_copy_is_made(tmp_path):
    (tmp_path / "own.yaml").write_text(LAB)
    lab = load_lab(tmp_path / "own.yaml")  # validation, names, plans
    assert set(lab.values) == {"secret", "port"} and lab.per_copy["port"] == {
        "number": [20000, 20999]}
    made = load_lab(tmp_path / "own.yaml", lab.variables,
                    copy_values={"secret": "s3cr3t", "port": 20042})
    assert made.vms[0].write_files[0].content == "hello s3cr3t 20042"
    assert made.checks[0].get("contains") == "s3cr3t"


def test_each_copy_of_a_class_gets_its_own_values_everywhere(tmp_path):
    (tmp_path / "own.yaml").write_text(LAB)
    lab = load_lab(tmp_path / "own.yaml")
    backend = FakeBackend()
    session = on_fake(tmp_path, backend)
    classes.up_class(session, lab, lambda _c, _e: None, copies=2)
    own = {c: values_of(session.data_dir, lab, c) for c in ("1", "2")}
    assert own["1"]["secret"] != own["2"]["secret"] and own["1"]["port"] != own["2"]["port"]
    for copy in ("1", "2"):
        content = backend.made[f"own-{copy}.node"].write_files[0].content
        assert content == f"hello {own[copy]['secret']} {own[copy]['port']}"
        assert session.files(f"own-{copy}").own_values() == own[copy]
    # a second up (and a reset) renders the same values: nothing to change
    again = classes.up_class(session, lab, lambda _c, _e: None, copies=2)
    assert all(a.verb == "keep" for r in again.copies for a in r.result.actions
               if a.kind == "vm"), again
    # the instructor's views: roster.csv and the dashboard's state
    handout.write(session, "own", tmp_path / "out", lab=lab)
    with (tmp_path / "out" / "roster.csv").open() as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert rows["2"]["secret"] == own["2"]["secret"] and rows["1"]["port"] == str(own["1"]["port"])
    copies = {c["copy"]: c for c in board.state(session)["labs"][0]["copies"]}
    assert copies["1"]["values"] == own["1"]
    assert not (tmp_path / "out" / "1" / "README.txt").read_text().count(own["1"]["secret"])


def test_a_lab_that_is_not_a_class_has_its_own_values_too(tmp_path):
    (tmp_path / "own.yaml").write_text(LAB)
    lab = load_lab(tmp_path / "own.yaml")
    backend = FakeBackend()
    session = on_fake(tmp_path, backend)
    lab_cases.up(session, lab)
    mine = values_of(session.data_dir, lab, "")
    assert backend.made["own.node"].write_files[0].content == \
        f"hello {mine['secret']} {mine['port']}"
    assert mine["secret"] != lab.values["secret"]  # not the stand-in


def test_the_stand_ins_carry_no_secret(tmp_path):
    (tmp_path / "own.yaml").write_text(LAB)
    stand_in = load_lab(tmp_path / "own.yaml").values
    assert stand_in == load_lab(Path(tmp_path / "own.yaml")).values  # no key involved
