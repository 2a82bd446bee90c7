"""The desired libvirt objects of a lab, decided purely from the model: names,
MACs, which NICs are user-mode and which bridged, DHCP reservations, and the
spec hash that tells `up` whether an existing object still matches.

Nothing here talks to libvirt; dynamic facts (auto-chosen subnets, forwarded
ports) are filled in by the provisioner and do not enter the spec hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from labctl.lab.model import VM, Lab, Mirrors, Network


@dataclass(frozen=True)
class NicPlan:
    network: str  # name in the lab
    mode: str  # user | nat | isolated
    mac: str
    libvirt_network: str | None  # None for user mode
    ip: str | None = None  # a DHCP reservation
    subnet: str | None = None  # user mode: qemu's guest network, if the lab sets one
    sealed: bool = False  # nothing outside the lab reachable through it


@dataclass(frozen=True)
class VmPlan:
    vm: VM
    domain: str  # libvirt domain name
    nics: tuple[NicPlan, ...]
    spec_hash: str
    # TCP ports containers publish in the VM; on user-mode networks each is
    # forwarded from 127.0.0.1 on the host (decided at create, so part of the hash).
    published: tuple[int, ...] = ()
    # the lab's mirrors go into the seed; not hashed: a kept VM gets them over SSH
    mirrors: Mirrors = Mirrors()

    # Every volume of a VM starts with "DOMAIN." and every object of a lab with
    # "LAB.": names cannot contain dots, so no other lab or VM shares the prefix.
    @property
    def overlay(self) -> str:
        return f"{self.domain}.qcow2"

    @property
    def seed(self) -> str:
        return f"{self.domain}.seed.iso"

    @property
    def serial_log(self) -> str:
        return f"{self.domain}.serial.log"

    @property
    def volumes(self) -> tuple[str, ...]:
        return (self.overlay, self.seed, self.serial_log)

    @property
    def uses_user_network(self) -> bool:
        return any(n.mode == "user" for n in self.nics)


@dataclass(frozen=True)
class NetworkPlan:
    network: Network
    libvirt_name: str
    spec_hash: str
    reservations: tuple[tuple[str, str, str], ...]  # (mac, hostname, ip)


@dataclass(frozen=True)
class Layout:
    lab: Lab
    prefix: str  # every libvirt object of the lab starts with it
    networks: tuple[NetworkPlan, ...]
    vms: tuple[VmPlan, ...]

    def vm(self, name: str) -> VmPlan:
        for plan in self.vms:
            if plan.vm.name == name:
                return plan
        raise KeyError(name)

def mac_address(*parts: str) -> str:
    """A stable locally administered MAC (QEMU's 52:54:00 prefix) per lab/vm/network,
    so DHCP reservations and leases survive re-creation."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])



def object_name(prefix: str, name: str) -> str:
    """libvirt name of a lab's VM or network: 'LAB.NAME'."""
    return f"{prefix}.{name}"


def _nic(lab: Lab, prefix: str, vm: VM, network: str, ip: object,
         bridged: dict[str, str]) -> NicPlan:
    net = lab.network(network)
    subnet = str(net.subnet) if net.mode == "user" and net.subnet else None
    return NicPlan(network, net.mode, mac_address(prefix, vm.name, network), bridged.get(network),
                   str(ip) if ip else None, subnet, net.sealed)


ADDED_LATER = {"flavor"}  # VM fields whose absence must not change a VM's spec hash


def spec_hash(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lab_layout(lab: Lab, image_digests: dict[str, str]) -> Layout:
    """image_digests: image name -> sha256 of the cached image the VMs boot from."""
    prefix = lab.name
    bridged = {n.name: object_name(prefix, n.name) for n in lab.networks if n.mode != "user"}
    networks = []
    for net in lab.networks:
        if net.mode == "user":
            continue  # lives inside each qemu process, nothing to define
        reservations = tuple(
            (mac_address(prefix, vm.name, net.name), vm.name, str(att.ip))
            for vm in lab.vms for att in vm.networks if att.network == net.name and att.ip)
        networks.append(NetworkPlan(net, bridged[net.name],
                                    spec_hash(dataclasses.asdict(net), reservations),
                                    reservations))
    net_hash = {n.network.name: n.spec_hash for n in networks}
    vms = []
    for vm in lab.vms:
        nics = tuple(_nic(lab, prefix, vm, att.network, att.ip, bridged) for att in vm.networks)
        # Containers are deployed over SSH and do not make a VM "changed"; only the
        # ports they publish do, where the VM's user-mode NIC must forward them.
        # A key added to the lab format later counts only when set: labs that
        # do not use it keep their spec hash, and their VMs, across an upgrade.
        machine = {k: v for k, v in dataclasses.asdict(vm).items()
                   if k not in ("containers", "runtime")
                   and not (k in ADDED_LATER and v is None)}
        published = tuple(sorted({p.host for c in vm.containers for p in c.ports
                                  if p.proto == "tcp"})) if any(
            n.mode == "user" for n in nics) else ()
        digest = spec_hash(machine, image_digests.get(vm.image, ""),
                           [net_hash.get(n.network, f"user-{'sealed' if n.sealed else 'open'}")
                            for n in nics], published)
        vms.append(VmPlan(vm, object_name(prefix, vm.name), nics, digest, published,
                          lab.mirrors))
    return Layout(lab, prefix, tuple(networks), tuple(vms))
