"""The use cases of one lab: plan, up (and reset), down, status. They wire the
plan, a Backend and the VMs' SSH together on a Session, take the lab's lock when
they change it, report progress as Events and return results; never print."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from labctl import interrupt, shell
from labctl.backend import Found
from labctl.events import Event
from labctl.fileio import read_json
from labctl.lab.model import Lab
from labctl.plan import actions as planner
from labctl.plan.containers import plan_containers
from labctl.runtime.deploy import observe
from labctl.runtime.sources import source_digests
from labctl.usecases import snapshots, values
from labctl.usecases.bringup import (
    UpResult,
    bring_up_lab,
    layout_for,
    observe_lab,
)
from labctl.usecases.registry import lab_registry
from labctl.usecases.session import Session


def plan(session: Session, lab: Lab) -> list[planner.Action]:
    """VM and network actions, then container actions: observed over SSH in VMs
    that will be kept; in VMs about to be (re)created every container is new."""
    host = session.lab_host(lab.name)
    actions = planner.plan(layout_for(session, lab), observe_lab(host, session.files(lab.name)))
    verbs = {a.name: a.verb for a in actions if a.kind == "vm"}
    for vm in lab.vms:
        observed = []
        if verbs.get(vm.name) == "keep":
            with session.connect_vm(lab.name, vm.name) as transport:
                observed = observe(transport, lab.name, vm.name,
                                   frozenset(c.runtime for c in vm.containers))
        actions += plan_containers(vm, observed, source_digests(vm, lab.directory))
    return actions


def up(session: Session, lab: Lab, reset: frozenset[str] = frozenset(),
       uri: str | None = None) -> UpResult:
    """Bring the lab to its file, under its lock; VMs named in `reset` go back
    to their post-`up` state (their reset point, or recreated: see
    resetpoints.py), and running VMs it does not name are left alone.
    `uri`: the host a class placed this copy on (default: the host the lab
    was placed on, else the session's -- a lab never gets a twin elsewhere)."""
    lab = values.own(session.data_dir, lab)
    with session.changing(lab.name, "reset" if reset else "up"):
        return bring_up_lab(session, lab, reset, session.host(uri or session.placed_uri(lab.name)))


@dataclass(frozen=True)
class DownResult:
    lab: str
    domains: list[str]
    networks: list[str]
    volumes: list[str]
    files: bool

    @property
    def removed_anything(self) -> bool:
        return bool(self.domains or self.networks or self.volumes or self.files)


def down(session: Session, lab_name: str) -> DownResult:
    """Remove everything of the lab that its host and the data dir hold, under
    its lock; found by metadata and the 'LAB.' prefix: no lab file needed."""
    with session.changing(lab_name, "down"):
        return _down(session, lab_name)


def _down(session: Session, lab_name: str) -> DownResult:
    report = session.report
    host = session.lab_host(lab_name)
    files = session.files(lab_name)
    prov = host.provisioner(files, report)
    domains = [f.libvirt_name for f in host.domains(lab_name)]
    _stop_point(lab_name)

    def destroy(name: str) -> None:
        report(Event(f"vm {name}", "remove", "destroy, undefine, delete volumes"))
        host.remove_domain(name)

    # Domains all at once (each mostly waits on its qemu to exit); then the
    # volumes one by one (a pool is refreshed and changed by one caller at a time).
    with ThreadPoolExecutor(max_workers=max(1, min(len(domains), 8))) as pool:
        list(pool.map(destroy, domains))
    for name in domains:  # the lab dir goes as a whole below: host keys with it
        prov.remove_vm(name, forget_keys=False)
    networks = [f.libvirt_name for f in host.networks(lab_name)]
    for name in networks:
        _stop_point(lab_name)
        report(Event(f"network {name}", "remove"))
        prov.remove_network(name)
    leftovers = host.remove_leftovers(lab_name)  # from a run killed mid-create, and the rest
    _stop_point(lab_name)
    if lab_registry(session, lab_name, host).stop():
        report(Event(f"lab {lab_name}", "registry", "stopped and deleted"))
    return DownResult(lab_name, domains, networks, leftovers, files.remove())


def _stop_point(lab_name: str) -> None:
    if interrupt.requested():
        raise interrupt.Interrupted(f"interrupted: lab '{lab_name}' is partly removed",
                                    f"'labctl down {lab_name}' again finishes removing it")


@dataclass(frozen=True)
class VmStatus:
    name: str
    domain: str
    state: str
    endpoint: str | None
    user: str
    stages: dict[str, float]
    detection_lag: float | None
    uptime: float | None  # seconds since labctl last started it
    snapshots: tuple[str, ...] = ()  # its students' snapshots, oldest first
    jump: str = ""  # its endpoint is reached through this host's sshd (ProxyJump)
    proxy: str = ""  # the OpenSSH command labctl goes through it with (ProxyCommand)


def status(session: Session, lab_name: str,
           listed: dict[str, list[Found]] | None = None) -> list[VmStatus]:
    """`listed`: host URI -> every domain it holds, listed once by a caller
    that asks about many labs (the dashboard: 40 copies each listing all the
    host's domains made its view quadratic)."""
    host = session.lab_host(lab_name)
    readiness = read_json(session.files(lab_name).dir / "readiness.json")
    out = []
    if listed is not None and host.uri not in listed:
        listed[host.uri] = host.domains()
    found_here = [f for f in listed[host.uri] if f.meta.lab == lab_name] \
        if listed is not None else host.domains(lab_name)
    for found in found_here:
        state = host.state(found.libvirt_name)
        endpoint = host.endpoint(found.libvirt_name) if state == "running" else None
        seen = readiness.get(found.meta.name, {})
        started = seen.get("started_at")
        out.append(VmStatus(found.meta.name, found.libvirt_name, state,
                            str(endpoint) if endpoint else None, found.meta.user,
                            seen.get("stages", {}), seen.get("detection_lag"),
                            time.time() - started if started and state == "running" else None,
                            tuple(s.name for s in snapshots.students(
                                host.snapshots(found.libvirt_name))),
                            endpoint.jump if endpoint else "",
                            shell.join(endpoint.via) if endpoint and endpoint.via else ""))
    return out
