"""How labctl's labels live on OpenStack objects, and the choices made from
the cloud's answers (a flavor, a subnet): plain functions over plain data,
unit-tested without a cloud.

Every object labctl makes carries the tags `labctl`, `labctl-lab:LAB` and,
for a class's copy, `labctl-group:G` and `labctl-copy:C`: `down NAME` and
`gc` find them by tag alone. A server also carries labctl's Meta in its
metadata (Nova: 255 characters a value) and a network in its description."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

from labctl.errors import LabctlError
from labctl.plan.records import Meta

SCHEME = "openstack:"
TAG = "labctl"
META_KEY = "labctl"  # the server metadata key holding Meta (json)
NOVA_VALUE_MAX = 255


@dataclass(frozen=True)
class CloudUri:
    cloud: str  # an entry of clouds.yaml
    ssh_from: str | None = None  # who may reach SSH and published ports (CIDR); None: this machine
    external: str | None = None  # the external network's name; None: the only one there is


def is_cloud(uri: str) -> bool:
    return uri.startswith(SCHEME)


def parse_uri(uri: str) -> CloudUri:
    """openstack:CLOUD[?from=CIDR&external=NAME]."""
    rest = uri[len(SCHEME):]
    cloud, _, query = rest.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(params) - {"from", "external"}
    if not cloud or unknown:
        raise LabctlError(f"'{uri}' is not an OpenStack host",
                          "write openstack:CLOUD, CLOUD an entry of your clouds.yaml "
                          "(options: ?from=CIDR&external=NETWORK)")
    return CloudUri(cloud, params.get("from") or None, params.get("external") or None)


def tags(lab: str, group: str = "", copy: str = "") -> list[str]:
    out = [TAG, f"labctl-lab:{lab}"]
    if group:
        out.append(f"labctl-group:{group}")
    if copy:
        out.append(f"labctl-copy:{copy}")
    return out


def lab_of(object_tags: list[str]) -> str | None:
    for tag in object_tags or ():
        if tag.startswith("labctl-lab:"):
            return tag.partition(":")[2]
    return None


def meta_text(meta: Meta) -> str:
    return json.dumps({"lab": meta.lab, "kind": meta.kind, "name": meta.name,
                       "hash": meta.spec_hash, "version": meta.version, "user": meta.user,
                       "data_dir": meta.data_dir, "group": meta.group, "copy": meta.copy,
                       "forwards": [list(f) for f in meta.forwards]},
                      separators=(",", ":"))


def server_metadata(meta: Meta) -> dict[str, str]:
    """Meta split over metadata values of at most 255 characters."""
    text = meta_text(meta)
    chunks = [text[i:i + NOVA_VALUE_MAX] for i in range(0, len(text), NOVA_VALUE_MAX)]
    return {f"{META_KEY}{i}": chunk for i, chunk in enumerate(chunks)}


def meta_from_text(text: str) -> Meta | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or "lab" not in data:
        return None
    return Meta(lab=data["lab"], kind=data.get("kind", ""), name=data.get("name", ""),
                spec_hash=data.get("hash", ""), version=data.get("version", ""),
                user=data.get("user", ""), data_dir=data.get("data_dir", ""),
                group=data.get("group", ""), copy=data.get("copy", ""),
                forwards=tuple(tuple(f) for f in data.get("forwards", ())))


def meta_from_server(metadata: dict[str, str] | None) -> Meta | None:
    metadata = metadata or {}
    parts, i = [], 0
    while f"{META_KEY}{i}" in metadata:
        parts.append(metadata[f"{META_KEY}{i}"])
        i += 1
    return meta_from_text("".join(parts)) if parts else None


@dataclass(frozen=True)
class Flavor:
    name: str
    ram_mib: int
    vcpus: int
    disk_gib: int


def pick_flavor(flavors: list[Flavor], memory_mib: int, vcpus: int, disk_gib: int,
                vm: str) -> Flavor:
    """The smallest flavor that holds the VM (RAM first, then vCPUs, then disk)."""
    fitting = [f for f in flavors if f.ram_mib >= memory_mib and f.vcpus >= vcpus
               and (f.disk_gib >= disk_gib or f.disk_gib == 0)]
    if not fitting:
        biggest = max(flavors, key=lambda f: (f.ram_mib, f.vcpus, f.disk_gib), default=None)
        offered = (f"the biggest is {biggest.name} ({biggest.ram_mib} MiB, {biggest.vcpus} "
                   f"vCPUs, {biggest.disk_gib} GiB)") if biggest else "it offers none"
        raise LabctlError(f"VM '{vm}': no flavor of the cloud holds {memory_mib} MiB, {vcpus} "
                          f"vCPUs and {disk_gib} GiB ({offered})",
                          "lower the VM's memory/cpus/disk in the lab file")
    return min(fitting, key=lambda f: (f.ram_mib, f.vcpus, f.disk_gib or 10**6, f.name))


def flavor_for(flavors: list[Flavor], vm) -> Flavor:
    """The flavor the lab names for the VM (vm: a lab.model.VM), or the
    smallest that holds it."""
    if vm.flavor is None:
        return pick_flavor(flavors, vm.memory_mib, vm.vcpus, vm.disk_gib, vm.name)
    named = next((f for f in flavors if f.name == vm.flavor), None)
    if named is None:
        names = ", ".join(sorted(f.name for f in flavors)) or "none"
        hint = next((f"did you mean '{f.name}'?" for f in flavors
                     if f.name.lower() == vm.flavor.lower()), f"its flavors: {names}")
        raise LabctlError(f"VM '{vm.name}': the cloud has no flavor '{vm.flavor}'", hint)
    return named


@dataclass(frozen=True)
class Quota:
    """One of the project's limits: how much a class asks and how much is left."""

    what: str  # e.g. "instances"
    per_copy: int
    left: int  # -1: unlimited

    def copies(self) -> int | None:
        if self.left < 0 or self.per_copy == 0:
            return None
        return self.left // self.per_copy


