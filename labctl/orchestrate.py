"""The use cases: plan, up, down, status, and reaching one VM. They wire the
model, layout, planner, libvirt backend and SSH together, report progress as
Events and return results; they never print."""

from __future__ import annotations

import dataclasses
import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import paramiko

from labctl import interrupt
from labctl import plan as planner
from labctl.deploy import deploy_vm, observe, plan_containers
from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.fileio import read_json, write_atomic
from labctl.images.cache import ImageCache
from labctl.labfiles import LabFiles, SshEntry
from labctl.layout import Layout, VmPlan, lab_layout
from labctl.model import Lab
from labctl.provision import Provisioner
from labctl.registry import LabRegistry, guest_config_commands
from labctl.ssh.transport import SSHTransport
from labctl.ssh.wait import Probes, Readiness, wait_ready
from labctl.virt import access, inventory
from labctl.virt.connection import Accel, connect, probe_accel
from labctl.virt.storage import Storage

# Built images touch the first file when their extras ran; cloud-init the second.
BOOT_FINISHED = "test -e /run/labctl-boot-finished || test -e /var/lib/cloud/instance/boot-finished"


@dataclass(frozen=True)
class Settings:
    uri: str
    data_dir: Path
    templates: Path | None = None
    workers: int | None = None  # VMs provisioned at once; None: 2 under TCG, 4 with KVM
    budgets: dict[str, float] = field(default_factory=dict)

    @property
    def images(self) -> ImageCache:
        return ImageCache(self.data_dir / "images")

    def placed(self, lab: str) -> Settings:
        """These settings aimed at the libvirt host the lab was placed on (a class
        spread over several hosts); unchanged for a lab placed nowhere else."""
        uri = LabFiles(self.data_dir, lab).placement().get("uri")
        return dataclasses.replace(self, uri=uri) if uri and uri != self.uri else self


@dataclass(frozen=True)
class VmOutcome:
    name: str
    domain: str
    verb: str
    readiness: Readiness | None = None
    error: str | None = None
    containers: tuple[planner.Action, ...] = ()


@dataclass(frozen=True)
class UpResult:
    lab: str
    accel: Accel
    actions: list[planner.Action]
    vms: list[VmOutcome]
    ssh_config: Path
    seconds: float

    @property
    def changed(self) -> bool:
        return any(a.changes for a in self.actions) or any(
            a.changes for vm in self.vms for a in vm.containers)


def layout_for(lab: Lab, settings: Settings) -> Layout:
    cache = settings.images
    return lab_layout(lab, {name: cache.get(name).sha256 for name in {vm.image for vm in lab.vms}})


def plan_lab(lab: Lab, settings: Settings) -> list[planner.Action]:
    """VM and network actions, then container actions: observed over SSH in VMs
    that will be kept; in VMs about to be (re)created every container is new."""
    settings = settings.placed(lab.name)
    conn = connect(settings.uri)
    files = LabFiles(settings.data_dir, lab.name)
    actions = planner.plan(layout_for(lab, settings), observe_lab(conn, files))
    verbs = {a.name: a.verb for a in actions if a.kind == "vm"}
    for vm in lab.vms:
        observed = []
        if verbs.get(vm.name) == "keep":
            transport = connect_vm(lab.name, vm.name, settings)
            try:
                observed = observe(transport, lab.name, vm.name,
                                   frozenset(c.runtime for c in vm.containers))
            finally:
                transport.close()
        actions += plan_containers(vm, observed, lab.directory)
    return actions


def observe_lab(conn: libvirt.virConnect, files: LabFiles) -> list[planner.Observed]:
    """What libvirt has of the lab; a VM whose keys this data dir lost (another
    data dir made it, or the files were deleted) cannot be logged into: recreate."""
    observed = inventory.observe(conn, files.lab)
    has_login = files.login_key_path.exists()
    return [dataclasses.replace(o, reachable=False)
            if o.kind == "vm" and not (has_login and files.pinned_host_key(o.libvirt_name))
            else o for o in observed]


