"""Boot once, restore many, on the real stack: a class of three copies comes
up from one template (its memory one file every copy maps, none writes), each
copy with its own identity (host key pinned and
served, hostname, machine-id, login key, its files and runcmd) and none of
the template's; a reset restores again and keeps a reset point, the next
reset returns to it (containers deployed again); a student's snapshot rolls
a VM back;
--cold boots cold and says so; down leaves nothing but the template. VMs on
a lab network restore too, each with its own MAC and address."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from labctl.lab.loader import load_lab
from labctl.plan.layout import lab_layout
from labctl.virt import mapped
from labctl.virt.connection import connect

from .conftest import LABS, assert_dashboard_sealed, dashboard_from_inside, labctl, leftovers

LAB = LABS / "restored.yaml"
COPIES = ("1", "2", "3")


def run(copy: str, *command: str) -> str:
    return labctl("exec", f"itrestore-{copy}.node", "--", *command).stdout


@pytest.fixture(scope="module")
def restored(settings):
    labctl("down", "itrestore", "--all-copies", check=False)
    up = labctl("up", str(LAB))
    yield up
    labctl("down", "itrestore", "--all-copies")
    for copy in COPIES:
        assert leftovers(f"itrestore-{copy}", settings) == {}


def test_every_copy_is_itself_and_none_is_the_template(restored, settings):
    said = restored.stderr
    assert said.count("restored from template") == 3, said
    assert "cold boot" not in said, said
    short = re.search(r"restored from template ([0-9a-f]{12})", said).group(1)
    (path,) = (settings.data_dir / "templates").glob(f"{short}*.json")
    record = json.loads(path.read_text())
    # its guest agent answered before the save (the copies got their identity
    # through it), each restore recorded what a restored VM holds (admission
    # charges it), and the base volume it was saved on is stamped
    assert record["agent"] is True
    assert 100 < record["held_mib"] < 1024
    assert record["base"].startswith("base-") and record["base_stamp"]
    template_key = subprocess.run(["ssh-keygen", "-y", "-f", "/dev/stdin"],
                                  input=record["login_private"], capture_output=True,
                                  text=True, check=True).stdout.split()[1]
    seen_keys, machine_ids = set(), set()
    for copy in COPIES:
        files = settings.data_dir / "labs" / f"itrestore-{copy}"
        pinned = (files / "hostkeys" / f"itrestore-{copy}.node.pub").read_text().split()[1]
        served = run(copy, "sudo", "-n", "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[1]
        assert served == pinned != record["host_public"].split()[1]
        seen_keys.add(served)
        machine_ids.add(run(copy, "cat", "/etc/machine-id").strip())
        assert run(copy, "hostname").strip() == "node"
        keys = run(copy, "cat", "/home/lab/.ssh/authorized_keys")
        assert template_key not in keys and len(keys.strip().splitlines()) == 1
        # the template's login is labctl's own account: its key is gone there too
        admin = run(copy, "sudo", "-n", "cat", "/var/lib/labctl/.ssh/authorized_keys")
        assert template_key not in admin and len(admin.strip().splitlines()) == 1
        mine = (files / "labctl_ed25519.pub").read_text().split()[1]
        assert mine in admin and mine not in keys  # labctl's key is not the student's
        assert run(copy, "cat", "/etc/labctl-restored") == "written by the VM's own first boot\n"
        assert run(copy, "cat", "/var/tmp/runcmd-done") == "runcmd ran\n"
        before = time.time()
        guest = float(run(copy, "date", "+%s.%N"))
        assert before - 2 <= guest <= time.time() + 2  # the host's clock, within 2 s
        # made itself in the shell the template left waiting, which then ended;
        # the script it ran (the VM's host key in it) is emptied
        assert run(copy, "sudo", "-n", "cat", "/run/labctl-identity/status") == "0\n"
        assert run(copy, "sudo", "-n", "stat", "-c", "%s",
                   "/run/labctl-identity/script").strip() == "0"
        assert run(copy, "sh", "-c", "systemctl is-active labctl-identity || :"
                   ).strip() == "inactive"
    assert len(seen_keys) == 3 and len(machine_ids) == 3
    # each copy's kernel was reseeded from labctl's randomness: no two draw alike
    draws = {run(copy, "od", "-An", "-tx1", "-N16", "/dev/urandom").strip() for copy in COPIES}
    assert len(draws) == 3


def test_every_copy_maps_the_templates_memory_and_writes_only_its_own(restored, settings):
    """The template's RAM is one file every copy maps privately, each through
    its own hard link (virt/mapped.py): what a copy writes in its memory
    reaches neither the file nor another copy."""
    short = re.search(r"restored from template ([0-9a-f]{12})", restored.stderr).group(1)
    (path,) = (settings.data_dir / "templates").glob(f"{short}*.json")
    ram = json.loads(path.read_text())["ram"]
    assert ram.endswith(".ram"), ram
    conn = connect(settings.uri)
    try:
        maps = {copy: mapped.memory_file(conn.lookupByName(f"itrestore-{copy}.node").XMLDesc(0))
                for copy in COPIES}
    finally:
        conn.close()
    template_file = Path(maps["1"][0]).with_name(ram)
    for copy, (file, shared) in maps.items():
        assert file.endswith(f"itrestore-{copy}.node.ram") and not shared, (copy, file)
        assert os.stat(file).st_ino == template_file.stat().st_ino  # a link of the one file

    def digest() -> str:
        return hashlib.sha256(template_file.read_bytes()).hexdigest()

    before = digest()
    run("1", "sh", "-c", "head -c 64M /dev/urandom > /dev/shm/mine && echo 1 > /dev/shm/mark")
    assert gone("2", "/dev/shm/mark") and gone("3", "/dev/shm/mark")
    assert digest() == before
    run("1", "rm", "/dev/shm/mine", "/dev/shm/mark")


def gone(copy: str, path: str) -> bool:
    return run(copy, "sh", "-c", f"ls {path} 2>/dev/null || echo gone").strip() == "gone"


def running_containers(copy: str) -> list[str]:
    rows = json.loads(labctl("--json", "ps", "itrestore", "--copy", copy).stdout)
    return [row["name"] for row in rows if row["state"] == "running"]


def test_reset_restores_then_returns_to_its_reset_point(restored, settings):
    run("2", "touch", "/home/lab/broken")
    reset = labctl("reset", str(LAB), "--copy", "2")
    assert "restored from template" in reset.stderr, reset.stderr
    assert "kept: its next reset returns to it" in reset.stderr, reset.stderr
    assert gone("2", "/home/lab/broken")
    assert running_containers("2") == ["sleeper"]
    pinned = (settings.data_dir / "labs" / "itrestore-2" / "hostkeys" /
              "itrestore-2.node.pub").read_text().split()[1]

    # the second reset returns to the point the first kept: no boot, no new identity
    run("2", "touch", "/home/lab/broken-again")
    labctl("snapshot", "save", "itrestore-2.node", "mine")
    again = labctl("reset", str(LAB), "--copy", "2")
    assert "returned to its reset point" in again.stderr, again.stderr
    assert "restored from template" not in again.stderr and "cold boot" not in again.stderr
    assert gone("2", "/home/lab/broken-again")
    assert running_containers("2") == ["sleeper"]  # deployed again after the revert
    served = run("2", "sudo", "-n", "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[1]
    assert served == pinned
    before = time.time()
    guest = float(run("2", "date", "+%s.%N"))
    assert before - 2 <= guest <= time.time() + 2  # the host's clock, not the point's
    assert "has no snapshots" in labctl("snapshot", "list", "itrestore-2.node").stdout


def test_a_snapshot_rolls_back(restored):

    labctl("snapshot", "save", "itrestore-1.node", "clean")
    run("1", "touch", "/home/lab/risky")
    assert "clean" in labctl("status", "itrestore-1").stdout
    labctl("snapshot", "restore", "itrestore-1.node", "clean")
    assert gone("1", "/home/lab/risky")
    assert "clean" in labctl("snapshot", "list", "itrestore-1.node").stdout
    labctl("snapshot", "rm", "itrestore-1.node", "clean")
    assert "has no snapshots" in labctl("snapshot", "list", "itrestore-1.node").stdout


def test_cold_says_so(restored):
    cold = labctl("reset", str(LAB), "--copy", "3", "--cold")
    assert "cold boot: --cold" in cold.stderr, cold.stderr
    assert run("3", "hostname").strip() == "node"


def test_templates_are_listed_and_kept_by_gc(restored):
    listed = labctl("image", "list").stdout
    assert "templates (boot once, restore many)" in listed
    garbage = labctl("gc", "--dry-run")
    assert "labctl-template-" not in garbage.stdout + garbage.stderr


def test_vms_on_a_lab_network_restore_with_their_own_macs_and_addresses(settings):
    lab = load_lab(LABS / "netrestore.yaml")
    labctl("down", lab.name, check=False)
    try:
        up = labctl("up", str(LABS / "netrestore.yaml"))
        assert up.stderr.count("restored from template") == 3, up.stderr
        plan = lab_layout(lab, {})
        subnet = ipaddress.ip_network("10.213.251.0/24")
        addresses = {}
        for vm in plan.vms:
            name = vm.vm.name
            shown = labctl("exec", f"{lab.name}.{name}", "--", "ip", "-o", "-4", "addr",
                           "show", "scope", "global").stdout.split()
            address = ipaddress.ip_interface(shown[3]).ip
            link = labctl("exec", f"{lab.name}.{name}", "--", "cat",
                          f"/sys/class/net/{shown[1]}/address").stdout.strip()
            assert link == vm.nics[0].mac  # the VM's own MAC, not the template's
            assert address in subnet
            assert labctl("exec", f"{lab.name}.{name}", "--", "hostname").stdout.strip() == name
            addresses[name] = address
        assert len(set(addresses.values())) == 3
        assert str(addresses["fixed"]) == "10.213.251.30"
        banner = labctl("exec", f"{lab.name}.peer-1", "--", "timeout", "10", "bash", "-c",
                        f"exec 3<>/dev/tcp/{addresses['peer-2']}/22 && head -c 4 <&3").stdout
        assert banner == "SSH-"  # the two restored copies reach each other
        # sudo: false -- the template's lab user had root; the restored one has none
        assert labctl("exec", f"{lab.name}.peer-1", "--", "sudo", "-n", "true").returncode == 0
        exam = labctl("exec", f"{lab.name}.fixed", "--", "sudo", "-n", "true", check=False)
        assert exam.returncode != 0
        groups = labctl("exec", f"{lab.name}.fixed", "--", "id", "-Gn").stdout.split()
        assert "labctl-admin" not in groups and "docker" not in groups, groups
        # a VM on an isolated network reaches this machine's side of it: sealed too
        assert_dashboard_sealed(dashboard_from_inside(f"{lab.name}.fixed", lab.name))
    finally:
        labctl("down", lab.name)
    assert leftovers(lab.name, settings) == {}
