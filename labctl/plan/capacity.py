"""Admission control for a class: before anything is created, do the copies
fit the hosts' RAM and pool disk, where does each go, and how many boot at once?

A VM is charged its guest RAM plus qemu's own overhead: under TCG the
translation cache (capped at 128 MiB by the domain XML) plus qemu itself,
330 MiB; with KVM 100 MiB. That is the worst case of a guest that touches all
its memory: bench/copies_scaling.py measured ~430 MiB of qemu RSS in all per
512 MiB hello VM right after boot here (TCG). Disk: ~75 MiB per VM measured
(overlay after first boot, seed, log); 300 MiB is charged to leave room for
containers. Booting is CPU-bound: under TCG one VM per core boots at full
speed, with KVM about four per core."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import LabctlError
from labctl.lab.model import Lab
from labctl.plan.hosts import Accel, HostRoom

# The one table of what a VM costs its host beyond its guest RAM (doctor and
# admission control both charge it).
QEMU_OVERHEAD_MIB = {"qemu": 330, "kvm": 100}
DISK_PER_VM_MIB = 300
# VMs started at once per host core, cold boot or restore alike. Measured
# (README, "Beyond one host" and the peers table): under TCG on 2 cores a
# 3-VM lab came up in 112.6 s all at once against 135.3 s two-then-one
# (plain qemu, all at once: 106 s); restores were fastest four at once.
BOOTS_PER_CORE = {"qemu": 2, "kvm": 4}
# Copies checked at once per host core (`labctl check`): a copy's checks are
# CPU work in its VM. Measured (README, "Checks"): 8 copies under TCG on 2
# cores took 48-58 s checked all at once, 43-47 s four at once, 33-34 s two
# at once -- eight emulated CPUs on two cores do less work than two do.
CHECKS_PER_CORE = {"qemu": 1, "kvm": 4}
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



def needs(labs: list[Lab], accel: Accel) -> Needs:
    vms = [vm for lab in labs for vm in lab.vms]
    overhead = QEMU_OVERHEAD_MIB[accel.domain_type]
    return Needs(len(labs), len(vms), sum(vm.memory_mib + overhead for vm in vms),
                 DISK_PER_VM_MIB * len(vms))




def place(copies: list[Lab], rooms: dict[str, HostRoom],
          accels: dict[str, Accel]) -> dict[str, str]:
    """Each copy (lab name) -> the host URI it goes to: among the hosts it fits
    (RAM and disk left), the least loaded afterwards -- load being the larger of
    the share of its free RAM and of its cores (vCPUs per core) the class takes,
    so equal hosts share a class evenly. Refuses, with the numbers, if a copy
    fits nowhere -- before anything is created."""
    left = {uri: [r.memory_mib * HEADROOM, r.disk_mib * HEADROOM] for uri, r in rooms.items()}
    vcpus = dict.fromkeys(rooms, 0)
    placed: dict[str, str] = {}
    for copy in copies:
        fits = []
        for uri, room_ in rooms.items():
            need = needs([copy], accels[uri])
            if need.memory_mib <= left[uri][0] and need.disk_mib <= left[uri][1]:
                cpus = sum(vm.vcpus for vm in copy.vms)
                load = max(1 - (left[uri][0] - need.memory_mib) / (room_.memory_mib * HEADROOM),
                           (vcpus[uri] + cpus) / max(room_.cpus, 1))
                fits.append((load, uri, need, cpus))
        if not fits:
            total = needs(copies, next(iter(accels.values())))
            raise _refusal(total, rooms, accels[next(iter(rooms))], len(placed))
        _, uri, need, cpus = min(fits, key=lambda f: f[0])
        left[uri][0] -= need.memory_mib
        left[uri][1] -= need.disk_mib
        vcpus[uri] += cpus
        placed[copy.name] = uri
    return placed


def _refusal(need: Needs, rooms: dict[str, HostRoom], accel: Accel, fit: int) -> LabctlError:
    memory = sum(r.memory_mib for r in rooms.values())
    disk = sum(r.disk_mib for r in rooms.values())
    where = "the host" if len(rooms) == 1 else f"{len(rooms)} hosts"
    if need.memory_mib > memory * HEADROOM:
        return LabctlError(
            f"{need.copies} copies need {need.memory_mib / 1024:.1f} GiB of RAM "
            f"({need.per_copy_mib} MiB per copy, qemu overhead under "
            f"{'KVM' if accel.is_kvm else 'TCG'} included) but {where} have "
            f"{memory / 1024:.1f} GiB available", f"{fit} copies fit: use fewer copies or less "
            "memory per VM, or add hosts ('hosts:' in the lab file, or --host)")
    return LabctlError(
        f"{need.copies} copies need ~{need.disk_mib / 1024:.1f} GiB in the labctl pool but "
        f"{where} have {disk / 1024:.1f} GiB free", f"{fit} copies fit: free disk space "
        "('labctl gc' removes leftovers), use fewer copies, or add hosts")


def boots_at_once(rooms: dict[str, HostRoom], accels: dict[str, Accel], vms_per_copy: int,
                  max_parallel: int | None) -> int:
    """Copies booting at once over the hosts: their VMs at once, per copy."""
    if max_parallel:
        return max_parallel
    vms = sum(vms_at_once(accels[uri], room.cpus) for uri, room in rooms.items())
    return max(vms // max(vms_per_copy, 1), 1)


def checks_at_once(accel: Accel, cpus: int) -> int:
    """Copies whose checks run at once on one host."""
    return max(cpus, 1) * CHECKS_PER_CORE[accel.domain_type]


def vms_at_once(accel: Accel, cpus: int) -> int:
    """VMs started at once on one host (a lab's, or a class's share of it)."""
    return max(cpus, 1) * BOOTS_PER_CORE[accel.domain_type]
