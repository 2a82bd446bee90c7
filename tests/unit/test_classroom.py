"""Copies of a lab: names, address plans moved per copy, admission control,
hand-out files -- all pure or on temporary files."""

from __future__ import annotations

import ipaddress

import pytest

from labctl.errors import LabctlError, UsageError
from labctl.lab.loader import load_lab
from labctl.labfiles import SshEntry, ssh_config_text
from labctl.plan import capacity, classroom
from labctl.plan.layout import lab_layout
from labctl.virt.connection import Accel

from .fixtures import DIGEST, ROOT

TCG, KVM = Accel("qemu", ""), Accel("kvm", "")


def lab(name="multi-vm.yaml", **overrides):
    return load_lab(ROOT / "examples" / name, overrides)


def test_copy_ids_from_count_students_or_option(tmp_path):
    path = tmp_path / "class.yaml"
    path.write_text("name: net\nstudents: [ana, bruno]\nvms:\n  - name: node\n")
    assert classroom.copy_ids(load_lab(path)) == ["ana", "bruno"]
    assert classroom.copy_ids(load_lab(path), copies=3) == ["1", "2", "3"]
    assert classroom.copy_ids(lab("hello.yaml")) == ["1"]
    assert not classroom.is_class(lab("hello.yaml"))
    assert classroom.is_class(lab("hello.yaml"), copies=1)


def test_every_name_carries_the_copy_id():
    copy = classroom.make_copy(lab(), "ana", 0)
    layout = lab_layout(copy, {"debian-12": DIGEST})
    assert (copy.name, copy.group, copy.copy) == ("multi-ana", "multi", "ana")
    assert [v.domain for v in layout.vms] == ["multi-ana.web-1", "multi-ana.web-2",
                                              "multi-ana.db"]
    assert [n.libvirt_name for n in layout.networks] == ["multi-ana.front", "multi-ana.back"]
    other = lab_layout(classroom.make_copy(lab(), "bruno", 1), {"debian-12": DIGEST})
    assert {v.vm.name: v.nics[0].mac for v in layout.vms} != \
        {v.vm.name: v.nics[0].mac for v in other.vms}


def test_address_plans_move_by_their_span_and_never_overlap():
    copies = classroom.expand(lab(), copies=4)
    plans = [[n.subnet for n in c.networks] for c in copies]
    assert [str(s) for s in plans[1]] == ["10.77.3.0/24", "10.77.4.0/24"]
    every = [s for plan in plans for s in plan]
    assert all(not a.overlaps(b) for i, a in enumerate(every) for b in every[i + 1:])
    db = [next(a.ip for a in c.vm("db").networks) for c in copies]
    assert db[1] == ipaddress.ip_address("10.77.4.10")


