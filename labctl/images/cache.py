"""The local image cache: DATA_DIR/images/NAME/ holds disk.qcow2, a manifest
(sha256, size, packages, build facts) and, for images built by labctl, the
kernel and initrd for direct kernel boot. Entries appear atomically: a build or
download writes to a staging directory that is renamed into place at the end."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.datadir import ensure
from labctl.errors import LabctlError
from labctl.lab.model import CLOUD_IMAGE_PREFIX

MANIFEST = "manifest.json"
DISK = "disk.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"


@dataclass(frozen=True)
class Image:
    name: str
    directory: Path
    manifest: dict[str, Any]

    @property
    def disk(self) -> Path:
        return self.directory / DISK

    @property
    def kernel(self) -> Path | None:
        path = self.directory / KERNEL
        return path if path.exists() else None

    @property
    def initrd(self) -> Path | None:
        path = self.directory / INITRD
        return path if path.exists() else None

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def cmdline(self) -> str | None:
        return self.manifest.get("cmdline")

    @property
    def configures_itself(self) -> bool:
        """Built by labctl: a first-boot unit applies the seed (no cloud-init)."""
        return self.manifest.get("kind") == "built"

    @property
    def in_cloud(self) -> str | None:
        """The Glance name of an image that lives in an OpenStack cloud, not here."""
        return self.manifest.get("cloud_image")


def cloud_image(name: str) -> Image:
    """An image the lab names in its cloud (`image: {cloud: NAME}`): nothing on
    disk; its digest stands for the name (labctl uses the cloud's image of that
    name when it creates a VM and does not follow later uploads under it)."""
    glance = name.removeprefix(CLOUD_IMAGE_PREFIX)
    digest = hashlib.sha256(f"glance image {glance}".encode()).hexdigest()
    return Image(name, Path("/nonexistent"), {"sha256": digest, "kind": "cloud",
                                              "cloud_image": glance})


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ImageCache:
    def __init__(self, root: Path):
        self.root = root

    def list(self) -> list[Image]:
        if not self.root.is_dir():
            return []
        return [self._read(p) for p in sorted(self.root.iterdir())
                if not p.name.startswith(".") and (p / MANIFEST).is_file()]

    def has(self, name: str) -> bool:
        return name.startswith(CLOUD_IMAGE_PREFIX) or (self.root / name / MANIFEST).is_file()

    def get(self, name: str) -> Image:
        if name.startswith(CLOUD_IMAGE_PREFIX):
            return cloud_image(name)
        if not self.has(name):
            raise LabctlError(f"image '{name}' is not in the image cache ({self.root})",
                              f"build it with 'labctl image build {name}', or "
                              "'labctl image pull URL --sha256 HEX --name NAME'")
        return self._read(self.root / name)

    def remove(self, name: str) -> None:
        self.get(name)  # a clear error when absent
        shutil.rmtree(self.root / name)

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A scratch directory that becomes the entry `name` if the block succeeds
        (and vanishes if it fails, so a killed build leaves no half image)."""
        ensure(self.root)
        stage = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=self.root))
        try:
            yield stage
            final = self.root / name
            old = self.root / f".old-{name}-{stage.name}"
            if final.exists():
                final.rename(old)
            stage.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    @staticmethod
    def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    @staticmethod
    def _read(directory: Path) -> Image:
        manifest = json.loads((directory / MANIFEST).read_text())
        return Image(directory.name, directory, manifest)
