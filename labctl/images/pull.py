"""Downloading a cloud image (qcow2) into the cache, refusing it unless its
sha256 matches what the user said it should be."""

from __future__ import annotations

import datetime
import hashlib
import time
import urllib.error
import urllib.request

from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.images.cache import DISK, Image, ImageCache

QCOW2_MAGIC = b"QFI\xfb"
CHUNK = 1 << 20


def pull_image(url: str, sha256: str, name: str, cache: ImageCache, report: Report,
               timeout: float = 60.0) -> Image:
    expected = sha256.lower().removeprefix("sha256:")
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise LabctlError(f"'{sha256}' is not a sha256 checksum", "give 64 hex digits")
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
    digest = hashlib.sha256()
    done, last_report = 0, 0.0
    with cache.staging(name) as stage, response:
        with (stage / DISK).open("wb") as fh:
            while block := response.read(CHUNK):
                if done == 0 and not block.startswith(QCOW2_MAGIC):
                    raise LabctlError(f"{url} is not a qcow2 image",
                                      "labctl pulls qcow2 cloud images (e.g. *.qcow2)")
                fh.write(block)
                digest.update(block)
                done += len(block)
                if time.monotonic() - last_report > 0.5 or done == total:
                    last_report = time.monotonic()
                    of = f" of {total >> 20} MiB" if total else ""
                    report(Event(subject, "download", f"{done >> 20} MiB{of}",
                                 time.monotonic() - start, (done, total)))
        actual = digest.hexdigest()
        if actual != expected:
            raise LabctlError(f"checksum mismatch for {url}: got sha256 {actual}",
                              f"expected {expected}; the download was discarded")
        ImageCache.write_manifest(stage, {
            "name": name, "kind": "pulled", "url": url, "sha256": actual, "size": done,
            "pulled_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        })
        (stage / DISK).chmod(0o644)
    return cache.get(name)
