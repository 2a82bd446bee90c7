"""Bringing one lab to its file (`up` and `reset`, under the lab's lock that
usecases/lab.py takes), phase by phase: plan against what the backend holds,
networks, base images, then each VM in parallel -- started (a reset point, a
template or a cold boot), ready over SSH, its containers deployed -- and
finally the lab's SSH files and readiness record. Each phase returns data;
a VM's failure is its outcome, said together with the others'."""

from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labctl import interrupt, shell
from labctl.backend import Backend, BaseVolumes, Provisioning
from labctl.errors import BackendError, LabctlError
from labctl.events import Event, Report
from labctl.fileio import read_json, write_atomic
from labctl.images.cache import Image
from labctl.images.pull import pull_image
from labctl.lab.model import CLOUD_IMAGE_PREFIX, Lab
from labctl.labfiles import LabFiles, SshEntry
from labctl.plan import actions as planner
from labctl.plan import capacity
from labctl.plan.hosts import Accel
from labctl.plan.layout import Layout, VmPlan, lab_layout, object_name
from labctl.plan.mirrors import mirror_config_commands
from labctl.runtime.deploy import deploy_vm
from labctl.runtime.registry import Registry
from labctl.ssh.transport import SSHTransport
from labctl.ssh.wait import Readiness
from labctl.usecases import resetpoints, templates
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


def refuse_cloud_images_off_cloud(lab: Lab, host: Backend) -> None:
    """`image: {cloud: NAME}` lives in an OpenStack cloud's Glance: a libvirt
    host has no such image (said before anything is made)."""
    from labctl.cloud.records import is_cloud

    for vm in lab.vms:
        if vm.image.startswith(CLOUD_IMAGE_PREFIX) and not is_cloud(host.uri):
            raise LabctlError(f"VM '{vm.name}' uses '{vm.image.removeprefix(CLOUD_IMAGE_PREFIX)}'"
                              f", an image of an OpenStack cloud, but runs on {host.uri}",
                              "run the lab on that cloud (hosts: [openstack:CLOUD] or --host "
                              "openstack:CLOUD), or give the VM an image labctl has")


@dataclass
class _Run:
    """One `up`: what its phases share."""

    session: Session
    lab: Lab
    host: Backend
    reset: frozenset[str]
    layout: Layout
    files: LabFiles
    prov: Provisioning
    verbs: dict[tuple[str, str], str]
    report: Report


def bring_up_lab(session: Session, lab: Lab, reset: frozenset[str], host: Backend) -> UpResult:
    """The phases of an up: plan, networks, base images, each VM, the lab's files."""
    start = time.monotonic()
    settings = session.settings
    refuse_open_lab_off_namespace(lab, host, settings.require_netns)
    refuse_cloud_images_off_cloud(lab, host)
    layout = layout_for(session, lab)
    session.report(Event("host", "accel", host.accel.reason))
    files = session.files(lab.name)
    actions = _with_resets(planner.plan(layout, observe_lab(host, files)), reset, host,
                           layout.prefix, settings.cold)
    session.report(Event(f"lab {lab.name}", "plan", planner.summary(actions)))
    files.login_key()  # once, before VMs are created in parallel
    files.admin_key()
    files.record_placement(host.uri, lab.group, lab.copy, str(lab.source.resolve()))
    if lab.per_copy:
        files.record_values(lab.values)

    def report(event: Event) -> None:  # kept for live views too
        session.report(event)
        if event.subject.startswith("vm "):
            files.record_progress(event.subject[3:], event.stage, event.detail)

    prov = host.provisioner(files, report, settings.templates, group=lab.group, copy=lab.copy)
    run = _Run(session, lab, host, reset, layout, files, prov,
               {(a.kind, a.name): a.verb for a in actions}, report)
    bases = _base_images(run)  # first: an image the host lacks stops up before anything is made
    _networks(run, actions)
    registry = lab_registry(session, lab.name, host).status()
    workers = settings.workers or capacity.vms_at_once(host.accel, host.cpus)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda p: _bring_up(run, p, bases, registry), layout.vms))
    config = _finish(run, outcomes)
    return UpResult(lab.name, host.accel, actions, outcomes, str(config),
                    time.monotonic() - start)


def _networks(run: _Run, actions: list[planner.Action]) -> None:
    """VMs that go leave first, then the lab's networks are made as planned."""
    layout, prov = run.layout, run.prov
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
            _remove_attached_vms(prov, layout, action.name, run.verbs)
            prov.create_network(next(n for n in layout.networks if n.network.name == action.name))
        elif action.verb == "start":
            prov.start_network(name)


def _base_images(run: _Run) -> dict[str, tuple[Image, BaseVolumes]]:
    """Each image a VM is made from, made available to the backend once."""
    bases = {}
    for image_name in {p.vm.image for p in run.layout.vms
                       if run.verbs[("vm", p.vm.name)] != "keep"}:
        image = run.session.settings.images.get(image_name)
        run.report(Event(f"image {image_name}", "upload",
                         "making the base image available to the host"))
        bases[image_name] = (image, run.host.ensure_base(image))
    return bases


