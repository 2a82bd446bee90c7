"""Admission control for a class: before anything is created, do the copies
fit the hosts' RAM and pool disk, where does each go, and how many boot at once?

A VM that boots cold is charged what it can come to hold: its guest RAM (a
guest may touch all of it) plus qemu's own -- under TCG the translation cache
(capped at TB_CACHE_MIB, 512 MiB, by the domain XML; a container runtime's
work fills it) plus qemu itself (~60-80 MiB measured), 592 MiB;
with KVM 100 MiB. A VM restored from a template is charged what a restored
VM of its shape was measured to hold of its own (qemu's RSS after its
identity less the template's memory file it maps unchanged, kept in the
template's record) plus a quarter of its guest RAM for the student's work, never
more than the cold charge: `held`, per VM name, from the use case. Disk: ~75
MiB per VM measured (overlay after first boot, seed, log); 300 MiB is
charged to leave room for containers. Booting is CPU-bound: under TCG one VM
per core boots at full speed, with KVM about four per core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from labctl.errors import LabctlError
from labctl.lab.model import Lab
from labctl.plan.hosts import Accel, HostRoom
from labctl.plan.records import TB_CACHE_MIB

# The one table of what a VM costs its host beyond its guest RAM (doctor and
# admission control both charge it).
QEMU_OWN_MIB = 80  # qemu's RSS beside the guest and the translation cache (57-73 measured)
QEMU_OVERHEAD_MIB = {"qemu": TB_CACHE_MIB + QEMU_OWN_MIB, "kvm": 100}
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
    restored: int = 0  # of the VMs, charged as restored from a template

    @property
    def per_copy_mib(self) -> int:
        return self.memory_mib // max(self.copies, 1)


def cold_charge(memory_mib: int, accel: Accel) -> int:
    return memory_mib + QEMU_OVERHEAD_MIB[accel.domain_type]


def restored_charge(memory_mib: int, measured_mib: int, accel: Accel) -> int:
    """What a template's measured restored VM held, plus a quarter of its
    guest RAM for the work done in it; never more than a cold VM's charge."""
    return min(measured_mib + memory_mib // 4, cold_charge(memory_mib, accel))


def needs(labs: list[Lab], accel: Accel, held: Mapping[str, int] | None = None) -> Needs:
    """`held`: VM name -> MiB charged to a VM of that name restored from a
    template (restored_charge); the others are charged cold."""
    held = held or {}
    vms = [vm for lab in labs for vm in lab.vms]
    return Needs(len(labs), len(vms),
                 sum(held.get(vm.name) or cold_charge(vm.memory_mib, accel) for vm in vms),
                 DISK_PER_VM_MIB * len(vms), sum(1 for vm in vms if held.get(vm.name)))




def place(copies: list[Lab], rooms: dict[str, HostRoom], accels: dict[str, Accel],
          held: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, str]:
    """Each copy (lab name) -> the host URI it goes to: among the hosts it fits
    (RAM and disk left), the least loaded afterwards -- load being the larger of
    the share of its free RAM and of its cores (vCPUs per core) the class takes,
    so equal hosts share a class evenly. Refuses, with the numbers, if a copy
    fits nowhere -- before anything is created. `held`: per host URI, what
    needs() charges VMs restored from templates there."""
    held = held or {}
    left = {uri: [r.memory_mib * HEADROOM, r.disk_mib * HEADROOM] for uri, r in rooms.items()}
    vcpus = dict.fromkeys(rooms, 0)
    placed: dict[str, str] = {}
    for copy in copies:
        fits = []
        for uri, room_ in rooms.items():
            need = needs([copy], accels[uri], held.get(uri))
            if need.memory_mib <= left[uri][0] and need.disk_mib <= left[uri][1]:
                cpus = sum(vm.vcpus for vm in copy.vms)
                load = max(1 - (left[uri][0] - need.memory_mib) / (room_.memory_mib * HEADROOM),
                           (vcpus[uri] + cpus) / max(room_.cpus, 1))
                fits.append((load, uri, need, cpus))
        if not fits:
            first = next(iter(rooms))
            total = needs(copies, accels[first], held.get(first))
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
    have = "has" if len(rooms) == 1 else "have"
    if need.memory_mib > memory * HEADROOM:
        how = (f"{need.restored} of {need.vms} VMs restored from templates: what a "
               "restored VM held plus a quarter of its memory" if need.restored else
               "each VM's memory")
        return LabctlError(
            f"{need.copies} copies need {need.memory_mib / 1024:.1f} GiB of RAM "
            f"({need.per_copy_mib} MiB per copy: {how}, qemu under "
            f"{'KVM' if accel.is_kvm else 'TCG'} included) but {where} {have} "
            f"{memory * HEADROOM / 1024:.1f} GiB available (90 % of its free RAM)",
            f"{fit} copies fit: use fewer copies or less memory per VM, or add hosts "
            "('hosts:' in the lab file, or --host)"
            + ("" if need.restored else "; VMs restored from a template are charged "
               "less (`labctl up` one copy first builds it)"))
    return LabctlError(
        f"{need.copies} copies need ~{need.disk_mib / 1024:.1f} GiB in the labctl pool but "
        f"{where} {have} {disk / 1024:.1f} GiB free", f"{fit} copies fit: free disk space "
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
