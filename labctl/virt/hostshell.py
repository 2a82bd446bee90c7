"""The host itself, beside its libvirt: a shell there (this machine, or
through OpenSSH for a remote host), the ports something listens on, how a
free port for a forward is told, and whether its libvirtd runs in the
machine's own network namespace. No libvirt here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from labctl.errors import LabctlError
from labctl.virt import ports, remote
from labctl.virt.connection import is_local


class HostShell:
    def __init__(self, uri: str):
        self.uri = uri

    @property
    def is_local(self) -> bool:
        return is_local(self.uri)

    @property
    def jumps(self) -> bool:
        """Its forwards listen on its loopback, reached through its sshd."""
        return remote.jumps(self.uri)

    def run(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A shell script on the host itself (through OpenSSH when remote)."""
        return remote.run(self.uri, script, timeout, local=self.is_local)

    @property
    def port_check(self) -> str:
        """How a free port for a forward is told here (virt/ports.py): a bind on
        this machine, a jump host's own `ss` list, another host's refusal."""
        return ports.BIND if self.is_local else ports.LISTED if self.jumps else ports.CONNECT

    def listening_ports(self) -> set[int]:
        """The TCP ports something listens on there, any address."""
        done = self.run("ss -Htln", timeout=30)
        if done.returncode != 0:
            raise LabctlError(f"cannot list the listening ports of {self.uri}: "
                              f"{done.stderr.strip() or 'ss failed'}",
                              "labctl needs 'ss' (iproute2) on a jump host")
        return ports.listening(done.stdout)

    def daemon_in_root_netns(self) -> bool:
        """True if this local host's libvirtd runs in the machine's own network
        namespace (its guests' traffic would leave through the real uplink)."""
        if not self.is_local or not self.uri.startswith("qemu"):
            return False  # a remote host's namespaces are its own; test:/// runs nothing
        root = _netns(1)
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and _read_text(proc / "comm").strip() == "libvirtd":
                if root is not None and _netns(int(proc.name)) == root:
                    return True
        return False


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None



def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


