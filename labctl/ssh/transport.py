"""One SSH connection per VM (paramiko), reused for every command.

The host key is checked against the key labctl generated for the VM before it
first booted; anything else is refused. Commands return CommandResult records;
callers never parse paramiko channels themselves.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from labctl.errors import LabctlError
from labctl.shell import join

if TYPE_CHECKING:
    import paramiko


def _paramiko():
    """paramiko, imported when a command first logs in: with cryptography it
    costs ~0.1 s that `status`, `down` or `plan` never need."""
    # paramiko.config imports invoke (with asyncio and unittest.mock: ~60 ms)
    # for ssh_config's `Match exec` only, and takes its absence; labctl parses
    # no ssh_config with paramiko.
    sys.modules.setdefault("invoke", None)
    import paramiko

    return paramiko


_preloaded = False


def preload() -> threading.Thread | None:
    """Import paramiko in the background: a restored VM loads its state and
    takes its identity (~1 s of waiting on the guest) before its first login,
    which then finds paramiko loaded. An error is left for that login to meet.
    Once a process."""
    global _preloaded
    if _preloaded or "paramiko" in sys.modules:
        return None
    _preloaded = True

    def load() -> None:
        try:
            _paramiko()
        except Exception:  # noqa: BLE001 -- the login's own import reports it
            pass

    loader = threading.Thread(target=load, name="labctl-preload", daemon=True)
    loader.start()
    return loader


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    # Reached through a jump host: the OpenSSH command (`ssh ... -W HOST:PORT --
    # JUMP`) that carries the connection, and the jump as ProxyJump spells it.
    via: tuple[str, ...] = ()
    jump: str = ""

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        return f"{self} via {self.jump}" if self.jump else str(self)


def open_socket(endpoint: Endpoint, timeout: float) -> socket.socket:
    """A connected socket to the endpoint: straight, or through its jump host
    (OpenSSH's `-W` on one end of a socket pair, so callers see a real socket)."""
    if not endpoint.via:
        return socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    mine, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(endpoint.via, stdin=theirs, stdout=theirs,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        mine.close()
        raise
    finally:
        theirs.close()
    weakref.finalize(mine, _end, process)
    mine.settimeout(timeout)
    return mine


def _end(process: subprocess.Popen) -> None:
    """ssh -W ends when its socket closes; reap it (or stop it if it lingers)."""
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self, what: str) -> CommandResult:
        if not self.ok:
            last = (self.stderr or self.stdout).strip().splitlines()[-1:] or ["no output"]
            raise LabctlError(f"{what} failed (exit {self.exit_status}): {last[0]}")
        return self


class HostKeyMismatch(LabctlError):
    pass


class TimedOut(LabctlError):
    """A command's whole time ran out (not a quiet spell: a VM that prints
    without end is timed out too)."""


class TooMuchOutput(LabctlError):
    """A command printed more than its caller keeps."""


# What a captured command may print before it is cut off: a guest is someone
# else's machine, and what it prints is held in labctl's memory.
MAX_OUTPUT = 64 << 20


class SSHTransport:
    """An authenticated connection; a context manager that closes it."""

    def __init__(self, transport: paramiko.Transport, label: str):
        self._transport = transport
        self.label = label  # "VM 'web-1'" for messages

    @classmethod
    def over_socket(cls, sock: socket.socket, label: str, user: str, key: paramiko.PKey,
                    pinned_host_key: str, timeout: float = 30.0) -> SSHTransport:
        """Handshake on an already connected socket; verify the pinned host key; log in."""
        transport = _paramiko().Transport(sock)
        transport.banner_timeout = timeout
        try:
            transport.start_client(timeout=timeout)
            offered = transport.get_remote_server_key()
            expected = pinned_host_key.split()
            if [offered.get_name(), offered.get_base64()] != expected[:2]:
                raise HostKeyMismatch(
                    f"{label} presented a host key that does not match the pinned one "
                    f"({offered.get_name()} {offered.fingerprint})",
                    "the VM was replaced outside labctl or the connection is intercepted; "
                    "'labctl down' then 'labctl up' recreates it with a new pinned key")
            transport.auth_publickey(user, key)
        except Exception:
            transport.close()
            raise
        transport.set_keepalive(30)
        return cls(transport, label)

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @property
    def active(self) -> bool:
        return self._transport.is_active()

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            input_data: bytes | None = None, errors: str = "replace",
            answer: Callable[[str], str | None] | None = None,
            max_output: int = MAX_OUTPUT) -> CommandResult:
        """`errors="surrogateescape"` keeps stdout's exact bytes (str.encode gives
        them back) where a caller counts them; `answer`: see converse. Past
        `timeout` seconds in all, TimedOut; past `max_output` bytes of stdout
        and stderr together, TooMuchOutput (the command is closed either way)."""
        text = command if isinstance(command, str) else join(command)
        start = time.monotonic()
        out = _Capped(max_output, self.label, text)
        err = _Capped(max_output, self.label, text, out)
        status = self._exec(text, out, err, timeout, input_data, answer)
        return CommandResult(text, status, out.getvalue().decode(errors=errors),
                             err.getvalue().decode(errors="replace"), time.monotonic() - start)

    def converse(self, command: str | Sequence[str], answer: Callable[[str], str | None],
                 timeout: float | None = None) -> CommandResult:
        """Run a command that talks with labctl a line at a time: each line it
        prints goes to `answer` as it arrives, and what that returns (if not
        None) is sent to its stdin as a line -- a dialogue in one command."""
        return self.run(command, timeout, answer=answer)

    def shell(self, cols: int, rows: int) -> paramiko.Channel:
        """An interactive login shell on a terminal of that size (the browser
        terminal): a PTY and a shell, nothing else -- no forwarding, so only
        the VM is reached through it."""
        channel = self._transport.open_session(timeout=30)
        channel.get_pty(term="xterm-256color", width=cols, height=rows)
        channel.invoke_shell()
        return channel

    def stream(self, command: str | Sequence[str], stdout: BinaryIO, stderr: BinaryIO) -> int:
        """Run a command, copying its output as it comes (logs -f); its exit status."""
        return self._exec(command if isinstance(command, str) else join(command), stdout, stderr)

    def _exec(self, text: str, stdout: BinaryIO, stderr: BinaryIO, timeout: float | None = None,
              input_data: bytes | None = None,
              answer: Callable[[str], str | None] | None = None) -> int:
        """Both output streams are drained as they come: reading one to its end
        first could stall a command that fills the other's window."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            channel = self._transport.open_session(timeout=30)
            channel.exec_command(text)
            if input_data is not None:
                channel.sendall(input_data)
                channel.shutdown_write()
            lines = b""  # what `answer` has not seen yet
            while True:
                # checked on every turn: a guest that never stops printing must
                # not keep labctl waiting past its budget
                if deadline is not None and time.monotonic() > deadline:
                    channel.close()
                    raise TimedOut(f"{self.label}: command timed out after "
                                   f"{timeout:.0f} s: {text[:80]}")
                busy = False
                if channel.recv_ready():
                    data = channel.recv(65536)
                    stdout.write(data)
                    busy = True
                    if answer is not None:
                        *complete, lines = (lines + data).split(b"\n")
                        for line in complete:
                            reply = answer(line.decode(errors="replace"))
                            if reply is not None:
                                channel.sendall(f"{reply}\n".encode())
                if channel.recv_stderr_ready():
                    stderr.write(channel.recv_stderr(65536))
                    busy = True
                if not busy:
                    # EOF follows the last byte of output; the exit status may not.
                    if channel.eof_received and channel.exit_status_ready() \
                            and not channel.recv_ready() and not channel.recv_stderr_ready():
                        break
                    time.sleep(0.005)
                stdout.flush()
                stderr.flush()
            return channel.recv_exit_status()
        except TooMuchOutput:
            channel.close()
            raise
        except (_paramiko().SSHException, OSError, EOFError) as exc:
            raise LabctlError(f"{self.label}: SSH connection lost: {exc}",
                              "check the VM with 'labctl status'") from None

    def put(self, local: Path, remote: str, mode: int | None = None) -> None:
        with self._transport.open_sftp_client() as sftp:
            sftp.put(str(local), remote)
            if mode is not None:
                sftp.chmod(remote, mode)

    def get(self, remote: str, local: Path) -> None:
        with self._transport.open_sftp_client() as sftp:
            sftp.get(remote, str(local))

    def close(self) -> None:
        self._transport.close()


class _Capped(io.BytesIO):
    """A buffer that refuses to grow past `limit` bytes (its own and `shared`'s)."""

    def __init__(self, limit: int, label: str, command: str, shared: _Capped | None = None):
        super().__init__()
        self.limit, self.label, self.command, self.shared = limit, label, command, shared

    def write(self, data) -> int:
        held = self.tell() + len(data) + (self.shared.tell() if self.shared else 0)
        if held > self.limit:
            raise TooMuchOutput(f"{self.label}: command printed more than "
                                f"{self.limit >> 10} KiB: {self.command[:80]}")
        return super().write(data)


def login(target: Endpoint | socket.socket, label: str, user: str, private_key: str,
          pinned_host_key: str, timeout: float = 30.0) -> SSHTransport:
    """The one way in: connect (or use a connected socket), check the pinned
    host key, log in with the lab's private key (OpenSSH text)."""
    key = _paramiko().Ed25519Key.from_private_key(io.StringIO(private_key))
    if isinstance(target, Endpoint):
        try:
            target = open_socket(target, timeout=10)
        except OSError as exc:
            raise LabctlError(f"cannot reach {label} at {target.describe()}: "
                              f"{exc.strerror or exc}", "check it with 'labctl status'") from None
    return SSHTransport.over_socket(target, label, user, key, pinned_host_key, timeout)
