"""The guest agent (qemu-ga, on the virtio-serial channel every labctl domain
has): how a VM restored from a template is given its identity without an SSH
login as the template. Under TCG each SSH login costs a restored guest ~0.6 s
(sshd's re-exec, key exchange, PAM, sudo, all translated afresh); the agent is
a process already running in the template's memory, and libvirt carries its
JSON over a local socket. What the guest answers is untrusted: libvirt parses
it, labctl reads only numbers and capped output from it."""

from __future__ import annotations

import base64
import json
import time

import libvirt
import libvirt_qemu

from labctl.errors import BackendError
from labctl.ssh.transport import CommandResult

OUTPUT_CAP = 64 * 1024  # bytes of a command's stdout/stderr kept
POLL_GAP = 0.02  # seconds between "has it exited?"


class AgentGone(BackendError):
    """No agent answers (an image without one, or not yet connected)."""


def _command(dom: libvirt.virDomain, execute: str, timeout: int, **arguments) -> dict:
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


def run(dom: libvirt.virDomain, argv: list[str], stdin: str, timeout: float) -> CommandResult:
    """Run argv as root in the guest with `stdin`, until it exits."""
    began = time.monotonic()
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
            return CommandResult(" ".join(argv), -1, "", f"no exit within {timeout:.0f} s",
                                 time.monotonic() - began)
        time.sleep(POLL_GAP)
    code = status.get("exitcode", status.get("signal", -1))
    return CommandResult(" ".join(argv), code if isinstance(code, int) else -1,
                         _text(status.get("out-data")), _text(status.get("err-data")),
                         time.monotonic() - began)


class GuestAgent:
    """One domain's guest agent: AgentGone when it stops answering."""

    def __init__(self, dom: libvirt.virDomain):
        self.dom = dom

    def clock_offset(self) -> float:
        return clock_offset(self.dom)

    def run(self, argv: list[str], stdin: str, timeout: float) -> CommandResult:
        return run(self.dom, argv, stdin, timeout)


def answering(dom: libvirt.virDomain, timeout: int = 2) -> GuestAgent | None:
    """The domain's agent if it answers a ping now."""
    try:
        _command(dom, "guest-ping", timeout)
    except AgentGone:
        return None
    return GuestAgent(dom)


def _text(data: object) -> str:
    if not isinstance(data, str):
        return ""
    try:
        raw = base64.b64decode(data[: OUTPUT_CAP * 4 // 3 + 4], validate=False)
    except ValueError:
        return ""
    return raw[:OUTPUT_CAP].decode("utf-8", "replace")
