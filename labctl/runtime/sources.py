"""Where a container's image comes from, and getting it into the VM's runtime:
a local recipe (images/containers/*.yaml: made on the host, no registry), an
archive next to the lab file (uploaded once, loaded), a build context (uploaded,
built in the VM), or a registry pull. Uploads are cached in the VM by digest."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from labctl.errors import LabctlError
from labctl.lab import yamlmarks
from labctl.lab.model import VM, Container
from labctl.resources import data_dir
from labctl.runtime.oci import OciRuntime
from labctl.shell import quote as _q
from labctl.ssh.transport import SSHTransport

SOURCE_LABEL = "labctl.source"
REMOTE_CACHE = ".labctl/cache"  # under the lab user's home in the VM
OS_RELEASE = ('NAME="BusyBox"\nID=busybox\n'
              'PRETTY_NAME="BusyBox (made by labctl from Debian busybox-static)"\n')
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class LocalImage:
    name: str
    ref: str
    aliases: tuple[str, ...]
    binary: Path

    @property
    def tar(self) -> bytes:
        return _busybox_rootfs(str(self.binary))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.tar).hexdigest()


@cache
def local_images() -> tuple[LocalImage, ...]:
    out = []
    for path in sorted((data_dir("images") / "containers").glob("*.yaml")):
        doc, _ = yamlmarks.parse(path.read_text())
        out.append(LocalImage(doc["name"], doc["ref"], tuple(doc.get("aliases", [])),
                              Path(doc["binary"])))
    return tuple(out)


def local_image(ref: str) -> LocalImage | None:
    return next((i for i in local_images() if ref == i.ref or ref in i.aliases), None)


@cache
def _busybox_rootfs(binary: str) -> bytes:
    """A deterministic tar: /bin/busybox, one symlink per applet, /tmp, and an
    /etc/os-release so the course's `run IMAGE cat /etc/os-release` works."""
    path = Path(binary)
    if not path.is_file():
        raise LabctlError(f"{binary} is missing on this host",
                          "install the Debian package busybox-static (scripts/setup does)")
    applets = subprocess.run([binary, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        release = OS_RELEASE.encode()
        info = tarfile.TarInfo("etc/os-release")
        info.size, info.mode = len(release), 0o644
        tar.addfile(info, io.BytesIO(release))
        data = path.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in sorted(set(applets) - {"busybox"}):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buf.getvalue()


def context_tar(directory: Path) -> bytes:
    """The build context as a deterministic tar (sorted, mtime 0, root-owned)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            info = tar.gettarinfo(str(path), str(path.relative_to(directory)))
            if info.issym() and not (path.resolve()).is_relative_to(directory.resolve()):
                raise LabctlError(f"{path} links outside the build context",
                                  "copy the file into the context instead")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return buf.getvalue()


def source_digest(container: Container, lab_dir: Path) -> str:
    """What the image is made from, computed on the host: part of the spec hash."""
    if container.build is not None:
        return hashlib.sha256(context_tar(lab_dir / container.build.context)).hexdigest()
    if container.archive is not None:
        return hashlib.sha256((lab_dir / container.archive).read_bytes()).hexdigest()
    local = local_image(container.image or "")
    return local.digest if local else f"ref:{container.image}"


def source_digests(vm: VM, lab_dir: Path) -> dict[str, str]:
    """Each of a VM's containers' source digest, by name (plan/containers)."""
    return {c.name: source_digest(c, lab_dir) for c in vm.containers}


class ImageSources:
    """Gets images into one VM's runtimes; one instance per VM connection."""

    def __init__(self, transport: SSHTransport, lab: str, lab_dir: Path, where: str):
        self.transport, self.lab, self.lab_dir, self.where = transport, lab, lab_dir, where
        self._home: str | None = None

    @property
    def home(self) -> str:
        if self._home is None:
            self._home = self.transport.run('printf %s "$HOME"').stdout.strip()
        return self._home

    def upload(self, data: bytes, digest: str) -> str:
        """Bytes to ~/.labctl/cache/DIGEST.tar in the VM, unless already there."""
        remote = f"{self.home}/{REMOTE_CACHE}/{digest}.tar"
        if self.transport.run(["test", "-s", remote]).ok:
            return remote
        self.transport.run(["mkdir", "-p", f"{self.home}/{REMOTE_CACHE}"]).check("mkdir")
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            self.transport.put(Path(tmp.name), remote + ".part")
        self.transport.run(["mv", remote + ".part", remote]).check("mv")
        return remote

    def ensure(self, runtime: OciRuntime, container: Container) -> str:
        if container.build is not None:
            return self._build(runtime, container)
        if container.archive is not None:
            return self._archive(runtime, container)
        return self.ensure_named(runtime, container.image or "", container.name)

    def ensure_named(self, runtime: OciRuntime, ref: str, for_container: str) -> str:
        local = local_image(ref)
        if local is not None:
            labels = runtime.image_labels(local.ref)
            if labels is None or labels.get(SOURCE_LABEL) != local.digest:
                tar = self.upload(local.tar, local.digest)
                runtime.import_rootfs(tar, local.ref, {SOURCE_LABEL: local.digest})
            return local.ref
        if runtime.image_labels(ref) is not None or runtime.pull(ref):
            return ref
        raise LabctlError(
            f"{self.where}, container '{for_container}': image '{ref}' is not in the VM and "
            "could not be pulled (no registry reachable?)",
            "use an image with a local recipe (busybox), 'image: {archive: FILE}' or 'build:'")

    def _archive(self, runtime: OciRuntime, container: Container) -> str:
        data = (self.lab_dir / (container.archive or "")).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        remembered = f"{self.home}/{REMOTE_CACHE}/{digest}.{runtime.binary}.ref"
        known = self.transport.run(["cat", remembered])
        if known.ok and runtime.image_labels(known.stdout.strip()) is not None:
            return known.stdout.strip()
        ref = runtime.load(self.upload(data, digest))
        self.transport.run(["sh", "-c", f"printf %s {_q(ref)} > {_q(remembered)}"])
        return ref

    def _build(self, runtime: OciRuntime, container: Container) -> str:
        build = container.build
        assert build is not None
        context = self.lab_dir / build.context
        data = context_tar(context)
        digest = hashlib.sha256(data).hexdigest()
        tag = f"localhost/labctl/{self.lab}-{container.name}:{digest[:12]}"
        if runtime.image_labels(tag) is not None:
            return tag
        dockerfile = (context / build.dockerfile).read_text(errors="replace")
        for base in _FROM.findall(dockerfile):  # bases with a local recipe need no registry
            if local_image(base) is not None:
                self.ensure_named(runtime, base, container.name)
        tar = self.upload(data, digest)
        directory = f"{self.home}/.labctl/build/{digest}"
        self.transport.run(["sh", "-c", f"rm -rf {_q(directory)} && mkdir -p {_q(directory)} "
                            f"&& tar -xf {_q(tar)} -C {_q(directory)}"]).check("unpacking")
        try:
            runtime.build(directory, build.dockerfile, tag)
        except LabctlError as exc:
            raise LabctlError(f"{self.where}, container '{container.name}': the build of "
                              f"./{build.context} failed: {exc.message.split('failed: ')[-1]}",
                              "fix the Dockerfile; 'labctl up' again retries") from None
        return tag
