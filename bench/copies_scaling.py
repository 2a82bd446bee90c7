"""Classroom scale: time to bring 1, 2, 4, 8 copies of the hello lab to
SSH-ready in one command, cold (every VM boots) and restored (from a template
booted once, built before the measured runs and reported on its own), host
RAM per copy (qemu RSS), disk per copy (the copies' volumes in the pool) and
the time to reset one copy's VM (restored: its first reset, which keeps a
reset point, and the next, which returns to it); printed as a table with the scaling ratios
(time for N copies / time for 1) and restored / cold, all from one run.

    scripts/libvirtd-netns start
    scripts/libvirtd-netns exec .venv/bin/python bench/copies_scaling.py [--sizes 1 2 4 8]

Runs inside the test namespace (every connection goes to 127.0.0.1 there).
Not a test: it prints measurements and asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from labctl.datadir import default_data_dir
from labctl.lab.loader import load_lab
from labctl.usecases import classes as class_run
from labctl.usecases import templates
from labctl.usecases.session import Session, Settings
from labctl.virt import inventory
from labctl.virt.connection import DEFAULT_URI, connect
from labctl.virt.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
QUIET = lambda _copy, _event: None  # noqa: E731


def qemu_rss_mib(domains: list[str]) -> float:
    total = 0
    for name in domains:
        pid = Path(f"/run/libvirt/qemu/{name}.pid")
        if not pid.exists():
            continue
        for line in Path(f"/proc/{pid.read_text().strip()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def pool_mib(prefixes: list[str], uri: str) -> float:
    storage = Storage(connect(uri))
    return sum(storage.pool.storageVolLookupByName(v).info()[2] for v in storage.names()
               if any(v.startswith(f"{p}.") for p in prefixes)) / (1 << 20)


def one_size(n: int, settings: Settings, lab) -> dict[str, float]:
    class_run.down_class(Session(settings), lab.name, QUIET)
    began = time.monotonic()
    result = class_run.up_class(Session(settings), lab, QUIET, copies=n)
    seconds = time.monotonic() - began
    if result.failed:
        raise SystemExit(f"{n} copies: {result.failed[0].error}")
    conn = connect(settings.uri)
    domains = [f.libvirt_name for f in inventory.domains(conn) if f.meta.group == lab.name]
    copies = sorted({f.meta.lab for f in inventory.domains(conn) if f.meta.group == lab.name})
    rss, disk = qemu_rss_mib(domains), pool_mib(copies, settings.uri)
    resets = []  # restored: the first keeps a reset point, the second returns to it
    for _ in range(2):
        began = time.monotonic()
        class_run.up_class(Session(settings), lab, QUIET, only="1", max_parallel=1,
                           reset=frozenset(vm.name for vm in lab.vms))
        resets.append(time.monotonic() - began)
    class_run.down_class(Session(settings), lab.name, QUIET)
    return {"copies": n, "seconds": seconds, "ram": rss / n, "disk": disk / n,
            "reset": resets[0], "reset_again": resets[1], "waves": result.max_parallel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--lab", type=Path, default=ROOT / "examples" / "hello.yaml")
    args = parser.parse_args()
    settings = Settings(uri=DEFAULT_URI, data_dir=default_data_dir())
    lab = load_lab(args.lab)
    cold_settings = dataclasses.replace(settings, cold=True)
    # The template is built once, before the restored runs, and timed alone
    # (this shape's cached one removed first: a very first restored up).
    session = Session(settings)
    templates.remove_template(session, session.host(), templates.first_vm_key(session, lab))
    began = time.monotonic()
    class_run.up_class(Session(settings), lab, QUIET, copies=1)
    template = time.monotonic() - began
    class_run.down_class(Session(settings), lab.name, QUIET)
    cold = {n: one_size(n, cold_settings, lab) for n in args.sizes}
    warm = {n: one_size(n, settings, lab) for n in args.sizes}
    first = args.sizes[0]
    print(f"\nclass of '{lab.name}' copies, {cold[first]['waves']} booting at once "
          "(the host's default); the first restored up (template build + restore) took "
          f"{template:.1f} s")
    print(f"{'copies':>6} {'cold (s)':>9} {'x1':>6} {'restored (s)':>13} {'x1':>6} "
          f"{'restored/cold':>14} {'RAM/copy MiB':>13} {'disk/copy MiB':>14} "
          f"{'reset cold':>11} {'reset restored':>15} {'reset to point':>15}")
    for n in args.sizes:
        c, w = cold[n], warm[n]
        print(f"{n:>6} {c['seconds']:>9.1f} {c['seconds'] / cold[first]['seconds']:>6.2f} "
              f"{w['seconds']:>13.1f} {w['seconds'] / warm[first]['seconds']:>6.2f} "
              f"{w['seconds'] / c['seconds']:>14.2f} {w['ram']:>13.0f} {w['disk']:>14.0f} "
              f"{c['reset']:>11.1f} {w['reset']:>15.1f} {w['reset_again']:>15.1f}")


if __name__ == "__main__":
    main()
