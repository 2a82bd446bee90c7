"""A VM to SSH through OpenStack against through the libvirt backend, on the
same machine in one run, and what a copy of a class costs in API calls and
seconds: the figures docs/scale.md scales to a class of 300.

    scripts/libvirtd-netns start && scripts/openstack start
    OS_CLIENT_CONFIG_FILE=$(scripts/openstack clouds) \\
        scripts/libvirtd-netns exec .venv/bin/python bench/cloud_vs_libvirt.py \\
        [--copies 2] [--rounds 2]

On OpenStack a VM's time splits into API accepted -> scheduled (a compute
host chosen) -> ACTIVE -> SSH; under libvirt into define -> started -> SSH.
Both boot cold (--cold on libvirt: templates are libvirt's alone). API calls
are every HTTP request labctl's process makes to the cloud (keystoneauth's
session, counted here, not in labctl). Not a test: it prints and asserts
nothing. (Named so: a script called openstack.py hides the openstack package
from itself.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from keystoneauth1 import session as ksa_session

from labctl.datadir import default_data_dir
from labctl.events import Event
from labctl.lab.loader import load_lab
from labctl.usecases import classes
from labctl.usecases import lab as lab_cases
from labctl.usecases.session import Session, Settings
from labctl.virt.connection import DEFAULT_URI

ROOT = Path(__file__).resolve().parents[1]
CLOUD = "openstack:labctl-test"
LAB = """\
name: {name}
vms:
  - name: node
    memory: 512M
"""

CALLS: Counter[str] = Counter()
_lock = threading.Lock()
_request = ksa_session.Session.request


def _counted(self, url, method, *args, **kwargs):
    with _lock:
        CALLS[method] += 1
    return _request(self, url, method, *args, **kwargs)


ksa_session.Session.request = _counted


class Stages:
    """The time each VM reached each stage, from up's own progress events."""

    def __init__(self):
        self.at: dict[tuple[str, str], float] = {}
        self.began = time.monotonic()

    def __call__(self, event: Event) -> None:
        if event.subject.startswith("vm "):
            self.at.setdefault((event.subject[3:], event.stage), time.monotonic() - self.began)


def one_vm(uri: str, data: Path, cold: bool) -> dict[str, float]:
    lab_file = data / "one.yaml"
    name = "bos" if uri.startswith("openstack:") else "blv"
    lab_file.write_text(LAB.format(name=name))
    stages = Stages()
    session = Session(Settings(uri=uri, data_dir=data, cold=cold), report=stages)
    lab = load_lab(lab_file)
    try:
        result = lab_cases.up(session, lab, uri=uri)
    finally:
        lab_cases.down(session, name)
    vm = result.vms[0]
    out = {stage: t for (_vm, stage), t in stages.at.items()}
    out["ssh"] = result.seconds
    out["ready_after_start"] = vm.readiness.total if vm.readiness else float("nan")
    return out


def class_of(copies: int, data: Path) -> tuple[float, int]:
    lab_file = data / "klass.yaml"
    lab_file.write_text(LAB.format(name="bcl"))
    session = Session(Settings(uri=CLOUD, data_dir=data))
    lab = load_lab(lab_file)
    CALLS.clear()
    began = time.monotonic()
    classes.up_any(session, lab, lambda _c, _e: None, copies, hosts=(CLOUD,))
    seconds = time.monotonic() - began
    calls = sum(CALLS.values())
    classes.down_any(session, "bcl", lambda _c, _e: None, a_class=True)
    return seconds, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-bench-os-") as tmp:
        data = Path(tmp)  # its own labs and keys; the guest images of the usual data dir
        (data / "images").symlink_to(default_data_dir() / "images")
        cloud, local = [], []
        for _ in range(args.rounds):  # interleaved: both see the same machine
            CALLS.clear()
            cloud.append(one_vm(CLOUD, data, cold=False))
            cloud[-1]["calls"] = sum(CALLS.values())
            local.append(one_vm(DEFAULT_URI, data, cold=True))
        seconds, calls = class_of(args.copies, data)

    def med(rows, key):
        values = [r[key] for r in rows if key in r]
        return statistics.median(values) if values else float("nan")

    print(f"one VM to SSH, median of {args.rounds} (cold on both):")
    print(f"  OpenStack: accepted {med(cloud, 'accepted'):.1f} s, scheduled "
          f"{med(cloud, 'scheduled'):.1f} s, ACTIVE {med(cloud, 'started'):.1f} s, "
          f"SSH-ready {med(cloud, 'ssh'):.1f} s ({med(cloud, 'calls'):.0f} API calls)")
    print(f"  libvirt:   define {med(local, 'define'):.1f} s, started "
          f"{med(local, 'started'):.1f} s, SSH-ready {med(local, 'ssh'):.1f} s")
    print(f"  ratio OpenStack / libvirt: {med(cloud, 'ssh') / med(local, 'ssh'):.2f}x")
    print(f"a class of {args.copies} one-VM copies on OpenStack: {seconds:.1f} s, {calls} API "
          f"calls ({calls / args.copies:.0f} a copy, {seconds / args.copies:.1f} s a copy)")


if __name__ == "__main__":
    main()
