"""A lab in seconds, measured in one run: a one-VM lab (`examples/hello.yaml`)
brought up cold and from its cached template by the `labctl` command itself
(process start to exit: `up` ends with an authenticated SSH command as the
VM's own user), then one OpenSSH command; the restored `up` split into its
phases (define, state load, guest identity, readiness); then a class of
copies from the cached template: `up --copies N`, host memory per idle copy
(PSS, split into the guest's RAM, qemu's TCG translation cache and the rest,
with how much of it sits in transparent huge pages), `check --all-copies`
with two checks and `down --all-copies` (bench/labs/two-checks.yaml: hello's
VM, so the same template). Prints figures and ratios; asserts nothing.

    scripts/libvirtd-netns start
    scripts/libvirtd-netns exec .venv/bin/python bench/fast_lab.py \
        [--runs 3] [--copies 24 40] [--ksm]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from labctl.datadir import default_data_dir
from labctl.events import Event
from labctl.lab.loader import load_lab
from labctl.usecases import dashboard
from labctl.usecases import lab as lab_cases
from labctl.usecases.session import Session, Settings
from labctl.virt.connection import DEFAULT_URI

ROOT = Path(__file__).resolve().parents[1]
LABCTL = [sys.executable, "-m", "labctl"]
# The command as installed runs from cached bytecode: an environment that
# forbids writing it (PYTHONDONTWRITEBYTECODE) would time Python compiling
# labctl's sources at every call (~0.15 s) instead.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PHASES = (("define", "define", "started"), ("state load", "started", None),
          ("guest identity", None, "running"), ("readiness", "running", "boot-finished"))


def labctl(*args: str, check: bool = True) -> float:
    began = time.monotonic()
    subprocess.run([*LABCTL, *args], check=check, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=ENV)
    return time.monotonic() - began


def ssh_true(lab: str, data_dir: Path) -> float:
    began = time.monotonic()
    subprocess.run(["ssh", "-F", str(data_dir / "labs" / lab / "ssh_config"),
                    f"{lab}.node", "true"], check=True)
    return time.monotonic() - began


def phases(settings: Settings, lab_file: Path) -> dict[str, float]:
    """One restored `up` through the library, its events' times: define ->
    started (the copy, seed, domain and the saved state loaded: `started`
    is reported once the state is loaded, with how long that took), ->
    running (identity), -> boot-finished (readiness over SSH)."""
    lab = load_lab(lab_file)
    at: dict[str, float] = {}
    loaded = [0.0]

    def seen(event: Event) -> None:
        if event.subject.startswith("vm ") and event.stage not in at:
            at[event.stage] = time.monotonic()
            if event.stage == "started":
                loaded[0] = event.elapsed or 0.0

    lab_cases.down(Session(settings), lab.name)
    session = Session(settings, report=seen)
    began = time.monotonic()
    lab_cases.up(session, lab)
    at["end"] = time.monotonic()
    return {"define": at["started"] - at["define"] - loaded[0], "state load": loaded[0],
            "guest identity": at["running"] - at["started"],
            "readiness": at["boot-finished"] - at["running"], "in all": at["end"] - began}


def memory(lab: str) -> dict[str, float]:
    """MiB per idle copy of the class's qemu processes, from /proc/PID/smaps."""
    totals = {"guest": 0.0, "translation cache": 0.0, "rest": 0.0, "huge pages": 0.0}
    pids = [p.read_text().strip() for p in Path("/run/libvirt/qemu").glob(f"{lab}-*.pid")]
    for pid in pids:
        size, name, perms = 0, "", ""
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                perms, name = head[1], (head[5] if len(head) > 5 else "")
            elif head[0] == "Size:":
                size = int(head[1])
            elif head[0] == "Pss:":
                # the guest's RAM (anonymous, or the template's file mapped), and
                # TCG's code buffer: anonymous and executable, in regions
                kind = "guest" if size == 512 * 1024 else \
                    "translation cache" if "x" in perms and not name else "rest"
                totals[kind] += int(head[1]) / 1024
            elif head[0] == "AnonHugePages:":
                totals["huge pages"] += int(head[1]) / 1024
    return {k: v / max(len(pids), 1) for k, v in totals.items()} | {"copies": len(pids)}


KSM = Path("/sys/kernel/mm/ksm")


