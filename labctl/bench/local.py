"""The host layer of the bench: commands run on this machine, through the same
run/put interface as a VM's SSH connection, so the very same container
timings (measure.container_sample) run on metal and inside a VM."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from labctl.runtime.oci import OciRuntime
from labctl.shell import join
from labctl.ssh.transport import CommandResult


class LocalTransport:
    """A shell on this machine, running the guest's commands (`sudo -n podman
    ...`; scripts/setup installs sudo) with HOME set to a scratch folder."""

    def __init__(self, home: Path):
        self.home = home

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            input_data: bytes | None = None) -> CommandResult:
        text = command if isinstance(command, str) else join(command)
        env = {**os.environ, "HOME": str(self.home)}
        began = time.monotonic()
        try:
            done = subprocess.run(["sh", "-c", text], input=input_data, capture_output=True,
                                  timeout=timeout, env=env, cwd=self.home)
            status, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            status, out, err = 124, exc.stdout or b"", exc.stderr or b""
        return CommandResult(text, status, out.decode(errors="replace"),
                             err.decode(errors="replace"), time.monotonic() - began)

    def put(self, local: Path, remote: str, mode: int | None = None) -> None:
        shutil.copyfile(local, remote)
        if mode is not None:
            os.chmod(remote, mode)

    def close(self) -> None:
        pass


# For a machine that is itself a container (this project's CI machines), where
# podman's defaults fail: crun may not raise rlimits there, cannot use hybrid
# cgroups, and `ip netns exec` leaves no cgroup v1 mounts. Tried in this order,
# only when the defaults fail; the run records which one ran.
COMPAT_CONFS = {
    "runc, cgroupfs, ulimits 1024": """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
""",
    "crun, no cgroups, ulimits 1024": """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
cgroups = "disabled"
[engine]
runtime = "crun"
cgroup_manager = "cgroupfs"
""",
}


def working_runtime(binary: str, local: LocalTransport, ref: str
                    ) -> tuple[OciRuntime | None, str]:
    """A runtime that starts `ref` here, and how: "defaults", "compat (...)",
    or why it cannot (None, the runtime's last words)."""
    runtime = OciRuntime(binary, local, "this machine")
    probe = runtime.call("run", "--rm", "--network=none", ref, "true", timeout=120)
    if probe.ok:
        return runtime, "defaults"
    for n, (name, text) in enumerate(COMPAT_CONFS.items() if binary == "podman" else ()):
        conf = local.home / f"containers-{n}.conf"
        conf.write_text(text)
        compat = OciRuntime(binary, local, "this machine", env={"CONTAINERS_CONF": str(conf)})
        if compat.call("run", "--rm", "--network=none", ref, "true", timeout=120).ok:
            return compat, (f"compat containers.conf ({name}): the defaults failed here: "
                            f"{_last(probe.stderr)}")
    return None, _last(probe.stderr)


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"
