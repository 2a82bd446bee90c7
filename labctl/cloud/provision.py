"""Carrying out one lab's plan on an OpenStack project. Each lab (a class's
copy) is isolated: its own networks and subnets, one router to the external
network shared by those that have internet (a sealed network gets none), one
security group that admits SSH and published ports from labctl's side only
and anything from the lab's own VMs. A VM is a Nova server booted from the
image in Glance with the lab's cloud-init seed as user-data on a config
drive (no metadata service needed), a port on each of its networks and a
floating IP where its first network has a way out. Everything carries the
lab's tags; `remove_lab_objects` finds all of it again by tag alone."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import time
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.backend import BaseVolumes
from labctl.cloud import records
from labctl.cloud.connection import CloudFailed
from labctl.events import Event, Report
from labctl.images.cache import Image
from labctl.images.seed import render_seed
from labctl.labfiles import LabFiles
from labctl.plan.layout import NetworkPlan, NicPlan, VmPlan
from labctl.plan.records import Meta
from labctl.plan.specs import seed_spec

if TYPE_CHECKING:
    from labctl.cloud.project import Cloud

ACTIVE_SECONDS = 900  # a server from accepted to ACTIVE (a cold image cache on a busy cloud)
SUBNETS = ipaddress.ip_network("10.0.0.0/16")


class CloudProvisioner:
    """One lab's plan actions on one OpenStack project (the Provisioning protocol)."""

    def __init__(self, cloud: Cloud, files: LabFiles, report: Report,
                 templates: Path | None = None, group: str = "", copy: str = ""):
        self.cloud, self.conn, self.files = cloud, cloud.conn, files
        self.report, self.templates = report, templates
        self.group, self.copy = group, copy
        self.lab = files.lab
        self.seeds: dict[str, dict[str, str]] = {}  # domain -> the seed files it was given

    @property
    def tags(self) -> list[str]:
        return records.tags(self.lab, self.group, self.copy)

    def _tag(self, resource) -> None:
        self.conn.network.set_tags(resource, self.tags)

    def note_refused_port(self, message: str) -> int | None:
        return None  # no host ports here: a VM's ports are its own address's

    # -- networks -------------------------------------------------------------------
    def create_network(self, plan: NetworkPlan) -> None:
        with self.cloud.translate(f"cannot create network '{plan.network.name}'"):
            self.remove_network(plan.libvirt_name)
            meta = Meta(self.lab, "network", plan.network.name, plan.spec_hash,
                        data_dir=str(self.files.data_dir.resolve()), group=self.group,
                        copy=self.copy)
            subnet = self._network(plan.libvirt_name, records.meta_text(meta),
                                   plan.network.subnet, plan.network.sealed)
            self.report(Event(f"network {plan.network.name}", "created",
                              f"{plan.network.mode} {subnet}"
                              + (" (sealed: no router)" if plan.network.sealed else "")))

    def _network(self, name: str, description: str, cidr: object, sealed: bool) -> str:
        net = self.conn.network.create_network(name=name, description=description)
        self._tag(net)
        cidr = str(cidr) if cidr else self._free_cidr()
        subnet = self.conn.network.create_subnet(
            network_id=net.id, name=name, ip_version=4, cidr=cidr, is_dhcp_enabled=True,
            gateway_ip=None if sealed else str(ipaddress.ip_network(cidr)[1]))
        self._tag(subnet)
        if not sealed:
            self.conn.network.add_interface_to_router(self._router(), subnet_id=subnet.id)
        return cidr

    def _free_cidr(self) -> str:
        """A /24 no other network of this lab uses (one router joins them)."""
        taken = {ipaddress.ip_network(s.cidr) for s in self.conn.network.subnets(tags=records.tags(
            self.lab)[1])}
        for candidate in SUBNETS.subnets(new_prefix=24):
            if candidate not in taken and candidate.network_address.packed[2] >= 2:
                return str(candidate)
        raise CloudFailed(f"lab '{self.lab}' has no free /24 left in {SUBNETS}")

    def _router(self):
        with self.cloud.lock:
            name = f"{self.lab}.router"
            router = self.conn.network.find_router(name, ignore_missing=True)
            if router is not None:
                return router
            external = self._external()
            router = self.conn.network.create_router(
                name=name, external_gateway_info={"network_id": external.id})
            self._tag(router)
            return router

    def _external(self):
        wanted = self.cloud.where.external
        nets = [n for n in self.conn.network.networks(is_router_external=True)
                if wanted is None or n.name == wanted or n.id == wanted]
        if len(nets) != 1:
            names = ", ".join(n.name for n in self.conn.network.networks(
                is_router_external=True)) or "none"
            raise CloudFailed(f"cloud '{self.cloud.cloud_name}': "
                              + ("no external network " + (f"'{wanted}'" if wanted else "")
                                 if not nets else "more than one external network")
                              + f" (external networks: {names})",
                              "name one: openstack:CLOUD?external=NETWORK")
        return nets[0]

    def start_network(self, libvirt_name: str) -> None:
        return None  # a Neutron network is always up

    def remove_network(self, libvirt_name: str) -> bool:
        with self.cloud.translate(f"cannot remove network {libvirt_name}"):
            net = self.conn.network.find_network(libvirt_name, ignore_missing=True)
            if net is None:
                return False
            _remove_network(self.conn, net)
            return True

    # -- VMs ------------------------------------------------------------------------
    def create_vm(self, plan: VmPlan, image: Image, base: BaseVolumes,
                  from_volume: str | None = None) -> None:
        with self.cloud.translate(f"cannot create VM '{plan.vm.name}'"):
            self._create_vm(plan, image, base)

    def _create_vm(self, plan: VmPlan, image: Image, base: BaseVolumes) -> None:
        vm = plan.vm
        floating = self._own_floating_ip(plan.domain)
        self.remove_vm(plan, forget_keys=False)
        group = self._security_group(plan)
        ports = [self._port(plan, index, nic, group) for index, nic in enumerate(plan.nics)]
        host_key = self.files.host_key(plan.domain)
        seed = seed_spec(plan, self.files.login_key().public, host_key.private,
                         host_key.public, self.files.admin_key().public)
        files = self.seeds[plan.domain] = render_seed(_on_config_drive(seed), self.templates)
        user_data = files["user-data"] if not image.configures_itself else _firstboot(files)
        flavor = self._flavor(vm)
        meta = Meta(self.lab, "vm", vm.name, plan.spec_hash, user=vm.user,
                    data_dir=str(self.files.data_dir.resolve()), group=self.group,
                    copy=self.copy)
        server = self.conn.compute.create_server(
            name=plan.domain, image_id=base.disk, flavor_id=flavor.id,
            networks=[{"port": p.id} for p in ports], config_drive=True,
            user_data=base64.b64encode(user_data.encode()).decode(),
            metadata=records.server_metadata(meta))
        self.report(Event(f"vm {vm.name}", "accepted", f"server {server.id} ({flavor.name})"))
        routed = next((p for p, nic in zip(ports, plan.nics, strict=True) if not nic.sealed), None)
        if routed is not None:
            self._floating_ip(plan.domain, routed, floating)

    def _own_floating_ip(self, domain: str):
        """The VM's floating IP, kept across a recreate (its address stays)."""
        for ip in self.conn.network.ips(tags=f"labctl-vm:{domain}"):
            return ip
        return None

    def _floating_ip(self, domain: str, port, existing) -> None:
        if existing is None:
            existing = self.conn.network.create_ip(floating_network_id=self._external().id,
                                                   description=f"labctl {domain}")
            self.conn.network.set_tags(existing, [*self.tags, f"labctl-vm:{domain}"])
        self.conn.network.update_ip(existing, port_id=port.id)

    def _security_group(self, plan: VmPlan):
        """The lab's group: SSH and published ports from labctl's side, anything
        from the lab's own VMs."""
        with self.cloud.lock:
            name = f"{self.lab}.access"
            group = self.conn.network.find_security_group(name, ignore_missing=True)
            if group is None:
                group = self.conn.network.create_security_group(
                    name=name, description=f"labctl lab {self.lab}")
                self._tag(group)
                for proto in ("tcp", "udp", "icmp"):
                    self.conn.network.create_security_group_rule(
                        security_group_id=group.id, direction="ingress", ethertype="IPv4",
                        protocol=proto, remote_group_id=group.id)
            wanted = {22, *(p.host for c in plan.vm.containers for p in c.ports
                            if p.proto == "tcp")}
            have = {r["port_range_min"] for r in group.security_group_rules
                    if r.get("remote_ip_prefix") and r.get("protocol") == "tcp"}
            source = self.cloud.ssh_from()
            for port in sorted(wanted - have):
                self.conn.network.create_security_group_rule(
                    security_group_id=group.id, direction="ingress", ethertype="IPv4",
                    protocol="tcp", port_range_min=port, port_range_max=port,
                    remote_ip_prefix=source)
            return group

    def _port(self, plan: VmPlan, index: int, nic: NicPlan, group):
        network = self._network_of(nic)
        fixed = [{"ip_address": nic.ip}] if nic.ip else None
        port = self.conn.network.create_port(
            name=f"{plan.domain}.{index}", network_id=network.id, mac_address=nic.mac,
            security_group_ids=[group.id], **({"fixed_ips": fixed} if fixed else {}))
        self._tag(port)
        return port

    def _network_of(self, nic: NicPlan):
        if nic.libvirt_network:  # a lab network: made by create_network
            net = self.conn.network.find_network(nic.libvirt_network, ignore_missing=True)
            if net is None:
                raise CloudFailed(f"network {nic.libvirt_network} is missing")
            return net
        # user mode: the lab's own network of that name, made with the first VM on it
        name = f"{self.lab}.{nic.network}"
        with self.cloud.lock:
            net = self.conn.network.find_network(name, ignore_missing=True)
            if net is None:
                self._network(name, "", nic.subnet, nic.sealed)
                net = self.conn.network.find_network(name)
            return net

    def _flavor(self, vm):
        flavors = list(self.conn.compute.flavors(details=True))
        chosen = records.flavor_for([records.Flavor(f.name, f.ram, f.vcpus, f.disk)
                                     for f in flavors], vm)
        return next(f for f in flavors if f.name == chosen.name)

    def rendered_seed(self, domain: str) -> dict[str, str]:
        return self.seeds.get(domain, {})

    def start_vm(self, domain: str) -> None:
        """ACTIVE: a new server waited for (a server in ERROR is Nova's own
        fault message), a stopped one started."""
        with self.cloud.translate(f"cannot start VM {domain}"):
            server = self.conn.compute.find_server(domain)
            if server.status == "SHUTOFF":
                self.conn.compute.start_server(server)
            self._wait_active(domain, server)

    def _wait_active(self, domain: str, server) -> None:
        subject = f"vm {domain.partition('.')[2] or domain}"
        deadline = time.monotonic() + ACTIVE_SECONDS
        said = set()
        while True:
            server = self.conn.compute.get_server(server.id)
            task = server.task_state or ""
            if task and task != "scheduling" and "scheduled" not in said:
                said.add("scheduled")
                self.report(Event(subject, "scheduled", task))
            if server.status == "ACTIVE":
                return
            if server.status == "ERROR":
                fault = (server.fault or {}).get("message", "no message from Nova")
                raise CloudFailed(f"VM {domain} went to ERROR in cloud "
                                  f"'{self.cloud.cloud_name}': {fault}",
                                  "the cloud could not place or boot it: check the flavor, "
                                  "the image and the project's quotas")
            if time.monotonic() > deadline:
                raise CloudFailed(f"VM {domain}: still {server.status} after "
                                  f"{ACTIVE_SECONDS} s")
            time.sleep(1)

    def remove_vm(self, plan_or_name: VmPlan | str, forget_keys: bool = True) -> bool:
        """The server and its ports; its floating IP too unless it is being
        recreated (`forget_keys` false keeps what makes it the same VM)."""
        name = plan_or_name if isinstance(plan_or_name, str) else plan_or_name.domain
        with self.cloud.translate(f"cannot remove VM {name}"):
            existed = self.cloud.remove_domain(name)
            for port in self.conn.network.ports(tags=records.tags(self.lab)[1]):  # the lab's
                if port.name.startswith(f"{name}."):
                    self.conn.network.delete_port(port)
                    existed = True
            if forget_keys:
                for ip in self.conn.network.ips(tags=f"labctl-vm:{name}"):
                    self.conn.network.delete_ip(ip)
                self.files.forget_host(name)
            return existed


