"""The records a VM and its networks are made from: decided in plan/ (specs.py),
turned into libvirt XML and a NoCloud seed by virt/ and images/, which add
nothing of their own. Pure data; no I/O."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from labctl import __version__
from labctl.lab.model import WriteFile

# -- a VM's domain ------------------------------------------------------------

# TCG translation cache. At 128 MiB docker's work in the course VM flushed it
# ~6 times a round (each flush retranslates everything hot) and took ~61 s;
# at 512 MiB ~once, at 1 GiB (qemu's default) never and ~47 s: 512 keeps most
# of that gain for 384 MiB less a VM (docs/templates.md)
TB_CACHE_MIB = 512
# A class's copy restored from a template mostly idles beside the others: an
# idle restored VM fills ~94 MiB (its identity, readiness and logins);
# capped lower, forty of them fit a small machine (docs/templates.md)
CLASS_TB_CACHE_MIB = 64
USER_NIC_PCI_SLOT = 0x10  # q35 needs an explicit free slot for -device NICs


@dataclass(frozen=True)
class BridgedNic:
    network: str  # libvirt network name
    mac: str


@dataclass(frozen=True)
class UserNic:
    netdev: str  # the -netdev argument
    device: str  # the -device argument


@dataclass(frozen=True)
class DomainSpec:
    name: str
    domain_type: str  # kvm | qemu
    memory_mib: int
    vcpus: int
    disk: str
    seed: str
    serial_log: str
    metadata_xml: str
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    tb_cache_mib: int = TB_CACHE_MIB
    firmware: str = "bios"  # bios | efi (OVMF), for images that boot from their own disk
    bridged_nics: tuple[BridgedNic, ...] = ()
    user_nics: tuple[UserNic, ...] = ()


def user_nic(index: int, mac: str, forwards: tuple[tuple[int, int], ...],
             subnet: str | None = None, bind: str = "127.0.0.2",
             sealed: bool = False) -> UserNic:
    """qemu user-mode networking: outbound connections through the host (NAT in
    qemu), or none at all when sealed (restrict=on); only the forwarded ports,
    bound to 127.0.0.2 on the host (see virt/access.LOOPBACK; a remote host: its
    address), reach the guest."""
    netdev = [f"user,id=labctl{index}", *(["restrict=on"] if sealed else [])]
    if subnet:
        netdev.append(f"net={subnet}")
    netdev += [f"hostfwd=tcp:{bind}:{host}-:{guest}" for host, guest in forwards]
    device = (f"virtio-net-pci,netdev=labctl{index},mac={mac},"
              f"bus=pcie.0,addr={USER_NIC_PCI_SLOT + index:#x}")
    return UserNic(",".join(netdev), device)


# -- labctl's metadata in libvirt objects -------------------------------------

NS = "https://labctl.dev/xmlns/libvirt/1"
PREFIX = "labctl"


@dataclass(frozen=True)
class Meta:
    lab: str
    kind: str  # "vm" | "network"
    name: str  # the VM or network name inside the lab
    spec_hash: str = ""
    version: str = __version__
    user: str = ""  # the login user of a VM
    ssh_port: int | None = None  # user-mode networking: host port forwarded to 22
    forwards: tuple[tuple[int, int], ...] = field(default=())  # (host port, guest port)
    data_dir: str = ""  # the data dir holding its keys: `gc` leaves other data dirs' labs alone
    group: str = ""  # a copy of a class: the lab file's name (lab is then GROUP-COPY)
    copy: str = ""  # a copy of a class: its id (a student's name or 1..N)

    def to_xml(self) -> str:
        root = ET.Element(f"{PREFIX}:labctl", {f"xmlns:{PREFIX}": NS})
        for tag in ("lab", "kind", "name", "spec_hash", "version", "user", "data_dir",
                    "group", "copy"):
            if getattr(self, tag):
                ET.SubElement(root, f"{PREFIX}:{tag.replace('_', '-')}").text = getattr(self, tag)
        if self.ssh_port is not None:
            ET.SubElement(root, f"{PREFIX}:ssh-port").text = str(self.ssh_port)
        for host, guest in self.forwards:
            ET.SubElement(root, f"{PREFIX}:forward", host=str(host), guest=str(guest))
        ET.indent(root)
        return ET.tostring(root, encoding="unicode")


# -- a lab network --------------------------------------------------------------

@dataclass(frozen=True)
class DhcpHost:
    mac: str
    name: str
    ip: str


@dataclass(frozen=True)
class NetworkSpec:
    name: str  # libvirt network name
    mode: str  # nat | isolated
    subnet: ipaddress.IPv4Network
    metadata_xml: str
    hosts: tuple[DhcpHost, ...] = ()
    sealed: bool = False  # no forward, and dnsmasq asks no upstream server (no DNS leak)

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def netmask(self) -> str:
        return str(self.subnet.netmask)

    @property
    def dhcp_start(self) -> str:
        # Low addresses stay free for fixed ones (`ip:` in the lab file).
        return str(self.subnet.network_address + max(2, min(100, self.subnet.num_addresses // 2)))

    @property
    def dhcp_end(self) -> str:
        return str(self.subnet.broadcast_address - 1)


# -- a VM's cloud-init seed ------------------------------------------------------

@dataclass(frozen=True)
class SeedSpec:
    """Everything the seed templates place; decided by the caller, not the templates."""

    instance_id: str
    hostname: str
    user: str
    authorized_key: str
    host_key_private: str
    host_key_public: str
    packages: tuple[str, ...] = ()
    runcmd: tuple[str | tuple[str, ...], ...] = ()
    write_files: tuple[WriteFile, ...] = ()
    macs: tuple[str, ...] = ()  # the VM's NICs, in order: cloud-init's network config
    apt_mirror: str | None = None  # set: cloud-init keeps the sources bootcmd rewrote
    mirror_setup: str = ""  # shell (as root) pointing apt/docker/podman at the lab's mirrors
    admin_key: str = ""  # labctl's own account (lab.model.ADMIN_USER): its public key
    sudo: bool = True  # the lab user may use sudo and the docker group
    datasource: str = "NoCloud"  # where cloud-init finds it: NoCloud (a seed ISO), ConfigDrive
