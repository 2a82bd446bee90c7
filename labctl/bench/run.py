"""`labctl bench`: boot fresh VMs and start containers in them, repeatedly,
and return every sample with the host facts they were measured under."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from labctl import __version__
from labctl.backend import Backend
from labctl.bench.local import LocalTransport, working_runtime
from labctl.bench.measure import (
    StageClock,
    boot_vm,
    container_sample,
    process_sample,
    ready_vm,
    ssh_round_trip,
)
from labctl.errors import LabctlError
from labctl.events import Event
from labctl.lab.model import VM_COMPARISONS, Attachment, Bench, Lab, Network
from labctl.plan.layout import lab_layout
from labctl.runtime.oci import OciRuntime, installed_runtimes
from labctl.runtime.sources import SOURCE_LABEL, ImageSources, local_image
from labctl.usecases.session import Session


def bench_lab_name(lab: Lab) -> str:
    """The bench's own lab: never touches the lab it was given."""
    return f"{lab.name}-bench"[:30]


def run_bench(session: Session, lab: Lab, repeat: int | None = None,
              warmup: int | None = None, runtimes: tuple[str, ...] | None = None
              ) -> dict[str, Any]:
    """Measure what the lab's `bench.compare` selects, under the bench lab's lock."""
    with session.changing(bench_lab_name(lab), "bench run"):
        return _run_bench(session, lab, repeat, warmup, runtimes)


def _run_bench(session: Session, lab: Lab, repeat: int | None, warmup: int | None,
               runtimes: tuple[str, ...] | None) -> dict[str, Any]:
    report, settings = session.report, session.settings
    spec = lab.bench or Bench()
    spec = replace(spec, repeat=repeat or spec.repeat,
                   warmup=spec.warmup if warmup is None else warmup,
                   runtimes=runtimes or spec.runtimes)
    vm = lab.vms[0]
    if spec.vm_image:
        vm = replace(vm, image=spec.vm_image)
    # Its own user-mode network: a lab's fixed NAT subnet would collide with the lab.
    bench_lab = replace(lab, name=bench_lab_name(lab), networks=(Network("bench", "user"),),
                        vms=(replace(vm, containers=(), networks=(Attachment("bench"),)),))
    image = settings.images.get(vm.image)
    host = session.host()
    report(Event("host", "accel", host.accel.reason))
    host_layer = _host_layer(session, spec, bench_lab.name, lab)
    files = session.files(bench_lab.name)
    stages = StageClock(lambda _event: None)  # the boot's own stages, not shown
    prov = host.provisioner(files, stages, settings.templates)
    vm_plan = lab_layout(bench_lab, {vm.image: image.sha256}).vms[0]
    measure_boot = "vm-boot" in spec.compare
    runtimes_measured = spec.runtimes if "container-start" in spec.compare else ()
    boots, samples, process, rtt = [], {r: [] for r in runtimes_measured}, [], []
    versions: dict[str, str] = {}
    transport = None
    try:
        if any(c in spec.compare for c in VM_COMPARISONS):
            files.login_key()
            files.admin_key()
            base = host.ensure_base(image)
            if not measure_boot:  # a VM to start containers in: restored when it can be
                report(Event("bench", "vm-boot", "a VM to run containers in (not measured)"))
                transport = ready_vm(session, prov, vm_plan, image, base)
            for i in range(spec.warmup + spec.repeat if measure_boot else 0):
                label = "warm-up" if i < spec.warmup else f"{i - spec.warmup + 1}/{spec.repeat}"
                if transport is not None:
                    transport.close()
                report(Event("bench", "vm-boot", f"boot {label}"))
                boot, transport = boot_vm(session, prov, vm_plan, image, base, stages)
                report(Event("bench", "vm-boot", f"boot {label}: {boot.total:.1f} s"))
                if i >= spec.warmup:
                    boots.append({"phases": boot.phases, "total": boot.total,
                                  "guest": boot.guest})
            _in_vm(transport, spec, bench_lab.name, lab, samples, process, rtt, report)
            versions = {b: transport.run(f"{b} --version").stdout.strip()
                        for b in runtimes_measured}
    finally:
        if transport is not None:
            transport.close()
        prov.remove_vm(vm_plan)
        host.remove_leftovers(bench_lab.name)  # a cloud's network, router, group
        files.remove()
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "lab": lab.name,
        "settings": {"repeat": spec.repeat, "warmup": spec.warmup, "compare": list(spec.compare),
                     "runtimes": list(runtimes_measured), "image": spec.image,
                     "vm_image": vm.image, "vm_memory_mib": vm.memory_mib,
                     "vm_vcpus": vm.vcpus},
        "host": host_facts(host, image, versions),
        "vm_boot": boots,
        "containers": samples,
        "process": process,
        "ssh_round_trip": rtt,
        "host_layer": host_layer,
    }


