"""The use cases on a backend that is not libvirt: plan, up (cold and
restored from a template), status, reset, a class, a failure, down -- on the
in-memory FakeBackend, through the Backend protocol alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.usecases import classes
from labctl.usecases import lab as lab_cases
from labctl.usecases.session import Session, Settings

from .fake_backend import FakeBackend
from .fakes import FakeReach, fake_image
from .fixtures import ROOT

COURSE = load_lab(ROOT / "examples" / "course.yaml")
MULTI = load_lab(ROOT / "examples" / "multi-vm.yaml")


def on_fake(tmp_path: Path, backend: FakeBackend, **settings) -> Session:
    data = tmp_path / "data"
    fake_image(data)
    return Session(Settings(uri=backend.uri, data_dir=data, **settings), lambda _e: None,
                   open_host=lambda _uri: backend, reach=FakeReach())


def test_a_lab_comes_up_is_seen_and_goes_on_a_backend_that_is_not_libvirt(tmp_path):
    backend = FakeBackend()
    session = on_fake(tmp_path, backend)
    planned = lab_cases.plan(session, MULTI)
    assert {(a.verb, a.kind) for a in planned} == {("create", "vm"), ("create", "network"),
                                                   ("create", "container")}
    done = lab_cases.up(session, MULTI)
    assert not [vm.error for vm in done.vms if vm.error]
    names = sorted(f.meta.name for f in backend.domains(MULTI.name))
    assert names == sorted(vm.name for vm in MULTI.vms)
    assert all(f.active for f in backend.domains(MULTI.name))
    assert {f.meta.name for f in backend.networks(MULTI.name)} == {n.name for n in MULTI.networks
                                                                  if n.mode != "user"}
    rows = lab_cases.status(session, MULTI.name)
    assert {r.name for r in rows} == set(names) and {r.state for r in rows} == {"running"}
    again = lab_cases.up(session, MULTI)  # nothing changed: every VM kept
    assert {a.verb for a in again.actions} == {"keep"}
    gone = lab_cases.down(session, MULTI.name)  # needs no lab file: the labels say
    assert sorted(gone.domains) == sorted(f"{MULTI.name}.{n}" for n in names)
    assert backend.objects == {} and backend.storage.names(MULTI.name) == []


def test_a_restored_class_and_a_reset_on_the_fake_backend(tmp_path):
    backend = FakeBackend()
    session = on_fake(tmp_path, backend)
    hello = load_lab(ROOT / "examples" / "hello.yaml")
    classes.up_class(session, hello, lambda _c, _e: None, copies=2)
    assert sorted(backend.lab_names()) == ["hello-1", "hello-2"]
    from labctl.usecases.template_store import is_own_volume

    kept = [v for v in backend.storage.names() if is_own_volume(session.data_dir, v)]
    assert len(kept) == 1  # one template of hello's shape, built once, restored into both
    names, target = classes.reset(session, hello, ["node"], "2", lambda _c, _e: None)
    assert target == "copy '2' of 'hello'" and backend.is_running("hello-2.node")
    with pytest.raises(LabctlError, match="no copy '3'"):
        classes.reset(session, hello, ["node"], "3", lambda _c, _e: None)
    assert "hello-3" not in backend.lab_names()
    classes.down_any(session, "hello", lambda _c, _e: None, a_class=True)
    assert backend.objects == {}


def test_a_backend_failure_is_one_line_per_vm_and_up_can_be_run_again(tmp_path):
    backend = FakeBackend(refuse=frozenset({"web-2"}))
    session = on_fake(tmp_path, backend, cold=True)
    with pytest.raises(LabctlError) as failed:
        lab_cases.up(session, MULTI)
    assert "VM 'web-2': the fake cloud refuses VM 'web-2'" in failed.value.message
    assert "\n" not in failed.value.message
    backend.refuse = frozenset()
    assert not [vm.error for vm in lab_cases.up(session, MULTI).vms if vm.error]
    lab_cases.down(session, MULTI.name)
