"""The lab registry runs on the host the lab lives on: driven there by a shell
script (through the host's sshd in real use; here a local shell with its own
HOME stands in for the host), recorded here, never killed here."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.runtime.registry import LabRegistry

ADDRESS = "127.0.0.3"  # a loopback address of its own: port 5000 may be taken on 127.0.0.1


def shell_on(home: Path, path: str | None = None):
    env = {"HOME": str(home), "PATH": path or os.environ["PATH"]}

    def run(script: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    return run


def test_a_registry_started_on_the_labs_host_runs_there_and_stops_there(tmp_path: Path):
    home, data = tmp_path / "host-home", tmp_path / "data"
    home.mkdir()
    registry = LabRegistry(data, "course-c1", shell_on(home), "qemu+ssh://root@h2/system")
    started = registry.start(ADDRESS)
    try:
        assert started.host == "qemu+ssh://root@h2/system" and started.address == f"{ADDRESS}:5000"
        with urllib.request.urlopen(f"http://{ADDRESS}:5000/v2/", timeout=5) as answer:
            assert answer.status == 200
        there = home / ".local/share/labctl/registry/course-c1"
        assert (there / "config.yml").read_text().count(str(there / "storage")) == 1
        assert registry.status() == started
        assert registry.start(ADDRESS) == started  # already running: the same one
        with pytest.raises(LabctlError, match="runs on qemu\\+ssh://root@h2/system"):
            LabRegistry(data, "course-c1").stop()  # a pid of another host is never killed here
    finally:
        assert registry.stop()
    assert not there.exists() and not (data / "registry" / "course-c1").exists()
    assert not os.path.exists(f"/proc/{started.pid}") or \
        "docker-registry" not in Path(f"/proc/{started.pid}/cmdline").read_text()
    assert registry.status() is None and not registry.stop()


def test_a_host_without_the_registry_says_so_in_one_line_and_keeps_nothing(tmp_path: Path):
    home, tools = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    tools.mkdir()
    for tool in ("sh", "mkdir", "sed", "setsid", "bash", "cat", "rm", "tail", "sleep"):
        (tools / tool).symlink_to(shutil.which(tool))  # all a host has, but the registry
    registry = LabRegistry(tmp_path / "data", "lab", shell_on(home, str(tools)), "h")
    with pytest.raises(LabctlError) as info:
        registry.start(ADDRESS)
    assert info.value.message == \
        "the lab registry did not start on host h: docker-registry is not installed there"
    assert "install the Debian package docker-registry" in info.value.hint
    assert not (tmp_path / "data" / "registry" / "lab").exists()


def test_another_program_answering_on_the_address_is_not_taken_for_the_registry(tmp_path: Path):
    import socket

    home = tmp_path / "home"
    home.mkdir()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((ADDRESS, 5000))
        squatter.listen()
        registry = LabRegistry(tmp_path / "data", "lab", shell_on(home), "h")
        with pytest.raises(LabctlError, match="did not start on host h"):
            registry.start(ADDRESS)
    assert registry.status() is None
    assert not (home / ".local/share/labctl/registry/lab").exists()
