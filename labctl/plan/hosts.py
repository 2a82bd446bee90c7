"""What planning needs to know of a host, as plain records: how it runs guests
(KVM or TCG) and how much room it has. labctl/virt/ measures them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Accel:
    domain_type: str  # 'kvm' or 'qemu' (TCG): how VMs are paced and charged here
    reason: str  # one line: why this choice
    seen: bool = True  # False: a cloud's hypervisors, which a project cannot see

    @property
    def is_kvm(self) -> bool:
        return self.domain_type == "kvm"

    @property
    def label(self) -> str:
        """What reports and tables show: never a guess presented as a fact."""
        return self.domain_type if self.seen else "cloud"


@dataclass(frozen=True)
class HostRoom:
    memory_mib: int  # available now
    disk_mib: int  # free in the labctl pool
    cpus: int
