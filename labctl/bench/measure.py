"""Taking the measurements. VM boot: one fresh linked clone per repetition,
timed on the host's monotonic clock in consecutive phases that add up to the
total. Containers: timed *inside* the guest (date +%s%N around each command),
so SSH latency does not count; the SSH round trip is measured separately."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labctl.backend import Provisioning
from labctl.errors import LabctlError
from labctl.runtime.oci import OciRuntime
from labctl.runtime.sources import ImageSources
from labctl.ssh.transport import SSHTransport
from labctl.usecases.session import Session
from labctl.usecases.templates import create_and_start

# Consecutive phases of a VM boot; their durations add up to the total. On a
# cloud the first two split as the cloud does its work: the API accepted the
# server (its network, ports and the request), Nova scheduled it (a compute
# host chosen), it went ACTIVE.
VM_PHASES = ("define", "start", "firmware", "kernel", "init-to-address", "address-to-banner",
             "login", "boot-finished")
CLOUD_PHASES = ("api-accepted", "scheduled", "active", *VM_PHASES[2:])
MARKERS = {"first-output": None, "init": "Welcome to ", "address": "labctl-ready address="}
CONTAINER_METRICS = ("cold_run", "run_true", "run_cat", "create", "start")
PROCESS_METRICS = ("true", "cat")


class SerialWatcher(threading.Thread):
    """Notes when the serial log first shows output and each marker (host clock)."""

    def __init__(self, read: Callable[[], bytes]):
        super().__init__(daemon=True)
        self.read, self.seen = read, {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                text = self.read().decode(errors="replace")
            except LabctlError:  # a console not there yet (or gone): nothing seen this time
                text = ""
            now = time.monotonic()
            for name, needle in MARKERS.items():
                if name not in self.seen and text and (needle is None or needle in text):
                    self.seen[name] = now
            if len(self.seen) == len(MARKERS):
                return
            self._halt.wait(0.01)

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join(timeout=1)
        return dict(self.seen)


@dataclass
class VmBoot:
    phases: dict[str, float]
    total: float
    guest: dict[str, float] = field(default_factory=dict)  # systemd-analyze's own view


class StageClock:
    """The provisioner's report, passed on, noting when each VM stage was first
    reported (a cloud's "accepted" and "scheduled", host clock)."""

    def __init__(self, report):
        self.report, self.seen = report, {}

    def __call__(self, event) -> None:
        if event.subject.startswith("vm "):
            self.seen.setdefault(event.stage, time.monotonic())
        self.report(event)


def boot_vm(session: Session, prov: Provisioning, vm_plan, image, base,
            stages: StageClock) -> tuple[VmBoot, SSHTransport]:
    """Create and boot one fresh VM, the way `up` does; its phase times and a
    live connection. `stages` must be the report `prov` was made with."""
    prov.remove_vm(vm_plan, forget_keys=False)
    stages.seen.clear()
    t0 = time.monotonic()
    prov.create_vm(vm_plan, image, base)
    t_define = time.monotonic()
    host = session.host()
    watcher = SerialWatcher(host.serial_reader(vm_plan.domain))
    watcher.start()
    try:
        prov.start_vm(vm_plan.domain)
        t_started = time.monotonic()
        transport, ready = session.reach.wait_ready(host, prov.files, vm_plan, lambda _e: None,
                                                    t_define, session.settings.budgets)
    finally:
        seen = watcher.stop()
    if "accepted" in stages.seen:  # a cloud: accepted -> scheduled -> ACTIVE
        accepted = stages.seen["accepted"]
        names, head = CLOUD_PHASES, [t0, accepted, stages.seen.get("scheduled", accepted),
                                     t_started]
    else:
        names, head = VM_PHASES, [t0, t_define, t_started]
    readiness = [t_define + ready.stages[s] for s in ("banner", "auth", "boot-finished")]
    phases = boot_phases(names, head, seen, readiness)
    guest = parse_systemd_analyze(transport.run("systemd-analyze", timeout=60).stdout)
    return VmBoot(phases, readiness[-1] - head[0], guest), transport


def boot_phases(names: tuple[str, ...], head: list[float], seen: dict[str, float],
                readiness: list[float]) -> dict[str, float]:
    """Consecutive phases from the host's own points (`head`, ending when the
    VM was started; readiness's banner, auth, boot-finished: measured as they
    happen) and the console's markers, which a poller sees late -- once a
    second on a cloud: a marker is never later than the point after it (the
    address before the banner), nor earlier than the start."""
    started, banner = head[-1], readiness[0]
    address = min(seen.get("address", banner), banner)
    init = min(seen.get("init", started), address)
    first = min(seen.get("first-output", started), init)
    points = [*head, *(max(t, started) for t in (first, init, address)), *readiness]
    for i in range(1, len(points)):  # the host's own points, in order
        points[i] = max(points[i], points[i - 1])
    return {name: points[i + 1] - points[i] for i, name in enumerate(names)}


def ready_vm(session: Session, prov: Provisioning, vm_plan, image, base) -> SSHTransport:
    """A fresh VM that is not measured, brought up as `up` would (restored
    from a template when it can be): a live connection to it."""
    prov.remove_vm(vm_plan, forget_keys=False)
    quiet = lambda _event: None  # noqa: E731
    host = session.host()
    began = create_and_start(session, host, prov, vm_plan, image, base, "create", quiet)
    transport, _ = session.reach.wait_ready(host, prov.files, vm_plan, quiet, began,
                                            session.settings.budgets)
    return transport


_ANALYZE = re.compile(r"((?:[\d.]+(?:min|ms|s)\s*)+)\((kernel|initrd|userspace)\)")


def parse_systemd_analyze(text: str) -> dict[str, float]:
    """'Startup finished in 4.1s (kernel) + 13.1s (userspace) = 17.2s' -> seconds."""
    out = {}
    for amount, part in _ANALYZE.findall(text):
        out[part] = _seconds(amount)
    return out


def _seconds(amount: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(min|ms|s)", amount):
        total += float(number) * {"min": 60, "s": 1, "ms": 0.001}[unit]
    return round(total, 3)  # systemd prints milliseconds at best


GUEST_TIMER = r"""
t() {
    s=$(date +%s%N); "$@" >/dev/null 2>&1 || return 1; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
}
"""


def container_sample(transport: SSHTransport, runtime: OciRuntime, sources: ImageSources,
                     image: str) -> dict[str, float]:
    """One repetition for one runtime, in seconds, timed inside the guest."""
    ref = sources.ensure_named(runtime, image, "bench")
    rt = runtime.command()  # "sudo -n docker" / "sudo -n podman"
    runtime.call("rmi", "-f", ref)  # cold: the first run after the image is loaded
    sources.ensure_named(runtime, image, "bench")
    script = GUEST_TIMER + f"""
echo cold_run $(t {rt} run --rm --network=none {ref} true)
echo run_true $(t {rt} run --rm --network=none {ref} true)
echo run_cat $(t {rt} run --rm --network=none {ref} cat /etc/os-release)
s=$(date +%s%N); id=$({rt} create --network=none {ref} true); e=$(date +%s%N)
echo create $(( (e - s) / 1000 ))
echo start $(t {rt} start -a "$id")
{rt} rm -f "$id" >/dev/null 2>&1
"""
    return _parse_micros(transport.run(["sh", "-c", script], timeout=600).check(
        f"timing {runtime.binary} in the VM").stdout)


def process_sample(transport: SSHTransport) -> dict[str, float]:
    script = GUEST_TIMER + "echo true $(t /bin/true)\necho cat $(t cat /etc/os-release)\n"
    return _parse_micros(transport.run(["sh", "-c", script]).check("timing processes").stdout)


def ssh_round_trip(transport: SSHTransport) -> float:
    start = time.monotonic()
    transport.run("true")
    return time.monotonic() - start


def _parse_micros(text: str) -> dict[str, float]:
    """'name microseconds' lines; a name alone means that command failed."""
    out, failed = {}, []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1]) / 1e6
        elif len(parts) == 1:
            failed.append(parts[0])
    if failed:
        raise LabctlError(f"bench: timing {', '.join(failed)} failed in the VM",
                          "the command failed there; run it with 'labctl exec' to see why")
    return out
