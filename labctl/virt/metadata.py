"""labctl's metadata element in libvirt domain and network XML.

State lives where the thing lives: every object labctl defines carries the lab
name, its own name in the lab, the spec hash it was made from and labctl's
version, so `labctl down --name LAB` finds everything without the lab file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from labctl.plan.records import NS, Meta


def from_xml(object_xml: str) -> Meta | None:
    """The Meta in a domain's or network's XMLDesc, or None if labctl did not make it."""
    root = ET.fromstring(object_xml)
    element = root.find(f"metadata/{{{NS}}}labctl")
    if element is None:
        return None

    def text(tag: str) -> str:
        return (element.findtext(f"{{{NS}}}{tag}") or "").strip()

    port = text("ssh-port")
    forwards = tuple((int(f.get("host", 0)), int(f.get("guest", 0)))
                     for f in element.findall(f"{{{NS}}}forward"))
    return Meta(lab=text("lab"), kind=text("kind"), name=text("name"),
                spec_hash=text("spec-hash"), version=text("version"), user=text("user"),
                ssh_port=int(port) if port else None, forwards=forwards,
                data_dir=text("data-dir"), group=text("group"), copy=text("copy"))
