"""Where templates are kept: the record of each, DATA_DIR/templates/KEY.json,
and the name of its volume in a host's pool (see templates.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from labctl.datadir import ensure
from labctl.fileio import write_atomic

VOLUME_PREFIX = "labctl-template-"


def own_prefix(data_dir: Path) -> str:
    """Template volumes of this data dir: libvirt's pool is shared by every
    data dir on the host, each with its own records (and keys)."""
    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{VOLUME_PREFIX}{tag}-"


def volume_name(data_dir: Path, key: str) -> str:
    return f"{own_prefix(data_dir)}{key[:16]}.qcow2"


def ram_volume_name(volume: str) -> str:
    """The template's memory file beside its overlay (templates.py: mapped)."""
    return volume.removesuffix(".qcow2") + ".ram"


def is_own_volume(data_dir: Path, volume: str) -> bool:
    """This data dir's (or, from before volumes carried a data dir's tag, anyone's)."""
    return volume.startswith(own_prefix(data_dir)) or \
        re.fullmatch(rf"{VOLUME_PREFIX}[0-9a-f]{{16}}\.(qcow2|ram)", volume) is not None


@dataclass(frozen=True)
class Template:
    key: str
    image: str  # the image's name in the cache
    image_sha256: str
    volume: str  # in the labctl pool: the overlay holding the snapshot
    user: str
    login_private: str
    host_public: str
    created: str
    seconds: float  # what building it took (a cold boot and the save)
    size: int = 0  # bytes on disk (the overlay and its saved state)
    agent: bool = False  # its guest agent answered before the save
    held_mib: int = 0  # the most host RAM a VM restored from it held after its identity
    base: str = ""  # the base volume its overlay is backed by
    base_stamp: str = ""  # that volume's stamp when it was built (Volumes.stamp)
    host: str = ""  # the host whose pool holds the volume ("": this machine's libvirt)
    ram: str = ""  # its memory file, which restored VMs map ("": the memory is in the snapshot)

    @property
    def short(self) -> str:
        return self.key[:12]


class TemplateStore:
    """DATA_DIR/templates/KEY.json, written last: a killed build leaves no
    record, so nothing half-made is ever restored (gc removes its volume)."""

    def __init__(self, data_dir: Path):
        self.dir = data_dir / "templates"

    def get(self, key: str) -> Template | None:
        try:
            return Template(**json.loads((self.dir / f"{key}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def put(self, template: Template) -> None:
        ensure(self.dir)
        write_atomic(self.dir / f"{template.key}.json", json.dumps(dataclasses.asdict(template)))

    def all(self) -> list[Template]:
        found = [self.get(p.stem) for p in sorted(self.dir.glob("*.json"))] \
            if self.dir.is_dir() else []
        return [t for t in found if t is not None]

    def note_held(self, key: str, mib: int | None) -> None:
        """Keep the most a restored VM was seen to hold (admission charges it)."""
        found = self.get(key)
        if found is not None and mib and mib > found.held_mib:
            self.put(dataclasses.replace(found, held_mib=mib))

    def remove(self, key: str) -> None:
        (self.dir / f"{key}.json").unlink(missing_ok=True)
