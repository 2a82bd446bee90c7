"""A real 2-VM lab on a NAT network: up, reach, re-up, plan, down to nothing.
The lab is booted once for the module (~25 s under TCG) and shared."""

from __future__ import annotations

import dataclasses
import json

import pytest

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.ssh.keys import generate
from labctl.ssh.transport import HostKeyMismatch
from labctl.usecases.lab import down, plan, up
from labctl.usecases.session import Session

from .conftest import LABS, labctl, leftovers

PAIR = LABS / "pair.yaml"


@pytest.fixture(scope="module")
def pair(settings):
    lab = load_lab(PAIR)
    down(Session(settings), lab.name)
    result = up(Session(settings), lab)
    yield lab, result
    down(Session(settings), lab.name)
    assert leftovers(lab.name, settings) == {}


def test_both_vms_answer_ssh_with_every_stage_timed(pair):
    _, result = pair
    assert result.changed and {vm.name for vm in result.vms} == {"alpha", "beta"}
    for vm in result.vms:
        stages = vm.readiness.stages
        assert list(stages) == ["running", "address", "banner", "auth", "boot-finished"]
        assert stages["running"] <= stages["banner"] <= stages["auth"] <= stages["boot-finished"]
        assert vm.readiness.detection_lag is not None and vm.readiness.detection_lag < 0.1


def test_fixed_address_files_and_runcmd(pair, settings):
    beta = Session(settings).connect_vm("itpair", "beta")
    try:
        assert "10.213.250.20/24" in beta.run("ip -4 -o addr show scope global").stdout
        assert beta.run("sudo cat /etc/labctl-test").stdout == "hello beta\n"
        assert beta.run("sudo stat -c %a /etc/labctl-test").stdout.strip() == "640"
        assert beta.run("hostname").stdout.strip() == "beta"
    finally:
        beta.close()
    alpha = Session(settings).connect_vm("itpair", "alpha")
    try:
        assert alpha.run("cat /tmp/runcmd-done").stdout == "ran\n"
        # The two VMs reach each other on the lab network (bash's /dev/tcp, no ping here).
        reach = alpha.run("timeout 5 bash -c 'exec 3<>/dev/tcp/10.213.250.20/22 && head -c 4 <&3'")
        assert reach.stdout == "SSH-"
    finally:
        alpha.close()


def test_exec_passes_output_and_exit_code(pair):
    ok = labctl("exec", "itpair.alpha", "--", "uname", "-n")
    assert ok.stdout == "alpha\n"
    failed = labctl("exec", "itpair.alpha", "--", "sh", "-c", "echo oops >&2; exit 7",
                    check=False)
    assert failed.returncode == 7 and failed.stderr.endswith("oops\n")


def test_cp_both_ways(pair, tmp_path):
    (tmp_path / "up.txt").write_text("to the VM\n")
    labctl("cp", str(tmp_path / "up.txt"), "itpair.beta:/tmp/")
    labctl("cp", "itpair.beta:/tmp/up.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "to the VM\n"


def test_openssh_uses_the_generated_config(pair, settings):
    import subprocess

    config = settings.data_dir / "labs" / "itpair" / "ssh_config"
    result = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "itpair.beta",
                             "hostname"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "beta\n", result.stderr


def test_status_and_plan(pair):
    status = json.loads(labctl("--json", "status", "itpair").stdout)
    assert {row["name"]: row["state"] for row in status} == {"alpha": "running",
                                                             "beta": "running"}
    assert all(row["endpoint"].endswith(":22") for row in status)
    plan = json.loads(labctl("--json", "plan", str(PAIR)).stdout)
    assert {p["verb"] for p in plan} == {"keep"}


def test_plan_shows_a_change_without_making_it(pair, settings):
    lab, _ = pair
    bigger = dataclasses.replace(lab, vms=(dataclasses.replace(lab.vms[0], memory_mib=640),
                                           lab.vms[1]))
    verbs = {(a.kind, a.name): a.verb for a in plan(Session(settings), bigger)}
    assert verbs == {("network", "lan"): "keep", ("vm", "alpha"): "recreate",
                     ("vm", "beta"): "keep"}
    assert {a.verb for a in plan(Session(settings), lab)} == {"keep"}


def test_up_again_changes_nothing_and_says_so(pair):
    result = labctl("up", str(PAIR))
    assert "is up to date: nothing changed" in result.stdout
    assert "create" not in result.stderr and "define" not in result.stderr


def test_swapped_host_key_is_refused(pair, settings):
    pinned = settings.data_dir / "labs" / "itpair" / "hostkeys" / "itpair.alpha.pub"
    real = pinned.read_text()
    pinned.write_text(generate("impostor").public + "\n")
    try:
        with pytest.raises(HostKeyMismatch, match="does not match the pinned one"):
            Session(settings).connect_vm("itpair", "alpha")
    finally:
        pinned.write_text(real)


def test_readiness_timeout_names_the_stage_and_shows_the_console(settings):
    lab = load_lab(LABS / "timeout.yaml")
    quick = dataclasses.replace(settings, budgets={"banner": 1.0}, cold=True)  # a boot's stages
    try:
        with pytest.raises(LabctlError) as info:
            up(Session(quick), lab)
        assert "0 of 1 VMs ready; VM 'slow' is not ready: stage 'banner' took longer than 1 s" \
            in info.value.message
        assert "last 20 lines of its serial console" in info.value.hint
    finally:
        down(Session(settings), lab.name)
    assert leftovers(lab.name, settings) == {}


def test_down_by_name_without_the_file_leaves_nothing(settings):
    lab = load_lab(LABS / "timeout.yaml")
    quick = dataclasses.replace(settings, budgets={"banner": 0.5}, cold=True)
    with pytest.raises(LabctlError):
        up(Session(quick), lab)  # leaves a running domain, volumes, keys
    assert leftovers(lab.name, settings)
    result = labctl("down", "--name", "ittimeout")
    assert "lab 'ittimeout' removed: 1 VM(s)" in result.stdout
    assert leftovers(lab.name, settings) == {}


def test_doctor_on_the_real_stack():
    result = labctl("--json", "doctor", str(PAIR))
    checks = {c["name"]: c["status"] for c in json.loads(result.stdout)}
    assert checks["libvirt"] == checks["qemu"] == checks["images"] == "ok"
    assert checks["acceleration"] in ("ok", "warn")  # warn: TCG fallback, said once


def test_large_output_on_both_streams_does_not_stall(pair, settings):
    alpha = Session(settings).connect_vm("itpair", "alpha")
    try:
        result = alpha.run("head -c 3000000 /dev/zero | tr '\\0' e >&2; "
                           "head -c 3000000 /dev/zero | tr '\\0' o", timeout=120)
    finally:
        alpha.close()
    assert len(result.stderr) == 3_000_000 and len(result.stdout) == 3_000_000
    assert set(result.stdout) == {"o"} and set(result.stderr) == {"e"}


def test_vms_of_one_lab_reach_each_other(pair, settings):
    """The positive control of the isolation test: same lab, same network."""
    alpha = Session(settings).connect_vm("itpair", "alpha")
    try:
        assert alpha.run("timeout 5 bash -c '</dev/tcp/10.213.250.20/22'", timeout=30).ok
    finally:
        alpha.close()

