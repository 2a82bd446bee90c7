"""One libvirt host, as the rest of labctl sees it.

`Host` is the seam between the use cases and libvirt: it owns the connection,
the capability probe (KVM or TCG), the labctl pool, networks, domains, their
labctl metadata, the serial console (read through libvirt's storage API, so a
host that is not this machine works the same) and the address at which the
forwarded ports of its VMs are reached. Only labctl/virt/ imports libvirt.
The test:/// driver stands behind the same class in unit tests.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from labctl.backend import BaseVolumes, Found, HostFacts, Snapshot
from labctl.errors import LabctlError
from labctl.images.cache import Image
from labctl.lock import HostStep
from labctl.plan.hosts import Accel, HostRoom
from labctl.shell import quote
from labctl.ssh.transport import Endpoint
from labctl.virt import access, agent, inventory, mapped, remote, snapshots
from labctl.virt.agent import GuestAgent
from labctl.virt.connection import (
    connect,
    is_local,
    libvirt_errors,
    probe_accel,
    speaks_labctl,
)
from labctl.virt.console import Console
from labctl.virt.hostshell import HostShell
from labctl.virt.network import host_routes
from labctl.virt.storage import Storage

if TYPE_CHECKING:
    from labctl.events import Report
    from labctl.lab.model import Lab
    from labctl.labfiles import LabFiles
    from labctl.virt.provision import Provisioner


PROBE_SECONDS = 0.05  # a libvirt call costs ~1 ms: readiness may ask as often as it probes sshd
# libvirt's domain states, in the words `status` shows.
STATES = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
          libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_CRASHED: "crashed",
          libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down"}


@speaks_labctl
class Host:
    def __init__(self, uri: str):
        self.uri = uri
        self.conn = connect(uri)  # read by labctl/virt/ only
        # One upload of a base image, shared by the copies of a class and by
        # other labctl runs at the same time, instead of racing two.
        self._uploading = HostStep(uri, "upload")
        # Choosing a free subnet and defining the network that takes it are one
        # step: two copies of a class (or two labctl runs) creating networks at
        # once picked the same one.
        self.defining_network = HostStep(uri, "network")

    def provisioner(self, files: LabFiles, report: Report, templates: Path | None = None,
                    group: str = "", copy: str = "") -> Provisioner:
        from labctl.virt.provision import Provisioner  # it drives this Host

        return Provisioner(self, files, report, templates, group, copy)

    def ensure_base(self, image: Image) -> BaseVolumes:
        """The image's base volumes in the pool, uploaded once: copies of a class
        brought up in parallel share one upload instead of racing two."""
        with self._uploading:
            return self.storage.ensure_base(image)

    @property
    def is_local(self) -> bool:
        return is_local(self.uri)

    @property
    def probe_seconds(self) -> float:
        return PROBE_SECONDS

    @cached_property
    def accel(self) -> Accel:
        return probe_accel(self.conn, self.uri)

    @cached_property
    def storage(self) -> Storage:
        return Storage(self.conn, None if self.is_local else self.shell.run)

    # -- templates (usecases/templates.py) ------------------------------------------
    @property
    def template_home(self) -> str:
        """Where this host's templates live: "" for this machine, else the
        host's URI as libvirt sees it."""
        return "" if self.is_local else remote.libvirt_uri(self.uri)

    def templates_refused(self) -> str | None:
        return self._templates_refused

    @cached_property
    def _templates_refused(self) -> str | None:
        """A remote host's templates are copied by its own shell (libvirt's
        clone drops the saved state): asked once whether labctl may write its
        pool's folder there."""
        if self.is_local:
            return None
        folder = self.storage.pool_dir()
        try:
            done = self.shell.run(f"test -d {quote(folder)} -a -w {quote(folder)}",
                                  timeout=30)
        except LabctlError as exc:
            return f"a template on another host is copied by its shell ({exc.message})"
        if done.returncode != 0:
            return (f"a template on another host is copied by its shell, which cannot write "
                    f"{folder} there")
        return None

    def forwarded(self, port: int) -> Endpoint:
        """Where a port the host forwards to a VM is reached from here."""
        return self.reach(access.forward_host(self.uri), port)

    def reach(self, address: str, port: int) -> Endpoint:
        """address:port as the host sees it, reached from here (through the
        host's sshd when it is a jump host)."""
        return access.reach(self.uri, address, port)

    # -- the host itself, beside its libvirt (virt/hostshell.py) ------------------
    @cached_property
    def shell(self) -> HostShell:
        return HostShell(self.uri)

    def run(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.shell.run(script, timeout)

    def daemon_in_root_netns(self) -> bool:
        return self.shell.daemon_in_root_netns()

    # -- the serial console (virt/console.py) ------------------------------------
    @cached_property
    def console(self) -> Console:
        return Console(self.is_local, self.storage, self._serial_log_path)

    def serial_reader(self, name: str) -> Callable[[], bytes]:
        return self.console.reader(name)

    def serial_tail(self, name: str, lines: int) -> str:
        return self.console.tail(name, lines)

    def _serial_log_path(self, name: str) -> Path | None:
        try:
            return access.serial_log_path(self._dom(name).XMLDesc(0))
        except libvirt.libvirtError:
            return None

    def close(self) -> None:
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass

    # -- what the host holds of labs ------------------------------------------------
    def domains(self, lab: str | None = None) -> list[Found]:
        return inventory.domains(self.conn, lab)

    def networks(self, lab: str | None = None) -> list[Found]:
        return inventory.networks(self.conn, lab)

    def domain(self, lab: str, vm: str) -> Found | None:
        return next((f for f in self.domains(lab) if f.meta.name == vm), None)

    def lab_names(self) -> set[str]:
        return {f.meta.lab for f in self.domains()}

    # -- one domain -------------------------------------------------------------------
    def _dom(self, name: str) -> libvirt.virDomain:
        return self.conn.lookupByName(name)

    def state(self, name: str) -> str:
        """running, stopped, paused, ...; 'missing' if there is no such domain."""
        try:
            return STATES.get(self._dom(name).state(0)[0], "other")
        except libvirt.libvirtError:
            if not self.conn.isAlive():
                raise
            return "missing"

    def is_running(self, name: str) -> bool:
        """False if it stopped or vanished; a lost libvirtd raises (nothing to wait for)."""
        return self.state(name) == "running"

    def endpoint(self, name: str) -> Endpoint | None:
        """Where its sshd is reached: a forwarded port, or its newest DHCP lease."""
        try:
            return access.endpoint(self.uri, self.conn, self._dom(name))
        except libvirt.libvirtError:
            return None

    def domain_xml(self, name: str) -> str:
        with libvirt_errors(f"cannot read VM {name}"):
            return self._dom(name).XMLDesc(0)

    def define_domain(self, xml: str) -> None:
        self.conn.defineXML(xml)

    def start_domain(self, name: str) -> None:
        with libvirt_errors(f"cannot start VM {name}"):
            dom = self._dom(name)
            if not dom.isActive():
                dom.create()

    def stop_domain(self, name: str) -> None:
        """Power it off at once (no shutdown: nothing in it needs saving)."""
        with libvirt_errors(f"cannot stop VM {name}"):
            dom = self._dom(name)
            if dom.isActive():
                dom.destroy()

    def remove_domain(self, name: str) -> bool:
        """Destroy (before undefine, or it lingers transient) and undefine."""
        try:
            dom = self._dom(name)
        except libvirt.libvirtError:
            return False
        with libvirt_errors(f"cannot remove VM {name}"):
            # its snapshots live in its overlay, which goes with it; libvirt's
            # records of them would otherwise refuse the undefine, and so would
            # a UEFI VM's NVRAM file (its firmware variables: the VM's own; the
            # test driver knows no such flag, so only when there is one)
            flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            if re.search(r"<nvram|<loader|firmware=.efi.", dom.XMLDesc(0)):
                flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(flags)
        return True

    # -- snapshots (templates and students'; virt/snapshots.py) -------------------
    def take_snapshot(self, name: str, snapshot: str, description: str = "") -> None:
        snapshots.take(self._dom(name), snapshot, description)

    def revert_snapshot(self, name: str, snapshot: str) -> None:
        snapshots.revert(self._dom(name), snapshot)

    def delete_snapshot(self, name: str, snapshot: str, metadata_only: bool = False) -> None:
        snapshots.delete(self._dom(name), snapshot, metadata_only)

    def snapshots(self, name: str) -> list[Snapshot]:
        try:
            return snapshots.listed(self._dom(name))
        except libvirt.libvirtError:
            return []

    # -- a template's memory mapped from one file (virt/mapped.py) -----------------
    def map_memory(self, name: str, ram: str, memory_mib: int) -> bool:
        """The stopped template VM's RAM in the new volume `ram`, shared; False
        where a security driver would refuse qemu the file (AppArmor, SELinux)."""
        owner = mapped.qemu_owner(self.conn.getCapabilities(), self.accel.domain_type)
        if owner is None:
            return False
        path = self.storage.create_ram(ram, memory_mib << 20, *owner)
        mapped.map_file(self.conn, self._dom(name), path, shared=True)
        return True

    def save_template(self, name: str, snapshot: str, description: str) -> None:
        """Its internal snapshot (mapped.save); the caller powers it off."""
        mapped.save(self._dom(name), snapshot, description)

    def restore_into(self, name: str, snapshot: str, ram: str = "") -> None:
        """Start the defined domain from the template's snapshot its disk holds:
        with `ram` mapped (mapped.restore), else adopted, reverted and dropped."""
        if ram:
            return mapped.restore(self.conn, self._dom(name),
                                  self.storage.link(ram, f"{name}.ram"), snapshot)
        return snapshots.restore_template(self._dom(name), snapshot)

    def resident_mib(self, name: str) -> int | None:
        """Its qemu's resident memory as libvirt reads it, less the template
        file's pages it maps unchanged (here only: mapped.file_pages_mib)."""
        try:
            rss = self._dom(name).memoryStats().get("rss")
        except libvirt.libvirtError:
            return None
        if not isinstance(rss, int) or rss <= 0:
            return None
        return rss // 1024 - (mapped.file_pages_mib(name) if self.is_local else 0)

    def guest_agent(self, name: str) -> GuestAgent | None:
        """The domain's guest agent if one answers now, else None."""
        return agent.answering(self._dom(name))

    def replug_nics(self, name: str) -> None:
        """A restored domain's bridged NICs, plugged in afresh with its own
        MACs (see snapshots.replug_nics)."""
        snapshots.replug_nics(self._dom(name))

    def domain_files(self, name: str) -> set[str]:
        """Every file the domain's XML names (disks, kernel, initrd, logs)."""
        try:
            root = ET.fromstring(self._dom(name).XMLDesc(0))
        except libvirt.libvirtError:
            return set()
        paths = {s.get("file") for s in root.iter("source") if s.get("file")}
        paths |= {s.get("path") for s in root.iter("source") if s.get("path")}
        return paths | {e.text for tag in ("kernel", "initrd") for e in root.iter(tag) if e.text}

    # -- networks -------------------------------------------------------------------
    def define_network(self, xml: str) -> None:
        self.conn.networkDefineXML(xml).create()

    def start_network(self, name: str) -> None:
        with libvirt_errors(f"cannot start network {name}"):
            net = self.conn.networkLookupByName(name)
            if not net.isActive():
                net.create()

    def remove_network(self, name: str) -> bool:
        try:
            net = self.conn.networkLookupByName(name)
        except libvirt.libvirtError:
            return False
        with libvirt_errors(f"cannot remove network {name}"):
            if net.isActive():
                net.destroy()
            net.undefine()
        return True

    def taken_subnets(self) -> list[ipaddress.IPv4Network]:
        """Subnets a new lab network must avoid: the host's routes (when local)
        and every libvirt network's."""
        taken = host_routes() if self.is_local else []
        for net in self.conn.listAllNetworks(0):
            ip = ET.fromstring(net.XMLDesc(0)).find("ip")
            if ip is not None and ip.get("address") and ip.get("netmask"):
                taken.append(ipaddress.IPv4Network(f"{ip.get('address')}/{ip.get('netmask')}",
                                                   strict=False))
        return taken

    def remove_leftovers(self, lab: str) -> list[str]:
        """The lab's volumes no VM holds any more (a run killed mid-create)."""
        leftovers = self.storage.names(prefix=f"{lab}.")
        for name in leftovers:
            self.storage.delete(name)
        return leftovers

    def lab_gateway(self, lab: str) -> str:
        """The host's address on the lab's first running nat/isolated network."""
        for found in self.networks(lab):
            xml = self.conn.networkLookupByName(found.libvirt_name).XMLDesc(0)
            ip = ET.fromstring(xml).find("ip")
            if found.active and ip is not None and ip.get("address"):
                return ip.get("address")
        raise LabctlError(f"lab '{lab}' has no running nat or isolated network for a registry",
                          "VMs on user-mode networks cannot reach the host: add a network "
                          "with 'mode: nat' (or isolated) and run 'labctl up'")

    # -- capacity and facts ---------------------------------------------------------
    @property
    def cpus(self) -> int:
        return self.conn.getInfo()[2]

    def admit(self, lab: Lab, copies: int) -> None:
        """A libvirt host has no quotas: classes place copies by its room."""

    def room(self) -> HostRoom:
        cpus = self.cpus
        memory = _mem_available_mib() if self.is_local else self.conn.getFreeMemory() >> 20
        _state, _capacity, _allocation, available = self.storage.pool.info()
        return HostRoom(memory, available >> 20, cpus)

    def facts(self) -> HostFacts:
        return HostFacts(_version(self.conn.getLibVersion()),
                         f"{self.conn.getType()} {_version(self.conn.getVersion())}",
                         self.conn.getInfo()[2])

    def domain_capabilities(self, machine: str) -> str:
        return self.conn.getDomainCapabilities(None, "x86_64", machine,
                                               self.accel.domain_type, 0)


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    return f"{major}.{rest // 1000}.{rest % 1000}"


def _mem_available_mib() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) >> 10
    return 0