def with_ksm(measure, settle_cap: float = 300.0) -> tuple[dict[str, float], float, float]:
    """KSM (the kernel's same-page merging, a host-wide setting) switched on
    until merging settles, `measure()` taken then, and the setting put back
    (pages merged for this measure unmerged): (measure, seconds, ksmd CPU s)."""
    before = {k: (KSM / k).read_text().strip() for k in ("run", "pages_to_scan")}
    cpu0, began = _ksmd_cpu(), time.monotonic()
    try:
        (KSM / "pages_to_scan").write_text("2000")
        (KSM / "run").write_text("1")
        scans0 = int((KSM / "full_scans").read_text())
        last, steady = -1, 0
        while time.monotonic() - began < settle_cap and steady < 3:
            time.sleep(5)
            if int((KSM / "full_scans").read_text()) < scans0 + 2:
                continue  # pages merge from a page's second look on: two whole passes first
            now = int((KSM / "pages_sharing").read_text())
            steady = steady + 1 if last >= 0 and abs(now - last) <= max(last // 100, 64) else 0
            last = now
        return measure(), time.monotonic() - began, _ksmd_cpu() - cpu0
    finally:
        if before["run"] != "1":
            (KSM / "run").write_text("2")
        (KSM / "pages_to_scan").write_text(before["pages_to_scan"])
        (KSM / "run").write_text(before["run"])


def _ksmd_cpu() -> float:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and (proc / "comm").exists() and \
                (proc / "comm").read_text().strip() == "ksmd":
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="one-VM lab runs (0: none)")
    parser.add_argument("--copies", type=int, nargs="*", default=[24, 40])
    parser.add_argument("--lab", type=Path, default=ROOT / "examples" / "hello.yaml")
    parser.add_argument("--ksm", action="store_true",
                        help="also measure the idle class with KSM on (put back after)")
    parser.add_argument("--class-lab", type=Path,
                        default=ROOT / "bench" / "labs" / "two-checks.yaml")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("LABCTL_DATA_DIR") or default_data_dir())
    settings = Settings(uri=DEFAULT_URI, data_dir=data_dir)
    name = load_lab(args.lab).name
    lab_file = str(args.lab)
    if args.runs:
        _one_lab(args, data_dir, settings, name, lab_file)
    for copies in args.copies:
        _class(copies, str(args.class_lab), load_lab(args.class_lab).name, args.ksm)


def _one_lab(args, data_dir: Path, settings: Settings, name: str, lab_file: str) -> None:
    labctl("down", name, check=False)
    labctl("up", lab_file)  # the template of this shape built if it is not cached
    cold, warm, ssh = [], [], []
    for _ in range(args.runs):
        labctl("down", name)
        cold.append(labctl("up", "--cold", lab_file))
        labctl("down", name)
        time.sleep(5)  # the cold VM's qemu gone and its memory freed before the next
        warm.append(labctl("up", lab_file))
        ssh.append(ssh_true(name, data_dir))
    split = [phases(settings, args.lab) for _ in range(args.runs)]
    labctl("down", name)
    med = statistics.median
    print(f"\none-VM lab '{name}', {args.runs} runs, medians (each run's figures in order)")
    print(f"  cold `labctl up`               {med(cold):6.2f} s  {_all(cold)}")
    print(f"  restored `labctl up`           {med(warm):6.2f} s  {_all(warm)}  "
          f"{med(warm) / med(cold):.3f}x cold")
    print(f"  then `ssh VM true` (OpenSSH)   {med(ssh):6.2f} s  {_all(ssh)}")
    print(f"  up + that command              {med(warm) + med(ssh):6.2f} s")
    print("  restored up, by phase (library, no process start):")
    for phase in ("define", "state load", "guest identity", "readiness", "in all"):
        values = [s[phase] for s in split]
        print(f"    {phase:<16} {med(values):6.2f} s  {_all(values)}")


def _class(copies: int, lab_file: str, name: str, ksm: bool = False) -> None:
    labctl("down", name, "--all-copies", check=False)
    began = time.monotonic()
    done = subprocess.run([*LABCTL, "up", "--copies", str(copies), lab_file],
                          capture_output=True, text=True, env=ENV)
    up = time.monotonic() - began
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        print(f"\nclass of {copies}: refused or failed after {up:.1f} s: "
              f"{' / '.join(said[-2:])}")
        labctl("down", name, "--all-copies", check=False)
        return
    time.sleep(10)  # idle: what the copies hold once nothing runs
    held = memory(name)
    session = Session(Settings(uri=DEFAULT_URI,
                               data_dir=Path(os.environ.get("LABCTL_DATA_DIR")
                                             or default_data_dir())))
    views = []
    for _ in range(5):  # what the dashboard computes each tick (its page updates from it)
        began = time.monotonic()
        dashboard.state(session)
        views.append(time.monotonic() - began)
    merged = with_ksm(lambda: memory(name)) if ksm and (KSM / "run").exists() else None
    check = labctl("check", lab_file, "--all-copies", check=False)
    down = labctl("down", name, "--all-copies")
    print(f"\nclass of {copies} copies from the cached template")
    print(f"  up --copies {copies}       {up:6.1f} s")
    print(f"  check --all-copies  {check:6.1f} s")
    print(f"  down --all-copies   {down:6.1f} s")
    print(f"  the dashboard's view of all labs (computed once per tick): "
          f"{statistics.median(views):.2f} s median {_all(views)}")
    print(f"  host memory per idle copy (PSS, {held.pop('copies'):.0f} qemu processes): "
          + _memory_line(held))
    if merged is not None:
        held, seconds, cpu = merged
        held.pop("copies")
        print(f"  ... with KSM on (merged in {seconds:.0f} s, ksmd {cpu:.1f} CPU s): "
              + _memory_line(held))


def _memory_line(held: dict[str, float]) -> str:
    return (", ".join(f"{k} {v:.0f} MiB" for k, v in held.items() if k != "huge pages")
            + f" = {sum(v for k, v in held.items() if k != 'huge pages'):.0f} MiB "
            f"(of it in transparent huge pages: {held['huge pages']:.0f} MiB)")


def _all(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


if __name__ == "__main__":
    main()
