"""What planning needs to know of a host, as plain records: how it runs guests
(KVM or TCG) and how much room it has. labctl/virt/ measures them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Accel:
    domain_type: str  # 'kvm' or 'qemu' (TCG)
    reason: str  # one line: why this choice

    @property
    def is_kvm(self) -> bool:
        return self.domain_type == "kvm"


@dataclass(frozen=True)
class HostRoom:
    memory_mib: int  # available now
    disk_mib: int  # free in the labctl pool
    cpus: int
