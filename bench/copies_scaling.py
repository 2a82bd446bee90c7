"""Classroom scale: time to bring 1, 2, 4, 8 copies of the hello lab to
SSH-ready in one command, host RAM per copy (qemu RSS), disk per copy (the
copies' volumes in the pool) and the time to reset one copy's VM; printed as
a table with the scaling ratio (time for N copies / time for 1).

    scripts/libvirtd-netns start
    scripts/libvirtd-netns exec .venv/bin/python bench/copies_scaling.py [--sizes 1 2 4 8]

Runs inside the test namespace (every connection goes to 127.0.0.1 there).
Not a test: it prints measurements and asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from labctl.datadir import default_data_dir
from labctl.lab.loader import load_lab
from labctl.usecases import classes as class_run
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
    began = time.monotonic()
    class_run.up_class(Session(settings), lab, QUIET, only="1", max_parallel=1,
                       reset=frozenset(vm.name for vm in lab.vms))
    reset = time.monotonic() - began
    class_run.down_class(Session(settings), lab.name, QUIET)
    return {"copies": n, "seconds": seconds, "ram": rss / n, "disk": disk / n, "reset": reset,
            "waves": result.max_parallel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--lab", type=Path, default=ROOT / "examples" / "hello.yaml")
    args = parser.parse_args()
    settings = Settings(uri=DEFAULT_URI, data_dir=default_data_dir())
    lab = load_lab(args.lab)
    rows = [one_size(n, settings, lab) for n in args.sizes]
    base = rows[0]["seconds"]
    print(f"\nclass of '{lab.name}' copies, {rows[0]['waves']} booting at once "
          "(the host's default)")
    print(f"{'copies':>6} {'up (s)':>8} {'x 1 copy':>9} {'RAM/copy MiB':>13} "
          f"{'disk/copy MiB':>14} {'reset (s)':>10}")
    for r in rows:
        print(f"{r['copies']:>6} {r['seconds']:>8.1f} {r['seconds'] / base:>9.2f} "
              f"{r['ram']:>13.0f} {r['disk']:>14.0f} {r['reset']:>10.1f}")
    last = rows[-1]
    print(f"scaling: {last['copies']} copies take {last['seconds'] / base:.1f}x the time of 1 "
          f"({last['seconds'] / base / last['copies']:.2f}x per copy)")


if __name__ == "__main__":
    main()
