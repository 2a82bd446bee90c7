"""Chaos: randomised kill-and-recover rounds on a real 2-VM lab with containers.

Each round starts `labctl up` from nothing and stops it at a random point --
SIGKILL or Ctrl-C (SIGINT) right after a randomly chosen progress line
(define: overlays and seed being written; started; address; banner;
boot-finished: containers being deployed) plus random jitter. Then it
recovers by `up` (two rounds in three; it must converge: a later plan keeps everything,
VMs and containers) or straight by `down`; a `down` is itself killed at a
random moment in some rounds and run again. Every round ends with a census
of every resource kind (domains, networks, volumes, data-dir files,
registry) that must be empty. LABCTL_CHAOS_ROUNDS and LABCTL_CHAOS_SEED
repeat a run."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from labctl.lab.loader import load_lab
from labctl.usecases.lab import down, plan
from labctl.usecases.session import Session

from .conftest import LABS, Running, error_lines, labctl, leftovers

CHAOS = LABS / "chaos.yaml"
KILL_AFTER = ["define", "started", "address", "banner", "boot-finished", "container create"]
# Each kill point once per run (in turn, not drawn: a draw of ten missed some),
# the signal, jitter and ways of recovery drawn from the seed.
ROUNDS = int(os.environ.get("LABCTL_CHAOS_ROUNDS", str(len(KILL_AFTER))))
SEED = int(os.environ.get("LABCTL_CHAOS_SEED", str(int(time.time()))))


@pytest.mark.chaos
def test_kill_and_recover_rounds(settings, capsys):
    rng = random.Random(SEED)
    lab = load_lab(CHAOS)
    down(Session(settings), lab.name)
    rounds, faults, converged, found, injected_rounds = 0, [], 0, 0, 0
    try:
        for n in range(ROUNDS):
            point, jitter = KILL_AFTER[n % len(KILL_AFTER)], rng.uniform(0, 2.0)
            sig = signal.SIGINT if rng.random() < 0.2 else signal.SIGKILL
            run = Running("up", str(CHAOS))
            run.wait_for(point, 600)
            time.sleep(jitter)
            injected = run.kill(sig)
            code, _, stderr = run.finish(timeout=600)
            if injected:
                faults.append(f"{sig.name} after '{point}'+{jitter:.1f}s")
                injected_rounds += 1
            else:  # up ended before its kill point: only a success may do that
                assert code == 0, (f"round {n}: up ended before '{point}' and failed "
                                   f"(exit {code}): {error_lines(stderr)}")
            if sig == signal.SIGINT and code == 130:
                assert "is partly up" in stderr and "finishes it" in stderr, stderr
                assert "Traceback" not in stderr
            if n % 3 != 2:  # two rounds in three recover by up, the third by down alone
                labctl("up", str(CHAOS))
                assert all(a.verb == "keep" for a in plan(Session(settings), lab)), \
                    f"round {n}: not converged"
                converged += 1
            if rng.random() < 0.3:
                stopping = Running("down", lab.name)
                time.sleep(rng.uniform(0, 1.5))
                if stopping.kill(signal.SIGKILL):
                    faults.append("SIGKILL during down")
                stopping.finish(timeout=300)
            labctl("down", lab.name)
            left = leftovers(lab.name, settings)
            found += sum(len(v) for v in left.values())
            assert left == {}, f"round {n} left {left}"
            rounds += 1
    finally:
        with capsys.disabled():
            print(f"\nchaos: seed {SEED}, {rounds} of {ROUNDS} rounds, {injected_rounds} "
                  f"rounds injected a fault during up, {len(faults)} faults in all, "
                  f"{converged} recoveries by up converged, leftovers found: {found}")
            for fault in faults:
                print(f"  - {fault}")
        down(Session(settings), lab.name)
