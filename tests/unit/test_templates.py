"""Boot once, restore many, on libvirt's test:/// driver (its snapshots are
real libvirt code; nothing boots): the first VM of a shape builds a template,
every later one restores it and gets its own identity over the template's
login; what cannot be restored boots cold and says why; a restore that fails
falls back to a cold boot."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest
import yaml

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.plan.layout import lab_layout
from labctl.plan.templates import template_key
from labctl.usecases import lab as lab_cases
from labctl.usecases.templates import TemplateStore

from .fakes import DriverHost, FakeReach, session_on
from .fixtures import ROOT

HELLO = load_lab(ROOT / "examples" / "hello.yaml")
MULTI = load_lab(ROOT / "examples" / "multi-vm.yaml")


def stages(events, subject: str) -> list[str]:
    return [e.stage for e in events if e.subject == subject]


def test_a_template_is_built_once_and_restored_with_the_vms_identity(tmp_path: Path):
    events: list = []
    reach = FakeReach()
    session = session_on(tmp_path, reach, events)
    lab_cases.up(session, HELLO)
    (template,) = TemplateStore(session.data_dir).all()
    assert [e.stage for e in events if e.subject.startswith("template")] == [
        "build", "started", "boot-finished"]
    assert any(e.stage == "started" and e.detail.startswith("restored from template")
               for e in events if e.subject == "vm node")
    assert "cold" not in stages(events, "vm node")
    assert session.host().storage.exists(template.volume)
    assert session.host().domains("tpl-" + template.short) == []  # the template VM is gone
    # the template VM was readied (its own readiness, no nested up) before its save,
    # and the restored VM was given its identity through the template's own login
    assert f"tpl-{template.short}.template" in reach.waited
    assert "hello.node" in reach.connected
    # a second lab of the same shape restores the same template: no second build
    events.clear()
    other = dataclasses.replace(HELLO, name="hello2")
    lab_cases.up(session, other)
    assert [e for e in events if e.subject.startswith("template")] == []
    assert [e.detail for e in events if e.subject == "vm node" and e.stage == "started"] == [
        f"restored from template {template.short}"]
    assert len(TemplateStore(session.data_dir).all()) == 1
    from labctl.usecases.templates import first_vm_key
    assert first_vm_key(session, HELLO) == template.key  # the benchmarks' "this shape"


def test_a_template_with_a_guest_agent_gives_identity_through_it_without_a_login(
        tmp_path: Path):
    """The agent answered before the save: the restored VM is made itself
    through it (its own seed script, its clock moved by the agent's measured
    offset), with no login as the template; readiness then logs in with the
    VM's own key as after any restore."""
    DriverHost.agent_runs = runs = []
    try:
        reach = FakeReach()
        session = session_on(tmp_path, reach)
        lab_cases.up(session, HELLO)
        (template,) = TemplateStore(session.data_dir).all()
        assert template.agent
        (domain, script), = [r for r in runs if r[0] == "hello.node"]
        assert "hello.node" not in reach.connected  # no login as the template
        assert "hello.node" in reach.waited  # the VM's own readiness
        assert "hostname=node" in script and "instance-id" in script
        assert "t=$(( ${EPOCHREALTIME/./} + 30000000 ))" in script  # FakeAgent: 30 s behind
        assert "clock?" not in script  # no dialogue: the agent measured the offset
        assert "perl -e" in script  # reseeded by a perl of its own
    finally:
        DriverHost.agent_runs = None


def test_a_template_with_a_waiting_shell_is_handed_the_identity_script(tmp_path: Path):
    """A template built with its waiting shell: the restored VM's identity
    script goes to that shell (its perl moves the clock and reseeds, no
    process started); journald restarts once the VM is ready."""
    runs: list[tuple[str, str]] = []
    DriverHost.agent_runs, DriverHost.agent_waiting = runs, True
    try:
        session = session_on(tmp_path, FakeReach())
        lab_cases.up(session, HELLO)
        (domain, script), = [r for r in runs if r[0] == "hello.node"]
        assert script.startswith("# handed to /run/labctl-identity\nset -eu\n"
                                 "shift_clock 30000000\nreseed ")
        assert "perl" not in script and "date -u -s" not in script
        assert "hostname=node" in script and "instance-id" in script
        assert 'later="systemctl restart systemd-journald"' in script
    finally:
        DriverHost.agent_runs, DriverHost.agent_waiting = None, False


