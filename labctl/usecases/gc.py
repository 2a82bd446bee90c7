"""Finding and removing what no lab can use any more: the leftovers of killed
runs, of deleted data dirs, and of image versions no VM boots from.

`find` gathers Facts (one pass over libvirt, the pool and the data dir) and
`classify` decides, as a pure function, what is garbage and why:

- a lab's domains and networks whose keys are gone: this data dir made them
  (their metadata says so) but no longer holds the lab's login key, or the data
  dir they name does not exist: nobody can log in, `up` would recreate them;
- volumes named after a domain that does not exist (a create killed before
  `define`), and base images that no overlay or domain uses and that are not
  the image cache's current version;
- a lab's local files (and lab registry) when libvirt holds nothing of the lab
  and the lab is not recorded on another host (a class's copy elsewhere);
- templates (boot once, restore many) of an image no longer in the cache, and
  template volumes without a record (a build killed before it finished);
- a lab of which the host holds only labelled objects, no VM or network (a
  cloud's router, floating IPs or security group after a killed `down`).

Labs whose lock is held (an `up` or `down` in progress) are never touched.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labctl.backend import Backend
from labctl.cloud.records import is_cloud
from labctl.errors import LabctlError
from labctl.events import Event
from labctl.images.cache import ImageCache
from labctl.labfiles import LabFiles
from labctl.lock import lab_lock
from labctl.usecases.registry import lab_registry
from labctl.usecases.session import Session
from labctl.usecases.template_store import (
    VOLUME_PREFIX,
    TemplateStore,
    is_own_volume,
    ram_volume_name,
)
from labctl.usecases.templates import remove_template
from labctl.virt.storage import DONE, base_names


@dataclass(frozen=True)
class Garbage:
    kind: str  # domain | network | volume | base | template | leftovers | files
    name: str  # libvirt name, volume name, or directory
    lab: str  # the lab it belongs to; "" for shared base images
    reason: str


@dataclass(frozen=True)
class Facts:
    data_dir: str  # resolved
    domains: dict[str, tuple[str, str]]  # libvirt name -> (lab, data dir in its metadata)
    networks: dict[str, tuple[str, str]]
    volumes: list[str]
    used_paths: set[str]  # volume paths some domain or overlay refers to
    volume_paths: dict[str, str]  # volume name -> path
    current_bases: set[str]  # base volume names of the images in the cache now
    lab_dirs: list[str]  # labs with files (or a registry) in this data dir
    labs_with_keys: dict[str, set[str]]  # data dir -> labs that have a login key there
    templates: dict[str, tuple[str, str]] | None = None  # key -> (volume, image sha256)
    current_digests: frozenset[str] = frozenset()  # sha256 of the images in the cache
    uri: str = ""  # the host these facts are of
    placed: dict[str, str] | None = None  # lab -> the host it is recorded on
    labelled: frozenset[str] = frozenset()  # labs the host has objects of (by label)


def classify(f: Facts) -> list[Garbage]:
    found: list[Garbage] = []
    keyless: set[str] = set()
    for kind, objects in (("domain", f.domains), ("network", f.networks)):
        for name, (lab, owner) in sorted(objects.items()):
            owner = owner or f.data_dir  # made before metadata named its data dir
            if lab in f.labs_with_keys.get(owner, set()):
                continue
            if owner == f.data_dir:
                why = "its lab's keys are gone from this data dir: nobody can log in"
            elif owner not in f.labs_with_keys:
                why = f"the data dir that made it ({owner}) is gone"
            else:
                continue  # another data dir's lab: not ours to judge
            keyless.add(lab)
            found.append(Garbage(kind, name, lab, why))
    stems = sorted({_stem(v) for v in f.volumes if v.startswith("base-")})
    for stem in stems:
        members = [v for v in f.volumes if _stem(v) == stem]
        if not any(v in f.current_bases or f.volume_paths.get(v) in f.used_paths
                   for v in members):
            found.append(Garbage("base", stem, "", f"an old base image no VM uses "
                                 f"({len(members)} volumes)"))
    templates = f.templates or {}
    recorded = {volume for volume, _ in templates.values()} | \
        {ram_volume_name(volume) for volume, _ in templates.values()}
    for key, (_volume, digest) in sorted(templates.items()):
        if digest not in f.current_digests:
            found.append(Garbage("template", key, "", "a template of an image no longer "
                                 "in the cache"))
    for volume in f.volumes:  # another data dir's templates are its own business
        if is_own_volume(Path(f.data_dir), volume) and volume not in recorded:
            found.append(Garbage("volume", volume, "", "a template whose build did not "
                                 "finish"))
    for volume in f.volumes:
        if volume.startswith(("base-", VOLUME_PREFIX)):
            continue
        parts = volume.split(".")
        domain = ".".join(parts[:2])
        if len(parts) >= 3 and domain not in f.domains:
            found.append(Garbage("volume", volume, parts[0],
                                 f"belongs to VM {domain}, which does not exist"))
    labs_in_libvirt = {lab for lab, _ in f.domains.values()} | {lab for lab, _ in
                                                                 f.networks.values()}
    for lab in sorted(f.labelled - labs_in_libvirt):
        found.append(Garbage("leftovers", lab, lab, "no VM or network of the lab is left, "
                             "only objects labelled with it (a cloud's router, addresses, "
                             "security group)"))
    for lab in f.lab_dirs:
        placed = (f.placed or {}).get(lab, "")
        # a lab recorded on no host (made before labctl recorded it) is libvirt's
        # to judge: a cloud's gc leaves it alone
        elsewhere = placed not in ("", f.uri) or (not placed and is_cloud(f.uri))
        if lab in keyless or (lab not in labs_in_libvirt and not elsewhere):
            found.append(Garbage("files", lab, lab, "local files (keys, registry) of a lab "
                                 "libvirt no longer has"))
    return found


def _stem(volume: str) -> str:
    """base-IMAGE-DIGEST12 of its disk, kernel, initrd and their markers."""
    return volume.removesuffix(DONE).rsplit(".", 1)[0]


def find(session: Session, uri: str | None = None) -> list[Garbage]:
    """Garbage on one host (default: the session's)."""
    return classify(gather(session.host(uri), session.data_dir, session.settings.images))


def find_on_hosts(session: Session, uris: list[str]) -> dict[str, list[Garbage] | LabctlError]:
    """Garbage on each host (a host that cannot be reached: why, the others go on)."""
    found: dict[str, list[Garbage] | LabctlError] = {}
    for uri in uris:
        try:
            found[uri] = find(session, uri)
        except LabctlError as exc:
            found[uri] = exc
    return found


def gather(host: Backend, data_dir: Path, images: ImageCache) -> Facts:
    volume_paths, backing = host.storage.volumes_with_backing()
    used = set(backing.values())
    domains, networks = {}, {}
    for found in host.domains():
        domains[found.libvirt_name] = (found.meta.lab, found.meta.data_dir)
        used.update(host.domain_files(found.libvirt_name))
    for found in host.networks():
        networks[found.libvirt_name] = (found.meta.lab, found.meta.data_dir)
    current = set()
    for image in images.list():
        current.update(base_names(image))
    mine = str(data_dir.resolve())
    owners = {mine} | {d for _, d in [*domains.values(), *networks.values()] if d}
    return Facts(mine, domains, networks, sorted(volume_paths), used, volume_paths, current,
                 _lab_dirs(data_dir), {d: _labs_with_keys(Path(d)) for d in owners
                                       if Path(d).is_dir()},
                 # each host's templates are its own: another host's gc neither
                 # lists nor removes them
                 {t.key: (t.volume, t.image_sha256) for t in TemplateStore(data_dir).all()
                  if t.host == host.template_home},
                 frozenset(i.manifest.get("sha256", "") for i in images.list()), host.uri,
                 {lab: LabFiles(data_dir, lab).placement().get("uri", "")
                  for lab in _lab_dirs(data_dir)}, frozenset(host.lab_names()))


def _lab_dirs(data_dir: Path) -> list[str]:
    names = set()
    for parent in (data_dir / "labs", data_dir / "registry"):
        if parent.is_dir():
            names |= {p.name for p in parent.iterdir() if p.is_dir()}
    return sorted(names)


def _labs_with_keys(data_dir: Path) -> set[str]:
    labs = data_dir / "labs"
    if not labs.is_dir():
        return set()
    return {p.name for p in labs.iterdir() if (p / "id_ed25519").exists()}


def collect(session: Session, garbage: list[Garbage],
            busy: Callable[[str], None] = lambda _lab: None,
            uri: str | None = None) -> list[Garbage]:
    """Remove `garbage` found on the host at `uri`, each lab under its lock (a
    busy lab is skipped and named through `busy`); returns what was removed."""
    host, report, data_dir = session.host(uri), session.report, session.data_dir
    removed = []
    by_lab: dict[str, list[Garbage]] = {}
    for g in garbage:
        by_lab.setdefault(g.lab, []).append(g)
    order = {"domain": 0, "volume": 1, "base": 1, "template": 1, "network": 2, "leftovers": 2,
             "files": 3}
    for lab, items in sorted(by_lab.items()):
        with contextlib.ExitStack() as stack:
            if lab:
                try:
                    stack.enter_context(lab_lock(data_dir, lab, "gc", wait=False))
                except LabctlError:
                    busy(lab)
                    continue
            files = LabFiles(data_dir, lab or "_")
            prov = host.provisioner(files, report)
            for g in sorted(items, key=lambda g: order[g.kind]):
                report(Event(f"{g.kind} {g.name}", "remove", g.reason))
                if g.kind == "domain":
                    prov.remove_vm(g.name, forget_keys=False)
                elif g.kind == "network":
                    prov.remove_network(g.name)
                elif g.kind == "volume":
                    host.storage.delete(g.name)
                elif g.kind == "template":
                    remove_template(session, host, g.name)
                elif g.kind == "leftovers":
                    host.remove_leftovers(lab)
                elif g.kind == "base":
                    for volume in host.storage.names(prefix=f"{g.name}."):
                        host.storage.delete(volume)
                else:
                    lab_registry(session, lab, host).stop()
                    shutil.rmtree(files.dir, ignore_errors=True)
                removed.append(g)
            if lab and any(g.kind in ("domain", "network") for g in items):
                host.remove_leftovers(lab)  # what only its labels find (a cloud's router, IPs)
    return removed