def _in_vm(transport, spec: Bench, bench_lab: str, lab: Lab, samples: dict[str, list],
           process: list, rtt: list, report) -> None:
    """Container starts and processes inside the bench VM, round after round."""
    sources = ImageSources(transport, bench_lab, lab.directory, "bench VM")
    total = spec.warmup + spec.repeat
    for i in range(total):
        for binary in samples:
            runtime = OciRuntime(binary, transport, "bench VM")
            if not runtime.available():
                raise LabctlError(f"the bench VM has no {binary}", "remove it from runtimes")
            sample = container_sample(transport, runtime, sources, spec.image)
            report(Event("bench", f"{binary}", f"run {i + 1}/{total}: "
                         f"run --rm true {sample.get('run_true', 0):.2f} s"))
            if i >= spec.warmup:
                samples[binary].append(sample)
        if i >= spec.warmup:
            if "process" in spec.compare:
                process.append(process_sample(transport))
            rtt.append(ssh_round_trip(transport))


def _host_layer(session: Session, spec: Bench, bench_lab: str, lab: Lab) -> dict[str, Any]:
    """The same container image started by the runtimes of this machine, and a
    plain process here: what a container costs on metal, no VM around it."""
    wanted = [c for c in ("host-container-start", "host-process") if c in spec.compare]
    layer: dict[str, Any] = {"containers": {}, "process": [], "missing": {}, "how": {},
                             "versions": {}}
    if not wanted:
        return layer
    scratch = Path(tempfile.mkdtemp(prefix="labctl-bench-host-"))
    local = LocalTransport(scratch)
    sources = ImageSources(local, bench_lab, lab.directory, "this machine")
    runtimes: dict[str, OciRuntime] = {}
    refs: dict[str, str] = {}
    try:
        if "host-container-start" in wanted:
            present = installed_runtimes(spec.runtimes)
            layer["missing"] = {b: "not installed, or its engine does not answer"
                                for b in spec.runtimes if b not in present}
            for binary in present:
                defaults = OciRuntime(binary, local, "this machine")
                if _users_own(defaults, spec.image):
                    layer["missing"][binary] = (f"this machine has its own '{spec.image}' "
                                                "image, which the bench would replace")
                    continue
                refs[binary] = sources.ensure_named(defaults, spec.image, "bench")
                runtime, how = working_runtime(binary, local, refs[binary])
                if runtime is None:
                    layer["missing"][binary] = how
                else:
                    runtimes[binary], layer["how"][binary] = runtime, how
        for binary, why in layer["missing"].items():
            session.report(Event("bench", "host", f"no {binary} row for this machine: {why}"))
        for i in range(spec.warmup + spec.repeat):
            for binary, runtime in runtimes.items():
                sample = container_sample(local, runtime, sources, spec.image)
                session.report(Event("bench", f"host {binary}", f"run {i + 1}: run --rm true "
                                     f"{sample.get('run_true', 0):.3f} s"))
                if i >= spec.warmup:
                    layer["containers"].setdefault(binary, []).append(sample)
            if i >= spec.warmup and "host-process" in wanted:
                layer["process"].append(process_sample(local))
        layer["versions"] = {b: local.run(f"{b} --version").stdout.strip() for b in runtimes}
    finally:
        for binary, ref in refs.items():  # the host's image store is the user's: tidy it
            OciRuntime(binary, local, "this machine").call("rmi", "-f", ref)
        shutil.rmtree(scratch, ignore_errors=True)
    return layer


def _users_own(runtime: OciRuntime, image: str) -> bool:
    """An image of that name that labctl did not import: never replaced."""
    local = local_image(image)
    labels = runtime.image_labels(local.ref if local else image)
    return labels is not None and SOURCE_LABEL not in labels


def host_facts(host: Backend, image, versions: dict[str, str]) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo")
                if line.startswith("MemTotal")), 0)
    facts = host.facts()
    accel = host.accel
    if not accel.seen:  # the guests ran on the cloud's machines, not on this one
        cpu = f"{cpu} (labctl's machine; the cloud's are not seen)"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_mib": mem, "accel": accel.label,
        "accel_reason": accel.reason, "kernel": platform.release(),
        "libvirt": facts.libvirt,
        # libvirt: qemu's version; a cloud: what the project knows of it
        "qemu": facts.hypervisor.split()[-1] if accel.seen else facts.hypervisor,
        "labctl": __version__, "image": image.name, "image_sha256": image.sha256,
        "runtimes": versions, "measured_at_monotonic": time.monotonic(),
    }
