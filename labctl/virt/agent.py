"""The guest agent (qemu-ga, on the virtio-serial channel every labctl domain
has): how a VM restored from a template is given its identity without an SSH
login as the template. Under TCG each SSH login costs a restored guest ~0.6 s
(sshd's re-exec, key exchange, PAM, sudo, all translated afresh); the agent is
a process already running in the template's memory, and libvirt carries its
JSON over a local socket. What the guest answers is untrusted: libvirt parses
it, labctl reads only numbers and capped output from it (qemu-ga itself keeps
at most 16 MiB of a command's output)."""

from __future__ import annotations

import base64
import json
import time

import libvirt
import libvirt_qemu

from labctl.errors import BackendError
from labctl.ssh.transport import CommandResult, TimedOut, TooMuchOutput

OUTPUT_CAP = 64 * 1024  # bytes of stdout and stderr a command may print (unless told)
POLL_GAP = 0.02  # seconds between "has it exited?"
PING_GAP = 1.0  # seconds between "does the agent still answer?" while a status is awaited


class AgentGone(BackendError):
    """No agent answers (an image without one, or not yet connected)."""


def _command(dom: libvirt.virDomain, execute: str, timeout: int, **arguments) -> object:
    request = {"execute": execute, **({"arguments": arguments} if arguments else {})}
    try:
        answer = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), timeout, 0)
    except libvirt.libvirtError as exc:
        raise AgentGone(f"the guest agent: {exc.get_error_message()}") from None
    try:
        found = json.loads(answer)["return"]
    except (ValueError, KeyError, TypeError):
        raise AgentGone("the guest agent gave no answer labctl reads") from None
    return found


def clock_offset(dom: libvirt.virDomain, timeout: int = 5) -> float:
    """Seconds to add to the guest's clock to match this machine's: the
    guest's time read between two readings of labctl's (no process started
    in the guest; the error is half that round trip, a few ms)."""
    before = time.time()
    guest_ns = _command(dom, "guest-get-time", timeout)
    after = time.time()
    if not isinstance(guest_ns, int):
        raise AgentGone("the guest agent's time is not a number")
    return (before + after) / 2 - guest_ns / 1e9


def run(dom: libvirt.virDomain, argv: list[str], stdin: str, timeout: float,
        errors: str = "replace", max_output: int = OUTPUT_CAP) -> CommandResult:
    """Run argv as root in the guest with `stdin`, until it exits: past
    `timeout` seconds TimedOut, past `max_output` bytes of stdout and stderr
    together (or output qemu-ga itself cut) TooMuchOutput, as over SSH.
    `errors="surrogateescape"` keeps stdout's exact bytes."""
    began = time.monotonic()
    text = " ".join(argv)
    started = _command(dom, "guest-exec", 5, path=argv[0], arg=argv[1:],
                       **{"input-data": base64.b64encode(stdin.encode()).decode(),
                          "capture-output": True})
    pid = started.get("pid") if isinstance(started, dict) else None
    if not isinstance(pid, int):
        raise AgentGone("the guest agent started no process")
    while True:
        status = _command(dom, "guest-exec-status", 5, pid=pid)
        if isinstance(status, dict) and status.get("exited"):
            break
        if time.monotonic() - began > timeout:
            raise TimedOut(f"the guest agent: {text[:80]} did not end within {timeout:.0f} s")
        time.sleep(POLL_GAP)
    out, err = _bytes(status.get("out-data")), _bytes(status.get("err-data"))
    if len(out) + len(err) > max_output or status.get("out-truncated") or \
            status.get("err-truncated"):
        raise TooMuchOutput(f"the guest agent: command printed more than "
                            f"{max_output >> 10} KiB: {text[:80]}")
    code = status.get("exitcode", status.get("signal", -1))
    return CommandResult(text, code if isinstance(code, int) else -1,
                         out.decode(errors=errors), err.decode(errors="replace"),
                         time.monotonic() - began)