def up(lab: Lab, settings: Settings, report: Report,
       reset: frozenset[str] = frozenset()) -> UpResult:
    """Bring the lab to its file; VMs named in `reset` are recreated from their
    base image (a fresh overlay: their post-`up` state) whatever their state."""
    start = time.monotonic()
    layout = layout_for(lab, settings)
    conn = connect(settings.uri)
    accel = probe_accel(conn, settings.uri)
    report(Event("host", "accel", accel.reason))
    files = LabFiles(settings.data_dir, lab.name)
    actions = [planner.Action("recreate", a.kind, a.name, "reset") if a.kind == "vm"
               and a.name in reset and a.verb != "create" else a
               for a in planner.plan(layout, observe_lab(conn, files))]
    report(Event(f"lab {lab.name}", "plan", planner.summary(actions)))
    storage = Storage(conn)
    prov = Provisioner(conn, storage, files, accel, report, settings.templates,
                       group=lab.group, copy=lab.copy)
    files.login_key()  # once, before VMs are created in parallel
    files.record_placement(settings.uri, lab.group, lab.copy)

    verbs = {(a.kind, a.name): a.verb for a in actions}
    for action in actions:  # VMs leave before the networks they sit on change
        if action.kind == "vm" and action.verb == "delete":
            prov.remove_vm(f"{layout.prefix}.{action.name}")
    for action in actions:
        name = f"{layout.prefix}.{action.name}"
        if action.kind != "network":
            continue
        interrupt.checkpoint()
        if action.verb == "delete":
            prov.remove_network(name)
        elif action.verb in ("create", "recreate"):
            _remove_attached_vms(prov, layout, action.name, verbs)
            prov.create_network(next(n for n in layout.networks if n.network.name == action.name))
        elif action.verb == "start":
            prov.start_network(name)

    bases = {}
    for image_name in {p.vm.image for p in layout.vms if verbs[("vm", p.vm.name)] != "keep"}:
        image = settings.images.get(image_name)
        report(Event(f"image {image_name}", "upload", "making the base image available to libvirt"))
        bases[image_name] = (image, storage.ensure_base(image))

    def bring_up(vm_plan: VmPlan) -> VmOutcome:
        verb = verbs[("vm", vm_plan.vm.name)]
        try:
            interrupt.checkpoint()
            if verb in ("create", "recreate"):
                image, base = bases[vm_plan.vm.image]
                report(Event(f"vm {vm_plan.vm.name}", "define", f"{verb} {vm_plan.domain}"))
                prov.create_vm(vm_plan, image, base)
            began = time.monotonic()
            if verb != "keep":
                interrupt.checkpoint()
                prov.start_vm(vm_plan.domain)
                report(Event(f"vm {vm_plan.vm.name}", "started", "", time.monotonic() - began))
            transport, readiness = wait_vm_ready(conn, files, vm_plan, settings, report, began)
            try:  # the readiness connection carries the deployment too
                if registry is not None:
                    configure_registry(transport, registry.address)
                containers = deploy_vm(transport, lab, vm_plan.vm, report)
            finally:
                transport.close()
            return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb, readiness,
                             containers=tuple(containers))
        except LabctlError as exc:
            return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb, error=exc.message
                             + (f"\n  hint: {exc.hint}" if exc.hint else ""))
        except libvirt.libvirtError as exc:  # e.g. libvirtd went away mid-readiness
            return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb,
                             error=f"VM '{vm_plan.vm.name}': libvirt failed: "
                             f"{exc.get_error_message()}\n  hint: is libvirtd running? "
                             "('labctl doctor' checks)")

    registry = LabRegistry(settings.data_dir, lab.name).status()
    workers = settings.workers or (4 if accel.is_kvm else 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(bring_up, layout.vms))
    failed = [o for o in outcomes if o.error]
    if interrupt.requested():
        ready = len(outcomes) - len(failed)
        raise interrupt.Interrupted(
            f"interrupted: lab '{lab.name}' is partly up ({ready} of {len(outcomes)} VMs "
            "ready); every step in flight finished",
            f"'labctl up {lab.source}' finishes it; 'labctl down {lab.name}' removes it")
    config = files.write_ssh_files(_ssh_entries(conn, layout))
    _save_readiness(files, outcomes)
    if failed:
        first = failed[0].error.split("\n  hint: ")
        raise LabctlError(
            f"{len(outcomes) - len(failed)} of {len(outcomes)} VMs ready; {first[0]}",
            (first[1] if len(first) > 1 else "") + "\n  'labctl up' again resumes; "
            "'labctl down' removes the lab")
    return UpResult(lab.name, accel, actions, outcomes, config, time.monotonic() - start)


