"""A VM's reset point on libvirt's test:/// driver (its snapshots are real
libvirt code; nothing boots): the first reset recreates the VM and keeps
one, every later reset returns to it, with a fresh clock and randomness and
its containers deployed again; what changed, or --cold, recreates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.usecases import classes, snapshots
from labctl.usecases import lab as lab_cases
from labctl.usecases.resetpoints import RESET_POINT
from labctl.usecases.session import Session

from .fakes import FakeReach, session_on
from .fixtures import ROOT

MULTI = load_lab(ROOT / "examples" / "multi-vm.yaml")


def reset(session, lab, vms):
    return classes.reset(session, lab, vms, None, lambda _c, _e: None)


def of(events, vm: str, stage: str) -> list[str]:
    return [e.detail for e in events if e.subject == f"vm {vm}" and e.stage == stage]


def test_the_first_reset_keeps_a_point_and_later_ones_return_to_it(tmp_path: Path):
    events: list = []
    reach = FakeReach()
    session = session_on(tmp_path, reach, events)
    lab_cases.up(session, MULTI)
    assert of(events, "db", "reset-point") == []  # `up` keeps none
    events.clear()
    reset(session, MULTI, ["db"])
    assert of(events, "db", "define")[0].startswith("recreate multi.db")
    assert of(events, "db", "reset-point") == ["kept: its next reset returns to it"]
    host = session.host()
    assert [s.name for s in host.snapshots("multi.db")] == [RESET_POINT]
    assert of(events, "web-1", "reset-point") == []  # only the VM that was reset
    # labctl's own: not a student's snapshot, not in status
    assert snapshots.listed(session, "multi", "db") == {"db": []}
    assert next(r for r in lab_cases.status(session, "multi") if r.name == "db").snapshots == ()

    snapshots.save(session, "multi", "db", "mine")
    events.clear()
    reach.transports.clear()
    reset(session, MULTI, ["db"])
    plan = [e.detail for e in events if e.stage == "plan"]
    assert plan and "1 to revert" in plan[0]
    assert of(events, "db", "define") == []  # not recreated
    assert of(events, "db", "started") == ["returned to its reset point"]
    assert [s.name for s in host.snapshots("multi.db")] == [RESET_POINT]  # "mine" went
    assert host.is_running("multi.db")


def test_a_reverted_vm_gets_a_fresh_clock_and_randomness_then_its_containers(tmp_path: Path):
    ran: list[str] = []

    class Recording(FakeReach):
        def wait_ready(self, *args, **kwargs):
            transport, readiness = super().wait_ready(*args, **kwargs)
            transport.commands = ran
            return transport, readiness

    session = session_on(tmp_path, Recording())
    lab_cases.up(session, MULTI)
    reset(session, MULTI, ["web-1"])
    ran.clear()
    reset(session, MULTI, ["web-1"])
    refresh = [c for c in ran if "RNDRESEEDCRNG" in c]
    assert len(refresh) == 1 and "clock?" in refresh[0]
    assert "firstboot" not in refresh[0]  # the point is the VM's own: no new identity
    deployed = [i for i, c in enumerate(ran) if "run" in c and "web" in c]
    assert deployed and ran.index(refresh[0]) < deployed[0]


def test_a_changed_vm_or_cold_is_recreated_not_reverted(tmp_path: Path):
    events: list = []
    session = session_on(tmp_path, FakeReach(), events)
    lab_cases.up(session, MULTI)
    reset(session, MULTI, ["db"])
    bigger = dataclasses.replace(MULTI, vms=tuple(
        dataclasses.replace(vm, memory_mib=vm.memory_mib * 2) if vm.name == "db" else vm
        for vm in MULTI.vms))
    events.clear()
    reset(session, bigger, ["db"])
    assert of(events, "db", "define")[0].startswith("recreate multi.db")
    cold = Session(dataclasses.replace(session.settings, cold=True), events.append,
                   open_host=lambda _uri: session.host(), reach=FakeReach())
    events.clear()
    reset(cold, bigger, ["db"])
    assert of(events, "db", "define")[0].startswith("recreate multi.db")
    assert of(events, "db", "reset-point") == []  # --cold keeps none
    assert session.host().snapshots("multi.db") == []


def test_a_point_that_cannot_be_returned_to_recreates_the_vm(tmp_path: Path, monkeypatch):
    events: list = []
    session = session_on(tmp_path, FakeReach(), events)
    lab_cases.up(session, MULTI)
    reset(session, MULTI, ["db"])
    host = session.host()

    def broken(name, snapshot):
        raise LabctlError(f"cannot restore snapshot '{snapshot}'")

    monkeypatch.setattr(type(host), "revert_snapshot", lambda self, n, s: broken(n, s))
    events.clear()
    reset(session, MULTI, ["db"])
    assert of(events, "db", "reset-point")[0] == (
        "cannot return to it (cannot restore snapshot 'labctl-reset'): recreating the VM")
    assert of(events, "db", "define")[0].startswith("recreate multi.db")
    assert host.is_running("multi.db")


def test_a_reset_leaves_the_vms_it_does_not_name_alone(tmp_path: Path):
    reach = FakeReach()
    session = session_on(tmp_path, reach)
    lab_cases.up(session, MULTI)
    reach.waited.clear()
    result = lab_cases.up(session, MULTI, reset=frozenset({"db"}))
    assert reach.waited == ["multi.db"]  # the others were neither logged into nor redeployed
    assert {v.name: v.verb for v in result.vms if v.name != "db"} == {
        v.name: "keep" for v in MULTI.vms if v.name != "db"}


def test_a_stopped_vm_with_a_reset_point_is_returned_to_it_running(tmp_path: Path):
    events: list = []
    session = session_on(tmp_path, FakeReach(), events)
    lab_cases.up(session, MULTI)
    reset(session, MULTI, ["db"])
    session.host().conn.lookupByName("multi.db").destroy()
    events.clear()
    reset(session, MULTI, ["db"])
    assert of(events, "db", "started") == ["returned to its reset point"]
    assert session.host().is_running("multi.db")


def test_a_reset_that_dies_before_the_refresh_leaves_a_vm_the_next_up_recreates(
        tmp_path: Path):
    class DiesAfterRevert(FakeReach):
        def wait_ready(self, host, files, plan, *args, **kwargs):
            raise LabctlError(f"VM '{plan.vm.name}' is not ready (killed)")

    session = session_on(tmp_path, FakeReach())
    lab_cases.up(session, MULTI)
    reset(session, MULTI, ["db"])
    dying = Session(session.settings, lambda _e: None, open_host=lambda _uri: session.host(),
                    reach=DiesAfterRevert())
    with pytest.raises(LabctlError, match="not ready"):
        reset(dying, MULTI, ["db"])
    planned = {a.name: a.verb for a in lab_cases.plan(session, MULTI) if a.kind == "vm"}
    assert planned["db"] == "recreate"  # its clock and randomness were never refreshed
    lab_cases.up(session, MULTI)
    assert {a.verb for a in lab_cases.plan(session, MULTI) if a.kind == "vm"} == {"keep"}
