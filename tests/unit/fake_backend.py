"""An in-memory backend: the Backend protocol (labctl/backend.py) kept in
dictionaries, no libvirt at all. The use cases run on it as they run on the
libvirt backend; test_backend_contract.py holds it to the same protocol, so
it cannot drift from what a real backend offers."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from labctl.backend import BaseVolumes, Found, HostFacts, Snapshot
from labctl.errors import BackendError
from labctl.events import Event, Report
from labctl.images.cache import Image
from labctl.lab.model import Lab
from labctl.labfiles import LabFiles
from labctl.plan.hosts import Accel, HostRoom
from labctl.plan.layout import NetworkPlan, VmPlan
from labctl.plan.records import Meta
from labctl.ssh.transport import Endpoint


class FakeVolumes:
    def __init__(self):
        self.volumes: dict[str, str] = {}  # name -> what it was made from

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.volumes if n.startswith(prefix))

    def exists(self, name: str) -> bool:
        return name in self.volumes

    def delete(self, name: str) -> bool:
        return self.volumes.pop(name, None) is not None

    def copy(self, source: str, name: str) -> str:
        self.volumes[name] = self.volumes.get(source, source)
        return name

    def allocation(self, name: str) -> int:
        return 1 << 20 if name in self.volumes else 0

    def stamp(self, name: str) -> str:
        return self.volumes.get(name, "")

    def volumes_with_backing(self) -> tuple[dict[str, str], dict[str, str]]:
        return {n: n for n in self.volumes}, {}


class FakeProvisioning:
    def __init__(self, backend: FakeBackend, files: LabFiles, report: Report,
                 group: str = "", copy: str = ""):
        self.backend, self.files, self.report = backend, files, report
        self.class_meta = {"group": group, "copy": copy}

    def note_refused_port(self, message: str) -> int | None:
        return None

    def create_network(self, plan: NetworkPlan) -> None:
        meta = Meta(self.files.lab, "network", plan.network.name, plan.spec_hash,
                    **self.class_meta)
        self.backend.objects[plan.libvirt_name] = Found(meta, plan.libvirt_name, True)
        self.report(Event(f"network {plan.network.name}", "created", plan.network.mode))

    def start_network(self, libvirt_name: str) -> None:
        self.backend.set_active(libvirt_name, True)

    def remove_network(self, libvirt_name: str) -> bool:
        return self.backend.objects.pop(libvirt_name, None) is not None

    def create_vm(self, plan: VmPlan, image: Image, base: BaseVolumes,
                  from_volume: str | None = None) -> None:
        if plan.vm.name in self.backend.refuse:
            raise BackendError(f"the fake cloud refuses VM '{plan.vm.name}'")
        self.remove_vm(plan, forget_keys=False)
        self.files.host_key(plan.domain)  # pinned before it exists, as labctl does
        meta = Meta(self.files.lab, "vm", plan.vm.name, plan.spec_hash, user=plan.vm.user,
                    data_dir=str(self.files.data_dir.resolve()), **self.class_meta)
        self.backend.objects[plan.domain] = Found(meta, plan.domain, False)
        self.backend.made[plan.domain] = plan.vm  # what it was made from (tests look)
        self.backend.storage.volumes[f"{plan.domain}.qcow2"] = from_volume or base.disk

    def start_vm(self, domain: str) -> None:
        self.backend.set_active(domain, True)

    def rendered_seed(self, domain: str) -> dict[str, str]:
        return {"meta-data": f"instance-id: {domain}\n", "labctl-firstboot.sh": "true\n"}

    def remove_vm(self, plan_or_name: VmPlan | str, forget_keys: bool = True) -> bool:
        name = plan_or_name if isinstance(plan_or_name, str) else plan_or_name.domain
        existed = self.backend.remove_domain(name)
        for volume in self.backend.storage.names(prefix=f"{name}."):
            existed |= self.backend.storage.delete(volume)
        if forget_keys:
            self.files.forget_host(name)
        return existed


class FakeBackend:
    def __init__(self, uri: str = "fake:///cloud", refuse: frozenset[str] = frozenset()):
        self.uri = uri
        self.made: dict = {}
        self.refuse = refuse  # VM names whose creation fails (a cloud out of quota)
        self.objects: dict[str, Found] = {}
        self.points: dict[str, dict[str, Snapshot]] = {}
        self._volumes = FakeVolumes()
        self.ports: dict[str, int] = {}

    def set_active(self, name: str, active: bool) -> None:
        found = self.objects[name]
        self.objects[name] = Found(found.meta, found.libvirt_name, active)

    # -- what it can do and hold ------------------------------------------------
    @property
    def is_local(self) -> bool:
        return True

    @property
    def template_home(self) -> str:
        return "" if self.is_local else self.uri

    def templates_refused(self) -> str | None:
        return None

    @property
    def accel(self) -> Accel:
        return Accel("qemu", "a fake backend: no guest runs")

    @property
    def cpus(self) -> int:
        return 2

    @property
    def probe_seconds(self) -> float:
        return 0.05

    def admit(self, lab: Lab, copies: int) -> None:
        """No quotas here."""

    def room(self) -> HostRoom:
        return HostRoom(memory_mib=16 << 10, disk_mib=100 << 10, cpus=2)

    def facts(self) -> HostFacts:
        return HostFacts("fake 1.0", "none", 2)

    def daemon_in_root_netns(self) -> bool:
        return False

    def domain_capabilities(self, machine: str) -> str:
        return "<domainCapabilities><path>/bin/true</path></domainCapabilities>"

    # -- images and disks -------------------------------------------------------
    @property
    def storage(self) -> FakeVolumes:
        return self._volumes

    def ensure_base(self, image: Image) -> BaseVolumes:
        self.storage.volumes.setdefault(f"base-{image.name}.qcow2", image.name)
        return BaseVolumes(f"base-{image.name}.qcow2", None, None)

    # -- networks and VMs -------------------------------------------------------
    def provisioner(self, files: LabFiles, report: Report, templates: Path | None = None,
                    group: str = "", copy: str = "") -> FakeProvisioning:
        return FakeProvisioning(self, files, report, group, copy)

    def _labelled(self, kind: str, lab: str | None) -> list[Found]:
        return [f for f in self.objects.values()
                if f.meta.kind == kind and (lab is None or f.meta.lab == lab)]

    def domains(self, lab: str | None = None) -> list[Found]:
        return self._labelled("vm", lab)

    def networks(self, lab: str | None = None) -> list[Found]:
        return self._labelled("network", lab)

    def domain(self, lab: str, vm: str) -> Found | None:
        return next((f for f in self.domains(lab) if f.meta.name == vm), None)

    def lab_names(self) -> set[str]:
        return {f.meta.lab for f in self.objects.values()}

    def state(self, name: str) -> str:
        found = self.objects.get(name)
        return "missing" if found is None else "running" if found.active else "stopped"

    def is_running(self, name: str) -> bool:
        return self.state(name) == "running"

    def stop_domain(self, name: str) -> None:
        self.set_active(name, False)

    def remove_domain(self, name: str) -> bool:
        self.points.pop(name, None)
        return self.objects.pop(name, None) is not None

    def domain_files(self, name: str) -> set[str]:
        return {v for v in self.storage.names(prefix=f"{name}.")}

    def remove_leftovers(self, lab: str) -> list[str]:
        leftovers = self.storage.names(prefix=f"{lab}.")
        for name in leftovers:
            self.storage.delete(name)
        return leftovers

    def lab_gateway(self, lab: str) -> str:
        return "192.0.2.1"

    # -- where a VM is reached --------------------------------------------------
    def endpoint(self, name: str) -> Endpoint | None:
        if not self.is_running(name):
            return None
        return Endpoint("127.0.0.2", self.ports.setdefault(name, 40000 + len(self.ports)))

    def forwarded(self, port: int) -> Endpoint:
        return Endpoint("127.0.0.2", port)

    def reach(self, address: str, port: int) -> Endpoint:
        return Endpoint(address, port)

    def run(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["sh", "-c", script], 0, "", "")

    # -- templates and snapshots --------------------------------------------------
    def take_snapshot(self, name: str, snapshot: str, description: str = "") -> None:
        self.points.setdefault(name, {})[snapshot] = Snapshot(
            snapshot, "2026-12-06T00:00:00Z", self.state(name), description)

    def revert_snapshot(self, name: str, snapshot: str) -> None:
        if snapshot not in self.points.get(name, {}):
            raise BackendError(f"{name} has no snapshot '{snapshot}'")
        self.set_active(name, True)

    def delete_snapshot(self, name: str, snapshot: str, metadata_only: bool = False) -> None:
        self.points.get(name, {}).pop(snapshot, None)

    def snapshots(self, name: str) -> list[Snapshot]:
        return list(self.points.get(name, {}).values())

    def map_memory(self, name: str, ram: str, memory_mib: int) -> bool:
        return False

    def save_template(self, name: str, snapshot: str, description: str) -> None:
        self.take_snapshot(name, snapshot, description)

    def restore_into(self, name: str, snapshot: str, ram: str = "") -> None:
        self.set_active(name, True)

    def replug_nics(self, name: str) -> None:
        pass

    def guest_agent(self, name: str) -> None:
        return None

    def resident_mib(self, name: str) -> int | None:
        return None

    # -- the console ------------------------------------------------------------
    def serial_tail(self, name: str, lines: int) -> str:
        return ""

    def serial_reader(self, name: str) -> Callable[[], bytes]:
        return lambda: b""

    def close(self) -> None:
        pass