def configure_registry(transport: SSHTransport, address: str) -> None:
    """Let the VM's podman and docker use the lab registry over plain HTTP."""
    transport.run(["sudo", "-n", "sh", "-c", guest_config_commands(address)]).check(
        f"{transport.label}: configuring the lab registry")


def _remove_attached_vms(prov: Provisioner, layout: Layout, network: str,
                         verbs: dict[tuple[str, str], str]) -> None:
    for vm_plan in layout.vms:
        if any(n.network == network for n in vm_plan.nics):
            if verbs[("vm", vm_plan.vm.name)] == "keep":
                verbs[("vm", vm_plan.vm.name)] = "recreate"
            prov.remove_vm(vm_plan, forget_keys=False)


def wait_vm_ready(conn: libvirt.virConnect, files: LabFiles, vm_plan: VmPlan, settings: Settings,
          report: Report, began: float) -> tuple[SSHTransport, Readiness]:
    dom = conn.lookupByName(vm_plan.domain)
    label = f"VM '{vm_plan.vm.name}'"
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(files.login_key().private))
    pinned = files.pinned_host_key(vm_plan.domain) or ""
    probes = Probes(
        is_running=lambda: access.is_running(dom),
        address=lambda: access.endpoint(conn, dom),
        login=lambda sock: SSHTransport.over_socket(sock, label, vm_plan.vm.user, pkey, pinned),
        boot_finished=lambda t: t.run(BOOT_FINISHED, timeout=30).ok,
        serial_tail=lambda n: access.serial_tail(dom, n),
    )
    return wait_ready(vm_plan.vm.name, probes, report, start=began, budgets=settings.budgets)


def _ssh_entries(conn: libvirt.virConnect, layout: Layout) -> list[SshEntry]:
    entries = []
    for vm_plan in layout.vms:
        try:
            endpoint = access.endpoint(conn, conn.lookupByName(vm_plan.domain))
        except libvirt.libvirtError:
            continue
        if endpoint is not None:
            entries.append(SshEntry(vm_plan.domain, endpoint.host, endpoint.port,
                                    vm_plan.vm.user))
    return entries


def _save_readiness(files: LabFiles, outcomes: list[VmOutcome]) -> None:
    """Stage times of the last start of each VM, for `status` and the benchmark."""
    path = files.dir / "readiness.json"
    old = read_json(path)
    now = time.time()
    for o in outcomes:
        if o.readiness is not None and (o.verb != "keep" or o.name not in old):
            old[o.name] = {"verb": o.verb, "stages": o.readiness.stages,
                           "detection_lag": o.readiness.detection_lag,
                           "started_at": now - o.readiness.total()}
    write_atomic(path, json.dumps(old, indent=2) + "\n")


@dataclass(frozen=True)
class DownResult:
    lab: str
    domains: list[str]
    networks: list[str]
    volumes: list[str]
    files: bool

    @property
    def removed_anything(self) -> bool:
        return bool(self.domains or self.networks or self.volumes or self.files)


