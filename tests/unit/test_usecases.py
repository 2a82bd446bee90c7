"""The use cases on libvirt's test:/// driver: up, plan, down, reset, status,
class placement over two hosts, and the lab lock held by the core. No VM
boots: a FakeReach stands in for SSH (see fakes.py); libvirt's side is real
libvirt code (the test driver) behind the same Host as in production."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from labctl.errors import LabctlError, UsageError
from labctl.lab.loader import load_lab
from labctl.lock import lab_lock
from labctl.usecases import classes
from labctl.usecases import lab as lab_cases
from labctl.usecases.session import Session

from .fakes import FakeReach, driver_host, node_uri, session_on
from .fixtures import ROOT

HELLO = load_lab(ROOT / "examples" / "hello.yaml")
MULTI = load_lab(ROOT / "examples" / "multi-vm.yaml")


def verbs(actions) -> dict[tuple[str, str], str]:
    return {(a.kind, a.name): a.verb for a in actions}


def test_up_creates_then_keeps_and_down_removes_everything(tmp_path: Path):
    reach = FakeReach()
    session = session_on(tmp_path, reach)
    result = lab_cases.up(session, MULTI)
    assert result.changed and not any(vm.error for vm in result.vms)
    assert sorted(d for d in reach.waited if not d.startswith("tpl-")) == [
        "multi.db", "multi.web-1", "multi.web-2"]  # tpl-: the templates they restore
    host = session.host()
    assert {f.libvirt_name for f in host.networks("multi")} == {"multi.front", "multi.back"}
    assert all(host.is_running(f.libvirt_name) for f in host.domains("multi"))
    assert verbs(lab_cases.plan(session, MULTI)) == {
        **{("network", n): "keep" for n in ("front", "back")},
        **{("vm", v): "keep" for v in ("web-1", "web-2", "db")},
        **{("container", f"web-{i}/www"): "create" for i in (1, 2)}}  # FakeReach: no podman ps
    assert (session.files("multi").dir / "ssh_config").exists()

    again = lab_cases.up(session, MULTI)
    assert {vm.verb for vm in again.vms} == {"keep"}

    down = lab_cases.down(session, "multi")
    assert sorted(down.domains) == ["multi.db", "multi.web-1", "multi.web-2"]
    assert host.domains("multi") == [] and host.networks("multi") == []
    assert host.storage.names(prefix="multi.") == []
    assert not session.files("multi").dir.exists()


def test_a_changed_vm_is_recreated_and_the_others_kept(tmp_path: Path):
    session = session_on(tmp_path)
    lab_cases.up(session, MULTI)
    bigger = dataclasses.replace(MULTI, vms=tuple(
        dataclasses.replace(vm, memory_mib=1024) if vm.name == "db" else vm for vm in MULTI.vms))
    planned = verbs(lab_cases.plan(session, bigger))
    assert planned[("vm", "db")] == "recreate" and planned[("vm", "web-1")] == "keep"


def test_reset_recreates_only_the_named_vm(tmp_path: Path):
    events: list = []
    session = session_on(tmp_path, events=events)
    lab_cases.up(session, MULTI)
    events.clear()
    names, target = classes.reset(session, MULTI, ["db"], None, lambda _c, _e: None)
    assert names == {"db"} and target == "lab 'multi'"
    (defined,) = [e.detail for e in events if e.stage == "define"]
    assert defined.startswith("recreate multi.db")
    with pytest.raises(UsageError, match="has no VM 'nope'"):
        classes.reset(session, MULTI, ["nope"], None, lambda _c, _e: None)


def test_status_shows_state_address_and_stages(tmp_path: Path):
    session = session_on(tmp_path)
    lab_cases.up(session, HELLO)
    (row,) = lab_cases.status(session, "hello")
    assert row.state == "running" and row.endpoint.startswith("127.0.0.2:")
    assert row.stages["auth"] == 0.4 and row.uptime is not None
    session.host().remove_domain("hello.node")
    assert lab_cases.status(session, "hello") == []


def test_a_stopped_vm_is_started_not_recreated(tmp_path: Path):
    session = session_on(tmp_path)
    lab_cases.up(session, HELLO)
    session.host().conn.lookupByName("hello.node").destroy()
    assert verbs(lab_cases.plan(session, HELLO))[("vm", "node")] == "start"
    assert lab_cases.up(session, HELLO).vms[0].verb == "start"


def test_up_waits_for_the_lab_lock_and_no_wait_fails_at_once(tmp_path: Path):
    events: list = []
    session = session_on(tmp_path, events=events, lock_wait=False)
    with lab_lock(session.data_dir, "hello", "a test holding it"):
        with pytest.raises(LabctlError, match="lab 'hello' is busy"):
            lab_cases.up(session, HELLO)
        with pytest.raises(LabctlError, match="lab 'hello' is busy"):
            lab_cases.down(session, "hello")
    assert session.host().domains("hello") == []  # nothing was made while it was held

    waiting = session_on(tmp_path, events=events, lock_timeout=5.0)
    held, release = threading.Event(), threading.Event()

    def holder():
        with lab_lock(session.data_dir, "hello", "a test holding it"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    threading.Timer(0.5, release.set).start()
    lab_cases.up(waiting, HELLO)  # waits, then proceeds
    thread.join()
    assert any(e.stage == "busy" and "waiting (up to 5 s)" in e.detail for e in events)


def test_a_class_is_placed_over_two_hosts_and_recorded(tmp_path: Path):
    first, second = node_uri(tmp_path, "first"), node_uri(tmp_path, "second")
    session = session_on(tmp_path, uri=first)
    seen: list[tuple[str, str]] = []
    result = classes.up_class(session, HELLO, lambda copy, e: seen.append((copy, e.stage)),
                              copies=4, hosts=(first, second))
    assert not result.failed and sorted(result.placement) == [f"hello-{i}" for i in range(1, 5)]
    assert set(result.placement.values()) == {first, second}  # equal hosts share the class
    for lab, uri in result.placement.items():
        assert session.files(lab).placement()["uri"] == uri
        assert session.host(uri).domain(lab, "node") is not None
    assert ("*", "admitted") in seen and ("3", "ready") in seen
    assert classes.existing_copies(session, "hello").keys() == set(result.placement)

    # A copy follows its placement: plan and status reach it on its own host.
    on_second = next(lab for lab, uri in result.placement.items() if uri == second)
    copy = classes.classroom.expand(HELLO, 4, on_second.split("-")[1])[0]
    assert {a.verb for a in lab_cases.plan(session, copy) if a.kind == "vm"} == {"keep"}
    assert lab_cases.status(session, on_second)[0].state == "running"

    removed = classes.down_any(session, "hello", lambda _c, _e: None, a_class=True)
    assert len(removed) == 4
    assert session.host(first).domains() == [] and session.host(second).domains() == []


def test_copies_created_at_once_get_different_automatic_subnets(tmp_path: Path):
    """A class's copies create their networks in parallel threads: choosing a
    free subnet and defining the network are one step on a host, or two
    copies take the same subnet and the second one's dnsmasq cannot start."""
    (tmp_path / "nets.yaml").write_text(
        "name: nets\nnetworks: [{name: lan, mode: nat}]\nvms: [{name: node, networks: [lan]}]\n")
    session = session_on(tmp_path)
    result = classes.up_class(session, load_lab(tmp_path / "nets.yaml"), lambda _c, _e: None,
                              copies=4, max_parallel=4)
    assert not result.failed
    import xml.etree.ElementTree as ET
    subnets = [ET.fromstring(session.host().conn.networkLookupByName(f"nets-{i}.lan")
                             .XMLDesc(0)).find("ip").get("address") for i in range(1, 5)]
    assert len(set(subnets)) == 4, subnets


