"""Hand-outs: per student a folder with their lab's private key, an OpenSSH
config and known_hosts that use it, their VMs' addresses and a short README;
and a roster (CSV) for the instructor.

The config names the key and known_hosts relative to the folder, so it works
from inside the folder wherever a student copies it (`ssh -F ssh_config VM`);
`--jump USER@HOST` adds a ProxyJump for students who reach the VMs through
the lab host from their own machines."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import LabctlError
from labctl.fileio import write_atomic
from labctl.lab.model import Check, Lab
from labctl.labfiles import SshEntry, ssh_config_text
from labctl.usecases import students, values
from labctl.usecases.classes import existing_copies
from labctl.usecases.lab import status
from labctl.usecases.session import Session

README = """Your lab: {lab} (copy '{copy}' of '{group}')

Log in to a VM (from this folder):
  ssh -F ssh_config {first}

VMs:
{vms}
The private key in this folder (id_ed25519) is yours alone: keep it private
(chmod 600 id_ed25519). The VMs' host keys are pinned in known_hosts, so ssh
will refuse an impostor instead of asking you to trust it.
"""


PAGE = """
Your own page (your VMs, resets, snapshots, and "check my work"); keep the
link to yourself, it opens your lab:
  {link}
"""


@dataclass(frozen=True)
class Handout:
    copy: str
    lab: str
    folder: Path
    entries: tuple[SshEntry, ...]
    page: str = ""  # the student's own page (with its token), when known


def write(session: Session, group: str, out: Path, only: str | None = None,
          jump: str | None = None, as_zip: bool = False,
          checks: tuple[Check, ...] = (), lab: Lab | None = None,
          page: str | None = None) -> list[Handout]:
    """`lab`: the class's lab file, when known: roster.csv then also lists each
    copy's own per-copy values (for the instructor; not in the students' folders).
    `page`: the dashboard's address as students reach it: each README then
    gives the student's own page (its token opens that copy only)."""
    copies = existing_copies(session, group)
    if only is not None:
        copies = {name: copy for name, copy in copies.items() if copy == only}
    if not copies:
        raise LabctlError(f"class '{group}' has no copies" + (f" named '{only}'" if only else ""),
                          f"run 'labctl up {group}.yaml' first (with copies or students)")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    made = []
    for name, copy in copies.items():
        link = f"{page.rstrip('/')}/student?token={students.token(session, name)}" \
            if page else ""
        made.append(_one(session, name, copy, group, out / copy, jump, checks, link))
    own = {h.copy: values.values_of(session.data_dir, lab, h.copy) for h in made} \
        if lab is not None and lab.per_copy else {}
    _roster(out / "roster.csv", made, own)
    if as_zip:
        for h in made:
            _zip(h.folder)
    return made


def _one(session: Session, lab: str, copy: str, group: str, folder: Path,
         jump: str | None, checks: tuple[Check, ...] = (), link: str = "") -> Handout:
    files = session.files(lab)
    if not files.login_key_path.exists():
        raise LabctlError(f"copy '{copy}' of '{group}' has no keys in this data dir",
                          "run 'labctl up' for the class first")
    entries = []
    for vm in status(session, lab):
        if vm.endpoint:
            host, _, port = vm.endpoint.rpartition(":")
            entries.append(SshEntry(vm.domain, host, int(port), vm.user, vm.jump))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(mode=0o700, parents=True)
    key = folder / "id_ed25519"
    shutil.copyfile(files.login_key_path, key)
    key.chmod(0o600)
    write_atomic(folder / "id_ed25519.pub", files.login_key().public + "\n", mode=0o644)
    write_atomic(folder / "known_hosts", files.known_hosts_text(entries), mode=0o644)
    write_atomic(folder / "ssh_config", ssh_config_text(
        entries, "id_ed25519", "known_hosts",
        f"# labctl: {lab} (student '{copy}'): ssh -F ssh_config NAME", jump), mode=0o644)
    vms = "".join(f"  {e.alias:<28} {e.user}@{e.host} port {e.port}\n" for e in entries)
    write_atomic(folder / "README.txt", README.format(
        lab=lab, copy=copy, group=group, first=entries[0].alias if entries else "NAME",
        vms=vms or "  (no VM is running: ask your instructor)\n") + assessed(checks)
        + (PAGE.format(link=link) if link else ""), mode=0o644)
    return Handout(copy, lab, folder, tuple(entries), link)


def assessed(checks: tuple[Check, ...]) -> str:
    """The README's list of what `labctl check` will look at."""
    if not checks:
        return ""
    total = sum(c.points for c in checks)
    lines = [f"\nWhat you will be assessed on ({total} points; your instructor runs "
             "'labctl check'):"]
    for c in checks:
        lines.append(f"  - {c.name} ({c.points} pt, on {c.vm}): {c.description or c.kind}")
    return "\n".join(lines) + "\n"


def _roster(path: Path, handouts: list[Handout], own: dict[str, dict] | None = None) -> None:
    """A row per VM of each copy; with per-copy values, a column for each."""
    own = own or {}
    names = list(next(iter(own.values()), {}))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", "lab", "vm", "ssh_alias", "host", "port", "user", "handout",
                     "page", *names])
    for h in handouts:
        mine = own.get(h.copy, {})
        for e in h.entries or (SshEntry("", "", 0, ""),):
            writer.writerow([h.copy, h.lab, e.alias.split(".", 1)[-1], e.alias, e.host,
                             e.port or "", e.user, str(h.folder), h.page,
                             *(mine.get(n, "") for n in names)])
    write_atomic(path, buf.getvalue())


def _zip(folder: Path) -> Path:
    target = folder.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{folder.name}/{path.name}")
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            archive.writestr(info, path.read_bytes())
    target.chmod(0o600)
    return target
