"""labctl's metadata element in libvirt domain and network XML.

State lives where the thing lives: every object labctl defines carries the lab
name, its own name in the lab, the spec hash it was made from and labctl's
version, so `labctl down --name LAB` finds everything without the lab file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from labctl import __version__

NS = "https://labctl.dev/xmlns/libvirt/1"
PREFIX = "labctl"


@dataclass(frozen=True)
class Meta:
    lab: str
    kind: str  # "vm" | "network"
    name: str  # the VM or network name inside the lab
    spec_hash: str = ""
    version: str = __version__
    user: str = ""  # the login user of a VM
    ssh_port: int | None = None  # user-mode networking: host port forwarded to 22
    forwards: tuple[tuple[int, int], ...] = field(default=())  # (host port, guest port)
    data_dir: str = ""  # the data dir holding its keys: `gc` leaves other data dirs' labs alone
    group: str = ""  # a copy of a class: the lab file's name (lab is then GROUP-COPY)
    copy: str = ""  # a copy of a class: its id (a student's name or 1..N)

    def to_xml(self) -> str:
        root = ET.Element(f"{PREFIX}:labctl", {f"xmlns:{PREFIX}": NS})
        for tag in ("lab", "kind", "name", "spec_hash", "version", "user", "data_dir",
                    "group", "copy"):
            if getattr(self, tag):
                ET.SubElement(root, f"{PREFIX}:{tag.replace('_', '-')}").text = getattr(self, tag)
        if self.ssh_port is not None:
            ET.SubElement(root, f"{PREFIX}:ssh-port").text = str(self.ssh_port)
        for host, guest in self.forwards:
            ET.SubElement(root, f"{PREFIX}:forward", host=str(host), guest=str(guest))
        ET.indent(root)
        return ET.tostring(root, encoding="unicode")


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
