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

from labctl import interrupt
from labctl.backend import Backend
from labctl.errors import LabctlError, UsageError
from labctl.events import Event
from labctl.lab.model import Lab
from labctl.labfiles import LabFiles
from labctl.plan import capacity, classroom
from labctl.usecases import fanout, templates, values
from labctl.usecases import lab as lab_cases
from labctl.usecases.session import Session

ClassReport = Callable[[str, Event], None]  # (copy id, event)


@dataclass(frozen=True)
class CopyOutcome:
    copy: str
    lab: str
    seconds: float
    result: lab_cases.UpResult | None = None
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


def up_class(session: Session, lab: Lab, report: ClassReport, copies: int | None = None,
             only: str | None = None, max_parallel: int | None = None,
             reset: frozenset[str] = frozenset(), hosts: tuple[str, ...] = (),
             replace_lost: bool = False) -> ClassResult:
    """Admission, placement, then copies in waves; the class and each copy
    under its own lock, exactly like `labctl up` of one lab. replace_lost: a
    host that cannot be reached is left out and its copies are placed again
    on the others (otherwise it is an error naming it)."""
    with session.changing(lab.name, "up (class)"):
        return _up_class(session, lab, report, copies, only, max_parallel, reset, hosts,
                         replace_lost)


def _open_hosts(session: Session, lab: Lab, report: ClassReport, uris: list[str],
                replace_lost: bool) -> dict[str, Backend]:
    opened, lost = {}, {}
    for uri in uris:
        try:
            opened[uri] = session.host(uri)
        except LabctlError as exc:
            if not replace_lost:
                raise LabctlError(f"host {uri} of class '{lab.name}' cannot be reached: "
                                  f"{exc.message}", "bring it back, or 'labctl up "
                                  "--replace-lost' re-creates its copies on the other "
                                  "hosts") from None
            lost[uri] = exc.message
    if not opened:
        raise LabctlError(f"no host of class '{lab.name}' can be reached",
                          "'labctl hosts' says why for each")
    for uri, why in lost.items():
        placed = [name for name in existing_copies(session, lab.name)
                  if session.placed_uri(name) == uri]
        report("*", Event(f"host {uri}", "lost", f"{why}; its copies "
                          f"({', '.join(placed) or 'none'}) go to the other hosts"))
    return opened


def _up_class(session: Session, lab: Lab, report: ClassReport, copies: int | None,
              only: str | None, max_parallel: int | None, reset: frozenset[str],
              hosts: tuple[str, ...], replace_lost: bool = False) -> ClassResult:
    start = time.monotonic()
    labs = classroom.expand(lab, copies, only, values.renderer(session.data_dir, lab))
    # A copy stays on the host it was placed on; new copies go where RAM is left.
    # Without hosts given, the class's hosts are where its copies were placed
    # (a reset or an up of one copy must not re-create it on the default host).
    recorded = {c.name: session.files(c.name).placement().get("uri") for c in labs}
    placed = [uri for uri in recorded.values() if uri]
    uris = list(dict.fromkeys(hosts or lab.hosts or placed or (session.settings.uri,)))
    opened = _open_hosts(session, lab, report, uris, replace_lost)
    uris = [uri for uri in uris if uri in opened]
    accels = {uri: host.accel for uri, host in opened.items()}
    placement = {name: uri for name, uri in recorded.items() if uri in uris}
    running = {f.meta.lab for host in opened.values() for f in host.domains()
               if f.active and f.meta.group == lab.name}
    new = [c for c in labs if c.name not in placement]
    starting = [c for c in new if c.name not in running]
    if len(opened) == 1:  # a host's own limits (a cloud's quotas) first: they say more
        next(iter(opened.values())).admit(lab, len(starting))
    rooms = {uri: host.room() for uri, host in opened.items()}
    held = {uri: templates.restored_charges(session, host, labs[0])
            for uri, host in opened.items()} if labs else {}
    placement.update(capacity.place(starting, rooms, accels, held))
    if len(opened) > 1:
        for uri, host in opened.items():
            host.admit(lab, sum(1 for c in starting if placement.get(c.name) == uri))
    for c in new:  # running but not recorded (files lost): where libvirt has it
        if c.name not in placement:
            placement[c.name] = next(uri for uri, host in opened.items()
                                     if c.name in host.lab_names())
    need = capacity.needs([c for c in labs if c.name not in running], accels[uris[0]],
                          held.get(uris[0]))
    waves = capacity.boots_at_once(rooms, accels, max(len(lab.vms), 1), max_parallel)
    spread = ", ".join(f"{uri}: {sum(1 for u in placement.values() if u == uri)}"
                       for uri in uris) if len(uris) > 1 else ""
    report("*", Event(f"class {lab.name}", "admitted",
                      f"{len(labs)} copies ({need.copies} to start: {need.memory_mib} MiB RAM"
                      + (f", {need.restored} VM(s) charged as restored" if need.restored else "")
                      + f", ~{need.disk_mib} MiB disk), {waves} at a time"
                      + (f"; placed {spread}" if spread else "")))

    def bring_up(copy: Lab) -> CopyOutcome:
        began = time.monotonic()
        tagged = lambda event: report(copy.copy, event)  # noqa: E731
        try:
            interrupt.checkpoint()
            copy_session = Session(session.settings, tagged, session.host, session.reach)
            result = lab_cases.up(copy_session, copy, reset, uri=placement[copy.name])
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


