"""Stock cloud images by name: `labctl image pull debian-12-cloud`. Each entry
says where the distribution publishes the image and its checksum file; the
URL and checksum are read from that file at pull time, so a new point release
needs no labctl release. `--mirror URL` (or LABCTL_IMAGE_MIRROR) replaces the
base URL: a local mirror laid out like the distribution's site."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from labctl.errors import LabctlError, UsageError


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    base: str  # the directory the image and its checksum file are in
    sums: str  # the checksum file's name in it
    algorithm: str  # sha256 | sha512
    pattern: str  # regex for the image's file name in the checksum file
    firmware: str = "bios"
    description: str = ""


CATALOGUE = {e.name: e for e in (
    CatalogueEntry("debian-12-cloud", "https://cloud.debian.org/images/cloud/bookworm/latest/",
                   "SHA512SUMS", "sha512", r"^debian-12-genericcloud-amd64\.qcow2$",
                   description="Debian 12 genericcloud (cloud-init, BIOS)"),
    CatalogueEntry("ubuntu-24.04-cloud",
                   "https://cloud-images.ubuntu.com/releases/24.04/release/",
                   "SHA256SUMS", "sha256", r"^ubuntu-24\.04-server-cloudimg-amd64\.img$",
                   description="Ubuntu 24.04 LTS server cloud image"),
    CatalogueEntry("fedora-41-cloud",
                   "https://download.fedoraproject.org/pub/fedora/linux/releases/41/Cloud/"
                   "x86_64/images/", "Fedora-Cloud-41-1.4-x86_64-CHECKSUM", "sha256",
                   r"^Fedora-Cloud-Base-Generic-41-.*\.x86_64\.qcow2$",
                   description="Fedora Cloud 41 Base Generic"),
)}

# "HEX  name", "HEX *name" (sha*sum) or "SHA256 (name) = HEX" (BSD style, Fedora).
_GNU = re.compile(r"^([0-9a-fA-F]{64,128}) [ *](\S+)$")
_BSD = re.compile(r"^(SHA256|SHA512) \((\S+)\) = ([0-9a-fA-F]{64,128})$")


@dataclass(frozen=True)
class Resolved:
    url: str
    checksum: str
    algorithm: str


def parse_sums(text: str) -> dict[str, tuple[str, str]]:
    """file name -> (algorithm, hex digest), from any common checksum file format."""
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _GNU.match(line):
            found[m.group(2)] = ("sha256" if len(m.group(1)) == 64 else "sha512",
                                 m.group(1).lower())
        elif m := _BSD.match(line):
            found[m.group(2)] = (m.group(1).lower(), m.group(3).lower())
    return found


def resolve(name: str, mirror: str | None = None, timeout: float = 30.0) -> Resolved:
    entry = CATALOGUE.get(name)
    if entry is None:
        raise UsageError(f"'{name}' is not in the image catalogue",
                         f"known: {', '.join(CATALOGUE)}; or give a URL and --sha256")
    base = (mirror or entry.base).rstrip("/") + "/"
    sums_url = base + entry.sums
    try:
        with urllib.request.urlopen(sums_url, timeout=timeout) as response:  # noqa: S310
            text = response.read(1 << 20).decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LabctlError(f"cannot read the checksum file {sums_url}: "
                          f"{getattr(exc, 'reason', exc)}",
                          "check the network, or point --mirror at a copy of the site") from None
    candidates = sorted(f for f in parse_sums(text) if re.match(entry.pattern, f))
    if not candidates:
        raise LabctlError(f"{sums_url} lists no file like {entry.pattern}",
                          "the distribution may have moved it: pass the URL and --sha256")
    file = candidates[-1]
    algorithm, digest = parse_sums(text)[file]
    return Resolved(base + file, digest, algorithm)
