"""Host checks for `labctl doctor`: can this machine run the lab? Returns
Check records; the CLI renders them."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from labctl.backend import Backend
from labctl.errors import LabctlError
from labctl.images.cache import ImageCache
from labctl.lab.model import Lab
from labctl.plan.capacity import DISK_PER_VM_MIB, QEMU_OVERHEAD_MIB
from labctl.plan.hosts import Accel
from labctl.runtime.oci import RUNTIMES, installed_runtimes
from labctl.usecases.session import open_backend
from labctl.virt.storage import SYSTEM_POOL_DIR


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def run_checks(uri: str, data_dir: Path, lab: Lab | None = None) -> list[Check]:
    checks = [_tools()]
    try:
        host = open_backend(uri)
    except LabctlError as exc:
        return [*checks, Check("libvirt", "fail", f"{exc.message} ({exc.hint})")]
    facts = host.facts()
    checks.append(Check("libvirt", "ok", f"{uri}: libvirt {facts.libvirt}, {facts.hypervisor}"))
    accel = host.accel
    checks.append(_accel_check(accel, host))
    checks.append(_qemu_check(host))
    if host.is_local:
        checks.append(_memory_check(lab, accel))
        checks.append(_disk_check(lab))
        checks.append(ksm_check())
    checks.append(_images_check(data_dir, lab))
    if host.is_local:
        checks.append(host_containers_check())
    return checks


def _tools() -> Check:
    wanted = {"ssh": "openssh-client", "qemu-img": "qemu-utils", "mmdebstrap": "mmdebstrap",
              "mke2fs": "e2fsprogs", "dnsmasq": "dnsmasq-base"}
    missing = [f"{tool} ({pkg})" for tool, pkg in wanted.items()
               if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        return Check("tools", "fail", "missing: " + ", ".join(missing)
                     + "; scripts/setup installs them")
    return Check("tools", "ok", "ssh, qemu-img, mmdebstrap, mke2fs, dnsmasq")


def _accel_check(accel: Accel, host: Backend) -> Check:
    if accel.is_kvm:
        return Check("acceleration", "ok", "KVM works: guests boot in seconds")
    detail = f"{accel.reason}; expect ~20 s to SSH per VM"
    if host.is_local and os.path.exists("/dev/kvm"):
        detail += ("; libvirtd may hang ~75 s per define probing this /dev/kvm: "
                   "scripts/libvirtd-netns hides it from the daemon")
    return Check("acceleration", "warn", detail)


def _qemu_check(host: Backend) -> Check:
    accel = host.accel
    try:
        caps = host.domain_capabilities("q35")
    except LabctlError as exc:  # libvirt failed, or no q35 machine type
        return Check("qemu", "fail", f"no usable qemu-system-x86_64 for q35: {exc.message}")
    except ValueError as exc:  # its answer is not what libvirt documents
        return Check("qemu", "fail", f"no usable qemu-system-x86_64 for q35: {exc}")
    path = caps.split("<path>", 1)[1].split("</path>", 1)[0] if "<path>" in caps else "?"
    return Check("qemu", "ok", f"{path} (q35, {accel.domain_type})")


def _meminfo_mib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    return 0


def _memory_check(lab: Lab | None, accel: Accel) -> Check:
    available = _meminfo_mib("MemAvailable")
    if lab is None:
        return Check("memory", "ok", f"{available} MiB available")
    need = sum(vm.memory_mib + QEMU_OVERHEAD_MIB[accel.domain_type] for vm in lab.vms)
    status = "ok" if need <= available else "fail"
    return Check("memory", status, f"lab '{lab.name}' needs ~{need} MiB "
                 f"({len(lab.vms)} VM(s) + qemu overhead), {available} MiB available")


def host_containers_check() -> Check:
    """Whether `labctl bench` can add its host layer: containers on metal."""
    found = installed_runtimes(RUNTIMES)
    if not found:
        return Check("host containers", "warn", "neither podman nor docker runs here: the "
                     "bench shows containers inside the VM only (scripts/setup installs podman)")
    return Check("host containers", "ok", f"{', '.join(found)} can run containers on this "
                 "machine: the bench's host layer (a container on metal)")


KSM = Path("/sys/kernel/mm/ksm")


def ksm_check(ksm: Path = KSM) -> Check:
    """Kernel same-page merging: VMs restored from one template hold mostly
    the same pages, which KSM merges (at the cost of a kernel thread scanning
    memory). Off is fine; on, a class fits in less RAM."""
    try:
        running = (ksm / "run").read_text().strip() == "1"
    except OSError:
        return Check("ksm", "warn", "this kernel has no same-page merging (KSM)")
    if not running:
        return Check("ksm", "ok", "same-page merging is off: restored copies do not share "
                     "RAM (with it on, 40 idle copies of a 512 MiB VM held 161 MiB each "
                     "instead of 332); 'echo 1 > /sys/kernel/mm/ksm/run' turns it on "
                     "(docs/templates.md: what it costs)")
    saved = int((ksm / "pages_sharing").read_text() or 0) * os.sysconf("SC_PAGE_SIZE") >> 20
    return Check("ksm", "ok", f"same-page merging is on: {saved} MiB saved now")


def _disk_check(lab: Lab | None) -> Check:
    path = SYSTEM_POOL_DIR if os.path.isdir(SYSTEM_POOL_DIR) else "/var/lib/libvirt"
    if not os.path.isdir(path):
        return Check("disk", "warn", f"{path} does not exist (is libvirt installed?)")
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize >> 20
    need = DISK_PER_VM_MIB * (len(lab.vms) if lab else 1) + 800  # + one base image
    return Check("disk", "ok" if free >= need else "fail",
                 f"{free} MiB free in {path}, ~{need} MiB needed")


def _images_check(data_dir: Path, lab: Lab | None) -> Check:
    cache = ImageCache(data_dir / "images")
    have = {image.name for image in cache.list()}
    if lab is None:
        return Check("images", "ok" if have else "warn",
                     f"cached: {', '.join(sorted(have))}" if have else
                     "no images yet: 'labctl image build debian-12'")
    missing = sorted({vm.image for vm in lab.vms} - have)
    if missing:
        return Check("images", "fail", f"not in the cache: {', '.join(missing)}; "
                     f"'labctl image build {missing[0]}'")
    return Check("images", "ok", f"all of the lab's images are cached in {cache.root}")