DOWN_AT_ONCE = 8  # copies removed at once by down_class


def down_class(session: Session, group: str, report: ClassReport,
               only: str | None = None) -> list[lab_cases.DownResult]:
    with session.changing(group, "down (class)"):
        found = existing_copies(session, group)
        if only is not None:
            found = {name: copy for name, copy in found.items() if copy == only}
        lost: dict[str, str] = {}

        def remove(name: str, copy: str) -> lab_cases.DownResult | None:
            interrupt.checkpoint()
            copy_session = Session(session.settings, lambda e: report(copy, e),
                                   session.host, session.reach)
            try:
                return lab_cases.down(copy_session, name)
            except LabctlError as exc:  # its host is lost: remove the others all the same
                lost[name] = exc.message
                return None

        # Removing a copy is libvirt and file work, not guest CPU: several at once
        # (40 copies one after another took ~12 s, most of it waiting on libvirtd).
        with ThreadPoolExecutor(max_workers=DOWN_AT_ONCE) as pool:
            done = list(pool.map(lambda item: remove(*item), found.items()))
        results = [r for r in done if r is not None]
        if lost:
            first = next(iter(lost.values()))
            raise LabctlError(
                f"{len(lost)} of {len(found)} copies of '{group}' could not be removed "
                f"({', '.join(lost)}): {first}",
                "the others are gone; their records are kept: run 'labctl down' again once "
                "the cause is mended (a lost host: when it answers again)")
        return results


def existing_copies(session: Session, group: str) -> dict[str, str]:
    """copy lab name -> copy id, for every copy of `group` the default host or
    the data dir's placement records know."""
    found = {}
    try:
        host = session.host()
        for obj in host.domains() + host.networks():
            if obj.meta.group == group:
                found[obj.meta.lab] = obj.meta.copy
    except LabctlError:
        pass  # the default host is lost: the records below still name its copies
    labs = session.data_dir / "labs"
    if labs.is_dir():
        for directory in labs.iterdir():
            record = LabFiles(session.data_dir, directory.name).placement()
            if record.get("group") == group:
                found[directory.name] = record.get("copy", "")
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class CopyStatus:
    lab: str  # the copy's lab name
    host: str  # the URI it was placed on
    vms: tuple = ()  # lab_cases.VmStatus rows
    unreachable: str = ""  # why its host could not be asked (the other copies still are)


