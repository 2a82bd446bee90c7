"""Deploying a VM's containers over its SSH connection.

Desired (the lab file) against observed (containers whose labels say this lab
and VM, in every runtime in use): create, recreate (spec hash changed), start
(stopped), keep, or delete. The spec hash is computed on the host from the
container record and what its image is made from, so `plan` can show container
changes without touching the VM, and an unchanged container is never restarted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from labctl import interrupt
from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.lab.model import VM, Container, Lab
from labctl.plan.actions import Action
from labctl.plan.containers import LABEL, ContainerInfo, container_hash, plan_containers, run_args
from labctl.runtime.oci import OciRuntime
from labctl.runtime.sources import ImageSources, context_tar, source_digests
from labctl.shell import quote
from labctl.ssh.transport import SSHTransport

BIND_ROOT = ".labctl/binds"  # bind-mount sources, under the lab user's home






def observe(transport: SSHTransport, lab: str, vm: str,
            wanted: frozenset[str] = frozenset()) -> list[ContainerInfo]:
    """labctl's containers of this lab in the VM. docker is asked only if its
    daemon runs or the lab wants it: asking would start dockerd (~1-2 s)."""
    found = []
    for binary in ("podman", "docker"):
        if binary in wanted or _in_use(transport, binary):
            runtime = OciRuntime(binary, transport, f"VM '{vm}'")
            found += [c for c in runtime.containers(lab) if c.labels.get(f"{LABEL}.vm") == vm]
    return found


def _in_use(transport: SSHTransport, binary: str) -> bool:
    if binary == "docker":
        return transport.run("systemctl is-active --quiet docker.service").ok
    return transport.run(f"command -v {binary} >/dev/null").ok




def deploy_vm(transport: SSHTransport, lab: Lab, vm: VM, report: Report,
              fresh: bool = False) -> list[Action]:
    """Bring the VM's containers to what the lab file says. `fresh`: the VM was
    just created (a new disk, or a template's, made before any container), so
    it holds none of labctl's: none is looked for or removed first -- each
    podman call costs seconds under TCG (a 1-VM lab's up: ~6 s of 57)."""
    where = f"VM '{vm.name}'"
    for binary in sorted({c.runtime for c in vm.containers}):
        if not OciRuntime(binary, transport, where).available():
            user = next(c.name for c in vm.containers if c.runtime == binary)
            raise LabctlError(f"{where} has no {binary}: container '{user}' cannot run",
                              f"use 'runtime: {'podman' if binary == 'docker' else 'docker'}' "
                              "or an image that has it")
    observed = [] if fresh else \
        observe(transport, lab.name, vm.name, frozenset(c.runtime for c in vm.containers))
    digests = source_digests(vm, lab.directory)
    actions = plan_containers(vm, observed, digests)
    if not any(a.changes for a in actions):
        return actions
    sources = ImageSources(transport, lab.name, lab.directory, where)
    runtimes = {b: OciRuntime(b, transport, where) for b in ("podman", "docker")}
    by_name = {c.name: c for c in vm.containers}
    kinds = {(i.name, i.runtime) for i in observed}
    bind_root = _upload_binds(transport, sources, lab, vm)
    for action in actions:
        interrupt.checkpoint()  # between containers, never inside one's run
        name = action.name.split("/", 1)[1]
        start = time.monotonic()
        if action.verb == "delete":
            for binary in ("podman", "docker"):
                if (name, binary) in kinds and (name not in by_name
                                                or by_name[name].runtime != binary):
                    runtimes[binary].remove(name)
        elif action.verb in ("create", "recreate"):
            c = by_name[name]
            runtime = runtimes[c.runtime]
            ref = sources.ensure(runtime, c)
            if (name, c.runtime) in kinds:  # the old one of a recreate
                runtime.remove(name)
            args = run_args(lab.name, vm.name, c, ref, container_hash(c, digests[c.name]),
                            bind_root)
            result = runtime.run_detached(args)
            if not result.ok and not fresh and _name_taken(result.stderr + result.stdout):
                # one labctl did not see as its own (a half-made run, another
                # label): replaced, as before -- asked only when it is there
                runtime.remove(name)
                result = runtime.run_detached(args)
            if not result.ok and _smells_of_damage(result.stderr + result.stdout):
                # A power cut can leave an image listed but with files missing:
                # take it again from its source (cheap for labctl's own) and retry once.
                runtime.remove(name)
                runtime.call("rmi", "-f", ref)
                report(Event(f"vm {vm.name}", "image again", f"{ref}: the first run failed"))
                ref = sources.ensure(runtime, c)
                result = runtime.run_detached(run_args(lab.name, vm.name, c, ref,
                                                       container_hash(c, digests[c.name]),
                                                       bind_root))
            if not result.ok:
                runtime.remove(name)  # docker leaves a "created" container behind
                raise _run_error(where, c, result.stderr or result.stdout)
        elif action.verb == "start":
            runtimes[by_name[name].runtime].start(name)
        if action.changes:
            report(Event(f"vm {vm.name}", f"container {action.verb}",
                         f"{name}", time.monotonic() - start))
    # Container runtimes do not fsync their state: without this, a power cut
    # minutes later can still lose what was just deployed.
    transport.run("sync", timeout=120)
    return actions


def _upload_binds(transport: SSHTransport, sources: ImageSources, lab: Lab, vm: VM) -> str:
    """Copy every bind source of the VM's containers; return the absolute root."""
    root = f"{sources.home}/{BIND_ROOT}/{lab.name}"
    for source in sorted({v.source for c in vm.containers for v in c.volumes
                          if v.kind == "bind"}):
        local = lab.directory / source
        remote = f"{root}/{source}"
        if local.is_dir():
            data = context_tar(local)
            with tempfile.NamedTemporaryFile() as tmp:
                tmp.write(data)
                tmp.flush()
                transport.run(["mkdir", "-p", remote]).check("mkdir")
                transport.put(Path(tmp.name), f"{remote}.tar")
            transport.run(["sh", "-c", f"tar -xf {quote(remote + '.tar')} -C {quote(remote)} "
                           f"&& rm {quote(remote + '.tar')}"]).check("unpacking a bind mount")
        else:
            transport.run(["mkdir", "-p", str(Path(remote).parent)]).check("mkdir")
            transport.put(local, remote)
    return root


DAMAGE_SIGNS = ("not found in $path", "no such file or directory", "readlink", "layer")


def _name_taken(output: str) -> bool:
    # docker: 'Conflict. The container name "/web" is already in use by ...';
    # podman: 'the container name "web" is already in use by ...'
    return "is already in use" in output and "container name" in output


def _smells_of_damage(output: str) -> bool:
    lowered = output.lower()
    return any(sign in lowered for sign in DAMAGE_SIGNS)


def _run_error(where: str, c: Container, output: str) -> LabctlError:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if "rror" in line), lines[-1] if lines else "")
    if "address already in use" in output.lower() or "port is already allocated" in output:
        ports = ", ".join(str(p.host) for p in c.ports)
        return LabctlError(f"{where}, container '{c.name}': host port {ports} is already in "
                           "use in the VM", "another process or container holds it; "
                           "pick another host port")
    return LabctlError(f"{where}, container '{c.name}' did not start: {last}",
                       "see 'labctl logs' for the container, or fix its command")
