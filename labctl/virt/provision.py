"""Carrying out plan actions on libvirt: networks, and each VM's volumes,
seed and domain. Create is ordered so that every partial state is findable
and removable by metadata: volumes are named after the domain, and the domain
is defined (with its metadata) before it is started."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from labctl.backend import BaseVolumes
from labctl.events import Event, Report
from labctl.images.cache import Image
from labctl.images.seed import render_seed, seed_iso
from labctl.labfiles import LabFiles
from labctl.plan.layout import NetworkPlan, VmPlan
from labctl.plan.records import Meta
from labctl.plan.specs import VmFacts, domain_spec, network_spec, seed_spec, vm_meta
from labctl.virt import ports
from labctl.virt.access import forward_bind
from labctl.virt.connection import libvirt_errors, speaks_labctl
from labctl.virt.domain import domain_xml
from labctl.virt.network import choose_subnet, network_xml

if TYPE_CHECKING:  # Host makes its provisioners (Host.provisioner)
    from labctl.virt.host import Host


@speaks_labctl
class Provisioner:
    """Carries out one lab's plan actions on one Host."""

    def __init__(self, host: Host, files: LabFiles, report: Report,
                 templates: Path | None = None, group: str = "", copy: str = ""):
        self.host, self.storage, self.files = host, host.storage, files
        self.report, self.templates = report, templates
        self.class_meta = {"group": group, "copy": copy}  # in every object's metadata
        self.refused_ports: set[int] = set()  # host ports qemu could not bind: never again
        self.seeds: dict[str, dict[str, str]] = {}  # domain -> the seed files it was given

    def note_refused_port(self, message: str) -> int | None:
        """The host port qemu said it could not bind (another program took it
        between labctl's choice and qemu's bind), kept from then on; None if
        the failure was something else."""
        port = ports.refused_port(message)
        if port is not None:
            self.refused_ports.add(port)
        return port

    # -- networks ---------------------------------------------------------------
    def create_network(self, plan: NetworkPlan) -> None:
        with libvirt_errors(f"cannot create network '{plan.network.name}'"):
            self._create_network(plan)

    def _create_network(self, plan: NetworkPlan) -> None:
        self.remove_network(plan.libvirt_name)
        net = plan.network
        meta = Meta(self.files.lab, "network", net.name, plan.spec_hash,
                    data_dir=str(self.files.data_dir.resolve()), **self.class_meta)
        with self.host.defining_network:
            subnet = net.subnet or choose_subnet(self.host.taken_subnets())
            spec = network_spec(plan, subnet, meta)
            self.host.define_network(network_xml(spec, self.templates))
        self.report(Event(f"network {net.name}", "created", f"{net.mode} {subnet}"))

    def start_network(self, libvirt_name: str) -> None:
        self.host.start_network(libvirt_name)

    def remove_network(self, libvirt_name: str) -> bool:
        return self.host.remove_network(libvirt_name)

    # -- VMs --------------------------------------------------------------------
    def create_vm(self, plan: VmPlan, image: Image, base: BaseVolumes,
                  from_volume: str | None = None) -> None:
        """Volumes, seed, then the domain defined with metadata (not yet started).
        `from_volume`: a template's overlay to copy instead of a fresh one."""
        with libvirt_errors(f"cannot create VM '{plan.vm.name}'"):
            return self._create_vm(plan, image, base, from_volume)

    def _create_vm(self, plan: VmPlan, image: Image, base: BaseVolumes,
                   from_volume: str | None) -> None:
        vm = plan.vm
        old_port = self._current_ssh_port(plan.domain)
        self.remove_vm(plan, forget_keys=False)
        overlay = self.storage.copy(from_volume, plan.overlay) if from_volume else \
            self.storage.create_overlay(plan.overlay, base.disk, vm.disk_gib)
        host_key = self.files.host_key(plan.domain)
        seed = seed_spec(plan, self.files.login_key().public, host_key.private, host_key.public,
                         self.files.admin_key().public)
        self.seeds[plan.domain] = render_seed(seed, self.templates)
        seed_path = self.storage.upload_bytes(plan.seed, seed_iso(self.seeds[plan.domain]))
        ssh_port, published = None, []
        bind = forward_bind(self.host.uri)
        if plan.uses_user_network:  # SSH and published ports are forwarded from the host
            taken = self._ports_in_use() | self.refused_ports
            how = self.host.shell.port_check
            if how == ports.LISTED:
                taken |= self.host.shell.listening_ports()
            ssh_port = old_port if old_port and old_port not in self.refused_ports else \
                ports.pick(taken, bind, how)
            taken.add(ssh_port)
            for port in plan.published:
                chosen = port if port not in taken and ports.is_free(port, bind, how) \
                    else ports.pick(taken, bind, how)
                taken.add(chosen)
                published.append((chosen, port))
        facts = VmFacts(self.host.accel.domain_type, overlay, seed_path, base.kernel,
                        base.initrd, image.cmdline, ssh_port, tuple(published), bind,
                        restored=from_volume is not None)
        meta = vm_meta(plan, self.files.lab, facts, str(self.files.data_dir.resolve()),
                       **self.class_meta)
        self.host.define_domain(domain_xml(domain_spec(plan, facts, meta), self.templates))

    def start_vm(self, domain: str) -> None:
        self.host.start_domain(domain)

    def rendered_seed(self, domain: str) -> dict[str, str]:
        return self.seeds.get(domain, {})

    def remove_vm(self, plan_or_name: VmPlan | str, forget_keys: bool = True) -> bool:
        """Destroy, undefine, delete its volumes; true if anything existed."""
        name = plan_or_name if isinstance(plan_or_name, str) else plan_or_name.domain
        existed = self.host.remove_domain(name)
        with libvirt_errors(f"cannot remove VM {name}"):
            for volume in self.storage.names(prefix=f"{name}."):
                existed |= self.storage.delete(volume)
        if forget_keys:
            self.files.forget_host(name)
        return existed

    def _current_ssh_port(self, domain: str) -> int | None:
        for found in self.host.domains():
            if found.libvirt_name == domain:
                return found.meta.ssh_port
        return None

    def _ports_in_use(self) -> set[int]:
        ports = set()
        for found in self.host.domains():
            ports.update(host for host, _guest in found.meta.forwards)
            if found.meta.ssh_port:
                ports.add(found.meta.ssh_port)
        return ports
