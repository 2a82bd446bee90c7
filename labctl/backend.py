"""The seam between the use cases and a place VMs run. A backend is what the
use cases ask of it, nothing more: what it can do and hold, the images it
makes available, the lab's networks and VMs (created from plan/ specs by its
Provisioning, started, stopped, destroyed), where a VM is reached, templates
and snapshots where it has them, and every object it made, found again by
labctl's labels (lab, copy, labctl version) so `down NAME` and `gc` need no lab
file. virt/host.Host is the libvirt backend; the unit tests put it on
libvirt's test:/// driver. A backend's failures leave it as BackendError
(errors.py): nothing above it knows its own error types.

The records here are the backend's answers, plain data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from labctl.plan.actions import Observed
from labctl.plan.hosts import Accel, HostRoom
from labctl.plan.records import Meta

if TYPE_CHECKING:  # records of the layers the protocol speaks of; no import at run time
    import subprocess

    from labctl.events import Report
    from labctl.images.cache import Image
    from labctl.lab.model import Lab
    from labctl.labfiles import LabFiles
    from labctl.plan.layout import NetworkPlan, VmPlan
    from labctl.ssh.transport import CommandResult, Endpoint


class GuestAgent(Protocol):
    """A running VM's guest agent: commands as root without an SSH login.
    Its failures are BackendErrors (the VM stopped answering)."""

    def clock_offset(self) -> float: ...  # seconds the guest's clock is behind
    def run(self, argv: list[str], stdin: str, timeout: float, errors: str = "replace",
            max_output: int = ...) -> CommandResult: ...  # TimedOut, TooMuchOutput
    # the script run by the root shell a template left waiting in `folder`
    # (no process started); None: no shell waits there
    def hand(self, folder: str, script: str, timeout: float) -> CommandResult | None: ...


@dataclass(frozen=True)
class Found:
    """An object the backend holds that carries labctl's labels."""

    meta: Meta
    libvirt_name: str  # the backend's own name for it (LAB.VM, LAB.NET)
    active: bool

    def observed(self) -> Observed:
        return Observed(self.meta.kind, self.meta.name, self.libvirt_name,
                        self.meta.spec_hash, self.active)


@dataclass(frozen=True)
class HostFacts:
    libvirt: str  # the backend's version
    hypervisor: str  # e.g. "QEMU 7.2.0"
    cpus: int


@dataclass(frozen=True)
class BaseVolumes:
    """An image made available to VMs: its disk, and a kernel and initrd
    where the image boots directly (labctl's own images)."""

    disk: str
    kernel: str | None
    initrd: str | None


@dataclass(frozen=True)
class Snapshot:
    name: str
    created: str  # ISO 8601 UTC
    state: str  # running | shutoff | ...
    description: str = ""


class Volumes(Protocol):
    """A backend's disk store: overlays, templates' disks, seeds."""

    def names(self, prefix: str = "") -> list[str]: ...
    def exists(self, name: str) -> bool: ...
    def delete(self, name: str) -> bool: ...
    # a file copy of `source` with its internal snapshots (a template's saved state)
    def copy(self, source: str, name: str) -> str: ...
    def allocation(self, name: str) -> int: ...
    def stamp(self, name: str) -> str: ...  # changes when the volume's file is rewritten
    def volumes_with_backing(self) -> tuple[dict[str, str], dict[str, str]]: ...


class Provisioning(Protocol):
    """Carries out one lab's plan actions on the backend."""

    files: LabFiles

    def note_refused_port(self, message: str) -> int | None: ...
    def create_network(self, plan: NetworkPlan) -> None: ...
    def start_network(self, libvirt_name: str) -> None: ...
    def remove_network(self, libvirt_name: str) -> bool: ...
    def create_vm(self, plan: VmPlan, image: Image, base: BaseVolumes,
                  from_volume: str | None = None) -> None: ...
    def start_vm(self, domain: str) -> None: ...
    # the seed files a VM created here was given (a restored VM's identity)
    def rendered_seed(self, domain: str) -> dict[str, str]: ...
    def remove_vm(self, plan_or_name: VmPlan | str, forget_keys: bool = True) -> bool: ...


class Backend(Protocol):
    uri: str

    # -- what it can do and hold ------------------------------------------------
    @property
    def is_local(self) -> bool: ...
    @property
    def accel(self) -> Accel: ...
    @property
    def cpus(self) -> int: ...
    # how often readiness may ask about one VM (its state, its address): a
    # local libvirt call costs ~1 ms, a cloud's API call the cloud's CPU
    @property
    def probe_seconds(self) -> float: ...
    def room(self) -> HostRoom: ...
    def admit(self, lab: Lab, copies: int) -> None: ...  # refuses what its own limits cannot hold
    def facts(self) -> HostFacts: ...
    def daemon_in_root_netns(self) -> bool: ...
    def domain_capabilities(self, machine: str) -> str: ...
    # where its templates live ("" this machine, else the host's URI); None: it
    # restores no saved state (a cloud boots every server from an image)
    @property
    def template_home(self) -> str | None: ...
    def templates_refused(self) -> str | None: ...  # why no VM here restores one, or None

    # -- images and disks -------------------------------------------------------
    def ensure_base(self, image: Image) -> BaseVolumes: ...
    @property
    def storage(self) -> Volumes: ...

    # -- networks and VMs, found by labctl's labels ------------------------------
    def provisioner(self, files: LabFiles, report: Report, templates: Path | None = None,
                    group: str = "", copy: str = "") -> Provisioning: ...
    def domains(self, lab: str | None = None) -> list[Found]: ...
    def networks(self, lab: str | None = None) -> list[Found]: ...
    def domain(self, lab: str, vm: str) -> Found | None: ...
    def lab_names(self) -> set[str]: ...
    def state(self, name: str) -> str: ...
    def is_running(self, name: str) -> bool: ...
    def stop_domain(self, name: str) -> None: ...
    def remove_domain(self, name: str) -> bool: ...
    def domain_files(self, name: str) -> set[str]: ...
    def lab_gateway(self, lab: str) -> str: ...
    def remove_leftovers(self, lab: str) -> list[str]: ...

    # -- where a VM is reached --------------------------------------------------
    def endpoint(self, name: str) -> Endpoint | None: ...
    def forwarded(self, port: int) -> Endpoint: ...
    def reach(self, address: str, port: int) -> Endpoint: ...
    def run(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]: ...

    # -- templates and snapshots, where the backend has them ----------------------
    def take_snapshot(self, name: str, snapshot: str, description: str = "") -> None: ...
    def revert_snapshot(self, name: str, snapshot: str) -> None: ...
    def delete_snapshot(self, name: str, snapshot: str, metadata_only: bool = False) -> None: ...
    def snapshots(self, name: str) -> list[Snapshot]: ...
    # a template VM's RAM in a shared file of its store (False: it cannot here)
    def map_memory(self, name: str, ram: str, memory_mib: int) -> bool: ...
    def save_template(self, name: str, snapshot: str, description: str) -> None: ...
    # ram: the template's memory file, mapped by the restored VM ("": in the snapshot)
    def restore_into(self, name: str, snapshot: str, ram: str = "") -> None: ...
    def replug_nics(self, name: str) -> None: ...
    def guest_agent(self, name: str) -> GuestAgent | None: ...  # None: none answers
    def resident_mib(self, name: str) -> int | None: ...  # host RAM a running VM holds

    # -- the console ------------------------------------------------------------
    def serial_tail(self, name: str, lines: int) -> str: ...
    def serial_reader(self, name: str) -> Callable[[], bytes]: ...

    def close(self) -> None: ...
