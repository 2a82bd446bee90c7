"""A lab's local files under DATA_DIR/labs/LAB/: the login key, each VM's
pinned host key, and the OpenSSH known_hosts and config that use them.
The directory is 0700 and private keys 0600; `down` removes it whole."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from labctl.datadir import ensure
from labctl.fileio import read_json, write_atomic
from labctl.ssh import keys
from labctl.ssh.keys import KeyPair


@dataclass(frozen=True)
class SshEntry:
    alias: str  # Host alias and HostKeyAlias: the libvirt domain name
    host: str
    port: int
    user: str
    jump: str = ""  # USER@HOST[:PORT] to jump through (ProxyJump), if any
    proxy_command: str = ""  # labctl's own way through that jump host


class LabFiles:
    _progress_lock = threading.Lock()  # VMs of a lab report from several threads
    def __init__(self, data_dir: Path, lab: str):
        self.data_dir = data_dir
        self.dir = data_dir / "labs" / lab
        self.lab = lab

    @property
    def login_key_path(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        return self.dir / "ssh_config"

    # Where the lab lives, and for a copy its class: {"uri", "group", "copy"}.
    # Commands follow a copy to its host with it; --all-copies finds copies by it.
    PLACEMENT = "placement.json"

    def placement(self) -> dict:
        return read_json(self.dir / self.PLACEMENT)

    def record_placement(self, uri: str, group: str = "", copy: str = "",
                         source: str = "") -> None:
        """Where the lab lives, its class and copy, and the lab file it came
        from (the dashboard resets and checks from it)."""
        ensure(self.dir)
        write_atomic(self.dir / self.PLACEMENT, json.dumps(
            {"uri": uri, "group": group, "copy": copy, "source": source}))

    def record_values(self, values: dict) -> None:
        """The copy's own per-copy values, for the instructor's views (0600)."""
        ensure(self.dir)
        write_atomic(self.dir / "values.json", json.dumps(values))

    def own_values(self) -> dict:
        return read_json(self.dir / "values.json")

    def record_progress(self, vm: str, stage: str, detail: str) -> None:
        """The latest stage of each VM while `up` runs, for live views."""
        ensure(self.dir)
        path = self.dir / "progress.json"
        with self._progress_lock:
            try:
                seen = json.loads(path.read_text())
            except (OSError, ValueError):
                seen = {}
            seen[vm] = {"stage": stage, "detail": detail[:120], "at": time.time()}
            write_atomic(path, json.dumps(seen))

    def progress(self) -> dict:
        try:
            return json.loads((self.dir / "progress.json").read_text())
        except (OSError, ValueError):
            return {}

    def login_key(self) -> KeyPair:
        ensure(self.dir)
        return keys.load_or_create(self.login_key_path, f"labctl-{self.lab}")

    @property
    def admin_key_path(self) -> Path:
        return self.dir / "labctl_ed25519"

    def admin_key(self) -> KeyPair:
        """labctl's own account's key (checks, readiness, deploys): never in a
        hand-out, so a student cannot log in as labctl nor lock it out."""
        ensure(self.dir)
        return keys.load_or_create(self.admin_key_path, f"labctl-admin-{self.lab}")

    def host_key(self, alias: str) -> KeyPair:
        ensure(self.dir / "hostkeys")
        return keys.load_or_create(self.dir / "hostkeys" / alias, f"root@{alias}")

    def pinned_host_key(self, alias: str) -> str | None:
        pub = self.dir / "hostkeys" / f"{alias}.pub"
        return pub.read_text().strip() if pub.exists() else None

    def forget_host(self, alias: str) -> None:
        for path in (self.dir / "hostkeys" / alias, self.dir / "hostkeys" / f"{alias}.pub"):
            path.unlink(missing_ok=True)

    def write_ssh_files(self, entries: list[SshEntry]) -> Path:
        """known_hosts pins each VM's key under its alias (so it survives a new
        port or address); ssh_config is usable as is: ssh -F PATH ALIAS."""
        ensure(self.dir)
        write_atomic(self.known_hosts_path, self.known_hosts_text(entries))
        write_atomic(self.ssh_config_path, ssh_config_text(
            entries, self.login_key_path, self.known_hosts_path,
            f"# labctl lab '{self.lab}': ssh -F {self.ssh_config_path} NAME"))
        return self.ssh_config_path

    def known_hosts_text(self, entries: list[SshEntry]) -> str:
        lines = []
        for e in sorted(entries, key=lambda e: e.alias):
            key = self.pinned_host_key(e.alias)
            if key:
                lines.append(f"{e.alias} {' '.join(key.split()[:2])}\n")
        return "".join(lines)

    def remove(self) -> bool:
        if self.dir.exists():
            shutil.rmtree(self.dir)
            return True
        return False


# A VM whose host died answers nothing: without this, `labctl exec`, `ssh` and
# a student's hand-out wait out TCP's own timeout (about two minutes).
SSH_CONNECT_SECONDS = 10


def _through(entry: SshEntry, jump: str | None) -> str:
    """How OpenSSH gets to the VM when not straight: a jump given for every
    entry (students' hand-outs), labctl's own command, or the entry's jump."""
    if jump or (entry.jump and not entry.proxy_command):
        return f"  ProxyJump {jump or entry.jump}\n"
    if entry.proxy_command:
        return f"  ProxyCommand {entry.proxy_command}\n"
    return ""


def ssh_config_text(entries: list[SshEntry], identity: Path | str, known_hosts: Path | str,
                    header: str, jump: str | None = None) -> str:
    config = [header + "\n"]
    for e in sorted(entries, key=lambda e: e.alias):
        config.append(
            f"Host {e.alias}\n  HostName {e.host}\n  Port {e.port}\n  User {e.user}\n"
            f"  IdentityFile {identity}\n  IdentitiesOnly yes\n"
            f"  HostKeyAlias {e.alias}\n  UserKnownHostsFile {known_hosts}\n"
            "  StrictHostKeyChecking yes\n  PasswordAuthentication no\n"
            f"  ConnectTimeout {SSH_CONNECT_SECONDS}\n"
            + _through(e, jump) + "  LogLevel ERROR\n\n")
    return "".join(config)
