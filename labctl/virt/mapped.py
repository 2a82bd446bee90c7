"""Template memory mapped from one file (Kata Containers' VM templating):
a template VM's RAM lives in a file of the pool, shared, and its save keeps
only the device state (QEMU's `x-ignore-shared` migration capability leaves
shared RAM out of it: ~1 MiB instead of the guest's memory). A VM restored
from it maps that file privately -- pages it only reads stay one copy in the
host's page cache for every VM of the template, a page it writes becomes its
own -- and loads the device state before its first instruction runs.

libvirt 9.0 names neither the capability nor a memory file of our choosing:
the memory backend is given to qemu through `<qemu:commandline>` (a later
`-machine memory-backend=` overrides libvirt's), and the capability and the
state's load go to qemu through libvirt's QMP pass-through. Each VM maps its
own hard link of the template's file (DOMAIN.ram, a volume that goes with the
VM), so a template removed or rebuilt never pulls memory from under a VM, and
a VM stopped and started again, or reverted to a snapshot by a restarted
qemu, finds its file. No balloon is ever given to these domains: qemu would
punch a balloon's pages out of the file itself, under every VM that maps it."""

from __future__ import annotations

import contextlib
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from labctl.errors import LabctlError
from labctl.virt import snapshots
from labctl.virt.connection import libvirt_errors

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
BACKEND_ID = "labctl.ram"
JOB_SECONDS = 120.0


def with_memory_file(xml: str, path: str, memory_mib: int, shared: bool) -> str:
    """The domain definition with its RAM in `path` (shared: the template's
    own; private: a copy's view of it). Replaces any mapping already there."""
    ET.register_namespace("qemu", QEMU_NS)
    root = ET.fromstring(xml)
    line = root.find(f"{{{QEMU_NS}}}commandline")
    if line is None:
        line = ET.SubElement(root, f"{{{QEMU_NS}}}commandline")
    args = list(line)
    for i, arg in enumerate(args):  # an earlier mapping: -object backend, -machine backend
        if BACKEND_ID in (arg.get("value") or "") and i > 0:
            line.remove(args[i - 1])
            line.remove(arg)
    backend = json.dumps({"qom-type": "memory-backend-file", "id": BACKEND_ID, "mem-path": path,
                          "size": memory_mib << 20, "share": shared}, separators=(",", ":"))
    for value in ("-object", backend, "-machine", f"memory-backend={BACKEND_ID}"):
        ET.SubElement(line, f"{{{QEMU_NS}}}arg", value=value)
    return ET.tostring(root, encoding="unicode")


def memory_file(xml: str) -> tuple[str, bool] | None:
    """(path, shared) of the domain's mapped RAM, or None."""
    for arg in ET.fromstring(xml).iter(f"{{{QEMU_NS}}}arg"):
        value = arg.get("value") or ""
        if value.startswith("{") and BACKEND_ID in value:
            spec = json.loads(value)
            return spec["mem-path"], bool(spec.get("share"))
    return None


def qemu_owner(capabilities_xml: str, domain_type: str) -> tuple[int, int] | None:
    """(uid, gid) qemu runs as on the host (its DAC base label), or None when
    a security driver other than DAC would confine it to files libvirt names
    (AppArmor, SELinux): then no mapped memory."""
    root = ET.fromstring(capabilities_xml)
    models = [m.findtext("model") for m in root.findall("host/secmodel")]
    if any(m not in ("none", "dac") for m in models):
        return None
    for label in root.findall("host/secmodel/baselabel"):
        if label.get("type") == domain_type and label.text:
            uid, gid = (int(part.lstrip("+")) for part in label.text.split(":"))
            return uid, gid
    return 0, 0  # no DAC label: qemu runs as libvirtd's own user


def qmp(dom: libvirt.virDomain, command: str, arguments: dict | None = None) -> object:
    import libvirt_qemu

    text = json.dumps({"execute": command, **({"arguments": arguments} if arguments else {})})
    with libvirt_errors(f"cannot ask qemu for {command}"):  # the caller boots cold instead
        answer = json.loads(libvirt_qemu.qemuMonitorCommand(dom, text, 0))
    if "error" in answer:
        raise LabctlError(f"qemu refused {command}: {answer['error'].get('desc', answer)}")
    return answer.get("return")


