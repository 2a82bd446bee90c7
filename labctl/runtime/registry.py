"""The lab registry: a real OCI registry (Debian's docker-registry, i.e. CNCF
distribution) run by labctl for one lab on the libvirt host its VMs live on (this machine,
or a remote host through its sshd), bound only to the gateway address of the
lab's own libvirt network, so its VMs reach it and nothing else does. VMs on
user-mode networks cannot reach the host (restrict=on), so a lab needs a nat or
isolated network to have a registry."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labctl import shell
from labctl.datadir import ensure
from labctl.errors import LabctlError
from labctl.fileio import write_atomic
from labctl.plan.mirrors import mirror_config_commands
from labctl.ssh.transport import SSHTransport

PORT = 5000
START_SECONDS = 15
CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {address}
{proxy}"""
# CNCF distribution's pull-through cache: every layer is fetched from the
# upstream once, then served to every VM of the class from here.
PROXY = """proxy:
  remoteurl: {upstream}
"""


def free_port(bind_ip: str) -> int:
    """A port free on this machine's bind_ip now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((bind_ip, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Registry:
    lab: str
    address: str  # host:port as the VMs see it
    pid: int  # on the host it runs on
    upstream: str | None = None  # a pull-through cache of this registry
    host: str = ""  # the libvirt host it runs on, when that is not this machine

    def configure(self, transport: SSHTransport) -> None:
        """Point the VM at it: a cache serves Docker Hub names as a mirror; a
        plain lab registry is one the VM may pull from and push to over HTTP."""
        if self.upstream:
            command = mirror_config_commands(self.address, None)
            transport.run(["sudo", "-n", "sh", "-c", command]).check(
                f"{transport.label}: configuring the class registry cache")
        configure_registry(transport, self.address)


# Runs a shell script on the lab's host (None: the host is this machine).
HostShell = Callable[[str, float], "subprocess.CompletedProcess[str]"]
# Where a remote host keeps a lab's registry (its storage, config, log, pid).
REMOTE_DIR = '"${{XDG_DATA_HOME:-$HOME/.local/share}}/labctl/registry/"{lab}'


class LabRegistry:
    """One lab's registry, run on the host the lab's VMs live on (they reach it
    at their network's gateway). What runs where is recorded here, in the
    data dir; a remote host is driven through `on_host`."""

    def __init__(self, data_dir: Path, lab: str, on_host: HostShell | None = None,
                 host_name: str = ""):
        self.lab = lab
        self.dir = data_dir / "registry" / lab
        self.on_host = on_host
        self.host_name = host_name

    def status(self) -> Registry | None:
        try:
            pid = int((self.dir / "pid").read_text())
            address = (self.dir / "address").read_text().strip()
        except (OSError, ValueError):
            return None
        remote = _read(self.dir / "host")
        if not (self._remote_alive(pid) if remote else _alive(pid)):
            return None
        return Registry(self.lab, address, pid, _read(self.dir / "upstream") or None, remote)

    def start(self, bind_ip: str, upstream: str | None = None, port: int = PORT) -> Registry:
        """Serve on bind_ip:port; with `upstream` as a pull-through cache of it."""
        running = self.status()
        if running is not None:
            return running
        address = f"{bind_ip}:{port}"
        proxy = PROXY.format(upstream=upstream) if upstream else ""
        ensure(self.dir)
        write_atomic(self.dir / "host", self.host_name if self.on_host else "")
        write_atomic(self.dir / "address", address)
        write_atomic(self.dir / "upstream", upstream or "")
        if self.on_host is not None:
            pid = self._start_remote(bind_ip, proxy)
        else:
            pid = self._start_local(address, proxy)
        write_atomic(self.dir / "pid", str(pid))
        return Registry(self.lab, address, pid, upstream, self.host_name if self.on_host else "")

    def _start_local(self, address: str, proxy: str) -> int:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise LabctlError("docker-registry is not installed",
                              "install the Debian package docker-registry (scripts/setup does)")
        (self.dir / "config.yml").write_text(CONFIG.format(storage=self.dir / "storage",
                                                           address=address, proxy=proxy))
        log = (self.dir / "registry.log").open("ab")
        process = subprocess.Popen([binary, "serve", str(self.dir / "config.yml")],
                                   stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # outlives this command
        write_atomic(self.dir / "pid", str(process.pid))
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabctlError(f"the lab registry exited at start (status "
                                  f"{process.returncode})", f"see {self.dir / 'registry.log'}")
            if _answers(address):
                return process.pid
            time.sleep(0.1)
        self.stop()
        raise LabctlError(f"the lab registry did not answer on {address} within "
                          f"{START_SECONDS} s", f"see {self.dir / 'registry.log'}")

    def _start_remote(self, bind_ip: str, proxy: str) -> int:
        """Start it on the host and wait there until it answers: one round trip."""
        config = CONFIG.format(storage="@STORAGE@", address=f"{bind_ip}:{PORT}", proxy=proxy)
        answers = shell.quote(f"exec 3<>/dev/tcp/{bind_ip}/{PORT}")
        script = f"""set -e
command -v docker-registry >/dev/null 2>&1 || \
  {{ echo 'docker-registry is not installed there' >&2; exit 3; }}
d={self._remote_dir()}
mkdir -p "$d/storage"
printf '%s' {shell.quote(config)} | sed "s#@STORAGE@#$d/storage#" > "$d/config.yml"
setsid docker-registry serve "$d/config.yml" >>"$d/registry.log" 2>&1 </dev/null &
pid=$!
echo "$pid" > "$d/pid"
i=0
while [ $i -lt {START_SECONDS * 10} ]; do
  kill -0 $pid 2>/dev/null || {{ tail -n 3 "$d/registry.log" >&2; rm -rf "$d"; exit 4; }}
  # the answer must be ours: a registry that could not bind exits at once
  if bash -c {answers} 2>/dev/null && sleep 0.2 && kill -0 $pid 2>/dev/null; then
    echo "$pid"; exit 0
  fi
  sleep 0.1; i=$((i+1))
done
kill $pid; rm -rf "$d"; exit 5
"""
        done = self.on_host(script, START_SECONDS + 30)
        if done.returncode != 0 or not done.stdout.strip().isdigit():
            shutil.rmtree(self.dir, ignore_errors=True)
            why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            hint = "install the Debian package docker-registry on that host" \
                if done.returncode == 3 else \
                f"is the lab's network up there? ('labctl status {self.lab}')"
            raise LabctlError(f"the lab registry did not start on host {self.host_name}: {why}",
                              hint)
        return int(done.stdout.strip())

    def _remote_dir(self) -> str:
        """The lab's registry directory on the remote host, as shell words."""
        return REMOTE_DIR.format(lab=shell.quote(self.lab))

    def _remote_alive(self, pid: int) -> bool:
        if self.on_host is None:
            return True  # recorded elsewhere and no way to ask here: say what is recorded
        done = self.on_host(f"grep -q docker-registry /proc/{pid}/cmdline 2>/dev/null", 30)
        return done.returncode == 0

    def stop(self) -> bool:
        """Stop it and delete its storage; true if there was anything."""
        running = self.status()
        remote = _read(self.dir / "host")
        if running is not None and remote and self.on_host is None:
            raise LabctlError(f"the registry of lab '{self.lab}' runs on {remote}",
                              "stop it through that host ('labctl registry down')")
        if running is not None and remote:
            self.on_host(f"kill {running.pid}; for i in $(seq 50); do "
                         f"kill -0 {running.pid} 2>/dev/null || break; sleep 0.1; done; "
                         f"rm -rf {self._remote_dir()}", 30)
        elif running is not None:
            os.kill(running.pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(running.pid):
                    break
                time.sleep(0.1)
        existed = self.dir.exists()
        shutil.rmtree(self.dir, ignore_errors=True)
        return existed or running is not None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie of ours (the registry exited) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=1) as response:
            return response.status == 200
    except (TimeoutError, OSError):
        return False


def guest_config_commands(address: str) -> str:
    """Shell (run as root in a VM) that lets podman and docker use the lab
    registry over plain HTTP; restarts dockerd only if its config changed."""
    podman = f'[[registry]]\nlocation = "{address}"\ninsecure = true\n'
    docker = f'{{"insecure-registries": ["{address}"]}}\n'
    return (
        "set -e; mkdir -p /etc/containers/registries.conf.d /etc/docker; "
        f"printf %s '{podman}' > /etc/containers/registries.conf.d/50-labctl.conf; "
        f"if [ \"$(cat /etc/docker/daemon.json 2>/dev/null)\" != '{docker.strip()}' ]; then "
        f"printf %s '{docker}' > /etc/docker/daemon.json; "
        "if systemctl is-active --quiet docker.service; then systemctl restart docker.service; "
        "fi; fi")


def configure_registry(transport: SSHTransport, address: str) -> None:
    """Let the VM's podman and docker use the lab registry over plain HTTP."""
    transport.run(["sudo", "-n", "sh", "-c", guest_config_commands(address)]).check(
        f"{transport.label}: configuring the lab registry")
