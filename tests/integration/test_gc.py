"""labctl gc on the real stack: it finds what no lab can use -- a domain and a
network whose data dir is gone, a volume of a VM never defined, an old base
image, the files of a lab libvirt no longer has -- lists them, asks, skips a
lab another labctl holds, and removes the rest; usable labs stay."""

from __future__ import annotations

import json

from labctl.lock import lab_lock
from labctl.plan.records import Meta
from labctl.virt.connection import connect
from labctl.virt.storage import Storage

from .conftest import labctl, leftovers

GONE_DIR = "/nonexistent/labctl-data"


def make_garbage(settings) -> None:
    conn = connect(settings.uri)
    storage = Storage(conn)
    storage.upload_bytes("itgc.ghost.qcow2", b"half an overlay")
    storage.upload_bytes("base-itgc-000000000000.qcow2", b"old base")
    storage.upload_bytes("base-itgc-000000000000.qcow2.complete", b"0" * 64)
    meta = Meta("itgc", "vm", "orphan", "h", data_dir=GONE_DIR).to_xml()
    conn.defineXML(f"<domain type='qemu'><name>itgc.orphan</name><memory unit='MiB'>128"
                   "</memory><os><type arch='x86_64'>hvm</type></os>"
                   f"<metadata>{meta}</metadata></domain>")
    net_meta = Meta("itgc", "network", "lan", "h", data_dir=GONE_DIR).to_xml()
    conn.networkDefineXML(f"<network><name>itgc.lan</name><metadata>{net_meta}</metadata>"
                          "<ip address='10.213.240.1' netmask='255.255.255.0'/></network>")
    files = settings.data_dir / "labs" / "itgcfiles"
    files.mkdir(parents=True, exist_ok=True)
    (files / "id_ed25519").write_text("not really a key")


def ours(items: list[dict]) -> list[tuple[str, str]]:
    return sorted((g["kind"], g["name"]) for g in items if "itgc" in g["name"])


def test_gc_finds_asks_skips_busy_and_removes(settings):
    make_garbage(settings)
    expected = [("base", "base-itgc-000000000000"), ("domain", "itgc.orphan"),
                ("files", "itgcfiles"), ("network", "itgc.lan"),
                ("volume", "itgc.ghost.qcow2")]
    listed = json.loads(labctl("--json", "gc", "--dry-run").stdout)
    assert ours(listed) == expected
    assert not [g for g in listed if g["name"].startswith("base-debian-12-")
                and g["name"].endswith(_current_digest(settings))]

    asked = labctl("gc", check=False)  # stdin is not a terminal: it cannot ask
    assert asked.returncode == 2 and "confirm with --yes" in asked.stderr

    with lab_lock(settings.data_dir, "itgc", "a test holding it", wait=False):
        busy = labctl("gc", "--yes")
    assert "skipped lab 'itgc': a labctl is working on it" in busy.stderr
    left = ours(json.loads(labctl("--json", "gc", "--dry-run").stdout))
    assert left == [("domain", "itgc.orphan"), ("network", "itgc.lan"),
                    ("volume", "itgc.ghost.qcow2")]

    labctl("gc", "--yes")
    assert ours(json.loads(labctl("--json", "gc", "--dry-run").stdout)) == []
    assert leftovers("itgc", settings) == {} and leftovers("itgcfiles", settings) == {}


def _current_digest(settings) -> str:
    manifest = json.loads((settings.data_dir / "images" / "debian-12" / "manifest.json")
                          .read_text())
    return manifest["sha256"][:12]
