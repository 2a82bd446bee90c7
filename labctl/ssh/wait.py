"""Staged readiness: running -> address -> banner -> auth -> boot-finished.

Each stage is timestamped on the host's monotonic clock (the guest clock drifts
under TCG) and has its own budget. The banner probe is gentle -- one connection
in flight per VM -- because probe storms trip sshd's MaxStartups; it peeks at
the banner (MSG_PEEK) so the same socket then carries the SSH session. With
user-mode networking the forwarded port accepts TCP before sshd runs, so only
the "SSH-" banner counts, never a TCP accept.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labctl import interrupt
from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.ssh.transport import Endpoint, SSHTransport, open_socket

STAGES = ("running", "address", "banner", "auth", "boot-finished")
DEFAULT_BUDGETS = {"running": 60.0, "address": 300.0, "banner": 300.0, "auth": 120.0,
                   "boot-finished": 600.0, "total": 900.0}
POLL_GAP = 0.05  # between probes: labctl notices sshd well within 100 ms
ALIVE_CHECK_GAP = 1.0  # between "is the domain still running?" checks during readiness
# Through a jump host every banner probe is a whole SSH login on that VM (ssh -W):
# under TCG ~1 s of its CPU, so they are spaced, not made back to back.
JUMP_ATTEMPT_GAP = 2.0
ATTEMPT_TIMEOUT = 10.0  # one probe waits this long for a banner before retrying
SERIAL_TAIL_LINES = 20


@dataclass
class Readiness:
    """What the wait saw; stage times are seconds since `start` (host clock)."""

    start: float
    stages: dict[str, float] = field(default_factory=dict)
    detection_lag: float | None = None  # polling gap before the banner was seen
    endpoint: Endpoint | None = None

    def total(self) -> float:
        return max(self.stages.values(), default=0.0)


@dataclass(frozen=True)
class Probes:
    """How to look at one VM; injected so the wait is testable without a VM."""

    is_running: Callable[[], bool]
    address: Callable[[], Endpoint | None]
    login: Callable[[socket.socket], SSHTransport]
    boot_finished: Callable[[SSHTransport], bool]
    serial_tail: Callable[[int], str]
    connect: Callable[[Endpoint, float], socket.socket] = open_socket
    backend_gap: float = POLL_GAP  # between asks of the backend (Backend.probe_seconds)


class NotReady(LabctlError):
    pass


def _console_hint(probes: Probes) -> str:
    tail = probes.serial_tail(SERIAL_TAIL_LINES).rstrip()
    shown = "\n".join(f"    | {line}" for line in tail.splitlines()) or "    (empty)"
    return f"last {SERIAL_TAIL_LINES} lines of its serial console:\n{shown}"


def wait_ready(vm: str, probes: Probes, report: Report, start: float | None = None,
               budgets: dict[str, float] | None = None,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> tuple[SSHTransport, Readiness]:
    budgets = {**DEFAULT_BUDGETS, **(budgets or {})}
    state = Readiness(start=clock() if start is None else start)
    subject = f"vm {vm}"

    def mark(stage: str, detail: str = "") -> None:
        state.stages[stage] = clock() - state.start
        report(Event(subject, stage, detail, state.stages[stage]))

    alive_gap = max(ALIVE_CHECK_GAP, probes.backend_gap)
    next_alive_check = [0.0]  # set by the running stage's answer: the first check

    def until(stage: str, attempt: Callable[[float], object], gap: float = POLL_GAP) -> object:
        """Call attempt(deadline) until it returns something truthy or the budget ends."""
        stage_deadline = clock() + budgets[stage]
        total_deadline = state.start + budgets["total"]
        deadline = min(stage_deadline, total_deadline)
        while True:
            interrupt.checkpoint()
            # A VM that stopped is reported at once, not waited out; asked about
            # once a second (or the backend's pace), not on every 50 ms probe.
            if stage != "running" and clock() >= next_alive_check[0]:
                if not probes.is_running():
                    raise NotReady(f"VM '{vm}' stopped during stage '{stage}' "
                                   f"({clock() - state.start:.0f} s since start)",
                                   _console_hint(probes))
                next_alive_check[0] = clock() + alive_gap
            result = attempt(deadline)
            if result:
                return result
            if clock() >= deadline:
                which = (f"stage '{stage}' took longer than {budgets[stage]:.0f} s"
                         if deadline == stage_deadline else
                         f"still in stage '{stage}' after the total budget of "
                         f"{budgets['total']:.0f} s")
                raise NotReady(
                    f"VM '{vm}' is not ready: {which} ({clock() - state.start:.0f} s since start)",
                    _console_hint(probes))
            sleep(gap)

    until("running", lambda _d: probes.is_running(), probes.backend_gap)
    next_alive_check[0] = clock() + alive_gap
    mark("running")
    endpoint = until("address", lambda _d: probes.address(), probes.backend_gap)
    state.endpoint = endpoint
    mark("address", str(endpoint))

    last_failure = [clock()]
    last_attempt = [float("-inf")]

    def banner(deadline: float) -> socket.socket | None:
        if endpoint.via and clock() - last_attempt[0] < JUMP_ATTEMPT_GAP:
            return None
        attempt_start = last_attempt[0] = clock()
        try:
            sock = probes.connect(endpoint, min(ATTEMPT_TIMEOUT, max(deadline - clock(), 0.1)))
        except OSError:
            last_failure[0] = clock()
            return None
        try:
            sock.settimeout(min(ATTEMPT_TIMEOUT, max(deadline - clock(), 0.1)))
            data = sock.recv(4, socket.MSG_PEEK)
        except OSError:
            data = b""
        if data == b"SSH-":
            state.detection_lag = max(0.0, attempt_start - last_failure[0])
            return sock
        sock.close()
        last_failure[0] = clock()
        return None

    sock = until("banner", banner)
    mark("banner", f"detection lag {1000 * (state.detection_lag or 0):.0f} ms")

    def login(_deadline: float) -> SSHTransport | None:
        nonlocal sock
        try:
            return probes.login(sock)
        except LabctlError:
            raise  # a wrong host key is not something to wait out
        except Exception:  # sshd not quite ready: reconnect and try again
            try:
                sock = probes.connect(endpoint, ATTEMPT_TIMEOUT)
            except OSError:
                pass
            return None

    transport = until("auth", login)
    mark("auth")
    until("boot-finished", lambda _d: probes.boot_finished(transport))
    mark("boot-finished")
    return transport, state
