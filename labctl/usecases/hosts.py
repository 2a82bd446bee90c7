"""`labctl hosts`: each libvirt host labctl knows of -- the session's, a lab's
`hosts:`, every host a copy was placed on -- reachable or not, KVM or TCG, the
room it has now and which labs (copies) it holds. One host that cannot be
reached is a row that says so, never an error for the others."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import LabctlError
from labctl.usecases.session import Session


@dataclass(frozen=True)
class HostRow:
    uri: str
    reachable: bool
    error: str = ""  # why it cannot be reached
    accel: str = ""  # kvm | qemu (TCG)
    memory_mib: int = 0  # available now
    disk_mib: int = 0  # free in the labctl pool
    cpus: int = 0
    labs: tuple[str, ...] = ()  # labs (copies) with a domain there
    placed: tuple[str, ...] = ()  # labs whose recorded placement is this host


def known_uris(session: Session, extra: tuple[str, ...] = ()) -> list[str]:
    """The session's host, the given ones, then every recorded placement."""
    placed = [uri for uri in placements(session).values() if uri]
    return list(dict.fromkeys([session.settings.uri, *extra, *placed]))


def placements(session: Session) -> dict[str, str]:
    """lab -> the URI its placement record names (this data dir's labs)."""
    labs = session.data_dir / "labs"
    found = {}
    for folder in sorted(labs.iterdir()) if labs.is_dir() else []:
        uri = session.files(folder.name).placement().get("uri")
        if uri:
            found[folder.name] = uri
    return found


def host_rows(session: Session, uris: list[str]) -> list[HostRow]:
    placed = placements(session)
    rows = []
    for uri in uris:
        mine = tuple(lab for lab, where in placed.items() if where == uri)
        try:
            host = session.host(uri)
            room = host.room()
            rows.append(HostRow(uri, True, "", host.accel.label, room.memory_mib,
                                room.disk_mib, room.cpus, tuple(sorted(host.lab_names())),
                                mine))
        except LabctlError as exc:
            rows.append(HostRow(uri, False, exc.message, placed=mine))
    return rows
