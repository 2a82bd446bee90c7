"""Boot once, restore many, measured in one run: a lab of three VMs of one
shape brought to SSH-ready cold, on its very first restored `up` (the
template is built: one boot, then restores) and with the template cached; a
reset of one VM cold, restored, and again (to the reset point the first
restored reset kept); host RAM per VM cold and restored, and
restored with the kernel's same-page merging (KSM) on, with what KSM's
scanning cost in CPU. Prints the figures and the ratios the issue asks for.

    scripts/libvirtd-netns start
    scripts/libvirtd-netns exec .venv/bin/python bench/restore.py [--lab LAB] [--no-ksm]

KSM is switched on for the measurement only (root), then put back as it was.
Not a test: it prints measurements and asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from labctl.datadir import default_data_dir
from labctl.lab.loader import load_lab
from labctl.usecases import lab as lab_cases
from labctl.usecases import templates
from labctl.usecases.session import Session, Settings
from labctl.virt.connection import DEFAULT_URI

ROOT = Path(__file__).resolve().parents[1]
KSM = Path("/sys/kernel/mm/ksm")
PAGE = os.sysconf("SC_PAGE_SIZE")


def timed(fn, *args, **kwargs) -> float:
    began = time.monotonic()
    fn(*args, **kwargs)
    return time.monotonic() - began


def qemu_pids(lab: str) -> list[str]:
    return [p.read_text().strip() for p in Path("/run/libvirt/qemu").glob(f"{lab}.*.pid")]


def qemu_rss_mib(lab: str) -> float:
    total = 0
    for pid in qemu_pids(lab):
        status = Path(f"/proc/{pid}/status").read_text()
        total += next(int(line.split()[1]) for line in status.splitlines()
                      if line.startswith("VmRSS:"))
    return total / 1024


def guest_ram_mib(lab: str, memory_mib: int) -> float:
    """Of qemu's RSS, the guest's memory (the one mapping of its size; the
    rest is qemu itself and, under TCG, its translation cache): only this
    part is the same in every copy, so only this part KSM can share."""
    total = 0
    for pid in qemu_pids(lab):
        size = 0
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Rss:") and size == memory_mib * 1024:
                total += int(line.split()[1])
    return total / 1024


def ksmd_cpu_seconds() -> float:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and (proc / "comm").exists() and \
                (proc / "comm").read_text().strip() == "ksmd":
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def ksm_saving_mib(settle_cap: float = 300.0) -> tuple[float, float, float]:
    """Turn KSM on until merging settles: (MiB saved, seconds, ksmd CPU seconds)."""
    before = {k: (KSM / k).read_text().strip() for k in ("run", "pages_to_scan")}
    cpu0, began = ksmd_cpu_seconds(), time.monotonic()
    try:
        (KSM / "pages_to_scan").write_text("1000")
        (KSM / "run").write_text("1")
        last, steady = -1, 0
        while time.monotonic() - began < settle_cap and steady < 3:
            time.sleep(5)
            now = int((KSM / "pages_sharing").read_text())
            steady = steady + 1 if last >= 0 and abs(now - last) <= max(last // 100, 64) else 0
            last = now
        saved = last * PAGE / (1 << 20)
        return saved, time.monotonic() - began, ksmd_cpu_seconds() - cpu0
    finally:
        if before["run"] != "1":
            (KSM / "run").write_text("2")  # unmerge what was merged for this measure
        (KSM / "pages_to_scan").write_text(before["pages_to_scan"])
        (KSM / "run").write_text(before["run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", type=Path, default=ROOT / "bench" / "labs" / "trio.yaml")
    parser.add_argument("--no-ksm", action="store_true", help="skip the KSM measurement")
    args = parser.parse_args()
    settings = Settings(uri=DEFAULT_URI, data_dir=default_data_dir())
    cold_settings = dataclasses.replace(settings, cold=True)
    lab = load_lab(args.lab)
    vms = [vm.name for vm in lab.vms]
    session = Session(settings)
    lab_cases.down(session, lab.name)

    cold = timed(lab_cases.up, Session(cold_settings), lab)
    ram_cold = qemu_rss_mib(lab.name) / len(vms)
    reset_cold = timed(lab_cases.up, Session(cold_settings), lab, reset=frozenset(vms[:1]))
    lab_cases.down(session, lab.name)

    key = templates.first_vm_key(session, lab)
    templates.remove_template(session, session.host(), key)  # this shape's: a very first up
    first = timed(lab_cases.up, session, lab)
    built = templates.TemplateStore(settings.data_dir).get(key)
    lab_cases.down(session, lab.name)
    cached = timed(lab_cases.up, session, lab)
    time.sleep(5)  # let the restored guests settle before reading RSS
    ram_restored = qemu_rss_mib(lab.name) / len(vms)
    guest_restored = guest_ram_mib(lab.name, lab.vms[0].memory_mib) / len(vms)
    reset_restored = timed(lab_cases.up, session, lab, reset=frozenset(vms[:1]))
    reset_to_point = timed(lab_cases.up, session, lab, reset=frozenset(vms[:1]))
    ksm = None if args.no_ksm or not (KSM / "run").exists() else ksm_saving_mib()
    lab_cases.down(session, lab.name)

    print(f"\n'{lab.name}': {len(vms)} VMs of one shape, to SSH-ready")
    print(f"  cold up                      {cold:7.1f} s")
    print(f"  first restored up (template) {first:7.1f} s  {first / cold:5.2f}x cold")
    if built is not None:  # no first up can take less than the one boot it needs
        print(f"  ... of which the template    {built.seconds:7.1f} s  "
              f"{built.seconds / cold:5.2f}x cold (its boot and save: the floor)")
    print(f"  restored up, template cached {cached:7.1f} s  {cached / cold:5.2f}x cold")
    print(f"  reset of one VM, cold        {reset_cold:7.1f} s")
    print(f"  reset of one VM, restored    {reset_restored:7.1f} s  "
          f"{reset_restored / reset_cold:5.2f}x cold (its first: keeps a reset point)")
    print(f"  ... its next reset           {reset_to_point:7.1f} s  "
          f"{reset_to_point / reset_cold:5.2f}x cold (returns to that point)")
    print(f"  host RAM per VM, cold        {ram_cold:7.0f} MiB")
    print(f"  host RAM per VM, restored    {ram_restored:7.0f} MiB  "
          f"{ram_restored / ram_cold:5.2f}x cold")
    if ksm is not None:
        saved, seconds, cpu = ksm
        with_ksm = ram_restored - saved / len(vms)
        print(f"  ... restored, KSM on         {with_ksm:7.0f} MiB  {with_ksm / ram_cold:5.2f}x "
              f"cold  (merged in {seconds:.0f} s; ksmd used {cpu:.1f} CPU s, "
              f"{cpu / seconds:.0%} of one core)")
        floor = ram_restored - guest_restored * (1 - 1 / len(vms))
        print(f"  ... at best (every guest page shared by all {len(vms)}) {floor:5.0f} MiB  "
              f"{floor / ram_cold:5.2f}x cold: qemu's own {ram_restored - guest_restored:.0f} "
              f"MiB per VM (under TCG its translation cache) is no guest's to share")


if __name__ == "__main__":
    main()
