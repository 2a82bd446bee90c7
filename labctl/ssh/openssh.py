"""Handing a session over to OpenSSH with the lab's own ssh_config (pinned
host keys, the lab's key): what `labctl ssh` and `labctl exec VM` become.
Imports nothing heavy: the console script reaches it without typer."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from labctl.errors import LabctlError


def ssh_config_path(data_dir: Path, lab: str) -> Path:
    path = data_dir / "labs" / lab / "ssh_config"
    if not path.exists():
        raise LabctlError(f"lab '{lab}' has no SSH configuration", "run 'labctl up' first")
    return path


def exec_ssh(data_dir: Path, lab: str, vm: str, options: list[str], command: list[str]) -> None:
    """Become OpenSSH, logged in to the VM: its exit code and output are ours."""
    config = ssh_config_path(data_dir, lab)
    if f"Host {lab}.{vm}\n" not in config.read_text():
        raise LabctlError(f"lab '{lab}' has no VM '{vm}' that labctl can reach",
                          f"'labctl status {lab}' lists its VMs")
    if shutil.which("ssh") is None:
        raise LabctlError("OpenSSH's ssh is not installed", "install openssh-client")
    sys.stdout.flush()
    os.execvp("ssh", ["ssh", "-F", str(config), *options, f"{lab}.{vm}", *command])