def test_a_copy_outside_the_private_ranges_is_refused(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("name: edge\nnetworks:\n  - name: lan\n    subnet: 192.168.255.0/24\n"
                    "vms:\n  - name: node\n    networks: [lan]\n")
    with pytest.raises(LabctlError, match="copy 2 would need network 'lan' on 192.169.0.0/24"):
        classroom.expand(load_lab(path), copies=2)


def test_unknown_copy_is_a_usage_error():
    with pytest.raises(UsageError, match="lab 'hello' has no copy 'zoe'"):
        classroom.expand(lab("hello.yaml"), copies=2, only="zoe")
    # a copy made with --copies N is found by its number without repeating N
    (third,) = classroom.expand(lab("hello.yaml"), only="3")
    assert (third.name, third.copy) == ("hello-3", "3")


def test_admission_refuses_with_numbers_and_picks_waves():
    labs = classroom.expand(lab("hello.yaml"), copies=4)
    need = capacity.needs(labs, TCG)
    per_vm = labs[0].vms[0].memory_mib + capacity.QEMU_OVERHEAD_MIB["qemu"]
    assert need.memory_mib == 4 * per_vm and need.vms == 4
    big = {"qemu:///system": capacity.HostRoom(24_000, 100_000, 2)}
    assert set(capacity.place(labs, big, {"qemu:///system": TCG}).values()) == \
        {"qemu:///system"}
    # two VMs per core under TCG (measured: 3 at once beat 2 then 1), four with KVM
    assert capacity.boots_at_once(big, {"qemu:///system": TCG}, 1, None) == 4
    assert capacity.boots_at_once(big, {"qemu:///system": KVM}, 1, None) == 8
    assert capacity.boots_at_once(big, {"qemu:///system": TCG}, 1, 3) == 3
    assert capacity.boots_at_once(big, {"qemu:///system": TCG}, 3, None) == 1
    assert capacity.boots_at_once(big, {"qemu:///system": TCG}, 5, None) == 1
    assert (capacity.vms_at_once(TCG, 2), capacity.vms_at_once(KVM, 2)) == (4, 8)
    with pytest.raises(LabctlError) as info:
        capacity.place(labs, {"h": capacity.HostRoom(2_000, 100_000, 2)}, {"h": TCG})
    assert info.value.message.startswith("4 copies need")
    assert "copies fit" in info.value.hint
    with pytest.raises(LabctlError, match="in the labctl pool"):
        capacity.place(labs, {"h": capacity.HostRoom(24_000, 500, 2)}, {"h": TCG})


def test_vms_restored_from_a_template_are_charged_what_one_was_seen_to_hold():
    """40 copies of hello (512 MiB) on a 23 GiB host: refused charged cold
    (each VM may touch all its memory), admitted charged as restored (what a
    restored VM held, 372 MiB measured, plus a quarter of its memory)."""
    labs = classroom.expand(lab("hello.yaml"), copies=40)
    host = {"h": capacity.HostRoom(23_000, 100_000, 2)}
    with pytest.raises(LabctlError) as info:
        capacity.place(labs, host, {"h": TCG})
    assert info.value.message == (
        "40 copies need 43.1 GiB of RAM (1104 MiB per copy: each VM's memory, qemu under "
        "TCG included) but the host has 20.2 GiB available (90 % of its free RAM)")
    assert "restored from a template are charged less" in info.value.hint
    charge = capacity.restored_charge(512, 372, TCG)
    assert charge == 372 + 128
    placed = capacity.place(labs, host, {"h": TCG}, {"h": {"node": charge}})
    assert len(placed) == 40
    need = capacity.needs(labs, TCG, {"node": charge})
    assert (need.memory_mib, need.restored) == (40 * 500, 40)
    # a class that does not fit even so is refused, with the restored charge named
    with pytest.raises(LabctlError, match=r"^60 copies need 29.3 GiB of RAM \(500 MiB per "
                       r"copy: 60 of 60 VMs restored from templates"):
        capacity.place(classroom.expand(lab("hello.yaml"), copies=60), host, {"h": TCG},
                       {"h": {"node": charge}})
    # never more than a cold VM: a template measured holding more is charged cold
    assert capacity.restored_charge(512, 1100, TCG) == capacity.cold_charge(512, TCG) == 1104


def test_copies_spread_over_hosts_by_room_left():
    labs = classroom.expand(lab("hello.yaml"), copies=5)
    per_copy = capacity.needs(labs[:1], TCG).memory_mib
    rooms = {"a": capacity.HostRoom(int(3.5 * per_copy / capacity.HEADROOM), 100_000, 2),
             "b": capacity.HostRoom(int(2.5 * per_copy / capacity.HEADROOM), 100_000, 2)}
    placed = capacity.place(labs, rooms, {"a": TCG, "b": TCG})
    assert sorted(placed.values()) == ["a", "a", "a", "b", "b"]
    with pytest.raises(LabctlError, match="but 2 hosts have"):
        capacity.place(classroom.expand(lab("hello.yaml"), copies=7), rooms,
                       {"a": TCG, "b": TCG})


def test_handout_config_is_relative_to_its_folder(golden):
    text = ssh_config_text([SshEntry("hello-ana.node", "127.0.0.1", 40022, "lab")],
                           "id_ed25519", "known_hosts", "# handout", jump="teacher@lab-host")
    golden(ROOT / "tests" / "data" / "golden" / "handout_ssh_config", text)


def test_class_keys_in_the_lab_file_are_checked(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: c\ncopies: 2\nstudents: [a]\nvms:\n  - name: node\n")
    with pytest.raises(LabctlError, match="set 'copies' or 'students', not both"):
        load_lab(path)
    path.write_text("name: c\nstudents: [a, a]\nvms:\n  - name: node\n")
    with pytest.raises(LabctlError, match="student 'a' is listed twice"):
        load_lab(path)


def test_every_copy_is_asked_side_by_side_per_host_and_a_lost_host_holds_up_none():
    """ps/status/check --all-copies: each host's copies at once (as many as its
    cores serve), results in the copies' order; a host that cannot be asked
    gets one worker and does not hold up the other host's copies."""
    import threading
    import time
    from types import SimpleNamespace

    from labctl.errors import LabctlError
    from labctl.plan.hosts import Accel
    from labctl.usecases import fanout

    places = {"c-1": "up", "c-2": "up", "c-3": "lost", "c-4": "up", "c-5": "lost"}

    def host(uri):
        if uri == "lost":
            raise LabctlError("host lost is unreachable")
        return SimpleNamespace(accel=Accel("qemu", "TCG"), cpus=4)

    session = SimpleNamespace(placed_uri=places.get, host=host)
    running, most, lock = {"up": 0, "lost": 0}, {"up": 0, "lost": 0}, threading.Lock()

    def work(name):
        uri = places[name]
        with lock:
            running[uri] += 1
            most[uri] = max(most[uri], running[uri])
        time.sleep(0.2)
        with lock:
            running[uri] -= 1
        return name.upper()

    assert fanout.per_copy(session, list(places), work) == ["C-1", "C-2", "C-3", "C-4", "C-5"]
    assert most == {"up": 3, "lost": 1}
