"""The use cases of one lab: plan, up (and reset), down, status. They wire the
plan, a Backend and the VMs' SSH together on a Session, take the lab's lock when
they change it, report progress as Events and return results; never print."""

from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from labctl import interrupt, shell
from labctl.backend import Backend, Provisioning
from labctl.errors import BackendError, LabctlError
from labctl.events import Event
from labctl.fileio import read_json, write_atomic
from labctl.images.pull import pull_image
from labctl.lab.model import Lab
from labctl.labfiles import LabFiles, SshEntry
from labctl.plan import actions as planner
from labctl.plan import capacity
from labctl.plan.containers import plan_containers
from labctl.plan.hosts import Accel
from labctl.plan.layout import Layout, VmPlan, lab_layout, object_name
from labctl.plan.mirrors import mirror_config_commands
from labctl.runtime.deploy import deploy_vm, observe
from labctl.runtime.sources import source_digests
from labctl.ssh.wait import Readiness
from labctl.usecases import resetpoints, snapshots, templates
from labctl.usecases.registry import lab_registry
from labctl.usecases.session import FirstBootFailed, Session


@dataclass(frozen=True)
class VmOutcome:
    name: str
    domain: str
    verb: str
    readiness: Readiness | None = None
    error: str | None = None
    containers: tuple[planner.Action, ...] = ()
    boot_failed: bool = False  # it runs, but its first boot did not do what was asked


@dataclass(frozen=True)
class UpResult:
    lab: str
    accel: Accel
    actions: list[planner.Action]
    vms: list[VmOutcome]
    ssh_config: str
    seconds: float

    @property
    def changed(self) -> bool:
        return any(a.changes for a in self.actions) or any(
            a.changes for vm in self.vms for a in vm.containers)


def ensure_images(session: Session, lab: Lab) -> None:
    """Download the stock cloud images the lab names by URL, once: the cache
    keeps them by digest."""
    cache = session.settings.images
    for vm in lab.vms:
        if vm.image_url and not cache.has(vm.image):
            session.report(Event(f"image {vm.image}", "pull", vm.image_url))
            pull_image(vm.image_url, vm.image_sha256 or "", vm.image, cache, session.report)


def layout_for(session: Session, lab: Lab) -> Layout:
    ensure_images(session, lab)
    cache = session.settings.images
    return lab_layout(lab, {name: cache.get(name).sha256 for name in {vm.image for vm in lab.vms}})


def plan(session: Session, lab: Lab) -> list[planner.Action]:
    """VM and network actions, then container actions: observed over SSH in VMs
    that will be kept; in VMs about to be (re)created every container is new."""
    host = session.lab_host(lab.name)
    actions = planner.plan(layout_for(session, lab), observe_lab(host, session.files(lab.name)))
    verbs = {a.name: a.verb for a in actions if a.kind == "vm"}
    for vm in lab.vms:
        observed = []
        if verbs.get(vm.name) == "keep":
            with session.connect_vm(lab.name, vm.name) as transport:
                observed = observe(transport, lab.name, vm.name,
                                   frozenset(c.runtime for c in vm.containers))
        actions += plan_containers(vm, observed, source_digests(vm, lab.directory))
    return actions


def observe_lab(host: Backend, files: LabFiles) -> list[planner.Observed]:
    """What the host has of the lab; a VM whose keys this data dir lost (another
    data dir made it, or the files were deleted) cannot be logged into: recreate."""
    observed = [f.observed() for f in host.networks(files.lab) + host.domains(files.lab)]
    has_login = files.login_key_path.exists() and files.admin_key_path.exists()
    failed = {name for name, seen in read_json(files.dir / "readiness.json").items()
              if seen.get("boot_failed")}
    return [dataclasses.replace(
        o, reachable=has_login and bool(files.pinned_host_key(o.libvirt_name)),
        boot_failed=o.name in failed or templates.restoring(files.dir,
                                                            o.libvirt_name).exists())
        if o.kind == "vm" else o for o in observed]


def up(session: Session, lab: Lab, reset: frozenset[str] = frozenset(),
       uri: str | None = None) -> UpResult:
    """Bring the lab to its file, under its lock; VMs named in `reset` go back
    to their post-`up` state (their reset point, or recreated: see
    resetpoints.py), and running VMs it does not name are left alone.
    `uri`: the host a class placed this copy on (default: the host the lab
    was placed on, else the session's -- a lab never gets a twin elsewhere)."""
    with session.changing(lab.name, "reset" if reset else "up"):
        return _up(session, lab, reset, session.host(uri or session.placed_uri(lab.name)))


def refuse_open_lab_off_namespace(lab: Lab, host: Backend, required: bool) -> None:
    """Under the project's scripts and CI (settings.require_netns) an open lab
    must boot under a libvirtd in a network namespace, whose only 'internet'
    is the simulated world: never one whose guests reach the real uplink."""
    if required and any(not n.sealed for n in lab.networks) and host.daemon_in_root_netns():
        raise LabctlError(f"refusing to boot the open lab '{lab.name}' under a libvirtd in "
                          "this machine's own network namespace (LABCTL_REQUIRE_NETNS=1)",
                          "start the namespaced one (scripts/libvirtd-netns start) and run "
                          "labctl through 'scripts/libvirtd-netns exec', or seal the lab "
                          "(internet: false)")


