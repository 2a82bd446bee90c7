"""Admission control for a class: before anything is created, do the copies
fit the host's RAM and the pool's disk, and how many may boot at once?

Per VM, qemu needs more than the guest's RAM: under TCG the translation cache
(capped at 128 MiB by the domain XML) plus qemu itself, measured at ~330 MiB
RSS beyond the guest's touched memory on this project's CI host; with KVM
~100 MiB. Disk per VM is its overlay after first boot and a few containers
(~250 MiB measured) plus seed and serial log. Booting is CPU-bound: under TCG
one VM per core boots at full speed, with KVM four per core."""

from __future__ import annotations

import os
from dataclasses import dataclass

import libvirt

from labctl.errors import LabctlError
from labctl.model import Lab
from labctl.virt.connection import Accel, is_local
from labctl.virt.storage import Storage

QEMU_OVERHEAD_MIB = {"qemu": 330, "kvm": 100}
DISK_PER_VM_MIB = 300
BOOTS_PER_CORE = {"qemu": 1, "kvm": 4}
HEADROOM = 0.9  # leave a tenth of the free RAM and disk to the host


@dataclass(frozen=True)
class Needs:
    copies: int
    vms: int
    memory_mib: int
    disk_mib: int

    @property
    def per_copy_mib(self) -> int:
        return self.memory_mib // max(self.copies, 1)


@dataclass(frozen=True)
class HostRoom:
    memory_mib: int  # available now
    disk_mib: int  # free in the labctl pool
    cpus: int


def needs(labs: list[Lab], accel: Accel) -> Needs:
    vms = [vm for lab in labs for vm in lab.vms]
    overhead = QEMU_OVERHEAD_MIB[accel.domain_type]
    return Needs(len(labs), len(vms), sum(vm.memory_mib + overhead for vm in vms),
                 DISK_PER_VM_MIB * len(vms))


def room(conn: libvirt.virConnect, uri: str) -> HostRoom:
    cpus = conn.getInfo()[2]
    if is_local(uri):
        memory = _mem_available_mib()
    else:
        memory = conn.getFreeMemory() >> 20
    _state, _capacity, _allocation, available = Storage(conn).pool.info()
    return HostRoom(memory, available >> 20, cpus)


def _mem_available_mib() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) >> 10
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") >> 20


def admit(need: Needs, host: HostRoom, accel: Accel, max_parallel: int | None) -> int:
    """Refuse (one line, with the numbers) or return how many copies boot at once."""
    if need.memory_mib > host.memory_mib * HEADROOM:
        fit = int(host.memory_mib * HEADROOM // max(need.per_copy_mib, 1))
        raise LabctlError(
            f"{need.copies} copies need {need.memory_mib / 1024:.1f} GiB of RAM "
            f"({need.per_copy_mib} MiB per copy, qemu overhead under "
            f"{'KVM' if accel.is_kvm else 'TCG'} included) but {host.memory_mib / 1024:.1f} "
            f"GiB are available", f"{fit} copies fit: use fewer copies or less memory per "
            "VM, or place the class on several hosts")
    if need.disk_mib > host.disk_mib * HEADROOM:
        raise LabctlError(
            f"{need.copies} copies need ~{need.disk_mib / 1024:.1f} GiB in the labctl pool but "
            f"{host.disk_mib / 1024:.1f} GiB are free", "free disk space ('labctl gc' removes "
            "leftovers) or use fewer copies")
    per_copy = max(need.vms // max(need.copies, 1), 1)
    default = max(host.cpus * BOOTS_PER_CORE[accel.domain_type] // per_copy, 1)
    return max_parallel or default