def _on_config_drive(seed):
    return dataclasses.replace(seed, datasource="ConfigDrive")


def _firstboot(files: dict[str, str]) -> str:
    """labctl's own image on a config drive: user-data is a script that lays
    the seed's files out where the image's first-boot unit reads them."""
    lines = ["#!/bin/sh", "# labctl seed: the files of a NoCloud seed, for labctl-firstboot",
             "set -eu", 'seed=${1:-/run/labctl-seed}', 'mkdir -p "$seed"']
    for name, text in files.items():
        marker = "LABCTL_SEED_END"
        while marker in text:
            marker += "_"
        lines += [f"cat > \"$seed/{name}\" <<'{marker}'", text.rstrip("\n"), marker]
    return "\n".join(lines) + "\n"


def _remove_network(conn, net) -> None:
    for port in conn.network.ports(network_id=net.id):
        if port.device_owner == "network:router_interface":
            conn.network.remove_interface_from_router(port.device_id, port_id=port.id)
        elif port.device_owner != "network:dhcp":
            conn.network.delete_port(port)
    conn.network.delete_network(net)


def remove_lab_objects(cloud: Cloud, lab: str) -> list[str]:
    """Everything of the lab left in the project, found by its tag: floating
    IPs, ports, the router, networks, the security group, snapshot images."""
    conn, tag = cloud.conn, records.tags(lab)[1]
    removed = []
    for ip in conn.network.ips(tags=tag):
        conn.network.delete_ip(ip)
        removed.append(f"floating IP {ip.floating_ip_address}")
    for port in conn.network.ports(tags=tag):
        conn.network.delete_port(port)
        removed.append(f"port {port.name}")
    for router in conn.network.routers(tags=tag):
        for port in conn.network.ports(device_id=router.id):
            if port.device_owner == "network:router_interface":
                conn.network.remove_interface_from_router(router, port_id=port.id)
        conn.network.delete_router(router)
        removed.append(f"router {router.name}")
    for net in conn.network.networks(tags=tag):
        _remove_network(conn, net)
        removed.append(f"network {net.name}")
    for group in conn.network.security_groups(tags=tag):
        conn.network.delete_security_group(group)
        removed.append(f"security group {group.name}")
    for image in conn.image.images(tag=records.TAG):
        if (image.properties or {}).get("labctl_lab") == lab:
            conn.image.delete_image(image)
            removed.append(f"snapshot image {image.name}")
    return removed
