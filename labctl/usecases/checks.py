"""`labctl check`: run a lab's checks in one copy, every copy, or a single
lab, copies in parallel (bounded), each check with its own timeout, one SSH
connection per VM. A check that cannot run (VM down, SSH refused, timeout) is
an "error" (could not run), never a pass. Checks only read."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from labctl.backend import Backend, GuestAgent
from labctl.checks import batch, probes
from labctl.checks.batch import TIMED_OUT
from labctl.checks.probes import ERROR, Verdict
from labctl.checks.results import CheckInfo, CheckRun, CopyResult, Outcome
from labctl.checks.store import CheckHistory, now
from labctl.errors import LabctlError, UsageError
from labctl.lab.model import Check, Lab
from labctl.plan import classroom
from labctl.runtime.oci import RUNTIMES
from labctl.shell import quote
from labctl.ssh.transport import Endpoint, SSHTransport, TimedOut, TooMuchOutput, open_socket
from labctl.usecases import fanout, values
from labctl.usecases.classes import existing_copies
from labctl.usecases.containers import published_port
from labctl.usecases.session import Session


def targets(session: Session, lab: Lab, copy: str | None, all_copies: bool) -> dict[str, str]:
    """lab name -> copy id of what is checked."""
    if not lab.checks:
        raise UsageError(f"lab '{lab.name}' has no checks",
                         "add a 'checks:' section to the lab file (see docs/checks.md)")
    if classroom.is_class(lab) or copy or all_copies:
        copies = existing_copies(session, lab.name)
        if copy is not None:
            copies = {name: c for name, c in copies.items() if c == copy}
        elif not all_copies:
            raise UsageError(f"lab '{lab.name}' is a class: say which copy to check",
                             "--copy ID (a student's name or 1..N), or --all-copies")
        if not copies:
            raise LabctlError(f"class '{lab.name}' has no copies"
                              + (f" named '{copy}'" if copy else ""),
                              f"run 'labctl up {lab.source.name}' first")
        return copies
    if not session.lab_host(lab.name).domains(lab.name):
        raise LabctlError(f"lab '{lab.name}' is not up", f"run 'labctl up {lab.source.name}'")
    return {lab.name: ""}


def run_checks(session: Session, lab: Lab, copy: str | None = None, all_copies: bool = False,
               progress: Callable[[CopyResult], None] = lambda _: None,
               keep: bool = True) -> CheckRun:
    began = time.monotonic()
    created = now()
    chosen = targets(session, lab, copy, all_copies)
    # the lab's own runtime of each VM is asked first (a student may use the other)
    runtimes = {vm.name: (vm.runtime, *(r for r in RUNTIMES if r != vm.runtime))
                for vm in lab.vms}

    own = values.renderer(session.data_dir, lab)  # a copy's checks expect its own values

    def one(name: str) -> CopyResult:
        copy_id = chosen[name]
        checks = own(copy_id).checks if lab.per_copy else lab.checks
        result = check_copy(session, name, copy_id, checks, runtimes)
        progress(result)
        return result

    copies = tuple(fanout.per_copy(session, list(chosen), one))
    run = CheckRun(lab.name, created, round(time.monotonic() - began, 3),
                   tuple(CheckInfo.of(c) for c in lab.checks), copies)
    if keep:
        run_id = CheckHistory(session.data_dir).add(run)
        run = CheckRun(run.lab, run.created, run.seconds, run.checks, run.copies, run_id)
    return run


def check_copy(session: Session, lab: str, copy: str, checks: tuple[Check, ...],
               runtimes: dict[str, tuple[str, ...]] | None = None) -> CopyResult:
    """Every check of one copy: each VM's in-VM probes in one SSH command
    (checks/batch.py), the network ones one by one."""
    connections = _Connections(session, lab)
    outcomes: dict[int, Outcome] = {}
    try:
        for vm in dict.fromkeys(c.vm for c in checks):
            mine = [(i, c, probe) for i, c in enumerate(checks)
                    if c.vm == vm and (probe := probes.vm_probe(c)) is not None]
            if mine:
                outcomes.update(_in_vm(connections, vm, mine,
                                       (runtimes or {}).get(vm, RUNTIMES)))
        for i, check in enumerate(checks):
            if i not in outcomes:
                outcomes[i] = _timed(check, lambda c=check: _network(session, lab, c,
                                                                     connections))
    finally:
        connections.close()
    return CopyResult(lab, copy, tuple(outcomes[i] for i in range(len(checks))))


def _in_vm(connections: _Connections, vm: str, mine: list[tuple[int, Check, probes.VmProbe]],
           runtimes: tuple[str, ...]) -> dict[int, Outcome]:
    """One VM's in-VM checks through one bash script; a VM that cannot be
    reached, or a script cut short, leaves its checks "could not run"."""
    plan = [(probe, check.timeout) for _, check, probe in mine]
    try:
        agent = connections.agent(vm)
        if agent is not None:  # as root already: no SSH login, no sudo
            result = agent.run(["/bin/bash", "-c", batch.script(plan, runtimes,
                                                                connections.user(vm))], "",
                               timeout=batch.budget(plan), errors="surrogateescape",
                               max_output=batch.max_output(plan))
        else:
            result = connections.get(vm).run(
                batch.command(plan, runtimes, connections.user(vm)),
                timeout=batch.budget(plan), errors="surrogateescape",
                max_output=batch.max_output(plan))
        answers = batch.parse(result.stdout, len(mine))
        lost = "the checks' script ended early" + (f": {result.stderr.strip()[-80:]}"
                                                   if result.stderr.strip() else "")
    except TimedOut:  # the VM held the script past every check's time together
        answers, lost = [None] * len(mine), f"timed out after {batch.budget(plan)} s"
    except TooMuchOutput:
        answers, lost = [None] * len(mine), "the VM printed more than the checks ask for"
    except LabctlError as exc:
        answers, lost = [None] * len(mine), exc.message
    found = {}
    for (index, check, _), answer in zip(mine, answers, strict=True):
        if answer is None:
            verdict, seconds = Verdict(ERROR, f"could not run: {lost}"), 0.0
        elif answer.status == TIMED_OUT:
            verdict = Verdict(ERROR, f"could not run: timed out after {check.timeout} s")
            seconds = answer.seconds
        elif answer.status == batch.TOO_MUCH:
            verdict = Verdict(ERROR, "could not run: stopped, it printed without end "
                              f"(over {probes.MAX_BYTES >> 10} KiB)")
            seconds = answer.seconds
        else:
            verdict, seconds = probes.judge_vm(check, answer.status, answer.stdout), answer.seconds
        found[index] = Outcome(check.name, verdict.status, verdict.reason, check.points, seconds)
    return found


def _timed(check: Check, run: Callable[[], Verdict]) -> Outcome:
    began = time.monotonic()
    try:
        verdict = run()
    except LabctlError as exc:
        verdict = Verdict(ERROR, f"could not run: {exc.message}")
    return Outcome(check.name, verdict.status, verdict.reason, check.points,
                   round(time.monotonic() - began, 3))


class _Connections:
    """One SSH connection per VM of a copy, opened on first use; a VM that
    cannot be reached is remembered, so its other checks fail at once."""

    def __init__(self, session: Session, lab: str):
        self.session, self.lab = session, lab
        self.open: dict[str, SSHTransport] = {}
        self.failed: dict[str, str] = {}
        self.agents: dict[str, GuestAgent | None] = {}

    def user(self, vm: str) -> str:
        """The lab user of a VM (a student's own command runs as them)."""
        found = self.session.lab_host(self.lab).domain(self.lab, vm)
        return found.meta.user if found is not None and found.meta.user else "root"

    def agent(self, vm: str) -> GuestAgent | None:
        """The VM's guest agent, if it has one that answers: a VM's in-VM
        probes run through it (under TCG an SSH login and a sudo cost a copy
        more than its probes do); else over SSH."""
        if vm not in self.agents:
            host = self.session.lab_host(self.lab)
            found = host.domain(self.lab, vm)
            self.agents[vm] = host.guest_agent(found.libvirt_name) \
                if found is not None and found.active else None
        return self.agents[vm]

    def get(self, vm: str) -> SSHTransport:
        if vm in self.failed:
            raise LabctlError(self.failed[vm])
        if vm not in self.open:
            try:
                self.open[vm] = self.session.connect_vm(self.lab, vm)
            except LabctlError as exc:
                self.failed[vm] = exc.message
                raise
        return self.open[vm]

    def close(self) -> None:
        for transport in self.open.values():
            transport.close()


def _run(transport: SSHTransport, command: str, timeout: int,
         timeout_is_an_answer: bool = False) -> tuple[int, str]:
    """The command's status and output, within `timeout` seconds. Running out
    of time means "could not run", except for a probe of the network, where
    silence is the answer (timeout_is_an_answer: TIMED_OUT is returned)."""
    wrapped = f"timeout -k 2 {timeout} sh -c {quote(command)}"
    try:
        result = transport.run(wrapped, timeout=timeout + 10,
                               max_output=probes.MAX_BYTES + (64 << 10))
    except TimedOut:
        raise LabctlError(f"timed out after {timeout} s") from None
    if result.exit_status == TIMED_OUT and not timeout_is_an_answer:
        raise LabctlError(f"timed out after {timeout} s")
    return result.exit_status, result.stdout


def _network(session: Session, lab: str, check: Check, connections: _Connections) -> Verdict:
    """A tcp or http check: from the host, or from another VM of the lab."""
    port = check.get("port")
    source = check.get("from", "host")
    _running(session, lab, check.vm)  # a DHCP lease outlives the VM: never "nothing answers"
    if source == "host":
        endpoint = published_port(session, lab, check.vm, port)
        if check.kind == "tcp" and endpoint.via:  # a jump host's loopback: ask it
            return _tcp_on_host(session.lab_host(lab), endpoint, check.timeout)
        if check.kind == "tcp":
            return _tcp_from_host(endpoint.host, endpoint.port, check.timeout)
        return _http_from_host(check, endpoint)
    address = _address(session, lab, check.vm)
    if check.kind == "tcp":
        status, _ = _run(connections.get(source), probes.tcp_from_vm(address, port),
                         check.timeout, timeout_is_an_answer=True)
        return Verdict(probes.PASS) if status == 0 else \
            Verdict(probes.FAIL, f"nothing answers on {check.vm}:{port} from {source}")
    _, raw = _run(connections.get(source), probes.http_from_vm(
        address, port, check.get("path", "/")), check.timeout, timeout_is_an_answer=True)
    status_code, body = probes.parse_http(raw)
    return probes.judge_http(check, status_code, body,
                             f"nothing answers on {check.vm}:{port} from {source}")


def _running(session: Session, lab: str, vm: str) -> None:
    host = session.lab_host(lab)
    found = host.domain(lab, vm)
    if found is None or not host.is_running(found.libvirt_name):
        raise LabctlError(f"VM '{vm}' of lab '{lab}' is not running",
                          "run 'labctl up' for the lab")


def _address(session: Session, lab: str, vm: str) -> str:
    """The VM's address on its lab network (what another VM of the lab reaches)."""
    host = session.lab_host(lab)
    found = host.domain(lab, vm)
    endpoint = host.endpoint(found.libvirt_name) if found is not None else None
    if endpoint is None:
        raise LabctlError(f"VM '{vm}' has no address", "is it running? 'labctl status'")
    return endpoint.host


def _tcp_from_host(host: str, port: int, timeout: int) -> Verdict:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return Verdict(probes.FAIL, f"nothing answers on {host}:{port} ({exc.strerror or exc})")
    return Verdict(probes.PASS)


def _tcp_on_host(host: Backend, endpoint: Endpoint, timeout: int) -> Verdict:
    done = host.run(f"timeout {timeout} {probes.tcp_from_vm(endpoint.host, endpoint.port)}",
                    timeout=timeout + 15)
    if done.returncode != 0:
        return Verdict(probes.FAIL, f"nothing answers on {endpoint.describe()}")
    return Verdict(probes.PASS)


def _http_from_host(check: Check, endpoint: Endpoint) -> Verdict:
    """GET the path within the check's time in all: a server that sends a
    byte now and then is timed out too (a per-read timeout would wait on)."""
    deadline = time.monotonic() + check.timeout
    raw = bytearray()
    try:
        sock = open_socket(endpoint, check.timeout)  # straight or through a jump
    except OSError as exc:
        return probes.judge_http(check, None, "", f"no HTTP answer on {endpoint.describe()} "
                                 f"({exc.strerror or exc})")
    try:
        sock.sendall(probes.http_request(endpoint.host, check.get("path", "/")))
        while len(raw) < probes.MAX_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    except TimeoutError:
        raise LabctlError(f"timed out after {check.timeout} s") from None
    except OSError as exc:
        return probes.judge_http(check, None, "", f"no HTTP answer on {endpoint.describe()} "
                                 f"({exc.strerror or exc})")
    finally:
        sock.close()
    status, body = probes.parse_http(bytes(raw[:probes.MAX_BYTES]).decode(errors="replace"))
    if status is None:
        return probes.judge_http(check, None, "", f"no HTTP answer on {endpoint.describe()}")
    return probes.judge_http(check, status, body)
