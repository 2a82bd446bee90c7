"""The lab registry use cases: start it for a lab on the lab's own host (and
point the lab's running VMs at it), stop it, say where it is, and push a
container's image to it."""

from __future__ import annotations

from labctl.backend import Backend
from labctl.cloud.records import is_cloud
from labctl.errors import LabctlError
from labctl.runtime.deploy import observe
from labctl.runtime.registry import PORT, LabRegistry, Registry, free_port
from labctl.usecases.containers import find_container
from labctl.usecases.session import Session


def lab_registry(session: Session, lab: str, host: Backend | None = None) -> LabRegistry:
    """The lab's registry, driven on the host the lab lives on."""
    host = host or session.lab_host(lab)
    if host.is_local or is_cloud(host.uri):  # a cloud's labs: on labctl's machine
        return LabRegistry(session.data_dir, lab)
    return LabRegistry(session.data_dir, lab, on_host=host.run, host_name=host.uri)


def registry_up(session: Session, lab: str, upstream: str | None = None) -> Registry:
    """Start the lab registry on the lab network's gateway (on a cloud: on this
    machine, at its address towards the cloud) -- with `upstream`, as
    a pull-through cache of it, so a class fetches each layer once -- and
    configure every running VM to use it (VMs created later: by `up`)."""
    with session.changing(lab, "registry up"):
        host = session.lab_host(lab)
        gateway = host.lab_gateway(lab)
        # on a cloud every lab's registry shares this machine's address: a port each
        port = free_port(gateway) if is_cloud(host.uri) else PORT
        registry = lab_registry(session, lab, host).start(gateway, upstream, port)
        for found in host.domains(lab):
            if found.active:
                with session.connect_vm(lab, found.meta.name) as transport:
                    registry.configure(transport)
        return registry


def registry_down(session: Session, lab: str) -> bool:
    with session.changing(lab, "registry down"):
        return lab_registry(session, lab).stop()


def registry_status(session: Session, lab: str) -> Registry | None:
    return lab_registry(session, lab).status()


def push(session: Session, lab: str, vm: str, container: str, as_name: str | None) -> str:
    """Publish the image a container runs to the lab registry; its new reference."""
    registry = lab_registry(session, lab).status()
    if registry is None:
        raise LabctlError(f"lab '{lab}' has no registry running",
                          f"start it with 'labctl registry up {lab}'")
    with session.connect_vm(lab, vm) as transport:
        runtime = find_container(transport, lab, vm, container)
        image = next(c.image for c in observe(transport, lab, vm) if c.name == container
                     and c.runtime == runtime.binary)
        target = f"{registry.address}/{as_name or container + ':latest'}"
        runtime.call("tag", image, target, what=f"tagging {image}")
        runtime.call("push", target, timeout=600, what=f"pushing {target}")
    return target