def test_a_class_that_does_not_fit_is_refused_before_anything_is_made(tmp_path: Path):
    session = session_on(tmp_path)
    huge = dataclasses.replace(HELLO, vms=tuple(dataclasses.replace(vm, memory_mib=64 * 1024)
                                                for vm in HELLO.vms))
    with pytest.raises(LabctlError, match="copies need .* GiB of RAM"):
        classes.up_class(session, huge, lambda _c, _e: None, copies=3)
    assert session.host().domains() == [] and session.host().networks() == []


def test_host_flags_for_a_single_lab_are_refused(tmp_path: Path):
    session = session_on(tmp_path)
    with pytest.raises(UsageError, match="--host places the copies of a class"):
        classes.up_any(session, HELLO, lambda _c, _e: None, hosts=("test:///default",))


def test_connect_vm_names_the_vms_a_lab_has(tmp_path: Path):
    reach = FakeReach()
    session = session_on(tmp_path, reach)
    lab_cases.up(session, HELLO)
    with pytest.raises(LabctlError, match="lab 'hello' has no VM 'web'") as info:
        session.connect_vm("hello", "web")
    assert info.value.hint == "its VMs: node"
    before = len(reach.connected)  # up itself logged in to its template and the VM
    with session.connect_vm("hello", "node") as transport:
        assert transport.run("true").ok
    assert reach.connected[before:] == ["hello.node"]


