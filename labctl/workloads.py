"""Use cases about the containers of a running lab: list them, find one, and
reach a port it publishes. They need no lab file: labels and metadata suffice."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.deploy import observe
from labctl.errors import LabctlError
from labctl.orchestrate import Settings, configure_registry, connect_vm
from labctl.registry import LabRegistry, Registry, lab_gateway
from labctl.runtime.oci import OciRuntime
from labctl.ssh.transport import Endpoint, SSHTransport
from labctl.virt import access, inventory
from labctl.virt.connection import connect


@dataclass(frozen=True)
class ContainerRow:
    vm: str
    name: str
    runtime: str
    image: str
    state: str
    ports: tuple[str, ...]
    started: str


def list_containers(lab: str, settings: Settings) -> list[ContainerRow]:
    settings = settings.placed(lab)
    conn = connect(settings.uri)
    rows = []
    for found in inventory.domains(conn, lab):
        if not found.active:
            continue
        transport = connect_vm(lab, found.meta.name, settings)
        try:
            for info in observe(transport, lab, found.meta.name):
                rows.append(ContainerRow(found.meta.name, info.name, info.runtime, info.image,
                                         info.state, info.ports, info.started_at[:19]))
        finally:
            transport.close()
    return sorted(rows, key=lambda r: (r.vm, r.name))


def find_container(transport: SSHTransport, lab: str, vm: str, name: str) -> OciRuntime:
    """The runtime that runs container `name` of this lab in the VM."""
    found = [c for c in observe(transport, lab, vm) if c.name == name]
    if not found:
        known = ", ".join(sorted(c.name for c in observe(transport, lab, vm))) or "none"
        raise LabctlError(f"VM '{vm}' of lab '{lab}' has no container '{name}'",
                          f"its containers: {known}")
    return OciRuntime(found[0].runtime, transport, f"VM '{vm}'")


def published_port(lab: str, vm: str, port: int, settings: Settings) -> Endpoint:
    """Where the host reaches port `port` of a VM: the 127.0.0.1 forward of a
    user-mode VM, or the VM's own address on a libvirt network."""
    settings = settings.placed(lab)
    conn = connect(settings.uri)
    found = [f for f in inventory.domains(conn, lab) if f.meta.name == vm]
    if not found:
        raise LabctlError(f"lab '{lab}' has no VM '{vm}'")
    meta = found[0].meta
    for host, guest in meta.forwards:
        if guest == port:
            return Endpoint("127.0.0.1", host)
    if meta.ssh_port is None:  # on a libvirt network: the VM's address is reachable
        endpoint = access.endpoint(conn, conn.lookupByName(found[0].libvirt_name))
        if endpoint is not None:
            return Endpoint(endpoint.host, port)
    published = ", ".join(str(g) for _h, g in meta.forwards) or "none"
    raise LabctlError(f"port {port} of VM '{vm}' is not published to the host",
                      f"published ports: {published}; publish it with 'ports:' in the lab file")


def registry_up(lab: str, settings: Settings) -> Registry:
    """Start the lab registry on the lab network's gateway and configure every
    running VM to use it (VMs created later are configured by `up`)."""
    settings = settings.placed(lab)
    conn = connect(settings.uri)
    registry = LabRegistry(settings.data_dir, lab).start(lab_gateway(conn, lab))
    for found in inventory.domains(conn, lab):
        if found.active:
            transport = connect_vm(lab, found.meta.name, settings)
            try:
                configure_registry(transport, registry.address)
            finally:
                transport.close()
    return registry


def push(lab: str, vm: str, container: str, as_name: str | None, settings: Settings) -> str:
    """Publish the image a container runs to the lab registry; its new reference."""
    registry = LabRegistry(settings.data_dir, lab).status()
    if registry is None:
        raise LabctlError(f"lab '{lab}' has no registry running",
                          f"start it with 'labctl registry up {lab}'")
    transport = connect_vm(lab, vm, settings)
    try:
        runtime = find_container(transport, lab, vm, container)
        image = next(c.image for c in observe(transport, lab, vm) if c.name == container
                     and c.runtime == runtime.binary)
        target = f"{registry.address}/{as_name or container + ':latest'}"
        runtime.call("tag", image, target, what=f"tagging {image}")
        runtime.call("push", target, timeout=600, what=f"pushing {target}")
    finally:
        transport.close()
    return target
