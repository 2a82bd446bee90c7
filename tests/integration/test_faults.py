"""Faults of the real stack, each ending in one clear line within its budget,
with the lab left in a state that `up` finishes or `down` removes:
libvirtd stopped mid-run, a guest powered off during deploy, a full data
dir, a VM that never boots (garbage kernel), an sshd that never answers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.usecases.lab import down, plan, up
from labctl.usecases.session import Session
from labctl.virt.connection import connect

from .conftest import LABS, ROOT, Running, error_lines, labctl, leftovers

FAULT = LABS / "fault.yaml"
LIBVIRTD_PID = "/run/labctl-netns/libvirtd.pid"


def converged(lab_file, settings) -> bool:
    return all(a.verb == "keep" for a in plan(Session(settings), load_lab(lab_file)))


@pytest.fixture(scope="module")
def fault_lab(settings):
    down(Session(settings), "itfault")
    yield load_lab(FAULT)
    down(Session(settings), "itfault")
    assert leftovers("itfault", settings) == {}


def test_libvirtd_stopped_mid_run(fault_lab, settings):
    run = Running("up", str(FAULT), "--cold")  # libvirtd goes while the VM boots
    assert run.wait_for("started", 300), run.lines
    with open(LIBVIRTD_PID) as fh:
        daemon = int(fh.read())
    os.kill(daemon, signal.SIGTERM)
    try:
        began = time.monotonic()
        code, _, stderr = run.finish(timeout=120)
        assert time.monotonic() - began < 60
        assert code == 1, stderr
        lines = error_lines(stderr)
        assert "libvirt" in lines[0] and lines[1].startswith("  hint:"), stderr
        assert "Traceback" not in stderr
    finally:
        for _ in range(300):  # it finishes its shutdown first
            if not os.path.exists(f"/proc/{daemon}"):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"libvirtd (pid {daemon}) did not stop within 30 s")
        subprocess.run([str(ROOT / "scripts" / "libvirtd-netns"), "start"], check=True)
    # The VM kept running under qemu; libvirtd found it again: up finishes the lab.
    labctl("up", str(FAULT))
    assert converged(FAULT, settings)


def test_guest_powered_off_during_deploy(fault_lab, settings):
    """The plug pulled seconds after a restored VM took its own identity
    (ext4 keeps new files in the page cache for up to 30 s): the next up
    starts it again and logs in with the key it pinned."""
    down(Session(settings), "itfault")
    conn = connect(settings.uri)

    def pull_the_plug(event):
        if event.stage == "boot-finished":  # deployment starts right after
            conn.lookupByName("itfault.node").destroy()

    with pytest.raises(LabctlError) as info:
        up(Session(settings, pull_the_plug), fault_lab)
    assert info.value.message.startswith("0 of 1 VMs ready; VM 'node'"), info.value.message
    assert "\n" not in info.value.message
    assert "'labctl up' again resumes" in info.value.hint
    labctl("up", str(FAULT))
    assert converged(FAULT, settings)


def test_full_data_dir(settings, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(data)], check=True)
    try:
        (data / "images").symlink_to(settings.data_dir / "images")
        subprocess.run(["dd", "if=/dev/zero", f"of={data / 'filler'}", "bs=4k"],
                       capture_output=True)  # until the disk is full
        env = {**os.environ, "LABCTL_DATA_DIR": str(data)}
        lab = str(LABS / "diskfull.yaml")
        # --cold: a template built in this throwaway data dir would outlive it
        result = subprocess.run([*labctl_argv(), "up", lab, "--cold"], capture_output=True,
                                text=True, env=env, timeout=300)
        assert result.returncode == 1, result.stderr
        lines = error_lines(result.stderr)
        assert len(lines) == 2 and "no space left on device" in lines[0].lower(), result.stderr
        assert "free space" in lines[1]
        assert leftovers("itdiskfull", settings) == {}
        (data / "filler").unlink()
        for step in (["up", lab, "--cold"], ["down", "itdiskfull"]):
            done = subprocess.run([*labctl_argv(), *step], capture_output=True, text=True,
                                  env=env, timeout=600)
            assert done.returncode == 0, done.stderr
        assert leftovers("itdiskfull", dataclasses.replace(settings, data_dir=data)) == {}
    finally:
        subprocess.run(["umount", str(data)], check=False)


def labctl_argv() -> list[str]:
    return [sys.executable, "-m", "labctl"]


@pytest.fixture()
def garbage_kernel_image(settings):
    """A copy of the test image with a kernel of random bytes and a tiny disk."""
    images = settings.data_dir / "images"
    real, dud = images / "debian-12", images / "itbadkernel"
    shutil.rmtree(dud, ignore_errors=True)
    dud.mkdir()
    manifest = json.loads((real / "manifest.json").read_text())
    manifest.update(name="itbadkernel", sha256="0badc0de" * 8)
    (dud / "manifest.json").write_text(json.dumps(manifest))
    (dud / "vmlinuz").write_bytes(os.urandom(1 << 20))
    shutil.copy(real / "initrd.img", dud / "initrd.img")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(dud / "disk.qcow2"), "1G"],
                   check=True)
    yield
    shutil.rmtree(dud)
    conn = connect(settings.uri)
    pool = conn.storagePoolLookupByName("labctl")
    for name in pool.listVolumes():
        if name.startswith("base-itbadkernel-"):
            pool.storageVolLookupByName(name).delete(0)


def test_vm_that_never_boots(garbage_kernel_image, settings):
    began = time.monotonic()
    result = labctl("up", str(LABS / "badkernel.yaml"), "--total-timeout", "45", "--cold",
                    check=False)  # a boot that never ends: the cold boot's own failure
    assert time.monotonic() - began < 90
    assert result.returncode == 1, result.stderr
    lines = error_lines(result.stderr)
    assert "VM" in lines[0] and "dud" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    labctl("down", "itbadkernel")
    assert leftovers("itbadkernel", settings) == {}


def test_sshd_that_never_answers(settings):
    began = time.monotonic()
    result = labctl("up", str(LABS / "nossh.yaml"), "--timeout", "60", "--cold", check=False)
    assert time.monotonic() - began < 150
    assert result.returncode == 1, result.stderr
    lines = error_lines(result.stderr)
    assert lines[0] == "error: 0 of 1 VMs ready; VM 'mute' is not ready: stage 'banner' " \
        f"took longer than 60 s ({lines[0].split('(')[-1]}", result.stderr
    assert "serial console" in lines[1]
    labctl("down", "itnossh")
    assert leftovers("itnossh", settings) == {}