def _up(session: Session, lab: Lab, reset: frozenset[str], host: Backend) -> UpResult:
    start = time.monotonic()
    report, settings = session.report, session.settings
    refuse_open_lab_off_namespace(lab, host, settings.require_netns)
    layout = layout_for(session, lab)
    report(Event("host", "accel", host.accel.reason))
    files = session.files(lab.name)
    actions = _with_resets(planner.plan(layout, observe_lab(host, files)), reset, host,
                           layout.prefix, settings.cold)
    report(Event(f"lab {lab.name}", "plan", planner.summary(actions)))
    prov = host.provisioner(files, report, settings.templates, group=lab.group, copy=lab.copy)
    files.login_key()  # once, before VMs are created in parallel
    files.admin_key()
    files.record_placement(host.uri, lab.group, lab.copy, str(lab.source.resolve()))

    def report(event: Event, _report=report) -> None:  # noqa: ANN001 - also kept for live views
        _report(event)
        if event.subject.startswith("vm "):
            files.record_progress(event.subject[3:], event.stage, event.detail)

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
        bases[image_name] = (image, host.ensure_base(image))
    registry = lab_registry(session, lab.name, host).status()

    def bring_up(vm_plan: VmPlan) -> VmOutcome:
        verb = verbs[("vm", vm_plan.vm.name)]
        if reset and verb == "keep":  # a reset touches the VMs it names, not the others
            return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb)
        try:
            interrupt.checkpoint()
            began = time.monotonic()
            if verb == "revert":
                try:
                    began = resetpoints.return_to_point(host, files.dir, vm_plan.domain,
                                                        vm_plan.vm.name, report)
                except LabctlError as exc:
                    report(Event(f"vm {vm_plan.vm.name}", "reset-point",
                                 f"cannot return to it ({exc.message}): recreating the VM"))
                    verb = "recreate"
            if verb in ("create", "recreate"):
                image, base = bases[vm_plan.vm.image]
                began = templates.create_and_start(session, host, prov, vm_plan, image, base,
                                                   verb, report)
            elif verb not in ("keep", "revert"):
                interrupt.checkpoint()
                prov.start_vm(vm_plan.domain)
                report(Event(f"vm {vm_plan.vm.name}", "started", "", time.monotonic() - began))
            transport, readiness = session.reach.wait_ready(host, files, vm_plan, report, began,
                                                            settings.budgets)
            with transport:  # the readiness connection carries the deployment too
                if verb == "revert":
                    resetpoints.refresh(transport, files.dir, vm_plan.domain, vm_plan.vm.name)
                elif vm_plan.vm.name in reset and verb != "start" and not settings.cold:
                    resetpoints.keep_point(host, vm_plan.domain, vm_plan.vm.name, report)
                if lab.mirrors.registry or lab.mirrors.apt:
                    transport.run(["sudo", "-n", "sh", "-c", mirror_config_commands(
                        lab.mirrors.registry, lab.mirrors.apt, lab.mirrors.apt_key)]).check(
                        f"VM '{vm_plan.vm.name}': configuring the lab's mirrors")
                if registry is not None:
                    registry.configure(transport)
                containers = deploy_vm(transport, lab, vm_plan.vm, report,
                                       fresh=verb in ("create", "recreate", "revert"))
            return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb, readiness,
                             containers=tuple(containers))
        except LabctlError as exc:  # a BackendError too: libvirtd went away mid-readiness
            said = f"VM '{vm_plan.vm.name}': {exc.message}" \
                if isinstance(exc, BackendError) else exc.message
            return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb, error=said
                             + (f"\n  hint: {exc.hint}" if exc.hint else ""),
                             boot_failed=isinstance(exc, FirstBootFailed))

    workers = settings.workers or capacity.vms_at_once(host.accel, host.cpus)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(bring_up, layout.vms))
    failed = [o for o in outcomes if o.error]
    for o in failed:  # each VM's own failure, not only the first one's
        report(Event(f"vm {o.name}", "failed", o.error.split("\n  hint: ")[0]))
    if interrupt.requested():
        ready = len(outcomes) - len(failed)
        raise interrupt.Interrupted(
            f"interrupted: lab '{lab.name}' is partly up ({ready} of {len(outcomes)} VMs "
            "ready); every step in flight finished",
            f"'labctl up {lab.source}' finishes it; 'labctl down {lab.name}' removes it")
    config = files.write_ssh_files(ssh_entries(host, layout))
    _save_readiness(files, outcomes)
    if failed:
        first = failed[0].error.split("\n  hint: ")
        raise LabctlError(
            f"{len(outcomes) - len(failed)} of {len(outcomes)} VMs ready; {first[0]}",
            (first[1] if len(first) > 1 else "") + "\n  'labctl up' again resumes; "
            "'labctl down' removes the lab")
    return UpResult(lab.name, host.accel, actions, outcomes, str(config),
                    time.monotonic() - start)