def test_a_restored_vms_footprint_is_kept_and_charged_to_the_next_class(tmp_path: Path):
    from labctl.plan.capacity import restored_charge
    from labctl.usecases import classes
    from labctl.usecases.templates import restored_charges

    DriverHost.resident = 372
    try:
        session = session_on(tmp_path)
        assert restored_charges(session, session.host(), HELLO) == {}  # no template yet
        lab_cases.up(session, HELLO)
        (template,) = TemplateStore(session.data_dir).all()
        assert template.held_mib == 372
        DriverHost.resident = 300  # the most seen is kept
        lab_cases.up(session, dataclasses.replace(HELLO, name="hello2"))
        assert TemplateStore(session.data_dir).get(template.key).held_mib == 372
        charge = restored_charge(512, 372, session.host().accel)
        assert restored_charges(session, session.host(), HELLO) == {"node": charge}
        cold = session_on(tmp_path, cold=True)
        assert restored_charges(cold, cold.host(), HELLO) == {}
        said = []
        classes.up_class(session, HELLO, lambda _copy, event: said.append(event), copies=2)
        (admitted,) = [e.detail for e in said if e.stage == "admitted"]
        assert f"{2 * charge} MiB RAM, 2 VM(s) charged as restored" in admitted
    finally:
        DriverHost.resident = None


def test_a_template_whose_base_volume_changed_is_refused_and_built_again(tmp_path: Path):
    events: list = []
    session = session_on(tmp_path, FakeReach(), events)
    lab_cases.up(session, HELLO)
    store = TemplateStore(session.data_dir)
    (template,) = store.all()
    assert template.base.startswith("base-debian-12-")
    assert template.base_stamp == session.host().storage.stamp(template.base)
    # the base volume's file was rewritten since the template was saved on it
    store.put(dataclasses.replace(template, base_stamp="1 2 3"))
    events.clear()
    lab_cases.up(session, dataclasses.replace(HELLO, name="hello2"))
    (stale,) = [e for e in events if e.stage == "stale"]
    assert f"its base volume {template.base} changed" in stale.detail
    assert [e.stage for e in events if e.subject.startswith("template")] == [
        "stale", "build", "started", "boot-finished"]
    (rebuilt,) = store.all()
    assert rebuilt.base_stamp == session.host().storage.stamp(rebuilt.base)
    assert any(e.detail.startswith("restored from template") for e in events
               if e.subject == "vm node" and e.stage == "started")


def test_the_templates_of_an_image_rebuilt_since_go_when_its_new_template_is_built(
        tmp_path: Path):
    from .fakes import fake_image
    events: list = []
    session = session_on(tmp_path, FakeReach(), events)
    lab_cases.up(session, HELLO)
    store = TemplateStore(session.data_dir)
    (old,) = store.all()
    fake_image(session.data_dir, sha256="cd" * 32)  # debian-12 rebuilt: another digest
    session = session_on(tmp_path, FakeReach(), events)
    events.clear()
    lab_cases.up(session, dataclasses.replace(HELLO, name="hello2"))
    (new,) = store.all()
    assert new.image_sha256 == "cd" * 32 and new.key != old.key
    assert not session.host().storage.exists(old.volume)
    assert [e.detail for e in events if e.stage == "removed"] == [
        "'debian-12' was rebuilt since it was made"]


def test_vms_on_lab_networks_restore_with_their_nics_plugged_afresh(tmp_path: Path):
    DriverHost.replugged.clear()
    events: list = []
    session = session_on(tmp_path, FakeReach(), events)
    lab_cases.up(session, MULTI)
    assert [e for e in events if e.stage == "cold"] == []
    # web VMs (two bridged NICs) and the db (one) are not the same shape
    builds = [e for e in events if e.subject.startswith("template") and e.stage == "build"]
    assert len(builds) == 2 == len(TemplateStore(session.data_dir).all())
    assert sorted(DriverHost.replugged) == ["multi.db", "multi.web-1", "multi.web-2"]
    # a template VM has NICs of the same kinds, on isolated networks of its own
    networks = [n for n in session.host().conn.listAllNetworks(0)
                if n.name().startswith("tpl-")]
    assert networks == []  # gone with the template VM