def ignore_shared(dom: libvirt.virDomain, on: bool) -> None:
    qmp(dom, "migrate-set-capabilities",
        {"capabilities": [{"capability": "x-ignore-shared", "state": on}]})


def _job(dom: libvirt.virDomain, command: str, arguments: dict) -> None:
    """Run one of qemu's snapshot jobs to its end; its error as ours."""
    job = f"labctl-{command}"
    qmp(dom, command, {"job-id": job, **arguments})
    until = time.monotonic() + JOB_SECONDS
    while True:
        found = [j for j in qmp(dom, "query-jobs") if j.get("id") == job]
        if found and found[0].get("status") == "concluded":
            qmp(dom, "job-dismiss", {"id": job})
            if found[0].get("error"):
                raise LabctlError(f"qemu's {command} failed: {found[0]['error']}")
            return
        if time.monotonic() > until:
            raise LabctlError(f"qemu's {command} did not end within {JOB_SECONDS:.0f} s")
        time.sleep(0.01)


def _node(dom: libvirt.virDomain, disk_path: str) -> str:
    for device in qmp(dom, "query-block"):
        inserted = device.get("inserted") or {}
        if inserted.get("file") == disk_path:
            return inserted["node-name"]
    raise LabctlError(f"qemu does not show the disk {disk_path}")


def load_state(dom: libvirt.virDomain, snapshot: str, disk_path: str) -> None:
    """Into a domain started paused (its RAM not yet touched): the device
    state of the template's internal snapshot in its disk, saved without
    the RAM; then the snapshot leaves the disk. Later snapshots (a reset
    point, a student's) hold the whole memory again."""
    node = _node(dom, disk_path)
    ignore_shared(dom, True)
    _job(dom, "snapshot-load", {"tag": snapshot, "vmstate": node, "devices": [node]})
    ignore_shared(dom, False)
    _job(dom, "snapshot-delete", {"tag": snapshot, "devices": [node]})


def file_pages_mib(domain: str, run: str = "/run/libvirt/qemu") -> int:
    """MiB of the domain's memory file its qemu maps unchanged here (page
    cache every VM of the template shares; a page the VM wrote is its own);
    0 if it maps none or this machine does not show it."""
    try:
        pid = Path(run, f"{domain}.pid").read_text().strip()
        smaps = Path(f"/proc/{pid}/smaps").read_text()
    except (OSError, ValueError):
        return 0
    kib, inside = 0, False
    for line in smaps.splitlines():  # the file's pages: resident, less those copied on write
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = len(head) > 5 and head[5].endswith(f"/{domain}.ram")
        elif inside and head[0] == "Rss:":
            kib += int(head[1])
        elif inside and head[0] == "Anonymous:":
            kib -= int(head[1])
    return kib // 1024


def _inactive_xml(dom: libvirt.virDomain) -> str:
    return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)


def map_file(conn: libvirt.virConnect, dom: libvirt.virDomain, path: str, shared: bool) -> \
        libvirt.virDomain:
    """The defined domain's RAM in `path` from its next start."""
    with libvirt_errors(f"cannot give VM {dom.name()} a memory file"):
        return conn.defineXML(with_memory_file(_inactive_xml(dom), path,
                                               dom.maxMemory() >> 10, shared))


def save(dom: libvirt.virDomain, snapshot: str, description: str) -> None:
    """A template's internal snapshot. With its RAM in a shared file: paused
    first (nothing may write the file after its state is saved) and saved
    without the RAM; the domain stays paused."""
    found = memory_file(dom.XMLDesc(0))
    if found is not None and found[1]:
        with libvirt_errors("cannot save the template"):
            dom.suspend()
        ignore_shared(dom, True)
    snapshots.take(dom, snapshot, description)


def restore(conn: libvirt.virConnect, dom: libvirt.virDomain, path: str, snapshot: str) -> None:
    """Start the defined domain from the template's device state in its disk,
    its RAM mapped privately from `path` (its own link of the template's
    file). A failure leaves it powered off, for the caller's cold boot."""
    disk = ET.fromstring(dom.XMLDesc(0)).find("devices/disk/source").get("file")
    dom = map_file(conn, dom, path, shared=False)
    try:
        with libvirt_errors(f"cannot start VM {dom.name()} from its template"):
            dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        load_state(dom, snapshot, disk)
        with libvirt_errors(f"cannot resume VM {dom.name()}"):
            dom.resume()
    except LabctlError:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        raise
