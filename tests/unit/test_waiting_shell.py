"""The template's waiting shell (usecases/identity.py) on this machine's own
bash and perl, driven by virt/agent.hand() through a stand-in for qemu-ga's
file calls (the real ones act on the guest's files the same way). The clock
is never moved here: that would move this machine's."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from labctl.usecases.identity import WAITING_DIR, WAITING_SHELL
from labctl.virt import agent


class FileAgent:
    """qemu-ga's guest-file-* on this machine's files, as the agent does them
    (a file opened "r+" is opened read-write: a FIFO so never blocks)."""

    def __init__(self):
        self.handles: dict[int, int] = {}
        self.alive = True

    def __call__(self, _dom, execute: str, _timeout: int, **args):
        if not self.alive:
            raise agent.AgentGone("the guest agent: not connected")
        if execute == "guest-ping":
            return {}
        if execute == "guest-file-open":
            flags = {"r": os.O_RDONLY, "r+": os.O_RDWR,
                     "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}[args["mode"]]
            try:
                fd = os.open(args["path"], flags | os.O_NONBLOCK, 0o600)
            except OSError as exc:
                raise agent.AgentGone(f"failed to open file: {exc}") from None
            self.handles[fd] = fd
            return fd
        fd = self.handles[args["handle"]]
        if execute == "guest-file-write":
            return {"count": os.write(fd, base64.b64decode(args["buf-b64"]))}
        if execute == "guest-file-read":
            data = os.read(fd, args["count"])
            return {"count": len(data), "buf-b64": base64.b64encode(data).decode()}
        if execute == "guest-file-close":
            os.close(self.handles.pop(args["handle"]))
            return {}
        raise AssertionError(execute)


@pytest.fixture
def waiting(tmp_path: Path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("the shell reseeds the kernel's CRNG: root only")
    folder = tmp_path / "identity"
    folder.mkdir(mode=0o700)
    os.mkfifo(folder / "inbox", 0o600)
    text = WAITING_SHELL.replace(WAITING_DIR, str(folder)).replace("later_after=10",
                                                                   "later_after=1")
    shell = subprocess.Popen(["bash", "-c", text],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (folder / "waiting").exists():
        assert shell.poll() is None, shell.stderr.read()
        assert time.monotonic() < deadline, "the waiting shell did not start"
        time.sleep(0.05)
    files = FileAgent()
    monkeypatch.setattr(agent, "_command", files)
    yield folder, shell, files
    shell.kill()
    shell.wait()


def test_a_script_handed_to_the_waiting_shell_runs_once_as_said(waiting):
    folder, shell, _ = waiting
    script = ("set -eu\nreseed 00112233445566778899aabbccddeeff\nsync\n"
              "echo out; echo err >&2\nlater='touch " + str(folder / "later") + "'\n")
    done = agent.hand(None, str(folder), script, timeout=30)
    assert (done.exit_status, done.stdout, done.stderr) == (0, "out\n", "err\n")
    assert (folder / "script").read_text() == ""  # it held the VM's host key
    assert not (folder / "later").exists()  # not while the VM is made ready
    assert shell.wait(timeout=30) == 0  # once: then it ends, after `later`
    assert (folder / "later").exists()


def test_a_failing_script_says_its_status_and_an_absent_shell_is_none(waiting, tmp_path):
    folder, shell, _ = waiting
    done = agent.hand(None, str(folder), "set -eu\necho before\nfalse\necho after\n", 30)
    assert (done.exit_status, done.stdout) == (1, "before\n")
    assert shell.wait(timeout=30) == 1
    assert agent.hand(None, str(tmp_path / "none"), "echo hi\n", 5) is None  # nothing there


def test_an_agent_gone_while_the_shell_runs_is_said_at_once_not_waited_out(waiting):
    """A status not there yet is waited for; an agent that stops answering
    (the VM died) ends the wait within a ping's gap, not the restore budget."""
    _folder, _shell, files = waiting
    threading.Timer(0.3, setattr, (files, "alive", False)).start()
    began = time.monotonic()
    with pytest.raises(agent.AgentGone):
        agent.hand(None, str(_folder), "read -rt 10 _ <&3 || :\n", timeout=60)
    assert time.monotonic() - began < agent.PING_GAP + 2
