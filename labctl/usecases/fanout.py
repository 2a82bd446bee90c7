"""Asking every copy of a class at once, host by host: `check`, `ps` and
`status --all-copies` each do one copy's work for many copies, and one at a
time a class of 40 waited 40 SSH round trips in a row."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from labctl.plan import capacity
from labctl.usecases.session import Session

T = TypeVar("T")


def per_copy(session: Session, names: list[str], work: Callable[[str], T]) -> list[T]:
    """work(name) for every copy, in the order of `names`. Each host has its
    own workers (a busy or lost host never holds up another's copies), as many
    as its cores serve (capacity.checks_at_once: the VMs' CPUs are the limit,
    not SSH). `work` says what a copy it cannot reach is; anything it raises
    is raised here once the other copies are done."""
    uris = {name: session.placed_uri(name) for name in names}
    pools = {uri: ThreadPoolExecutor(max_workers=n) for uri, n in at_once(session, uris).items()}
    try:
        futures = [pools[uris[name]].submit(work, name) for name in names]
        return [f.result() for f in futures]
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


def at_once(session: Session, uris: dict[str, str]) -> dict[str, int]:
    """How many copies each host serves at once. A host that cannot be asked
    gets one at a time: its copies' own work says why it could not run."""
    limits: dict[str, int] = {}
    for uri in set(uris.values()):
        try:
            host = session.host(uri)
            limits[uri] = capacity.checks_at_once(host.accel, host.cpus)
        except Exception:  # noqa: BLE001 -- not asked is not a reason to stop
            limits[uri] = 1
    copies = list(uris.values())
    return {uri: min(n, copies.count(uri)) for uri, n in limits.items()}
