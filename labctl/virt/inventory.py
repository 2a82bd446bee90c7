"""What libvirt holds for a lab, found through labctl's metadata alone."""

from __future__ import annotations

import libvirt

from labctl.backend import Found
from labctl.plan.actions import Observed
from labctl.virt import metadata


def domains(conn: libvirt.virConnect, lab: str | None = None) -> list[Found]:
    return _labelled(conn.listAllDomains(0), lab)


def networks(conn: libvirt.virConnect, lab: str | None = None) -> list[Found]:
    return _labelled(conn.listAllNetworks(0), lab)


def _labelled(objects: list, lab: str | None) -> list[Found]:
    """Those of the libvirt objects that carry labctl metadata (of `lab`).
    A lab's objects are named LAB.NAME (plan/layout.object_name): another
    name is not read at all -- reading every object's XML made a student's
    page, polled by 40 students, read 40 domains per poll."""
    found = []
    for obj in objects:
        if lab is not None and not obj.name().startswith(f"{lab}."):
            continue
        try:
            meta = metadata.from_xml(obj.XMLDesc(0))
            if meta is not None and (lab is None or meta.lab == lab):
                found.append(Found(meta, obj.name(), bool(obj.isActive())))
        except libvirt.libvirtError:  # removed by another labctl between list and read
            if not obj.connect().isAlive():
                raise
    return sorted(found, key=lambda f: f.libvirt_name)


def observe(conn: libvirt.virConnect, lab: str) -> list[Observed]:
    return [f.observed() for f in networks(conn, lab) + domains(conn, lab)]
