"""`labctl --help` from its cache: the same text typer renders, printed
without importing typer or any command module; a change to a command module
renders it anew."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = ("import sys; sys.argv = ['labctl', '--help']; from labctl.entry import main; main(); "
         "print('TYPER-LOADED' if 'typer' in sys.modules else 'TYPER-NOT-LOADED', "
         "file=sys.stderr)")


def run_help(cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=env, timeout=60)


def test_help_is_rendered_once_then_served_from_the_cache(tmp_path: Path):
    first = run_help(tmp_path)
    assert first.returncode == 0 and "TYPER-LOADED" in first.stderr
    assert "Lab lifecycle" in first.stdout and "Maintenance" in first.stdout
    second = run_help(tmp_path)
    assert second.returncode == 0 and "TYPER-NOT-LOADED" in second.stderr
    assert second.stdout == first.stdout
    assert len(list((tmp_path / "labctl" / "help").glob("*.txt"))) == 1


def test_other_commands_never_use_the_cache(tmp_path: Path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "labctl", "version"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("labctl ")
    assert not (tmp_path / "labctl").exists()


def test_plain_exec_and_ssh_forms_go_straight_to_openssh():
    from labctl.entry import _plain_ssh

    assert _plain_ssh(["exec", "hello.node", "--", "uname", "-a"]) == (
        "hello", "node", ["-T"], ["uname -a"])
    assert _plain_ssh(["exec", "hello.node", "--", "echo $HOME; id"]) == (
        "hello", "node", ["-T"], ["echo $HOME; id"])
    assert _plain_ssh(["exec", "hello.node", "true"]) == ("hello", "node", ["-T"], ["true"])
    assert _plain_ssh(["ssh", "hello-2.node"]) == ("hello-2", "node", [], [])
    for slow in (["exec", "node", "--", "true"],             # lab from the data dir: typer
                 ["exec", "hello.node/web", "--", "ls"],     # a container
                 ["exec", "hello.node", "--copy", "2", "--", "ls"],
                 ["exec", "hello.node"], ["exec", "hello.node", "--"],
                 ["ssh", "hello.node", "-L", "8000:localhost:80"],
                 ["exec", "Bad.node", "--", "true"], ["status", "hello.node"]):
        assert _plain_ssh(slow) is None, slow


def test_plain_exec_of_an_unknown_lab_is_one_line(tmp_path: Path):
    env = {**os.environ, "LABCTL_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "labctl", "exec", "nolab.node", "--", "true"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr == ("error: lab 'nolab' has no SSH configuration\n"
                             "  hint: run 'labctl up' first\n")


def test_commands_that_never_log_in_do_not_import_ssh_or_key_code(tmp_path: Path):
    """paramiko and cryptography are ~0.1 CPU s of every call
    that imports them: `status`, `down` and `plan` must not, `exec` does."""
    probe = ("import sys; from labctl.entry import main\n"
             "sys.argv = ['labctl', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('paramiko', 'cryptography') if m in sys.modules), "
             "file=sys.stderr)")
    env = {**os.environ, "LABCTL_DATA_DIR": str(tmp_path), "LABCTL_URI": "test:///default"}
    for command in (["status", "nosuch"], ["down", "nosuch"], ["plan", "nosuch.yaml"]):
        result = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True,
                                text=True, env=env, timeout=60)
        assert result.stderr.splitlines()[-1] == "[]", (command, result.stderr)
    # the probe sees them once a login is on the way
    login = probe.replace("main()", "from labctl.ssh.transport import _paramiko; _paramiko()")
    result = subprocess.run([sys.executable, "-c", login], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.stderr.rstrip().endswith("['cryptography', 'paramiko']"), result.stderr


def test_paramiko_is_preloaded_in_the_background_without_invoke():
    """A restored VM's first login finds paramiko loaded by preload(); invoke
    (~60 ms, for ssh_config's `Match exec` only) is never imported."""
    probe = ("import sys\n"
             "from labctl.ssh import transport\n"
             "loader, again = transport.preload(), transport.preload()\n"
             "loader.join(60)\n"
             "print(again, 'paramiko' in sys.modules, sys.modules.get('invoke', 'absent'))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == ["None", "True", "None"], result
