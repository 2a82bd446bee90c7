"""Use cases about the containers of a running lab: list them, find one, and
reach a port it publishes. They need no lab file: labels and metadata suffice."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import LabctlError
from labctl.runtime.deploy import observe
from labctl.runtime.oci import OciRuntime
from labctl.ssh.transport import Endpoint, SSHTransport
from labctl.usecases import fanout
from labctl.usecases.session import Session


@dataclass(frozen=True)
class ContainerRow:
    vm: str
    name: str
    runtime: str
    image: str
    state: str
    ports: tuple[str, ...]
    started: str


def list_containers(session: Session, lab: str) -> list[ContainerRow]:
    rows = []
    for found in session.lab_host(lab).domains(lab):
        if not found.active:
            continue
        with session.connect_vm(lab, found.meta.name) as transport:
            for info in observe(transport, lab, found.meta.name):
                rows.append(ContainerRow(found.meta.name, info.name, info.runtime, info.image,
                                         info.state, info.ports, info.started_at[:19]))
    return sorted(rows, key=lambda r: (r.vm, r.name))


def containers_of_copies(session: Session, names: list[str]) -> list[tuple[str, ContainerRow]]:
    """`ps --all-copies`: each copy's rows, the copies asked side by side."""
    each = fanout.per_copy(session, names, lambda name: list_containers(session, name))
    return [(name, row) for name, rows in zip(names, each, strict=True) for row in rows]


def find_container(transport: SSHTransport, lab: str, vm: str, name: str) -> OciRuntime:
    """The runtime that runs container `name` of this lab in the VM."""
    found = [c for c in observe(transport, lab, vm) if c.name == name]
    if not found:
        known = ", ".join(sorted(c.name for c in observe(transport, lab, vm))) or "none"
        raise LabctlError(f"VM '{vm}' of lab '{lab}' has no container '{name}'",
                          f"its containers: {known}")
    return OciRuntime(found[0].runtime, transport, f"VM '{vm}'")


def restart(session: Session, lab: str, vm: str, container: str) -> None:
    with session.connect_vm(lab, vm) as transport:
        find_container(transport, lab, vm, container).restart(container)


def published_port(session: Session, lab: str, vm: str, port: int) -> Endpoint:
    """Where this machine reaches port `port` of a VM: the forward of a
    user-mode VM (at its host's address), or the VM's own address on a
    libvirt network."""
    host = session.lab_host(lab)
    found = host.domain(lab, vm)
    if found is None:
        raise LabctlError(f"lab '{lab}' has no VM '{vm}'")
    meta = found.meta
    for forwarded, guest in meta.forwards:
        if guest == port:
            return host.forwarded(forwarded)
    if meta.ssh_port is None:  # on a libvirt network: the VM's address is reachable
        endpoint = host.endpoint(found.libvirt_name)
        if endpoint is not None:
            return host.reach(endpoint.host, port)
    published = ", ".join(str(g) for _h, g in meta.forwards) or "none"
    raise LabctlError(f"port {port} of VM '{vm}' is not published to the host",
                      f"published ports: {published}; publish it with 'ports:' in the lab file")