def test_the_shape_holds_a_user_nic_subnet_but_not_which_lab_network():
    plan = lab_layout(HELLO, {}).vms[0]
    other = dataclasses.replace(plan, nics=(dataclasses.replace(plan.nics[0],
                                                                subnet="10.9.0.0/24"),))
    key = template_key(plan, "sha", "qemu", "9.0.0", "7.2.0")
    assert template_key(other, "sha", "qemu", "9.0.0", "7.2.0") != key
    bridged = dataclasses.replace(plan, nics=(dataclasses.replace(
        plan.nics[0], mode="nat", libvirt_network="x.lan"),))
    isolated = dataclasses.replace(plan, nics=(dataclasses.replace(
        plan.nics[0], mode="isolated", libvirt_network="x.back"),))
    assert template_key(bridged, "sha", "qemu", "9.0.0", "7.2.0") == \
        template_key(isolated, "sha", "qemu", "9.0.0", "7.2.0") != key


def test_an_open_user_nic_never_restores_a_sealed_template(tmp_path: Path):
    """qemu's sealed DHCP gives no route and no resolver, and the guest keeps
    the lease it had in the template: an open VM restored from a sealed
    template reached nothing (CI caught it in test_internet)."""
    plan = lab_layout(HELLO, {}).vms[0]
    sealed = dataclasses.replace(plan, nics=(dataclasses.replace(plan.nics[0], sealed=True),))
    assert template_key(plan, "s", "qemu", "9", "7") != template_key(sealed, "s", "qemu", "9", "7")
    session = session_on(tmp_path, FakeReach())
    lab_cases.up(session, HELLO)
    (template,) = TemplateStore(session.data_dir).all()
    lab = yaml.safe_load((TemplateStore(session.data_dir).dir / template.key /
                          "template.yaml").read_text())
    assert [n.get("internet") for n in lab["networks"]] == [True]


def test_a_docker_vm_restores_a_template_whose_dockerd_already_runs(tmp_path: Path):
    course = load_lab(ROOT / "examples" / "course.yaml")  # runtime docker, containers
    reach = FakeReach()
    session = session_on(tmp_path, reach)
    lab_cases.up(session, course)
    started = [c for t in reach.transports for c in t.commands if "systemctl start" in c]
    assert started == ["sudo -n systemctl start docker.service"]  # in the template, once
    podman = dataclasses.replace(course, vms=tuple(
        dataclasses.replace(vm, runtime="podman") for vm in course.vms), name="coursep")
    plans = [lab_layout(lab, {}).vms[0] for lab in (course, podman)]
    assert template_key(plans[0], "s", "qemu", "9", "7") != \
        template_key(plans[1], "s", "qemu", "9", "7")  # no dockerd in a podman VM's template


def test_cold_says_why(tmp_path: Path):
    events: list = []
    cold = session_on(tmp_path, FakeReach(), events, cold=True)
    lab_cases.up(cold, HELLO)
    assert [e.detail for e in events if e.stage == "cold"] == ["cold boot: --cold"]


def test_a_restore_that_fails_falls_back_to_a_cold_boot(tmp_path: Path):
    class NoTemplateLogin(FakeReach):
        def login_as(self, *args, **kwargs):
            raise LabctlError("VM 'node' (restored): connection refused")

    events: list = []
    session = session_on(tmp_path, NoTemplateLogin(), events, budgets={"restore": 0.2})
    result = lab_cases.up(session, HELLO)
    assert not any(vm.error for vm in result.vms)
    (cold,) = [e.detail for e in events if e.stage == "cold" and e.subject == "vm node"]
    assert cold.startswith("cold boot: the template could not be used")


def test_a_template_that_is_not_what_its_record_says_is_removed(tmp_path: Path):
    from labctl.ssh.transport import HostKeyMismatch

    class OtherTemplate(FakeReach):  # the volume holds another build's keys
        def login_as(self, *args, **kwargs):
            raise HostKeyMismatch("VM 'node' (restored): host key does not match")

    events: list = []
    session = session_on(tmp_path, OtherTemplate(), events)
    result = lab_cases.up(session, HELLO)
    assert not any(vm.error for vm in result.vms)
    (cold,) = [e.detail for e in events if e.stage == "cold" and e.subject == "vm node"]
    assert "did not match its record (removed" in cold
    assert TemplateStore(session.data_dir).all() == []  # the next up builds a new one