def _with_resets(actions: list[planner.Action], reset: frozenset[str], host: Backend,
                 prefix: str, cold: bool) -> list[planner.Action]:
    """VMs named in `reset`: back to their reset point when they have one and
    nothing else changed, else recreated (see resetpoints.py)."""
    def one(a: planner.Action) -> planner.Action:
        if a.kind != "vm" or a.name not in reset or a.verb == "create":
            return a
        if a.verb in ("keep", "start") and not cold and \
                resetpoints.has_point(host, object_name(prefix, a.name)):
            return planner.Action("revert", a.kind, a.name, "reset: to its reset point")
        return planner.Action("recreate", a.kind, a.name, "reset")
    return [one(a) for a in actions]


def _remove_attached_vms(prov: Provisioning, layout: Layout, network: str,
                         verbs: dict[tuple[str, str], str]) -> None:
    for vm_plan in layout.vms:
        if any(n.network == network for n in vm_plan.nics):
            if verbs[("vm", vm_plan.vm.name)] in ("keep", "revert"):
                verbs[("vm", vm_plan.vm.name)] = "recreate"
            prov.remove_vm(vm_plan, forget_keys=False)


def ssh_entries(host: Backend, layout: Layout) -> list[SshEntry]:
    entries = []
    for vm_plan in layout.vms:
        endpoint = host.endpoint(vm_plan.domain)
        if endpoint is not None:
            entries.append(SshEntry(vm_plan.domain, endpoint.host, endpoint.port,
                                    vm_plan.vm.user, endpoint.jump,
                                    shell.join(endpoint.via) if endpoint.via else ""))
    return entries


def _save_readiness(files: LabFiles, outcomes: list[VmOutcome]) -> None:
    """Stage times of the last start of each VM, for `status` and the benchmark."""
    path = files.dir / "readiness.json"
    old = read_json(path)
    now = time.time()
    for o in outcomes:
        if o.boot_failed:  # the next `up` recreates it
            old[o.name] = {"verb": o.verb, "boot_failed": True}
        elif o.readiness is not None and (o.verb != "keep" or o.name not in old):
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


def down(session: Session, lab_name: str) -> DownResult:
    """Remove everything of the lab that its host and the data dir hold, under
    its lock; found by metadata and the 'LAB.' prefix: no lab file needed."""
    with session.changing(lab_name, "down"):
        return _down(session, lab_name)


def _down(session: Session, lab_name: str) -> DownResult:
    report = session.report
    host = session.lab_host(lab_name)
    files = session.files(lab_name)
    prov = host.provisioner(files, report)
    domains = [f.libvirt_name for f in host.domains(lab_name)]
    _stop_point(lab_name)

    def destroy(name: str) -> None:
        report(Event(f"vm {name}", "remove", "destroy, undefine, delete volumes"))
        host.remove_domain(name)

    # Domains all at once (each mostly waits on its qemu to exit); then the
    # volumes one by one (a pool is refreshed and changed by one caller at a time).
    with ThreadPoolExecutor(max_workers=max(1, min(len(domains), 8))) as pool:
        list(pool.map(destroy, domains))
    for name in domains:  # the lab dir goes as a whole below: host keys with it
        prov.remove_vm(name, forget_keys=False)
    networks = [f.libvirt_name for f in host.networks(lab_name)]
    for name in networks:
        _stop_point(lab_name)
        report(Event(f"network {name}", "remove"))
        prov.remove_network(name)
    leftovers = host.storage.names(prefix=f"{lab_name}.")  # from a run killed mid-create
    for name in leftovers:
        host.storage.delete(name)
    _stop_point(lab_name)
    if lab_registry(session, lab_name, host).stop():
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
    snapshots: tuple[str, ...] = ()  # its students' snapshots, oldest first
    jump: str = ""  # its endpoint is reached through this host's sshd (ProxyJump)
    proxy: str = ""  # the OpenSSH command labctl goes through it with (ProxyCommand)


def status(session: Session, lab_name: str) -> list[VmStatus]:
    host = session.lab_host(lab_name)
    readiness = read_json(session.files(lab_name).dir / "readiness.json")
    out = []
    for found in host.domains(lab_name):
        state = host.state(found.libvirt_name)
        endpoint = host.endpoint(found.libvirt_name) if state == "running" else None
        seen = readiness.get(found.meta.name, {})
        started = seen.get("started_at")
        out.append(VmStatus(found.meta.name, found.libvirt_name, state,
                            str(endpoint) if endpoint else None, found.meta.user,
                            seen.get("stages", {}), seen.get("detection_lag"),
                            time.time() - started if started and state == "running" else None,
                            tuple(s.name for s in snapshots.students(
                                host.snapshots(found.libvirt_name))),
                            endpoint.jump if endpoint else "",
                            shell.join(endpoint.via) if endpoint and endpoint.via else ""))
    return out
