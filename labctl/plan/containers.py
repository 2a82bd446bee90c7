"""Container plans: a VM's containers in the lab file against those its
runtimes hold (labels say lab, VM and spec hash) -> create, recreate, start,
keep or delete; and the `run` arguments of each. The spec hash is the
container record and what its image is made from (its source's digest, which
the caller reads from disk: runtime/sources.source_digests), so `plan` shows
container changes without touching the VM."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from labctl.lab.model import VM, Container
from labctl.plan.actions import Action
from labctl.plan.layout import spec_hash

LABEL = "labctl"  # label prefix: labctl.lab, labctl.vm, labctl.name, labctl.spec
DAMAGED = "damaged"  # the state of a container its runtime can list but not inspect


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    runtime: str
    image: str
    state: str  # running | exited | created | ...
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[str, ...] = ()  # "8000->9000/tcp"
    started_at: str = ""

    @property
    def spec_hash(self) -> str:
        return self.labels.get(f"{LABEL}.spec", "")


def container_hash(container: Container, source_digest: str) -> str:
    """`source_digest`: what its image is made from (runtime/sources)."""
    return spec_hash(dataclasses.asdict(container), source_digest)


def run_args(lab: str, vm: str, c: Container, ref: str, digest: str, bind_root: str) -> list[str]:
    args = ["--name", c.name, "--hostname", c.name,
            "--label", f"{LABEL}.lab={lab}", "--label", f"{LABEL}.vm={vm}",
            "--label", f"{LABEL}.name={c.name}", "--label", f"{LABEL}.spec={digest}"]
    if c.restart != "no":
        args += ["--restart", c.restart]
    for p in c.ports:
        args += ["-p", f"{p.host_ip + ':' if p.host_ip else ''}{p.host}:{p.container}/{p.proto}"]
    for v in c.volumes:
        source = v.source if v.kind == "named" else f"{bind_root}/{v.source}"
        args += ["-v", f"{source}:{v.target}{':ro' if v.read_only else ''}"]
    for key, value in c.env:
        args += ["-e", f"{key}={value}"]
    return [*args, ref, *(c.command or ())]


def plan_containers(vm: VM, observed: list[ContainerInfo],
                    digests: dict[str, str]) -> list[Action]:
    """`digests`: each container's source digest, by name."""
    desired = {c.name: c for c in vm.containers}
    actions = []
    for info in observed:
        wanted = desired.get(info.name)
        if wanted is None or wanted.runtime != info.runtime:
            actions.append(Action("delete", "container", f"{vm.name}/{info.name}",
                                  f"no longer in the lab file ({info.runtime})"))
    current = {(i.name, i.runtime): i for i in observed}
    for c in vm.containers:
        info = current.get((c.name, c.runtime))
        name = f"{vm.name}/{c.name}"
        if info is None:
            actions.append(Action("create", "container", name, c.runtime))
        elif info.state == DAMAGED:
            actions.append(Action("recreate", "container", name, f"{c.runtime} lost part of "
                                  "it (the VM stopped uncleanly)"))
        elif info.spec_hash != container_hash(c, digests[c.name]):
            actions.append(Action("recreate", "container", name, "its definition changed"))
        elif info.state != "running":
            actions.append(Action("start", "container", name, f"it is {info.state}"))
        else:
            actions.append(Action("keep", "container", name, "unchanged"))
    return actions
