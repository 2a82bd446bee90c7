"""Domain XML for a lab VM: DomainSpec holds every value the template places;
this module decides them (names, MACs, NICs, TCG cache) from the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labctl.render import render

TB_CACHE_MIB = 128  # TCG translation cache: ~400 MiB per guest instead of 1 GiB+
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


def domain_xml(spec: DomainSpec, templates: Path | None = None) -> str:
    return render("domain.xml.j2", templates, d=spec)