def down(lab_name: str, settings: Settings, report: Report) -> DownResult:
    """Remove everything of the lab that libvirt and the data dir hold; found by
    metadata and the 'LAB.' name prefix, so the lab file is not needed."""
    settings = settings.placed(lab_name)
    conn = connect(settings.uri)
    storage = Storage(conn)
    files = LabFiles(settings.data_dir, lab_name)
    prov = Provisioner(conn, storage, files, Accel("qemu", ""), report)
    domains = [f.libvirt_name for f in inventory.domains(conn, lab_name)]
    for name in domains:
        _stop_point(lab_name)
        report(Event(f"vm {name}", "remove", "destroy, undefine, delete volumes"))
        prov.remove_vm(name)
    networks = [f.libvirt_name for f in inventory.networks(conn, lab_name)]
    for name in networks:
        _stop_point(lab_name)
        report(Event(f"network {name}", "remove"))
        prov.remove_network(name)
    leftovers = storage.names(prefix=f"{lab_name}.")  # from a run killed mid-create
    for name in leftovers:
        storage.delete(name)
    _stop_point(lab_name)
    if LabRegistry(settings.data_dir, lab_name).stop():
        report(Event(f"lab {lab_name}", "registry", "stopped and deleted"))
    return DownResult(lab_name, domains, networks, leftovers, files.remove())


def _stop_point(lab_name: str) -> None:
    if interrupt.requested():
        raise interrupt.Interrupted(f"interrupted: lab '{lab_name}' is partly removed",
                                    f"'labctl down {lab_name}' again finishes removing it")


@dataclass(frozen=True)
class VmStatus:
    name: str
    domain: str
    state: str
    endpoint: str | None
    user: str
    stages: dict[str, float]
    detection_lag: float | None
    uptime: float | None  # seconds since labctl last started it


_STATES = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
           libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_CRASHED: "crashed",
           libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down"}


def status(lab_name: str, settings: Settings) -> list[VmStatus]:
    settings = settings.placed(lab_name)
    conn = connect(settings.uri)
    files = LabFiles(settings.data_dir, lab_name)
    path = files.dir / "readiness.json"
    readiness = read_json(path)
    out = []
    for found in inventory.domains(conn, lab_name):
        dom = conn.lookupByName(found.libvirt_name)
        state = _STATES.get(dom.state(0)[0], "other")
        endpoint = access.endpoint(conn, dom) if state == "running" else None
        seen = readiness.get(found.meta.name, {})
        started = seen.get("started_at")
        out.append(VmStatus(found.meta.name, found.libvirt_name, state,
                            str(endpoint) if endpoint else None, found.meta.user,
                            seen.get("stages", {}), seen.get("detection_lag"),
                            time.time() - started if started and state == "running" else None))
    return out


def connect_vm(lab_name: str, vm: str, settings: Settings) -> SSHTransport:
    """An authenticated SSH connection to one running VM of a lab."""
    settings = settings.placed(lab_name)
    conn = connect(settings.uri)
    found = [f for f in inventory.domains(conn, lab_name) if f.meta.name == vm]
    if not found:
        known = ", ".join(f.meta.name for f in inventory.domains(conn, lab_name)) or "none"
        raise LabctlError(f"lab '{lab_name}' has no VM '{vm}'", f"its VMs: {known}")
    dom = conn.lookupByName(found[0].libvirt_name)
    endpoint = access.endpoint(conn, dom) if access.is_running(dom) else None
    if endpoint is None:
        raise LabctlError(f"VM '{vm}' of lab '{lab_name}' is not running or has no address",
                          "run 'labctl up' for the lab")
    files = LabFiles(settings.data_dir, lab_name)
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(files.login_key().private))
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=10)
    except OSError as exc:
        raise LabctlError(f"cannot reach VM '{vm}' at {endpoint}: {exc.strerror}") from None
    return SSHTransport.over_socket(sock, f"VM '{vm}'", found[0].meta.user, pkey,
                                    files.pinned_host_key(found[0].libvirt_name) or "")
