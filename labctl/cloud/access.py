"""Where an OpenStack VM's sshd is reached from labctl's side: its floating
IP, or -- a VM on networks with no router out -- its fixed address through
another VM of the same lab that has one and shares a network with it (the
ProxyJump path the libvirt backend's jump hosts take too)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from labctl.cloud import records
from labctl.labfiles import LabFiles
from labctl.ssh.transport import Endpoint
from labctl.virt.remote import CONNECT_SECONDS

if TYPE_CHECKING:
    from labctl.cloud.project import Cloud


def addresses(server) -> tuple[dict[str, str], str | None]:
    """(network name -> fixed address, floating address or None)."""
    fixed, floating = {}, None
    for network, entries in (server.addresses or {}).items():
        for entry in entries:
            if entry.get("OS-EXT-IPS:type") == "floating":
                floating = floating or entry["addr"]
            elif entry.get("version", 4) == 4:
                fixed.setdefault(network, entry["addr"])
    return fixed, floating


def jump_argv(key: Path, user: str, address: str, target: str) -> tuple[str, ...]:
    """OpenSSH carrying a connection to target:22 through user@address."""
    return ("ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_SECONDS}",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-W", f"{target}:22", "--", f"{user}@{address}")


def endpoint(cloud: Cloud, name: str) -> Endpoint | None:
    server = cloud.server(name)
    if server is None or server.status != "ACTIVE":
        return None
    fixed, floating = addresses(server)
    if floating:
        return Endpoint(floating, 22)
    meta = records.meta_from_server(server.metadata)
    if meta is None or not fixed:
        return None
    for other, other_meta in cloud._servers(meta.lab):
        if other.id == server.id or other.status != "ACTIVE":
            continue
        other_fixed, other_floating = addresses(other)
        shared = set(fixed) & set(other_fixed)
        if other_floating and shared:
            key = LabFiles(Path(other_meta.data_dir or "."), meta.lab).admin_key_path
            target = fixed[sorted(shared)[0]]
            # OpenSSH's ProxyJump names the other VM's own entry (an ssh_config
            # has both): its key, user and pinned host key carry the jump
            return Endpoint(target, 22, via=jump_argv(key, "labctl", other_floating, target),
                            jump=other.name)
    return None
