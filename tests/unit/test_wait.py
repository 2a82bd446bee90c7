"""Staged readiness against fakes: a fake clock and sockets, no VM."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from labctl import interrupt
from labctl.ssh.transport import Endpoint, HostKeyMismatch
from labctl.ssh.wait import JUMP_ATTEMPT_GAP, NotReady, Probes, wait_ready


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeSocket:
    def __init__(self, data: bytes):
        self.data, self.closed = data, False

    def settimeout(self, _t):
        pass

    def recv(self, n, flags=0):
        assert flags == socket.MSG_PEEK, "the banner must be peeked, not consumed"
        return self.data[:n]

    def close(self):
        self.closed = True


def probes(clock, banner_after=3, running_after=0.0, login=None, tail="boot line\n"):
    attempts = []

    def connect(_ep, _timeout):
        attempts.append(clock.now)
        clock.now += 0.01
        if len(attempts) <= banner_after:
            return FakeSocket(b"")  # user-mode NAT accepted, then closed: no sshd yet
        return FakeSocket(b"SSH-2.0-OpenSSH_9.2")

    start = clock.now
    return attempts, Probes(
        is_running=lambda: clock.now - start >= running_after,
        address=lambda: Endpoint("127.0.0.1", 2222),
        login=login or (lambda sock: "transport"),
        boot_finished=lambda t: True,
        serial_tail=lambda n: tail,
        connect=connect,
    )


def test_stages_in_order_with_detection_lag():
    clock, events = FakeClock(), []
    attempts, fake = probes(clock, banner_after=3)
    transport, state = wait_ready("node", fake, events.append, clock=clock, sleep=clock.sleep)
    assert transport == "transport"
    assert [e.stage for e in events] == ["running", "address", "banner", "auth", "boot-finished"]
    assert len(attempts) == 4  # one probe in flight at a time, retried after POLL_GAP
    assert state.detection_lag == pytest.approx(0.05)  # the gap between probes
    assert state.endpoint == Endpoint("127.0.0.1", 2222)
    assert state.stages["banner"] <= state.stages["auth"] <= state.total()


def test_timeout_names_vm_stage_and_shows_serial_tail():
    clock = FakeClock()
    _, fake = probes(clock, banner_after=10**9, tail="[ 1.0] kernel panic\n")
    with pytest.raises(NotReady) as info:
        wait_ready("web-1", fake, lambda e: None, budgets={"banner": 2.0}, clock=clock,
                   sleep=clock.sleep)
    assert info.value.message.startswith(
        "VM 'web-1' is not ready: stage 'banner' took longer than 2 s")
    assert "| [ 1.0] kernel panic" in info.value.hint


def test_total_budget_caps_the_stages():
    clock = FakeClock()
    _, fake = probes(clock, banner_after=10**9)
    with pytest.raises(NotReady, match="still in stage 'banner' after the total budget of 5 s"):
        wait_ready("web-1", fake, lambda e: None, budgets={"total": 5.0}, clock=clock,
                   sleep=clock.sleep)


def test_wrong_host_key_is_not_retried():
    clock = FakeClock()
    calls = []

    def login(_sock):
        calls.append(1)
        raise HostKeyMismatch("VM 'node' presented a host key that does not match")

    _, fake = probes(clock, banner_after=0, login=login)
    with pytest.raises(HostKeyMismatch):
        wait_ready("node", fake, lambda e: None, clock=clock, sleep=clock.sleep)
    assert calls == [1]


def test_transient_login_failures_are_retried():
    clock = FakeClock()
    calls = []

    def login(_sock):
        calls.append(1)
        if len(calls) < 3:
            raise EOFError("sshd still starting")
        return "transport"

    _, fake = probes(clock, banner_after=0, login=login)
    transport, _ = wait_ready("node", fake, lambda e: None, clock=clock, sleep=clock.sleep)
    assert transport == "transport" and len(calls) == 3


def test_ctrl_c_stops_the_wait_at_the_next_poll():
    clock = FakeClock()
    _, fake = probes(clock, banner_after=10**9)

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.now > 110:
            interrupt.request()

    try:
        with pytest.raises(interrupt.Interrupted):
            wait_ready("web-1", fake, lambda e: None, clock=clock, sleep=sleep)
    finally:
        interrupt._requested.clear()
    assert clock.now < 111


def test_a_vm_that_stops_is_reported_at_once_not_waited_out():
    clock = FakeClock()
    _, fake = probes(clock, banner_after=10**9, tail="reboot: Power down\n")
    fake = dataclasses.replace(fake, is_running=lambda: clock.now < 103)
    with pytest.raises(NotReady) as info:
        wait_ready("web-1", fake, lambda e: None, clock=clock, sleep=clock.sleep)
    assert info.value.message == "VM 'web-1' stopped during stage 'banner' (3 s since start)"
    assert "| reboot: Power down" in info.value.hint


def test_the_boot_state_command_says_running_finished_or_failed(tmp_path):
    """BOOT_STATE in the real sh, its paths moved into tmp_path: exit 3 while
    the first boot runs, 0 once it finished, 1 with the guest's words if it
    failed -- one command where there were two."""
    import subprocess

    from labctl.images.guest import BOOT_STATE, NOT_FINISHED

    marker, failed = tmp_path / "boot-finished", tmp_path / "failed"
    script = BOOT_STATE.replace("/run/labctl-boot-finished", str(marker)).replace(
        "/var/lib/cloud/instance/boot-finished", str(tmp_path / "none")).replace(
        "/var/lib/labctl/failed", str(failed)).replace(
        "/run/cloud-init/result.json", str(tmp_path / "none"))

    def run():
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        return done.returncode, done.stdout

    assert run() == (NOT_FINISHED, "")
    marker.touch()
    assert run() == (0, "")
    failed.write_text("packages: nginx\nE: Unable to locate package nginx\n")
    assert run() == (1, "packages: nginx\nE: Unable to locate package nginx\n")


def test_cloud_init_is_finished_only_once_its_result_is_written(tmp_path):
    """cloud-init writes boot-finished during its final stage and result.json
    (its errors) when the stage ends: between the two, a failed runcmd was
    read as a finished, good boot."""
    import json
    import subprocess

    from labctl.images.guest import BOOT_STATE, NOT_FINISHED

    finished, result = tmp_path / "boot-finished", tmp_path / "result.json"
    script = BOOT_STATE.replace("/run/labctl-boot-finished", str(tmp_path / "none")).replace(
        "/var/lib/cloud/instance/boot-finished", str(finished)).replace(
        "/var/lib/labctl/failed", str(tmp_path / "none")).replace(
        "/run/cloud-init/result.json", str(result))

    def run():
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True).returncode

    finished.touch()
    assert run() == NOT_FINISHED  # the final stage has not ended: no verdict yet
    result.write_text(json.dumps({"v1": {"errors": ["('scripts-user', 'runcmd failed')"]}}))
    assert run() == 1


def test_the_first_boot_is_checked_from_the_answer_readiness_already_got():
    import pytest

    from labctl.usecases.session import FirstBootFailed, boot_state, check_first_boot

    from .fakes import FakeTransport

    answers: list = []
    running = FakeTransport({"labctl/failed": (3, "", "")})
    assert not boot_state(running, answers) and answers == []
    failed = FakeTransport({"labctl/failed": (1, "runcmd 1: false\nboom\n", "")})
    assert boot_state(failed, answers)
    with pytest.raises(FirstBootFailed, match="runcmd 1"):
        check_first_boot(failed, "node", answers[-1])
    assert len(failed.commands) == 1  # asked once, not twice


def test_a_backend_whose_asks_cost_is_asked_at_its_own_pace():
    """A cloud's state and address are API calls: the running and address
    stages ask once per backend_gap, and the alive check no more often."""
    clock, asked = FakeClock(), {"running": [], "address": []}
    attempts, fake = probes(clock, banner_after=30)
    start = clock.now

    def is_running():
        asked["running"].append(clock.now)
        return clock.now - start >= 5.0

    def address():
        asked["address"].append(clock.now)
        return Endpoint("198.51.100.7", 22) if clock.now - start >= 9.0 else None

    fake = dataclasses.replace(fake, is_running=is_running, address=address, backend_gap=2.0)
    wait_ready("web", fake, lambda e: None, clock=clock, sleep=clock.sleep)
    gaps = [b - a for a, b in zip(asked["running"], asked["running"][1:], strict=False)]
    assert gaps and min(gaps) >= 2.0 - 1e-9, gaps  # running stage, then alive checks
    address_gaps = [b - a for a, b in zip(asked["address"], asked["address"][1:], strict=False)]
    assert address_gaps and min(address_gaps) >= 2.0 - 1e-9, address_gaps
    assert len(attempts) == 31  # sshd itself is still probed every POLL_GAP


def test_banner_probes_through_a_jump_host_are_spaced():
    """Each probe through a jump VM is a whole SSH login on it: one per
    JUMP_ATTEMPT_GAP, where a direct probe is retried after POLL_GAP."""
    clock = FakeClock()
    attempts, fake = probes(clock, banner_after=5)
    via = Endpoint("10.0.0.5", 22, via=("ssh", "-W", "10.0.0.5:22", "lab@198.51.100.7"))
    fake = dataclasses.replace(fake, address=lambda: via)
    _, state = wait_ready("db", fake, lambda e: None, clock=clock, sleep=clock.sleep)
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert len(attempts) == 6 and min(gaps) >= JUMP_ATTEMPT_GAP - 1e-9, gaps
    assert state.endpoint == via