def test_a_killed_build_leaves_nothing_that_is_restored(tmp_path: Path):
    """No record, no restore: a volume without its record is rebuilt over."""
    session = session_on(tmp_path, FakeReach())
    lab_cases.up(session, HELLO)
    store = TemplateStore(session.data_dir)
    (template,) = store.all()
    store.remove(template.key)  # as if the build was killed before its record
    events: list = []
    again = session_on(tmp_path, FakeReach(), events)
    lab_cases.up(again, dataclasses.replace(HELLO, name="hello3"))
    assert [e.stage for e in events if e.subject.startswith("template")] == [
        "build", "started", "boot-finished"]


def test_a_restore_killed_before_the_identity_is_recreated_by_the_next_up(tmp_path: Path):
    from labctl.usecases.templates import restoring

    session = session_on(tmp_path, FakeReach())
    lab_cases.up(session, HELLO)
    mark = restoring(session.files("hello").dir, "hello.node")
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()  # what a kill between the restore and the identity leaves
    verbs = {a.name: a.verb for a in lab_cases.plan(session, HELLO) if a.kind == "vm"}
    assert verbs == {"node": "recreate"}
    lab_cases.up(session, HELLO)
    assert not mark.exists()
    assert {a.verb for a in lab_cases.plan(session, HELLO) if a.kind == "vm"} == {"keep"}


def test_students_snapshots_save_list_restore_remove(tmp_path: Path):
    import pytest

    from labctl.errors import UsageError
    from labctl.usecases import snapshots

    session = session_on(tmp_path, FakeReach())
    lab_cases.up(session, HELLO)
    snapshots.save(session, "hello", "node", "before-nginx", "clean")
    with pytest.raises(UsageError, match="already has a snapshot"):
        snapshots.save(session, "hello", "node", "before-nginx")
    with pytest.raises(UsageError, match="is not a snapshot name"):
        snapshots.save(session, "hello", "node", "labctl-template")
    assert [s.name for s in snapshots.listed(session, "hello")["node"]] == ["before-nginx"]
    assert lab_cases.status(session, "hello")[0].snapshots == ("before-nginx",)
    snapshots.restore(session, "hello", "node", "before-nginx")
    with pytest.raises(LabctlError, match="has no snapshot 'other'"):
        snapshots.restore(session, "hello", "node", "other")
    snapshots.remove(session, "hello", "node", "before-nginx")
    assert snapshots.listed(session, "hello") == {"node": []}
    lab_cases.down(session, "hello")  # a VM with snapshots goes too
    assert session.host().domains("hello") == []


def test_a_restored_clock_is_shifted_by_what_one_round_trip_measures():
    from labctl.usecases.identity import ClockTalk

    host = [1000.0]
    guest = {"offset": -3600.0}  # the template's clock: an hour behind
    talk = ClockTalk(clock=lambda: host[0])
    said = []
    for _ in range(6):  # the guest's side of the dialogue, 40 ms each way
        assert talk("clock?") == "now"
        host[0] += 0.04
        reading = host[0] + guest["offset"]
        host[0] += 0.04
        reply = talk(f"clock {reading:.6f}")
        said.append(reply.split()[0])
        if reply == "ok":
            break
        guest["offset"] += int(reply.split()[1]) / 1e6
        host[0] += 0.5  # `date -s` under load: the shift is relative, so it does not count
    assert said == ["shift", "ok"] and abs(guest["offset"]) < 0.01
    assert talk("clock not-a-number") == "ok"  # never a shift it cannot tell
    assert talk("some other output") is None


