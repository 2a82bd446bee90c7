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


class GuestAgent:
    """One domain's guest agent: AgentGone when it stops answering."""

    def __init__(self, dom: libvirt.virDomain):
        self.dom = dom

    def clock_offset(self) -> float:
        return clock_offset(self.dom)

    def run(self, argv: list[str], stdin: str, timeout: float, errors: str = "replace",
            max_output: int = OUTPUT_CAP) -> CommandResult:
        return run(self.dom, argv, stdin, timeout, errors, max_output)


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
