"""Per-lab locking across real processes: wait, refuse, take over from the dead."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.lock import lab_lock

HOLDER = """
import sys, time
from pathlib import Path
from labctl.lock import lab_lock
with lab_lock(Path(sys.argv[1]), "course", "up"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(data_dir: Path, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir), str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "held\n"
    return process


def test_second_process_is_refused_or_waits(tmp_path: Path):
    holder = hold(tmp_path, 1.0)
    try:
        with pytest.raises(LabctlError) as info:
            with lab_lock(tmp_path, "course", "down", wait=False):
                pass
        assert info.value.message == (f"lab 'course' is busy: labctl (pid {holder.pid}) is "
                                      "running 'up'")
        told = []
        start = time.monotonic()
        with lab_lock(tmp_path, "course", "down", waiting=told.append):
            waited = time.monotonic() - start
        assert told == [f"labctl (pid {holder.pid}) is running 'up'"] and waited > 0.3
    finally:
        holder.wait()


def test_other_labs_proceed_in_parallel(tmp_path: Path):
    holder = hold(tmp_path, 5.0)
    try:
        entered = False
        with lab_lock(tmp_path, "other", "up", wait=False):  # raises if it had to wait
            entered = True
        assert entered and holder.poll() is None  # while "course" is still held
        with pytest.raises(LabctlError):
            with lab_lock(tmp_path, "course", "up", wait=False):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path):
    holder = hold(tmp_path, 60.0)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with lab_lock(tmp_path, "course", "up", wait=False):
        assert "running 'up'" in (tmp_path / "locks" / "course.lock").read_text()


def test_waiting_has_a_limit(tmp_path: Path):
    holder = hold(tmp_path, 5.0)
    try:
        with pytest.raises(LabctlError, match="still busy after 0 s"):
            with lab_lock(tmp_path, "course", "up", timeout=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_cli_up_no_wait_says_who_holds_the_lab(tmp_path: Path, capsys):
    from labctl.cli import main

    root = Path(__file__).resolve().parents[2]
    holder = hold(tmp_path, 5.0)
    try:
        with pytest.raises(SystemExit) as info:
            main([f"--data-dir={tmp_path}", "up", str(root / "examples" / "course.yaml"),
                  "--no-wait"])
        assert info.value.code == 1
        assert capsys.readouterr().err.splitlines() == [
            f"error: lab 'course' is busy: labctl (pid {holder.pid}) is running 'up'",
            "  hint: wait for it, or run again without --no-wait"]
    finally:
        holder.kill()
        holder.wait()


def test_a_host_step_is_taken_by_one_labctl_at_a_time():
    """Another process on this machine (another labctl run) waits for the step
    on the same host; a step on another host does not wait."""
    from labctl.lock import HostStep

    probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except BlockingIOError:\n    sys.exit(3)\n")
    step, other = HostStep("qemu:///test-a", "network"), HostStep("qemu:///test-b", "network")
    with step:
        with other:
            pass  # another host's step is free
        held = subprocess.run([sys.executable, "-c", probe, str(step.path)])
        assert held.returncode == 3
    free = subprocess.run([sys.executable, "-c", probe, str(step.path)])
    assert free.returncode == 0