def test_the_guest_side_of_the_clock_dialogue_shifts_its_clock_by_what_labctl_says(
        tmp_path: Path):
    """The script's own clock loop, in the real bash, with `date -s` recorded."""
    import subprocess
    import time

    from labctl.usecases.identity import CLOCK_DIALOGUE

    (tmp_path / "date").write_text(f'#!/bin/sh\necho "$3" >> {tmp_path}/set\n')
    (tmp_path / "date").chmod(0o755)
    guest = subprocess.Popen(["bash", "-c", CLOCK_DIALOGUE], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    answers = iter(["now", "shift -2500000", "now", "ok"])
    for line in guest.stdout:
        if line.startswith("clock"):
            guest.stdin.write(next(answers) + "\n")
            guest.stdin.flush()
        if line.startswith("clock "):
            said = float(line.split()[1])
    assert guest.wait(timeout=10) == 0
    (shifted,) = (tmp_path / "set").read_text().split()
    assert shifted.startswith("@")
    assert abs(float(shifted[1:]) - (time.time() - 2.5)) < 1.0
    assert abs(said - time.time()) < 1.0


def test_the_identity_script_restarts_the_readiness_unit_only_when_it_has_work(
        tmp_path: Path):
    """The script in the real bash, its commands shims that log: the VM's own
    seed script runs inline, its instance and extras are recorded, the unit
    runs again for a VM's extras or NICs plugged afresh, never for nothing,
    and journald restarts in the background unless the VM runs containers."""
    import subprocess

    from labctl.usecases.identity import IDENTITY, identity_values

    logged = tmp_path / "log"
    for name in ("perl", "sync", "tr", "systemctl", "rm", "firstboot"):
        (tmp_path / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {logged}\n')
        (tmp_path / name).chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    seed = {"meta-data": "instance-id: lab.vm-0123\n",
            "labctl-firstboot.sh": "firstboot 'it ran'\n"}

    def restarts(replugged: bool, extras: str | None = None, containers: bool = False) -> bool:
        logged.write_text("")
        (state / "extras.sh").unlink(missing_ok=True)
        files = {**seed, **({"labctl-extras.sh": extras} if extras else {})}
        script = IDENTITY.format(seed="00", **identity_values(files, replugged, containers))
        script = script.replace("/var/lib/labctl/", f"{state}/").replace("> /etc/machine-id", "")
        done = subprocess.run(["bash", "-euc", script], check=True, capture_output=True,
                              text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
        said = logged.read_text()
        assert "firstboot it ran" in said
        # the new machine-id (here on stdout): 32 hex digits, a fresh one each time
        assert re.search(r"^[0-9a-f]{32}$", done.stdout, re.M)
        assert (state / "instance-id").read_text() == "lab.vm-0123\n"
        assert ("restart systemd-journald" in said) == containers
        assert ("restart --no-block systemd-journald" in said) != containers
        if extras:
            assert (state / "extras.sh").read_text() == extras
        return "restart --no-block labctl-ready.service" in said

    assert not restarts(False)
    assert restarts(True)
    assert restarts(False, extras="apt-get install -y 'nginx'\n")
    assert not restarts(False, containers=True)


def test_a_seed_without_its_first_boot_script_is_refused_before_the_guest_runs_anything():
    from labctl.usecases.identity import identity_values
    with pytest.raises(LabctlError, match="no first-boot script or instance-id"):
        identity_values({"meta-data": "instance-id: x\n"}, False, False)


def test_the_agents_clock_shift_moves_the_guests_clock_relative_to_its_own():
    import subprocess

    from labctl.usecases.identity import clock_shift
    assert clock_shift(0.1) == "set -eu\n"  # within the slack: left alone
    script = clock_shift(-12.5).replace("date -u -s", "echo").replace(" >/dev/null", "")
    now = time.time()
    said = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert abs(float(said.lstrip("@")) - (now - 12.5)) < 1.0


def test_each_host_keeps_its_own_templates_and_a_host_that_cannot_boots_cold(
        tmp_path: Path, monkeypatch):
    """A template lives on the host it was built on (another host's is another
    key and record); a host that says it cannot restore one (a remote host
    whose shell labctl cannot reach) boots cold and says why."""
    from labctl.usecases.templates import key_for

    for where in ("here", "there"):
        (tmp_path / where).mkdir()
    local = session_on(tmp_path / "here", FakeReach())
    lab_cases.up(local, HELLO)
    (here,) = TemplateStore(local.data_dir).all()
    assert here.host == ""
    monkeypatch.setattr(DriverHost, "template_home", property(lambda self: "qemu+ssh://h/system"))
    events: list = []
    session = session_on(tmp_path / "there", FakeReach(), events)
    lab_cases.up(session, HELLO)
    (there,) = TemplateStore(session.data_dir).all()
    assert there.host == "qemu+ssh://h/system" and there.key != here.key
    image = session.settings.images.get("debian-12")
    plan = lab_layout(HELLO, {image.name: image.sha256}).vms[0]
    assert key_for(session.host(), image, plan) == there.key
    assert any(e.detail == f"restored from template {there.short}" for e in events)
    monkeypatch.setattr(DriverHost, "templates_refused",
                        lambda self: "a template on another host is copied by its shell (no)")
    events.clear()
    lab_cases.up(session, dataclasses.replace(HELLO, name="hello2"))
    assert [e.detail for e in events if e.subject == "vm node" and e.stage == "cold"] == [
        "cold boot: a template on another host is copied by its shell (no)"]


def test_cold_reason_and_the_key_of_a_template_on_another_host():
    from labctl.plan.templates import cold_reason

    assert cold_reason(False, None).startswith("a disk-booted (cloud) image")
    assert cold_reason(True, "the host says no") == "the host says no"
    assert cold_reason(True, None) is None
    plan = lab_layout(HELLO, {"debian-12": "sha"}).vms[0]
    here = template_key(plan, "s", "qemu", "9", "7")
    assert template_key(plan, "s", "qemu", "9", "7", home="") == here  # as before: kept
    there = template_key(plan, "s", "qemu", "9", "7", home="qemu+ssh://a/system")
    assert there != here != template_key(plan, "s", "qemu", "9", "7",
                                         home="qemu+ssh://b/system")


def test_a_template_whose_build_failed_is_not_built_again_by_every_copy(
        tmp_path: Path, monkeypatch):
    """The class's first copy boots cold saying why its template failed; the
    others boot cold at once instead of each booting a template again."""
    from labctl.usecases import classes
    from labctl.usecases import templates as templates_cases

    builds: list[str] = []

    def failing_build(session, host, image, plan, key, store):
        builds.append(key)
        raise LabctlError("cannot copy volume tpl on its host: cp: Permission denied")

    monkeypatch.setattr(templates_cases, "_build", failing_build)
    monkeypatch.setattr(templates_cases, "_failed", {})
    said: list = []
    session = session_on(tmp_path, FakeReach())
    classes.up_class(session, HELLO, lambda _copy, event: said.append(event), copies=3)
    assert len(builds) == 1
    colds = [e.detail for e in said if e.stage == "cold"]
    assert len(colds) == 3
    assert colds.count("cold boot: the template could not be used (cannot copy volume tpl "
                       "on its host: cp: Permission denied)") == 1
    assert colds.count("cold boot: the template could not be used (its build failed a "
                       "moment ago: cannot copy volume tpl on its host: cp: Permission "
                       "denied)") == 2
    monkeypatch.setattr(templates_cases, "FAILED_BUILD_MEMORY", 0.0)  # later: tried again
    lab_cases.up(session, dataclasses.replace(HELLO, name="hello9"))
    assert len(builds) == 2


def test_a_template_whose_memory_is_a_file_restores_each_vm_with_its_own_link(
        tmp_path: Path, monkeypatch):
    """Where the host lets qemu open it, a template VM's RAM is a file of the
    pool (virt/mapped.py): the record names it, each restore maps it, and it
    goes with its template; gc knows it as the template's, and a file left
    by a killed build as garbage."""
    from labctl.usecases import gc
    from labctl.usecases.template_store import ram_volume_name
    from labctl.usecases.templates import remove_template

    monkeypatch.setattr(DriverHost, "maps_memory", True)
    monkeypatch.setattr(DriverHost, "restored_with", [])
    session = session_on(tmp_path, FakeReach())
    lab_cases.up(session, HELLO)
    (template,) = TemplateStore(session.data_dir).all()
    storage = session.host().storage
    assert template.ram == ram_volume_name(template.volume) and storage.exists(template.ram)
    assert DriverHost.restored_with == [("hello.node", template.ram)]
    found = gc.find(session)
    assert [g for g in found if template.ram in g.name] == []
    remove_template(session, session.host(), template.key)
    assert not storage.exists(template.ram) and not storage.exists(template.volume)
    storage.create_ram(ram_volume_name(template.volume), 1 << 20, 0, 0)  # a killed build's
    found = gc.find(session)
    assert [g.name for g in found if g.kind == "volume"] == [ram_volume_name(template.volume)]


def test_a_template_on_a_host_that_refuses_a_memory_file_keeps_memory_in_its_snapshot(
        tmp_path: Path, monkeypatch):
    monkeypatch.setattr(DriverHost, "restored_with", [])
    session = session_on(tmp_path, FakeReach())
    lab_cases.up(session, HELLO)
    (template,) = TemplateStore(session.data_dir).all()
    assert template.ram == "" and DriverHost.restored_with == [("hello.node", "")]
    assert not session.host().storage.exists(template.volume.removesuffix(".qcow2") + ".ram")
