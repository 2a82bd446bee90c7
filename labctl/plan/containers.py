"""Container plans: a VM's containers in the lab file against those its
runtimes hold (labels say lab, VM and spec hash) -> create, recreate, start,
keep or delete; and the `run` arguments of each. The spec hash is computed on
the host from the container record and what its image is made from, so `plan`
shows container changes without touching the VM."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from labctl.lab.model import VM, Container
from labctl.plan.actions import Action
from labctl.plan.layout import spec_hash
from labctl.runtime.oci import DAMAGED, LABEL, ContainerInfo
from labctl.runtime.sources import source_digest


def container_hash(container: Container, lab_dir: Path) -> str:
    return spec_hash(dataclasses.asdict(container), source_digest(container, lab_dir))


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


def plan_containers(vm: VM, observed: list[ContainerInfo], lab_dir: Path) -> list[Action]:
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
        elif info.spec_hash != container_hash(c, lab_dir):
            actions.append(Action("recreate", "container", name, "its definition changed"))
        elif info.state != "running":
            actions.append(Action("start", "container", name, f"it is {info.state}"))
        else:
            actions.append(Action("keep", "container", name, "unchanged"))
    return actions
