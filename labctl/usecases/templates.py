"""Boot once, restore many (see plan/templates.py for when, virt/snapshots.py
for how). `create_and_start` is what `up` and `reset` do for a VM being
created: restore a template of its shape (building the template first, once)
or boot it cold, saying why in one line. A restore that fails for any reason
falls back to a cold boot: a template can make a VM faster, never broken.

After a restore the VM is still the template: labctl logs in with the
template's own key (which it generated), gives the VM its identity -- clock,
fresh randomness, its seed (host key, hostname, user and login key, files),
a new machine-id -- restarts journald (and the readiness unit when it has
work; sshd offers the new host key at the next connection), and from then on
the VM is reached with its own pinned key only, as after a cold boot. A VM's
later resets return to its own reset point instead (resetpoints.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from labctl.backend import Backend, BaseVolumes, Provisioning
from labctl.datadir import ensure
from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.images.cache import Image
from labctl.interrupt import Interrupted
from labctl.lab.loader import load_lab
from labctl.lab.model import ADMIN_USER, Lab
from labctl.lock import lab_lock
from labctl.plan.capacity import restored_charge
from labctl.plan.layout import VmPlan, lab_layout
from labctl.plan.templates import cold_reason, nic_kinds, template_key, warm_services
from labctl.ssh.transport import HostKeyMismatch, preload
from labctl.usecases.identity import give_identity, start_waiting
from labctl.usecases.session import Session
from labctl.usecases.template_store import Template, TemplateStore, ram_volume_name, volume_name

SNAPSHOT = "labctl-template"
# One template build at a time on each host from this process: the copies of a
# class on one host wait for one build; two hosts build theirs side by side.
_building: dict[str, threading.Lock] = {}
_building_guard = threading.Lock()


def _building_on(host: Backend) -> threading.Lock:
    with _building_guard:
        # by where its templates live: two spellings of one host's URI share it
        return _building.setdefault(host.template_home or host.uri, threading.Lock())


# A build that failed (a host whose shell cannot copy, a template VM that never
# became ready) is not tried again by every other VM of the class: they boot
# cold at once, for a while (a long-lived dashboard tries again later).
_failed: dict[str, tuple[float, str]] = {}  # key -> (when, why)
FAILED_BUILD_MEMORY = 600.0

# Memory the guest freed (the unpacked initramfs, boot-time buffers) still holds
# data, so the save stores it and every restored copy maps it. Filled with
# zeros first, it is saved as zero pages, which a restore leaves unmapped
# (measured: 10-17 MiB less a 512 MiB VM; qemu maps guest RAM in 2 MiB huge
# pages, so only free runs that long count). The page cache stays (warm
# binaries for the identity step). A tmpfs sized to the free memory less a
# margin, written full, removed.
ZERO_FREE_MEMORY = """set -eu
sync
echo 3 > /proc/sys/vm/drop_caches
m=/run/labctl-zero
free_mib=$(( $(sed -n 's/^MemFree: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo) / 1024 - 64 ))
[ "$free_mib" -gt 0 ] || exit 0
mkdir -p "$m"
mount -t tmpfs -o "size=${free_mib}m" labctl-zero "$m"
dd if=/dev/zero of="$m/zero" bs=1M 2>/dev/null || true  # until the tmpfs is full
rm -f "$m/zero"
umount "$m"
rmdir "$m"
"""


def create_and_start(session: Session, host: Backend, prov: Provisioning, plan: VmPlan,
                     image: Image, base: BaseVolumes, verb: str,
                     report: Report | None = None) -> float:
    """Create the VM (recreating it) and start it; the time it started from."""
    report = report or session.report
    subject = f"vm {plan.vm.name}"
    reason = "--cold" if session.settings.cold else \
        cold_reason(image.kernel is not None, host.templates_refused())
    # Until it has its own identity a restored VM is the template: a run killed
    # in between leaves this mark, and the next `up` recreates the VM.
    pending = restoring(prov.files.dir, plan.domain)
    if reason is None:
        try:
            template = ensure_template(session, host, image, plan)
            report(Event(subject, "define", f"{verb} {plan.domain} from template "
                                            f"{template.short}"))
            ensure(pending.parent)
            pending.touch()
            prov.create_vm(plan, image, base, from_volume=template.volume)
            preload()  # the readiness login's paramiko, while the guest works
            began = time.monotonic()
            host.restore_into(plan.domain, SNAPSHOT, template.ram)
            if on_lab_networks(plan):
                host.replug_nics(plan.domain)
            report(Event(subject, "started", f"restored from template {template.short}",
                         time.monotonic() - began))
            give_identity(session, host, plan, template, prov.rendered_seed(plan.domain),
                          on_lab_networks(plan))
            pending.unlink(missing_ok=True)
            TemplateStore(session.data_dir).note_held(template.key,
                                                      host.resident_mib(plan.domain))
            return began
        except Interrupted:
            raise  # Ctrl-C: stop, do not boot cold instead
        except HostKeyMismatch:  # the volume is not the template its record describes
            remove_template(session, host, template.key)
            reason = "the template did not match its record (removed: the next up rebuilds it)"
        except LabctlError as exc:
            prov.note_refused_port(exc.message)
            reason = f"the template could not be used ({exc.message})"
    report(Event(subject, "cold", f"cold boot: {reason}"))
    pending.unlink(missing_ok=True)
    report(Event(subject, "define", f"{verb} {plan.domain}"))
    for attempt in range(PORT_ATTEMPTS):
        prov.create_vm(plan, image, base)
        preload()
        began = time.monotonic()
        try:
            prov.start_vm(plan.domain)
            break
        except LabctlError as exc:
            port = prov.note_refused_port(exc.message)
            if port is None or attempt == PORT_ATTEMPTS - 1:
                raise
            report(Event(subject, "define", f"host port {port} was taken after it was "
                                            "chosen: choosing another"))
    report(Event(subject, "started", "", time.monotonic() - began))
    return began


PORT_ATTEMPTS = 3  # a forwarded port taken between labctl's choice and qemu's bind


def on_lab_networks(plan: VmPlan) -> bool:
    """Its NICs on libvirt networks are plugged afresh after a restore."""
    return any(n.mode != "user" for n in plan.nics)


def restoring(lab_dir: Path, domain: str) -> Path:
    """The mark of a VM restored from a template that has no identity yet (or
    returned to its reset point and not yet given its clock and randomness):
    the next `up` recreates a VM that has it."""
    return lab_dir / "restoring" / domain


def key_for(host: Backend, image: Image, plan: VmPlan) -> str:
    """The template key of this VM on this host (see plan/templates.py)."""
    facts = host.facts()
    return template_key(plan, image.manifest.get("sha256", ""), host.accel.domain_type,
                        facts.libvirt, facts.hypervisor, host.template_home or "")


def first_vm_key(session: Session, lab: Lab) -> str:
    """The template key of the lab's first VM on the session's host: the
    benchmarks' "this shape" (to remove its template for a very first up)."""
    image = session.settings.images.get(lab.vms[0].image)
    plan = lab_layout(lab, {image.name: image.sha256}).vms[0]
    return key_for(session.host(), image, plan)


def restored_charges(session: Session, host: Backend, lab: Lab) -> dict[str, int]:
    """VM name -> MiB admission charges a VM of the lab restored on `host`
    (capacity.restored_charge), for VMs whose template is built and was seen
    restored; the others are charged as cold boots."""
    if session.settings.cold:
        return {}
    images = {}
    for vm in lab.vms:
        try:
            images[vm.name] = session.settings.images.get(vm.image)
        except LabctlError:
            continue  # not cached: the up that needs it says so
    found = {}
    store = TemplateStore(session.data_dir)
    layout = lab_layout(lab, {i.name: i.sha256 for i in images.values()})
    for plan in layout.vms:
        image = images.get(plan.vm.name)
        if image is None or \
                cold_reason(image.kernel is not None, host.templates_refused()) is not None:
            continue
        template = store.get(key_for(host, image, plan))
        if template is not None and template.held_mib and host.storage.exists(template.volume):
            found[plan.vm.name] = restored_charge(plan.vm.memory_mib, template.held_mib,
                                                  host.accel)
    return found


def ensure_template(session: Session, host: Backend, image: Image, plan: VmPlan) -> Template:
    key = key_for(host, image, plan)
    store = TemplateStore(session.data_dir)
    with _building_on(host), lab_lock(session.data_dir, f"template-{key[:12]}", "template"):
        found = store.get(key)
        if found is not None and host.storage.exists(found.volume) and \
                (not found.ram or host.storage.exists(found.ram)):
            if not found.base or host.storage.stamp(found.base) == found.base_stamp:
                return found
            # its overlay's backing file is not the one it was saved on: restoring
            # it would give the VM a disk of mixed files
            session.report(Event(f"template {found.short}", "stale",
                                 f"its base volume {found.base} changed since it was built: "
                                 "building it again"))
            remove_template(session, host, key)
        when, why = _failed.get(key, (0.0, ""))
        if time.monotonic() - when < FAILED_BUILD_MEMORY:
            raise LabctlError(f"its build failed a moment ago: {why}")
        try:
            built = _build(session, host, image, plan, key, store)
        except LabctlError as exc:
            _failed[key] = (time.monotonic(), exc.message)
            raise
        _failed.pop(key, None)
        for old in store.all():  # an image rebuilt since: never restored again
            if old.image == built.image and old.image_sha256 != built.image_sha256 \
                    and old.host == built.host:  # (another host's: gc there removes it)
                remove_template(session, host, old.key)
                session.report(Event(f"template {old.short}", "removed",
                                     f"'{old.image}' was rebuilt since it was made"))
        return built


def _build(session: Session, host: Backend, image: Image, plan: VmPlan, key: str,
           store: TemplateStore) -> Template:
    """Boot a VM of the plan's shape cold, ready it, save it: the backend's
    provisioner and the session's readiness driven directly (a lab of its
    own, under its own name, never an `up` inside an `up`)."""
    began = time.monotonic()
    name = f"tpl-{key[:12]}"
    session.report(Event(f"template {key[:12]}", "build",
                         f"booting a template for {plan.vm.memory_mib} MiB / "
                         f"{plan.vm.vcpus} vCPU VMs of '{image.name}'"
                         + "".join(f", {s} running" for s in warm_services(plan))
                         + " (once)"))
    folder = ensure(store.dir / key)
    lab_file = folder / "template.yaml"
    lab_file.write_text(yaml.safe_dump(_template_lab(name, image.name, plan), sort_keys=False))
    layout = lab_layout(load_lab(lab_file), {image.name: image.sha256})
    (vm_plan,) = layout.vms

    def quietly(event: Event) -> None:  # the template VM's stages, under its own name
        if event.subject == "vm template" and event.stage in ("started", "boot-finished"):
            session.report(Event(f"template {key[:12]}", event.stage, event.detail,
                                 event.elapsed))

    files = session.files(name)
    prov = host.provisioner(files, quietly, session.settings.templates)
    volume = volume_name(session.data_dir, key)
    memory_file = ram_volume_name(volume)  # its RAM, which every restored VM maps
    with session.changing(name, "up"):
        _clear(host, prov, name)  # what a killed build left
        try:
            files.login_key()
            login, host_key = files.admin_key().private, ""
            for network in layout.networks:  # made and started
                prov.create_network(network)
            base = host.ensure_base(image)
            base_volume = Path(base.disk).name
            base_stamp = host.storage.stamp(base_volume)
            prov.create_vm(vm_plan, image, base)
            mapped = host.map_memory(vm_plan.domain, memory_file, vm_plan.vm.memory_mib)
            ram = memory_file if mapped else ""
            started = time.monotonic()
            prov.start_vm(vm_plan.domain)
            quietly(Event("vm template", "started", "", time.monotonic() - started))
            transport, _ = session.reach.wait_ready(host, files, vm_plan, quietly, started,
                                                    session.settings.budgets)
            with transport:
                for service in warm_services(plan):  # started once here, not in every copy
                    transport.run(["sudo", "-n", "systemctl", "start", f"{service}.service"],
                                  timeout=300).check(f"template: starting {service}")
                # a root shell left waiting: the restored VMs' identity starts no process
                waiting = transport.run(["sudo", "-n", "bash", "-c", start_waiting()], timeout=60)
                if not waiting.ok:  # they run the script the slower way
                    session.report(Event(f"template {key[:12]}", "build",
                                         f"no waiting shell: {waiting.stderr.strip()[-200:]}"))
                if not ram:  # a memory file keeps only what the guest touched
                    transport.run(["sudo", "-n", "sh", "-c", ZERO_FREE_MEMORY],
                                  timeout=300).check("template: zeroing its free memory")
                transport.run(["sync"], timeout=60)
            host_key = files.pinned_host_key(vm_plan.domain) or ""
            has_agent = host.guest_agent(vm_plan.domain) is not None
            host.save_template(vm_plan.domain, SNAPSHOT, f"labctl template {key}")
            host.stop_domain(vm_plan.domain)
            host.storage.delete(volume)
            host.storage.copy(f"{vm_plan.domain}.qcow2", volume)
        except BaseException:
            host.storage.delete(memory_file)
            raise
        finally:
            _clear(host, prov, name)
    template = Template(key, image.name, image.manifest.get("sha256", ""), volume, ADMIN_USER,
                        login, host_key, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        round(time.monotonic() - began, 1), host.storage.allocation(volume)
                        + (host.storage.allocation(ram) if ram else 0),
                        has_agent, base=base_volume, base_stamp=base_stamp,
                        host=host.template_home or "", ram=ram)
    store.put(template)
    return template


def _clear(host: Backend, prov: Provisioning, name: str) -> None:
    """The template lab's VM, networks, volumes and files gone."""
    for found in host.domains(name):
        prov.remove_vm(found.libvirt_name)
    for found in host.networks(name):
        prov.remove_network(found.libvirt_name)
    for volume in host.storage.names(prefix=f"{name}."):
        host.storage.delete(volume)
    prov.files.remove()


def _template_lab(name: str, image: str, plan: VmPlan) -> dict:
    """The lab of a template VM: the VM's shape, and NICs of the same kinds in
    the same order (bridged ones on isolated networks of its own; a user-mode
    one open or sealed like the VM's: the guest keeps the lease it got)."""
    vm = plan.vm
    networks = [{"name": f"n{i}", "mode": "user", "internet": not sealed,
                 **({"subnet": subnet} if subnet else {})}
                if kind == "user" else {"name": f"n{i}", "mode": "isolated"}
                for i, (kind, subnet, sealed) in enumerate(nic_kinds(plan))]
    return {"name": name, "internet": False, "networks": networks,
            "vms": [{"name": "template", "image": image, "memory": f"{vm.memory_mib}M",
                     "vcpus": vm.vcpus, "disk": f"{vm.disk_gib}G", "user": vm.user,
                     "firmware": vm.firmware, "networks": [n["name"] for n in networks]}]}


def remove_template(session: Session, host: Backend, key: str) -> None:
    """Its volume, then its record (never a record without a volume to use)."""
    store = TemplateStore(session.data_dir)
    found = store.get(key)
    if found is not None:
        host.storage.delete(found.volume)
        host.storage.delete(ram_volume_name(found.volume))
    store.remove(key)


def remove_templates_of(session: Session, image: str) -> list[Template]:
    """The image's templates gone, each from its own host (this machine's from
    the session's); a host that cannot be reached keeps its volume, which its
    gc finds without a record. The ones removed."""
    gone = [t for t in TemplateStore(session.data_dir).all() if t.image == image]
    for template in gone:
        try:
            remove_template(session, session.host(template.host or None), template.key)
        except LabctlError:
            TemplateStore(session.data_dir).remove(template.key)
    return gone
