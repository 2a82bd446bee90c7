"""A class on the real stack: 4 copies of the hello lab in one command, each
with its own keys and hand-out, reachable by plain OpenSSH with the hand-out's
config, unable to reach the other copies; a reset of one copy's VM; small disk
per copy; `down --all-copies` leaves nothing."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest

from labctl.usecases.classes import existing_copies
from labctl.usecases.session import Session
from labctl.virt.connection import connect
from labctl.virt.storage import Storage

from .conftest import ROOT, assert_dashboard_sealed, dashboard_from_inside, labctl, leftovers

HELLO = ROOT / "examples" / "hello.yaml"
COPIES = [f"hello-{n}" for n in range(1, 5)]


@pytest.fixture(scope="module")
def klass(settings, tmp_path_factory):
    labctl("down", "hello", "--all-copies")
    up = labctl("up", str(HELLO), "--copies", "4")
    handouts = tmp_path_factory.mktemp("handouts")
    labctl("handout", str(HELLO), "--out", str(handouts), "--zip")
    yield up, handouts
    labctl("down", "hello", "--all-copies")
    for name in COPIES:
        assert leftovers(name, settings) == {}
    assert existing_copies(Session(settings), "hello") == {}


def test_four_copies_in_one_command_with_a_summary(klass):
    up, _ = klass
    assert "class 'hello': 4 of 4 copies ready" in up.stdout
    assert "slowest stage:" in up.stdout
    status = labctl("status", "hello", "--all-copies")
    for name in COPIES:
        assert f"lab {name}" in status.stdout


def test_each_handout_works_with_plain_openssh(klass):
    _, handouts = klass
    for n in range(1, 5):
        folder = handouts / str(n)
        assert (folder / "id_ed25519").stat().st_mode & 0o777 == 0o600
        assert (handouts / f"{n}.zip").exists()
        result = subprocess.run(["ssh", "-F", "ssh_config", f"hello-{n}.node", "hostname"],
                                cwd=folder, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == "node", result.stderr
    with (handouts / "roster.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["ssh_alias"] for r in rows) == [f"{c}.node" for c in COPIES]


def test_a_copys_key_does_not_open_another_copy(klass):
    _, handouts = klass
    config = (handouts / "2" / "ssh_config").read_text()
    port = next(line.split()[1] for line in config.splitlines() if "Port" in line)
    host = next(line.split()[1] for line in config.splitlines() if "HostName" in line)
    result = subprocess.run(
        ["ssh", "-i", "id_ed25519", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-p", port, f"lab@{host}", "true"],
        cwd=handouts / "1", capture_output=True, text=True, timeout=60)
    assert result.returncode == 255 and "Permission denied" in result.stderr


def test_copies_cannot_reach_each_other(klass, settings):
    _, handouts = klass
    config = (handouts / "2" / "ssh_config").read_text()
    port = next(line.split()[1] for line in config.splitlines() if "Port" in line)
    one = Session(settings).connect_vm("hello-1", "node")
    try:  # 10.0.2.2 is the host's 127.0.0.1 as qemu's user network shows it; forwards
        # listen on 127.0.0.2, out of an open guest's reach
        assert one.run("timeout 5 bash -c '</dev/tcp/127.0.0.1/22'", timeout=30).ok  # control
        assert not one.run(f"timeout 5 bash -c '</dev/tcp/10.0.2.2/{port}'", timeout=30).ok
    finally:
        one.close()


def test_disk_per_copy_stays_small(klass, settings):
    storage = Storage(connect(settings.uri))
    for name in COPIES:
        used = sum(storage.pool.storageVolLookupByName(v).info()[2]
                   for v in storage.names(prefix=f"{name}."))
        assert used < 400 << 20, f"{name} uses {used >> 20} MiB"


def test_reset_returns_one_copys_vm_to_its_post_up_state(klass, settings):
    for name in ("hello-1", "hello-2"):
        vm = Session(settings).connect_vm(name, "node")
        try:
            vm.run("touch ~/broken").check("marking")
        finally:
            vm.close()
    result = labctl("--json", "reset", str(HELLO), "--copy", "2")
    assert json.loads(result.stdout)["seconds"] > 0
    session = Session(settings)
    two, one = session.connect_vm("hello-2", "node"), session.connect_vm("hello-1", "node")
    try:
        assert not two.run("test -e ~/broken").ok  # a fresh overlay
        assert one.run("test -e ~/broken").ok  # the other copies are untouched
    finally:
        two.close()
        one.close()


def test_the_dashboard_is_sealed_from_a_user_mode_vm(klass):
    """qemu's user-mode network maps the guest's 10.0.2.2 to this machine's
    127.0.0.1, where the dashboard listens: every endpoint asks for a token."""
    lines = dashboard_from_inside("hello-3.node", "hello")
    assert any("@10.0.2.2 HTTP" in line for line in lines), lines  # reached, and refused
    assert_dashboard_sealed(lines)