def _bring_up(run: _Run, vm_plan: VmPlan, bases: dict[str, tuple[Image, BaseVolumes]],
              registry: Registry | None) -> VmOutcome:
    """One VM to its file: started (restored, reverted or booted), ready over
    SSH, its containers deployed; a failure is its outcome, not an exception."""
    verb = run.verbs[("vm", vm_plan.vm.name)]
    if run.reset and verb == "keep":  # a reset touches the VMs it names, not the others
        return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb)
    try:
        interrupt.checkpoint()
        verb, began = _start(run, vm_plan, verb, bases)
        transport, readiness = run.session.reach.wait_ready(
            run.host, run.files, vm_plan, run.report, began, run.session.settings.budgets)
        with transport:  # the readiness connection carries the deployment too
            containers = _converge(run, vm_plan, verb, transport, registry)
        return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb, readiness,
                         containers=tuple(containers))
    except LabctlError as exc:  # a BackendError too: libvirtd went away mid-readiness
        said = f"VM '{vm_plan.vm.name}': {exc.message}" \
            if isinstance(exc, BackendError) else exc.message
        return VmOutcome(vm_plan.vm.name, vm_plan.domain, verb, error=said
                         + (f"\n  hint: {exc.hint}" if exc.hint else ""),
                         boot_failed=isinstance(exc, FirstBootFailed))


def _start(run: _Run, vm_plan: VmPlan, verb: str,
           bases: dict[str, tuple[Image, BaseVolumes]]) -> tuple[str, float]:
    """The VM running: back to its reset point, made (restored or booted), or
    started; the verb it took (a point that fails is a recreate) and when."""
    began = time.monotonic()
    if verb == "revert":
        try:
            began = resetpoints.return_to_point(run.host, run.files.dir, vm_plan.domain,
                                                vm_plan.vm.name, run.report)
        except LabctlError as exc:
            run.report(Event(f"vm {vm_plan.vm.name}", "reset-point",
                             f"cannot return to it ({exc.message}): recreating the VM"))
            verb = "recreate"
    if verb in ("create", "recreate"):
        image, base = bases[vm_plan.vm.image]
        began = templates.create_and_start(run.session, run.host, run.prov, vm_plan, image,
                                           base, verb, run.report)
    elif verb not in ("keep", "revert"):
        interrupt.checkpoint()
        run.prov.start_vm(vm_plan.domain)
        run.report(Event(f"vm {vm_plan.vm.name}", "started", "", time.monotonic() - began))
    return verb, began


def _converge(run: _Run, vm_plan: VmPlan, verb: str, transport: SSHTransport,
              registry: Registry | None) -> list[planner.Action]:
    """A ready VM: its reset point kept or refreshed, the lab's mirrors and
    registry configured, its containers deployed."""
    lab, settings = run.lab, run.session.settings
    if verb == "revert":
        resetpoints.refresh(transport, run.files.dir, vm_plan.domain, vm_plan.vm.name)
    elif vm_plan.vm.name in run.reset and verb != "start" and not settings.cold:
        resetpoints.keep_point(run.host, vm_plan.domain, vm_plan.vm.name, run.report)
    if lab.mirrors.registry or lab.mirrors.apt:
        transport.run(["sudo", "-n", "sh", "-c", mirror_config_commands(
            lab.mirrors.registry, lab.mirrors.apt, lab.mirrors.apt_key)]).check(
            f"VM '{vm_plan.vm.name}': configuring the lab's mirrors")
    if registry is not None:
        registry.configure(transport)
    return deploy_vm(transport, lab, vm_plan.vm, run.report,
                     fresh=verb in ("create", "recreate", "revert"))


def _finish(run: _Run, outcomes: list[VmOutcome]) -> Path:
    """Each VM's failure said, the lab's SSH files and readiness written; an
    interrupted or failed up raises with what to do."""
    lab, files = run.lab, run.files
    failed = [o for o in outcomes if o.error]
    for o in failed:  # each VM's own failure, not only the first one's
        run.report(Event(f"vm {o.name}", "failed", o.error.split("\n  hint: ")[0]))
    if interrupt.requested():
        ready = len(outcomes) - len(failed)
        raise interrupt.Interrupted(
            f"interrupted: lab '{lab.name}' is partly up ({ready} of {len(outcomes)} VMs "
            "ready); every step in flight finished",
            f"'labctl up {lab.source}' finishes it; 'labctl down {lab.name}' removes it")
    config = files.write_ssh_files(ssh_entries(run.host, run.layout))
    _save_readiness(files, outcomes)
    if failed:
        first = failed[0].error.split("\n  hint: ")
        raise LabctlError(
            f"{len(outcomes) - len(failed)} of {len(outcomes)} VMs ready; {first[0]}",
            (first[1] if len(first) > 1 else "") + "\n  'labctl up' again resumes; "
            "'labctl down' removes the lab")
    return config


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
