"""One contract for every transport: quoting, exit codes, stdout and stderr,
timeouts, streaming, closing. The real SSHTransport is held to it against a
private OpenSSH sshd on 127.0.0.1 (started by this test, gone after it), and
the FakeTransport the unit tests use against a local shell, so the fake
cannot drift from the real thing."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.ssh import transport as ssh
from labctl.ssh.keys import generate
from labctl.ssh.transport import Endpoint
from labctl.virt.ports import free_local_port

from .fakes import FakeTransport

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"



@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """OpenSSH's sshd in the foreground on a loopback port: a host key and the
    login key of this test only; the user is whoever runs the tests."""
    if not Path(SSHD).exists():
        pytest.fail("sshd is missing: scripts/setup installs openssh-server")
    home = tmp_path_factory.mktemp("sshd")
    home.chmod(0o755)
    host, login = generate("contract-host"), generate("contract-login")
    (home / "host_key").write_text(host.private)
    (home / "host_key").chmod(0o600)
    (home / "authorized_keys").write_text(login.public + "\n")
    (home / "authorized_keys").chmod(0o600)
    port = free_local_port()
    (home / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {home / 'host_key'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nPidFile {home / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd did not start: {proc.stderr.read()}")
            time.sleep(0.05)
    yield Endpoint("127.0.0.1", port), host.public, login.private
    proc.terminate()
    proc.wait(5)


@pytest.fixture(params=["real", "fake"])
def transport(request, sshd):
    if request.param == "fake":
        yield FakeTransport(execute=True)
        return
    endpoint, host_key, login_key = sshd
    user = os.environ.get("USER") or "root"
    with ssh.login(endpoint, "VM 'contract'", user, login_key, host_key) as real:
        yield real


def test_argument_lists_are_quoted_word_by_word(transport):
    words = ["printf", "%s|", "a b", "$HOME", "it's", "*", ""]
    assert transport.run(words).stdout == "a b|$HOME|it's|*||"


def test_a_string_is_one_shell_command_line(transport):
    assert transport.run("echo one; echo two | tr a-z A-Z").stdout == "one\nTWO\n"


def test_exit_codes_stdout_and_stderr_come_back_apart(transport):
    result = transport.run("echo out; echo err >&2; exit 7")
    assert (result.exit_status, result.stdout, result.stderr, result.ok) == (7, "out\n",
                                                                             "err\n", False)
    assert transport.run("true").ok


def test_check_names_what_failed_with_the_last_line(transport):
    with pytest.raises(LabctlError) as info:
        transport.run("echo first >&2; echo last >&2; exit 3").check("installing x")
    assert info.value.message == "installing x failed (exit 3): last"


def test_input_reaches_the_command(transport):
    assert transport.run("tr a-z A-Z", input_data=b"quiet\n").stdout == "QUIET\n"


def test_a_command_that_takes_too_long_times_out(transport):
    began = time.monotonic()
    with pytest.raises(LabctlError, match="command timed out after 1 s: sleep 30"):
        transport.run("sleep 30", timeout=1)
    assert time.monotonic() - began < 10


def test_a_command_that_prints_without_end_times_out_all_the_same(transport):
    """The timeout is the command's whole time, not a quiet spell: a guest
    that never stops printing cannot hold labctl past it."""
    began = time.monotonic()
    with pytest.raises(ssh.TimedOut, match="command timed out after 2 s"):
        transport.run("while :; do echo more; sleep 0.01; done", timeout=2)
    assert time.monotonic() - began < 8


def test_output_past_the_cap_is_refused(transport):
    with pytest.raises(ssh.TooMuchOutput, match="printed more than 1024 KiB"):
        transport.run("head -c 3000000 /dev/zero", timeout=30, max_output=1 << 20)
    assert transport.run("echo still here").stdout == "still here\n"


def test_stream_passes_output_and_the_exit_code(transport):
    out, err = io.BytesIO(), io.BytesIO()
    assert transport.stream("echo streamed; echo warn >&2; exit 4", out, err) == 4
    assert (out.getvalue(), err.getvalue()) == (b"streamed\n", b"warn\n")


def test_large_output_on_both_streams_does_not_stall(transport):
    result = transport.run("head -c 300000 /dev/zero | tr '\\0' o; "
                           "head -c 300000 /dev/zero | tr '\\0' e >&2", timeout=60)
    assert len(result.stdout) == 300000 and len(result.stderr) == 300000


def test_a_wrong_host_key_is_refused(sshd):
    endpoint, _host_key, login_key = sshd
    impostor = generate("impostor").public
    with pytest.raises(ssh.HostKeyMismatch, match="does not match the pinned one"):
        ssh.login(endpoint, "VM 'contract'", "root", login_key, impostor)


def test_an_unreachable_vm_is_one_line():
    port = free_local_port()  # nothing listens there
    with pytest.raises(LabctlError, match=f"cannot reach VM 'x' at 127.0.0.1:{port}"):
        ssh.login(Endpoint("127.0.0.1", port), "VM 'x'", "root", generate("k").private, "")


def test_a_dialogue_answers_each_line_as_it_comes(sshd):
    """converse: each line the command prints is answered on its stdin before
    it goes on (the restored VM's clock is set this way, in one command)."""
    endpoint, host_key, login_key = sshd
    user = os.environ.get("USER") or "root"
    heard = []

    def answer(line: str) -> str | None:
        heard.append(line)
        return f"answer-{len(heard)}" if line.startswith("ask") else None

    script = 'echo ask; read -r a; echo "got $a"; echo ask; read -r b; echo "got $b"'
    with ssh.login(endpoint, "VM 'contract'", user, login_key, host_key) as real:
        result = real.converse(["bash", "-c", script], answer, timeout=20)
    assert result.exit_status == 0
    assert heard == ["ask", "got answer-1", "ask", "got answer-3"]
    assert result.stdout.splitlines() == heard
