"""How long `labctl check` takes over a class: N copies of bench/labs/graded.yaml
(one VM, a container, ten checks of every kind) brought up, then checked R
times; prints the wall time per run (median and spread), per copy and per check.

    scripts/libvirtd-netns exec .venv/bin/python bench/checks_scale.py [--copies 8] [--runs 5]

Runs inside the test namespace. Not a test: it prints measurements."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from labctl.datadir import default_data_dir
from labctl.lab.loader import load_lab
from labctl.usecases import classes
from labctl.usecases.checks import run_checks
from labctl.usecases.session import Session, Settings
from labctl.virt.connection import DEFAULT_URI

LAB = Path(__file__).with_name("labs") / "graded.yaml"
QUIET = lambda _copy, _event: None  # noqa: E731


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = Settings(uri=DEFAULT_URI, data_dir=default_data_dir())
    lab = load_lab(LAB)
    session = Session(settings)
    classes.down_class(session, lab.name, QUIET)
    print(f"bringing up {args.copies} copies of {lab.name} (minutes under TCG)...", flush=True)
    began = time.monotonic()
    result = classes.up_class(session, lab, QUIET, copies=args.copies)
    up = time.monotonic() - began
    if result.failed:
        raise SystemExit(f"up failed: {result.failed[0].error}")
    logins: list[float] = []  # each VM's SSH login, the checks' fixed cost per VM
    connect = session.connect_vm

    def timed_connect(lab_name: str, vm: str):
        began = time.monotonic()
        transport = connect(lab_name, vm)
        logins.append(time.monotonic() - began)
        return transport

    session.connect_vm = timed_connect  # type: ignore[method-assign]
    try:
        times, passed = [], 0
        for n in range(args.runs):
            logins.clear()
            started, finished = time.monotonic(), []
            run = run_checks(session, lab, all_copies=True, keep=False,
                             progress=lambda _c, t=started, f=finished:
                             f.append(time.monotonic() - t))
            times.append(run.seconds)
            print(f"check run {n + 1}/{args.runs}: {run.seconds:.1f} s", flush=True)
            passed = sum(c.passed for c in run.copies)
            last = run
        checks = len(lab.checks) * args.copies
        median = statistics.median(times)
        print(f"\n{args.copies} copies x {len(lab.checks)} checks = {checks} checks "
              f"({passed} passed in the last run); class up in {up:.0f} s")
        print(f"labctl check --all-copies: median {median:.1f} s over {args.runs} runs "
              f"(min {min(times):.1f}, max {max(times):.1f}); {median / args.copies:.2f} s per "
              f"copy, {1000 * median / checks:.0f} ms per check")
        # Where a copy's time goes: each check's own time (inside its VM's
        # script, or on the host), median and max over the copies.
        print("\nlast run, per check (median / max over copies):")
        for n, info in enumerate(last.checks):
            spent = [c.outcomes[n].seconds for c in last.copies]
            print(f"  {info.name:<12} {statistics.median(spent):6.2f} s {max(spent):6.2f} s")
        print(f"  {'(SSH login)':<12} {statistics.median(logins):6.2f} s {max(logins):6.2f} s")
        sums = [sum(o.seconds for o in c.outcomes) for c in last.copies]
        print(f"a copy's checks add up to {statistics.median(sums):.1f} s (median); copies "
              f"finished at {', '.join(f'{t:.1f}' for t in sorted(finished))} s")
    finally:
        classes.down_class(session, lab.name, QUIET)


if __name__ == "__main__":
    main()
