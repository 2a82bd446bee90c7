"""The class use cases: up, down and reset for many copies of one lab.

`up_class` checks admission first (nothing is created if the class does not
fit), then brings copies up in waves of `max_parallel` -- each copy under its
own lab lock, exactly like `labctl up` of one lab -- and reports every event
tagged with its copy, so the CLI can show one live line per copy."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from labctl import capacity, classroom, interrupt, orchestrate
from labctl.errors import LabctlError
from labctl.events import Event
from labctl.labfiles import LabFiles
from labctl.lock import lab_lock
from labctl.model import Lab
from labctl.virt import inventory
from labctl.virt.connection import connect, probe_accel

ClassReport = Callable[[str, Event], None]  # (copy id, event)


@dataclass(frozen=True)
class CopyOutcome:
    copy: str
    lab: str
    seconds: float
    result: orchestrate.UpResult | None = None
    error: str | None = None

    def stage_times(self) -> dict[str, float]:
        """Per stage, the longest any of the copy's VMs spent in it."""
        longest: dict[str, float] = {}
        for vm in self.result.vms if self.result else []:
            if vm.readiness is None:
                continue
            previous = 0.0
            for stage, at in vm.readiness.stages.items():
                longest[stage] = max(longest.get(stage, 0.0), at - previous)
                previous = at
        return longest

    @property
    def slowest_stage(self) -> tuple[str, float] | None:
        times = self.stage_times()
        return max(times.items(), key=lambda kv: kv[1]) if times else None


@dataclass(frozen=True)
class ClassResult:
    group: str
    copies: list[CopyOutcome]
    max_parallel: int
    need: capacity.Needs
    seconds: float
    placement: dict[str, str] = dataclasses.field(default_factory=dict)  # copy lab -> URI

    @property
    def failed(self) -> list[CopyOutcome]:
        return [c for c in self.copies if c.error]


def up_class(lab: Lab, settings: orchestrate.Settings, report: ClassReport,
             copies: int | None = None, only: str | None = None,
             max_parallel: int | None = None, reset: frozenset[str] = frozenset(),
             hosts: tuple[str, ...] = ()) -> ClassResult:
    start = time.monotonic()
    labs = classroom.expand(lab, copies, only)
    uris = list(dict.fromkeys(hosts or lab.hosts or (settings.uri,)))
    conns = {uri: connect(uri) for uri in uris}
    accels = {uri: probe_accel(conn, uri) for uri, conn in conns.items()}
    # A copy stays on the host it was placed on; new copies go where RAM is left.
    recorded = {c.name: LabFiles(settings.data_dir, c.name).placement().get("uri")
                for c in labs}
    placement = {name: uri for name, uri in recorded.items() if uri in uris}
    running = {f.meta.lab for conn in conns.values() for f in inventory.domains(conn)
               if f.active and f.meta.group == lab.name}
    new = [c for c in labs if c.name not in placement]
    rooms = {uri: capacity.room(conn, uri) for uri, conn in conns.items()}
    placement.update(capacity.place([c for c in new if c.name not in running], rooms, accels))
    for c in new:  # running but not recorded (files lost): where libvirt has it
        if c.name not in placement:
            placement[c.name] = next(uri for uri, conn in conns.items() if any(
                f.meta.lab == c.name for f in inventory.domains(conn)))
    need = capacity.needs([c for c in labs if c.name not in running],
                          accels[uris[0]])
    waves = capacity.boots_at_once(rooms, accels, max(len(lab.vms), 1), max_parallel)
    spread = ", ".join(f"{uri}: {sum(1 for u in placement.values() if u == uri)}"
                       for uri in uris) if len(uris) > 1 else ""
    report("*", Event(f"class {lab.name}", "admitted",
                      f"{len(labs)} copies ({need.copies} to start: {need.memory_mib} MiB RAM, "
                      f"~{need.disk_mib} MiB disk), {waves} at a time"
                      + (f"; placed {spread}" if spread else "")))

    def bring_up(copy: Lab) -> CopyOutcome:
        began = time.monotonic()
        tagged = lambda event: report(copy.copy, event)  # noqa: E731
        try:
            interrupt.checkpoint()
            with lab_lock(settings.data_dir, copy.name, "up (class)"):
                result = orchestrate.up(copy, dataclasses.replace(
                    settings, uri=placement[copy.name]), tagged, reset=reset)
            tagged(Event(f"copy {copy.copy}", "ready", "", time.monotonic() - began))
            return CopyOutcome(copy.copy, copy.name, time.monotonic() - began, result)
        except LabctlError as exc:
            tagged(Event(f"copy {copy.copy}", "failed", exc.message))
            return CopyOutcome(copy.copy, copy.name, time.monotonic() - began,
                               error=exc.message)

    with ThreadPoolExecutor(max_workers=waves) as pool:
        outcomes = list(pool.map(bring_up, labs))
    if interrupt.requested():
        ready = sum(1 for o in outcomes if not o.error)
        raise interrupt.Interrupted(
            f"interrupted: class '{lab.name}' is partly up ({ready} of {len(labs)} copies "
            "ready)", f"'labctl up {lab.source}' finishes it; 'labctl down {lab.name} "
            "--all-copies' removes it")
    return ClassResult(lab.name, outcomes, waves, need, time.monotonic() - start, placement)


def down_class(group: str, settings: orchestrate.Settings, report: ClassReport,
               only: str | None = None) -> list[orchestrate.DownResult]:
    conn = connect(settings.uri)
    found = classroom.existing_copies(conn, settings.data_dir, group)
    if only is not None:
        found = {name: copy for name, copy in found.items() if copy == only}
    results = []
    for name, copy in found.items():
        interrupt.checkpoint()
        with lab_lock(settings.data_dir, name, "down (class)"):
            results.append(orchestrate.down(name, settings, lambda e, c=copy: report(c, e)))
    return results
