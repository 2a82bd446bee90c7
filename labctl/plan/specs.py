"""What a VM is made of, decided purely: its cloud-init seed and its domain,
from the plan and the few facts only the host knows when the VM is created
(volume paths, the ports it forwards, KVM or TCG). The provisioner gathers
the facts and renders these; the golden tests render them from the lab files
in examples/ with fixed facts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from labctl.plan.layout import NetworkPlan, VmPlan
from labctl.plan.mirrors import mirror_config_commands
from labctl.plan.records import (
    CLASS_TB_CACHE_MIB,
    TB_CACHE_MIB,
    BridgedNic,
    DhcpHost,
    DomainSpec,
    Meta,
    NetworkSpec,
    SeedSpec,
    user_nic,
)


@dataclass(frozen=True)
class VmFacts:
    """What the host decided when the VM was made."""

    domain_type: str  # kvm | qemu
    overlay: str  # path of the VM's disk
    seed: str  # path of its seed ISO
    kernel: str | None  # base image parts (direct kernel boot), or None: boot the disk
    initrd: str | None
    cmdline: str | None
    ssh_port: int | None  # host port forwarded to 22 (user-mode networking)
    published: tuple[tuple[int, int], ...] = ()  # (host port, VM port)
    bind: str = "127.0.0.2"  # the address forwards are bound to on the host
    restored: bool = False  # from a template's saved state, not booted


def tb_cache_mib(facts: VmFacts, meta: Meta) -> int:
    """A class's copy restored from a template gets the smaller cache."""
    return CLASS_TB_CACHE_MIB if facts.restored and meta.copy else TB_CACHE_MIB


def seed_spec(plan: VmPlan, login_public: str, host_private: str,
              host_public: str, admin_public: str) -> SeedSpec:
    vm = plan.vm
    return SeedSpec(
        instance_id=f"{plan.domain}-{plan.spec_hash}", hostname=vm.name, user=vm.user,
        authorized_key=login_public, host_key_private=host_private, host_key_public=host_public,
        admin_key=admin_public, sudo=vm.sudo,
        packages=vm.packages, runcmd=vm.runcmd, write_files=vm.write_files,
        macs=tuple(nic.mac for nic in plan.nics),
        apt_mirror=plan.mirrors.apt,
        mirror_setup=mirror_config_commands(plan.mirrors.registry, plan.mirrors.apt,
                                            plan.mirrors.apt_key)
        if plan.mirrors.registry or plan.mirrors.apt else "")


def vm_meta(plan: VmPlan, lab: str, facts: VmFacts, data_dir: str, group: str = "",
            copy: str = "") -> Meta:
    return Meta(lab, "vm", plan.vm.name, plan.spec_hash, user=plan.vm.user,
                ssh_port=facts.ssh_port, forwards=facts.published, data_dir=data_dir,
                group=group, copy=copy)


def domain_spec(plan: VmPlan, facts: VmFacts, meta: Meta) -> DomainSpec:
    """The first user-mode NIC carries the SSH forward and the published ports."""
    user_nics, bridged = [], []
    for nic in plan.nics:
        if nic.mode == "user":
            forwards: tuple[tuple[int, int], ...] = ()
            if not user_nics and facts.ssh_port is not None:
                forwards = ((facts.ssh_port, 22), *facts.published)
            user_nics.append(user_nic(len(user_nics), nic.mac, forwards, nic.subnet,
                                      facts.bind, nic.sealed))
        else:
            bridged.append(BridgedNic(nic.libvirt_network or "", nic.mac))
    return DomainSpec(
        name=plan.domain, domain_type=facts.domain_type, memory_mib=plan.vm.memory_mib,
        vcpus=plan.vm.vcpus, disk=facts.overlay, seed=facts.seed,
        serial_log=str(Path(facts.overlay).with_name(plan.serial_log)),
        metadata_xml=meta.to_xml(), kernel=facts.kernel, initrd=facts.initrd,
        cmdline=facts.cmdline if facts.kernel else None, firmware=plan.vm.firmware,
        bridged_nics=tuple(bridged), user_nics=tuple(user_nics),
        tb_cache_mib=tb_cache_mib(facts, meta))


def network_spec(plan: NetworkPlan, subnet: ipaddress.IPv4Network, meta: Meta) -> NetworkSpec:
    """`subnet`: the lab's, or the one the host had free when it was created."""
    return NetworkSpec(plan.libvirt_name, plan.network.mode, subnet, meta.to_xml(),
                       tuple(DhcpHost(mac, host, ip) for mac, host, ip in plan.reservations),
                       plan.network.sealed)