def test_a_session_opens_each_host_once(tmp_path: Path):
    opened = []

    def counting(uri):
        opened.append(uri)
        return driver_host(uri)

    uri = node_uri(tmp_path)
    session = Session(session_on(tmp_path, uri=uri).settings, open_host=counting,
                      reach=FakeReach())
    lab_cases.up(session, HELLO)
    lab_cases.status(session, "hello")
    lab_cases.down(session, "hello")
    assert opened == [uri]


def test_open_labs_boot_only_under_a_namespaced_libvirtd_in_ci(tmp_path: Path, monkeypatch):
    import dataclasses

    from labctl.usecases.session import Settings
    from labctl.virt.host import Host

    monkeypatch.setattr(Host, "daemon_in_root_netns", lambda self: True)
    monkeypatch.setenv("LABCTL_REQUIRE_NETNS", "1")  # what scripts/test and CI set
    base = session_on(tmp_path)
    required = Settings.from_env(base.settings.uri, base.settings.data_dir)
    assert required.require_netns  # the environment, read once into settings
    session = Session(dataclasses.replace(base.settings, require_netns=True),
                      open_host=lambda _u: base.host(), reach=FakeReach())
    with pytest.raises(LabctlError, match="refusing to boot the open lab 'hello'"):
        lab_cases.up(session, HELLO)
    assert session.host().domains() == []
    sealed = load_lab(ROOT / "examples" / "exam.yaml")
    assert not lab_cases.up(session, sealed).vms[0].error  # nothing can leave a sealed lab
    monkeypatch.setenv("LABCTL_REQUIRE_NETNS", "0")
    assert not Settings.from_env(base.settings.uri, base.settings.data_dir).require_netns
    lab_cases.up(base, HELLO)  # outside CI, an open lab is the user's choice


def test_a_failed_first_boot_fails_up_loudly_and_the_next_up_recreates_the_vm(tmp_path: Path):
    guest_says = "runcmd 2: make all\nmake: *** No rule to make target 'all'.  Stop.\n"
    reach = FakeReach({"labctl/failed": (1, guest_says, "")})
    session = session_on(tmp_path, reach)
    with pytest.raises(LabctlError) as info:
        lab_cases.up(session, HELLO)
    assert info.value.message == ("0 of 1 VMs ready; VM 'node': runcmd 2: make all failed: "
                                  "make: *** No rule to make target 'all'.  Stop.")
    assert "| make: *** No rule" in info.value.hint and "'labctl up' again" in info.value.hint
    assert session.host().is_running("hello.node")  # left for `up` to retry or `down`
    planned = lab_cases.plan(session, HELLO)
    assert [(a.verb, a.reason) for a in planned if a.kind == "vm"] == [
        ("recreate", "its first boot failed")]
    reach.answers.pop("labctl/failed")  # the lab file was fixed
    assert lab_cases.up(session, HELLO).vms[0].verb == "recreate"
    assert {a.verb for a in lab_cases.plan(session, HELLO) if a.kind == "vm"} == {"keep"}


def test_hosts_lists_each_host_its_room_and_labs_and_an_unreachable_one(tmp_path: Path):
    from labctl.usecases.hosts import host_rows, known_uris

    first, second = node_uri(tmp_path, "first"), node_uri(tmp_path, "second")
    session = session_on(tmp_path, uri=first)
    result = classes.up_class(session, HELLO, lambda _c, _e: None, copies=2,
                              hosts=(first, second))
    gone = f"test://{tmp_path}/no-such-node.xml"  # a host that cannot be opened
    session.files("hello-9").record_placement(gone, "hello", "9")
    uris = known_uris(session)
    assert uris[0] == first and set(uris) == {first, second, gone}
    rows = {row.uri: row for row in host_rows(session, uris)}
    for lab, uri in result.placement.items():
        assert rows[uri].reachable and lab in rows[uri].labs and lab in rows[uri].placed
        assert rows[uri].accel in ("kvm", "qemu") and rows[uri].cpus > 0
        assert rows[uri].memory_mib > 0
    assert not rows[gone].reachable and rows[gone].error and rows[gone].placed == ("hello-9",)
    # status of the class: the lost host's copy says so, the others still answer
    copies = {c.lab: c for c in classes.status_of_copies(session, "hello")}
    assert set(copies) == {"hello-1", "hello-2", "hello-9"}
    assert copies["hello-9"].host == gone and "cannot connect" in copies["hello-9"].unreachable
    assert all(not copies[lab].unreachable and copies[lab].vms[0].state == "running"
               for lab in ("hello-1", "hello-2"))