def hand(dom: libvirt.virDomain, folder: str, script: str, timeout: float,
         errors: str = "replace", max_output: int = OUTPUT_CAP) -> CommandResult | None:
    """Run `script` in the root shell waiting in `folder` (identity.py's
    WAITING_SHELL): written to `folder`/script and woken through its FIFO with
    the agent's file calls, no process started; then its status and output
    read back as run() reads a command's. None when no shell waits there (a
    template saved without one; nothing was written)."""
    began = time.monotonic()
    data = script.encode()
    try:  # read-write: a FIFO opened so never blocks the agent
        inbox = _command(dom, "guest-file-open", 5, path=f"{folder}/inbox", mode="r+")
    except AgentGone:
        return None
    try:
        _write(dom, f"{folder}/script", data)
        _write_handle(dom, inbox, b"go\n")
    finally:
        _close(dom, inbox)
    next_ping = began + PING_GAP
    while True:
        status = _read(dom, f"{folder}/status", 16)
        if status is not None and status.endswith(b"\n"):
            break
        if time.monotonic() - began > timeout:
            raise TimedOut(f"the guest agent: the waiting shell did not end within "
                           f"{timeout:.0f} s")
        if time.monotonic() > next_ping:  # "not there yet" must not hide a dead agent
            _command(dom, "guest-ping", 2)
            next_ping = time.monotonic() + PING_GAP
        time.sleep(POLL_GAP)
    out = _read(dom, f"{folder}/out", max_output + 1) or b""
    err = _read(dom, f"{folder}/err", max_output + 1) or b""
    if len(out) + len(err) > max_output:
        raise TooMuchOutput(f"the guest agent: the waiting shell printed more than "
                            f"{max_output >> 10} KiB")
    try:
        code = int(status)
    except ValueError:
        code = -1
    return CommandResult("(waiting shell)", code, out.decode(errors=errors),
                         err.decode(errors="replace"), time.monotonic() - began)


def _write(dom: libvirt.virDomain, path: str, data: bytes) -> None:
    handle = _command(dom, "guest-file-open", 5, path=path, mode="w")
    try:
        _write_handle(dom, handle, data)
    finally:
        _close(dom, handle)


def _write_handle(dom: libvirt.virDomain, handle: object, data: bytes) -> None:
    while data:
        wrote = _command(dom, "guest-file-write", 5, handle=handle,
                         **{"buf-b64": base64.b64encode(data).decode()})
        count = wrote.get("count") if isinstance(wrote, dict) else None
        if not isinstance(count, int) or count <= 0:
            raise AgentGone("the guest agent wrote nothing")
        data = data[count:]


def _read(dom: libvirt.virDomain, path: str, cap: int) -> bytes | None:
    """Up to `cap` bytes of the file; None if it cannot be opened (not yet there)."""
    try:
        handle = _command(dom, "guest-file-open", 5, path=path, mode="r")
    except AgentGone:
        return None
    try:
        got = _command(dom, "guest-file-read", 5, handle=handle, count=cap)
    finally:
        _close(dom, handle)
    return _bytes(got.get("buf-b64")) if isinstance(got, dict) else b""


def _close(dom: libvirt.virDomain, handle: object) -> None:
    try:
        _command(dom, "guest-file-close", 5, handle=handle)
    except AgentGone:
        pass


class GuestAgent:
    """One domain's guest agent: AgentGone when it stops answering."""

    def __init__(self, dom: libvirt.virDomain):
        self.dom = dom

    def clock_offset(self) -> float:
        return clock_offset(self.dom)

    def run(self, argv: list[str], stdin: str, timeout: float, errors: str = "replace",
            max_output: int = OUTPUT_CAP) -> CommandResult:
        return run(self.dom, argv, stdin, timeout, errors, max_output)

    def hand(self, folder: str, script: str, timeout: float) -> CommandResult | None:
        return hand(self.dom, folder, script, timeout)


def answering(dom: libvirt.virDomain, timeout: int = 2) -> GuestAgent | None:
    """The domain's agent if it answers a ping now."""
    try:
        _command(dom, "guest-ping", timeout)
    except AgentGone:
        return None
    return GuestAgent(dom)


def _bytes(data: object) -> bytes:
    if not isinstance(data, str):
        return b""
    try:
        return base64.b64decode(data, validate=False)
    except ValueError:
        return b""
