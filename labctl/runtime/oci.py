"""One adapter for both OCI CLIs. docker and podman take the same arguments for
everything labctl does; the few differences are data in QUIRKS, not subclasses.
Commands run through any transport with run(str) -> CommandResult (the VM's
SSH connection), always through labctl.shell.join, always as root via sudo -n."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any, Protocol

from labctl.errors import LabctlError
from labctl.plan.containers import DAMAGED, LABEL, ContainerInfo
from labctl.shell import join
from labctl.ssh.transport import CommandResult

RUNTIMES = ("podman", "docker")
class Transport(Protocol):
    def run(self, command: str | Sequence[str], timeout: float | None = None,
            input_data: bytes | None = None) -> CommandResult: ...


class OciRuntime:
    def __init__(self, binary: str, transport: Transport, where: str,
                 env: dict[str, str] | None = None):
        """env: variables the runtime gets past sudo (the bench's host layer
        points podman at a containers.conf)."""
        if binary not in RUNTIMES:
            raise ValueError(binary)
        self.binary, self.transport, self.where = binary, transport, where
        self.env = env or {}

    def command(self, *args: str) -> str:
        env = ["env", *(f"{k}={v}" for k, v in self.env.items())] if self.env else []
        return join(["sudo", "-n", *env, self.binary, *args])

    def call(self, *args: str, timeout: float = 300, input_data: bytes | None = None,
             what: str | None = None) -> CommandResult:
        result = self.transport.run(self.command(*args), timeout=timeout, input_data=input_data)
        if what is not None and not result.ok:
            raise LabctlError(f"{self.where}: {what} failed: {_last_line(result)}",
                              f"command: {self.binary} {' '.join(args[:4])}")
        return result

    def available(self) -> bool:
        return self.transport.run(join(["sh", "-c", f"command -v {self.binary}"])).ok

    # -- images -------------------------------------------------------------------
    def image_labels(self, ref: str) -> dict[str, str] | None:
        """Labels of a local image, or None when it is not there."""
        result = self.call("image", "inspect", ref)
        if not result.ok:
            return None
        data = json.loads(result.stdout or "[]")
        if not data:
            return None
        info = data[0]
        return (info.get("Config") or {}).get("Labels") or info.get("Labels") or {}

    def image_id(self, ref: str) -> str:
        result = self.call("image", "inspect", "--format", "{{.Id}}", ref, what="image inspect")
        return result.stdout.strip()

    def import_rootfs(self, tar_path: str, ref: str, labels: dict[str, str]) -> None:
        changes = [arg for k, v in labels.items() for arg in ("--change", f"LABEL {k}={v}")]
        self.call("import", *changes, tar_path, ref, what=f"importing image {ref}")

    def load(self, archive_path: str) -> str:
        out = self.call("load", "-i", archive_path, what="loading an image archive").stdout
        for line in out.splitlines():  # docker: "Loaded image: X", podman: "Loaded image(s): X"
            if line.startswith("Loaded image"):
                return line.split(":", 1)[1].strip().split(",")[0]
        raise LabctlError(f"{self.where}: the archive loaded no named image",
                          "save it with 'docker save NAME:TAG -o FILE'")

    def build(self, context: str, dockerfile: str, tag: str) -> None:
        self.call("build", "-t", tag, "-f", f"{context}/{dockerfile}", context, timeout=1800,
                  what=f"building {tag}")

    def pull(self, ref: str) -> bool:
        return self.call("pull", ref, timeout=300).ok

    # -- containers -----------------------------------------------------------------
    def containers(self, lab: str) -> list[ContainerInfo]:
        ids = self.call("ps", "-a", "-q", "--filter", f"label={LABEL}.lab={lab}",
                        what="listing containers").stdout.split()
        if not ids:
            return []
        result = self.call("container", "inspect", *ids)
        if result.ok:
            return [self._info(item) for item in json.loads(result.stdout)]
        # One by one: after a power cut podman's storage can lose a container's
        # layer; that container is reported "damaged" (and recreated), not fatal.
        out = []
        for cid in ids:
            one = self.call("container", "inspect", cid)
            out.append(self._info(json.loads(one.stdout)[0]) if one.ok
                       else self._damaged(cid, lab))
        return out

    def _damaged(self, cid: str, lab: str) -> ContainerInfo:
        label = (f'{{{{index .Labels "{LABEL}.vm"}}}}' if self.binary == "podman"
                 else f'{{{{.Label "{LABEL}.vm"}}}}')
        listed = self.call("ps", "-a", "--filter", f"id={cid}", "--format",
                           "{{.Names}}|" + label, what="listing a damaged container")
        name, _, vm = listed.stdout.strip().partition("|")
        return ContainerInfo(name=name, runtime=self.binary, image="", state=DAMAGED,
                             labels={f"{LABEL}.lab": lab, f"{LABEL}.vm": vm}, ports=(),
                             started_at="")

    def _info(self, item: dict[str, Any]) -> ContainerInfo:
        config = item.get("Config") or {}
        bindings = (item.get("HostConfig") or {}).get("PortBindings") or {}
        ports = tuple(f"{b.get('HostPort')}->{port}" for port, bs in sorted(bindings.items())
                      for b in (bs or []))
        state = item.get("State") or {}
        return ContainerInfo(
            name=item.get("Name", "").lstrip("/"), runtime=self.binary,
            image=config.get("Image") or item.get("ImageName", ""),
            state=state.get("Status", "unknown"), labels=config.get("Labels") or {},
            ports=ports, started_at=state.get("StartedAt", ""))

    def run_detached(self, args: Sequence[str]) -> CommandResult:
        return self.call("run", "-d", *args, timeout=600)

    def start(self, name: str) -> None:
        self.call("start", name, what=f"starting container {name}")

    def restart(self, name: str) -> None:
        self.call("restart", name, what=f"restarting container {name}")

    def remove(self, name: str) -> None:
        # -v: anonymous volumes only; named ones stay. docker's rm -f kills at
        # once; podman's waits 10 s for a process that ignores SIGTERM (a shell
        # as PID 1) unless told -t 0: the same removal, 10 s apart per container.
        now = ("-t", "0") if self.binary == "podman" else ()
        self.call("rm", "-f", *now, "-v", name)

    def logs(self, name: str, follow: bool = False) -> str:
        return self.command("logs", *(["-f"] if follow else []), name)


def _last_line(result: CommandResult) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    errors = [line for line in lines if "rror" in line]
    return (errors or lines or [f"exit status {result.exit_status}"])[-1].strip()


def installed_runtimes(wanted: Sequence[str]) -> list[str]:
    """The OCI runtimes of `wanted` installed here whose engine answers."""
    return [binary for binary in wanted if shutil.which(binary) and subprocess.run(
        [binary, "info"], capture_output=True, timeout=60).returncode == 0]