def per_copy(lab, flavors: dict[str, Flavor] | None = None) -> dict[str, int]:
    """What one copy of the lab takes from a project's quotas (lab: a
    lab.model.Lab): its servers, cores and RAM (of each VM's flavor, by VM
    name, where given), floating IPs (a VM whose first network has a way
    out), networks, subnets, router, security group, ports (a VM's NICs, plus
    each network's DHCP port and router interface)."""
    flavors = flavors or {}
    networks = {(att.network) for vm in lab.vms for att in vm.networks}
    sealed = {n.name for n in lab.networks if n.sealed}
    open_nets = networks - sealed
    floating = sum(1 for vm in lab.vms if vm.networks and vm.networks[0].network not in sealed)
    sized = [flavors.get(vm.name) or Flavor("", vm.memory_mib, vm.vcpus, vm.disk_gib)
             for vm in lab.vms]
    return {"instances": len(lab.vms), "cores": sum(f.vcpus for f in sized),
            "RAM (MiB)": sum(f.ram_mib for f in sized), "floating IPs": floating,
            "networks": len(networks), "subnets": len(networks),
            "routers": 1 if open_nets else 0, "security groups": 1,
            "ports": sum(len(vm.networks) for vm in lab.vms) + len(networks) + len(open_nets)}


def refuse_over_quota(quotas: list[Quota], copies: int, cloud: str) -> None:
    """One line with the numbers when the project cannot hold `copies` copies."""
    short = [q for q in quotas if q.copies() is not None and q.copies() < copies]
    if not short:
        return
    fit = min(q.copies() for q in short)
    said = "; ".join(f"{q.what}: {q.per_copy * copies} needed, {q.left} left" for q in short)
    raise LabctlError(f"{copies} copies do not fit in the quotas of cloud '{cloud}' ({said}): "
                      f"{fit} would", "ask the cloud's operators for more, or run fewer "
                      f"copies (--copies {fit})")