def test_a_lost_host_is_named_and_replace_lost_moves_its_copies(tmp_path: Path):
    first, second = node_uri(tmp_path, "first"), node_uri(tmp_path, "second")
    session = session_on(tmp_path, uri=first)
    placed = classes.up_class(session, HELLO, lambda _c, _e: None, copies=2,
                              hosts=(first, second)).placement
    (stranded,) = [lab for lab, uri in placed.items() if uri == second]
    Path(second.removeprefix("test://")).unlink()  # the host dies mid-class
    session._hosts.pop(second)
    with pytest.raises(LabctlError) as lost:
        classes.up_class(session, HELLO, lambda _c, _e: None, copies=2, hosts=(first, second))
    assert lost.value.message.startswith(f"host {second} of class 'hello' cannot be reached")
    assert "--replace-lost" in lost.value.hint
    events = []
    moved = classes.up_class(session, HELLO, lambda _c, e: events.append(e), copies=2,
                             hosts=(first, second), replace_lost=True)
    assert not moved.failed and set(moved.placement.values()) == {first}
    (said,) = [e for e in events if e.stage == "lost"]
    assert said.subject == f"host {second}" and stranded in said.detail
    assert session.placed_uri(stranded) == first  # recorded: later commands go there
    with pytest.raises(UsageError, match="--replace-lost moves the copies of a class"):
        classes.up_any(session, load_lab(ROOT / "examples" / "hello.yaml"),
                       lambda _c, _e: None, replace_lost=True)


def test_down_of_a_class_with_a_lost_host_removes_the_others_and_names_the_rest(
        tmp_path: Path):
    first, second = node_uri(tmp_path, "first"), node_uri(tmp_path, "second")
    session = session_on(tmp_path, uri=first)
    placed = classes.up_class(session, HELLO, lambda _c, _e: None, copies=2,
                              hosts=(first, second)).placement
    (stranded,) = [lab for lab, uri in placed.items() if uri == second]
    (kept,) = [lab for lab, uri in placed.items() if uri == first]
    Path(second.removeprefix("test://")).unlink()  # the host dies mid-class
    session._hosts.pop(second)
    with pytest.raises(LabctlError) as info:
        classes.down_class(session, "hello", lambda _c, _e: None)
    assert info.value.message.startswith(
        f"1 of 2 copies of 'hello' could not be removed ({stranded}): ")
    assert "'labctl down'" in info.value.hint
    assert kept not in session.host().lab_names()
    assert session.placed_uri(stranded) == second  # kept: a later down finds it


def test_gc_of_each_host_of_a_class_keeps_the_other_hosts_copies(tmp_path: Path):
    from labctl.usecases import gc

    first, second = node_uri(tmp_path, "first"), node_uri(tmp_path, "second")
    session = session_on(tmp_path, uri=first)
    classes.up_class(session, HELLO, lambda _c, _e: None, copies=2, hosts=(first, second))
    gone = f"test://{tmp_path}/no-such-node.xml"
    found = gc.find_on_hosts(session, [first, second, gone])
    assert found[first] == [] and found[second] == []  # each copy's keys stay
    assert isinstance(found[gone], LabctlError)


def test_a_copy_stays_on_its_host_when_reset_or_brought_up_without_hosts(tmp_path: Path):
    """A reset (or an up of one copy) names no host: the copy is found where
    it was placed, never re-created on the default host beside the old one."""
    default, elsewhere = node_uri(tmp_path, "default"), node_uri(tmp_path, "elsewhere")
    session = session_on(tmp_path, uri=default)
    quiet = lambda _c, _e: None  # noqa: E731
    classes.up_class(session, HELLO, quiet, copies=2, hosts=(elsewhere,))
    classes.reset(session, HELLO, None, "1", quiet)
    classes.up_class(session, HELLO, quiet, None, "2")
    for copy in ("hello-1", "hello-2"):
        assert session.files(copy).placement()["uri"] == elsewhere
        assert session.host(elsewhere).domain(copy, "node") is not None
    assert session.host(default).domains() == []
    (tmp_path / "one.yaml").write_text("name: one\nvms: [{name: node}]\n")
    one = load_lab(tmp_path / "one.yaml")
    lab_cases.up(session, one, uri=elsewhere)
    lab_cases.up(session, one, reset=frozenset({"node"}))  # no host named: where it lives
    assert session.host(default).domains() == []
    assert session.host(elsewhere).domain("one", "node") is not None
