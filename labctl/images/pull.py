"""Downloading a stock cloud image (qcow2 or raw) into the cache, refusing it
unless its checksum matches what the user (or the distribution's checksum
file) said it should be. A raw disk is kept as qcow2, so overlays work alike.
The cache is keyed by the download's sha256 whatever checksum was checked."""

from __future__ import annotations

import datetime
import hashlib
import time
import urllib.error
import urllib.request

from labctl import proc
from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.images.cache import DISK, Image, ImageCache

QCOW2_MAGIC = b"QFI\xfb"
MBR_SIGNATURE = b"\x55\xaa"  # bytes 510-511 of a disk with a partition table (MBR or GPT)
CHUNK = 1 << 20
ALGORITHMS = {"sha256": 64, "sha512": 128}


def checked_digest(checksum: str, algorithm: str = "sha256") -> str:
    expected = checksum.lower().removeprefix(f"{algorithm}:")
    if len(expected) != ALGORITHMS[algorithm] or any(c not in "0123456789abcdef"
                                                     for c in expected):
        raise LabctlError(f"'{checksum}' is not a {algorithm} checksum",
                          f"give {ALGORITHMS[algorithm]} hex digits")
    return expected


def pull_image(url: str, checksum: str, name: str, cache: ImageCache, report: Report,
               timeout: float = 60.0, algorithm: str = "sha256") -> Image:
    expected = checked_digest(checksum, algorithm)
    subject = f"image {name}"
    start = time.monotonic()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (user's URL)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LabctlError(f"cannot download {url}: {reason}",
                          "check the URL, or build an image offline with 'labctl image build'"
                          ) from None
    total = int(response.headers.get("Content-Length") or 0)
    checked, sha256 = hashlib.new(algorithm), hashlib.sha256()
    done, last_report, head = 0, 0.0, b""
    with cache.staging(name) as stage, response:
        download = stage / "download"
        with download.open("wb") as fh:
            while block := response.read(CHUNK):
                if len(head) < 512:
                    head += block[:512]
                    if len(head) >= 512 or len(block) < CHUNK:
                        _check_disk(url, head)
                fh.write(block)
                checked.update(block)
                sha256.update(block)
                done += len(block)
                if time.monotonic() - last_report > 0.5 or done == total:
                    last_report = time.monotonic()
                    of = f" of {total >> 20} MiB" if total else ""
                    report(Event(subject, "download", f"{done >> 20} MiB{of}",
                                 time.monotonic() - start, (done, total)))
        _check_disk(url, head)
        actual = checked.hexdigest()
        if actual != expected:
            raise LabctlError(f"checksum mismatch for {url}: got {algorithm} {actual}",
                              f"expected {expected}; the download was discarded")
        form = "qcow2" if head.startswith(QCOW2_MAGIC) else "raw"
        if form == "raw":  # overlays on a qcow2 base, like every other image
            report(Event(subject, "convert", "raw disk -> qcow2"))
            proc.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", download, stage / DISK],
                     what=f"converting {url} to qcow2")
            download.unlink()
        else:
            download.rename(stage / DISK)
        ImageCache.write_manifest(stage, {
            "name": name, "kind": "pulled", "url": url, "sha256": sha256.hexdigest(),
            "checked": f"{algorithm}:{actual}", "format": form, "size": done,
            "pulled_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        })
        (stage / DISK).chmod(0o644)
    return cache.get(name)


def _check_disk(url: str, head: bytes) -> None:
    if head.startswith(QCOW2_MAGIC):
        _check_self_contained(url, head)
        return
    if head[510:512] == MBR_SIGNATURE:
        return
    raise LabctlError(f"{url} is not a qcow2 image or a raw disk",
                      "labctl pulls cloud disk images (*.qcow2, or raw *.img/*.raw)")


EXTERNAL_DATA_FILE = 1 << 2  # qcow2 v3 incompatible feature bit


def _check_self_contained(url: str, head: bytes) -> None:
    """A downloaded qcow2 must hold its own data: a backing file or an
    external data file names a path on this machine, which qemu would open
    (and libvirt chown) for whoever wrote the image."""
    backing = int.from_bytes(head[8:16], "big")
    version = int.from_bytes(head[4:8], "big")
    incompatible = int.from_bytes(head[72:80], "big") if version >= 3 else 0
    if backing or incompatible & EXTERNAL_DATA_FILE:
        what = "a backing file" if backing else "an external data file"
        raise LabctlError(f"{url} is a qcow2 image with {what}: refused",
                          "a cloud image must be self-contained (qemu-img convert "
                          "-O qcow2 makes one)")