def status_of_copies(session: Session, group: str) -> list[CopyStatus]:
    """Each copy's VMs; a copy whose host cannot be reached is a row saying so
    (a host lost mid-class must not hide the copies still running elsewhere)."""
    def one(name: str) -> CopyStatus:
        uri = session.placed_uri(name)
        try:
            return CopyStatus(name, uri, tuple(lab_cases.status(session, name)))
        except LabctlError as exc:
            return CopyStatus(name, uri, unreachable=exc.message)

    return fanout.per_copy(session, list(existing_copies(session, group) or {group: ""}), one)


# -- one entry point per command: a class or a single lab, decided here --------------
def copies_of(lab: Lab, copies: int | None = None, only: str | None = None) -> list[str]:
    """The copy ids `up` would bring up; [] when the lab is a single lab."""
    if not (classroom.is_class(lab, copies) or only):
        return []
    return [only] if only else classroom.copy_ids(lab, copies)


def up_any(session: Session, lab: Lab, report: ClassReport, copies: int | None = None,
           only: str | None = None, max_parallel: int | None = None,
           hosts: tuple[str, ...] = (), replace_lost: bool = False
           ) -> lab_cases.UpResult | ClassResult:
    """`labctl up`: the copies of a class (progress tagged per copy), or the lab."""
    if copies_of(lab, copies, only):
        return _checked(up_class(session, lab, report, copies, only, max_parallel,
                                 hosts=hosts, replace_lost=replace_lost))
    if replace_lost:
        raise UsageError("--replace-lost moves the copies of a class", "add --copies N")
    if hosts:
        raise UsageError("--host places the copies of a class", "add --copies N, or use "
                         "--uri to put this lab on one host")
    return lab_cases.up(session, lab)


def _checked(result: ClassResult) -> ClassResult:
    if result.failed:
        first = result.failed[0]
        raise ClassFailed(result, f"{len(result.copies) - len(result.failed)} of "
                          f"{len(result.copies)} copies ready; copy '{first.copy}': "
                          f"{first.error}", "'labctl up' again resumes; "
                          "'labctl down NAME --all-copies' removes")
    return result


class ClassFailed(LabctlError):
    """Some copies failed; the result says which (the CLI still shows the table)."""

    def __init__(self, result: ClassResult, message: str, hint: str):
        super().__init__(message, hint)
        self.result = result


def reset(session: Session, lab: Lab, vms: list[str] | None, copy: str | None,
          report: ClassReport) -> tuple[frozenset[str], str]:
    """Return VMs (default: all of the lab or copy) to their post-`up` state;
    which VMs, and of what ('lab X' or "copy 'C' of 'X'")."""
    names = frozenset(vms or [vm.name for vm in lab.vms])
    unknown = sorted(names - {vm.name for vm in lab.vms})
    if unknown:
        raise UsageError(f"lab '{lab.name}' has no VM '{unknown[0]}'",
                         f"its VMs: {', '.join(vm.name for vm in lab.vms)}")
    if classroom.is_class(lab) or copy:
        if not copy:
            raise UsageError(f"lab '{lab.name}' is a class: say which copy to reset",
                             "--copy ID (a student's name or 1..N)")
        existing = sorted(set(existing_copies(session, lab.name).values()))
        if copy not in existing:  # a reset never makes a copy that is not there
            raise UsageError(f"class '{lab.name}' has no copy '{copy}'",
                             f"its copies: {', '.join(existing) or 'none (labctl up first)'}")
        _checked(up_class(session, lab, report, None, copy, 1, reset=names))
        return names, f"copy '{copy}' of '{lab.name}'"
    lab_cases.up(session, lab, reset=names)
    return names, f"lab '{lab.name}'"


def down_any(session: Session, name: str, report: ClassReport, a_class: bool = False,
             copy: str | None = None) -> list[lab_cases.DownResult]:
    """`labctl down`: every copy of a class (or one), or the lab `name`."""
    if a_class or copy:
        return down_class(session, name, report, copy)
    return [lab_cases.down(session, name)]
