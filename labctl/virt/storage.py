"""Volumes in one libvirt storage pool (`labctl`): base images uploaded once
per image digest, per-VM qcow2 overlays on them (linked clones), seed ISOs and
serial logs. Going through the pool API (not host paths) keeps remote hosts
working the same way as the local one. One exception: a template's overlay is
copied as a file (libvirt's clone would drop its saved state), by the host's
own shell when the pool is on another host."""

from __future__ import annotations

import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from subprocess import CompletedProcess

import libvirt

from labctl import shell as sh
from labctl.backend import BaseVolumes
from labctl.errors import LabctlError
from labctl.images.cache import Image
from labctl.virt.connection import libvirt_errors, speaks_labctl

POOL = "labctl"
SYSTEM_POOL_DIR = "/var/lib/libvirt/images/labctl"
UPLOAD_CHUNK = 1 << 20
DONE = ".complete"  # suffix of the marker volume written after a whole upload
COPY_SECONDS = 600  # a template's overlay (its saved memory too) copied on a remote host


def base_names(image: Image) -> tuple[str, str, str]:
    stem = f"base-{image.name}-{image.sha256[:12]}"
    return f"{stem}.qcow2", f"{stem}.vmlinuz", f"{stem}.initrd"


HostShellRun = Callable[[str, float], CompletedProcess[str]]  # a script on the pool's host


@speaks_labctl
class Storage:
    def __init__(self, conn: libvirt.virConnect, host_shell: HostShellRun | None = None):
        """`host_shell`: runs a script on the pool's host when it is not this
        machine (copies of templates' overlays are made there)."""
        self.conn, self.host_shell = conn, host_shell
        self._pool: libvirt.virStoragePool | None = None

    @property
    def pool(self) -> libvirt.virStoragePool:
        if self._pool is None:
            self._pool = self._ensure_pool()
        return self._pool

    def _ensure_pool(self) -> libvirt.virStoragePool:
        try:
            pool = self.conn.storagePoolLookupByName(POOL)
        except libvirt.libvirtError:
            path = self._new_pool_dir()
            xml = (f"<pool type='dir'><name>{POOL}</name><target><path>{path}</path>"
                   "<permissions><mode>0755</mode></permissions></target></pool>")
            pool = self.conn.storagePoolDefineXML(xml, 0)
            pool.build(0)
            pool.setAutostart(True)
        if not pool.isActive():
            pool.create(0)
        _when_idle(lambda: pool.refresh(0))  # files put there by hand (or an older labctl)
        return pool

    def _new_pool_dir(self) -> str:
        """Where labctl makes its pool on a host that has none (pool_dir: where it is)."""
        if self.conn.getURI().endswith("/session"):
            home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
            return f"{home}/libvirt/images/{POOL}"
        return SYSTEM_POOL_DIR

    def path(self, name: str) -> str:
        return self.pool.storageVolLookupByName(name).path()

    def exists(self, name: str) -> bool:
        try:
            self.pool.storageVolLookupByName(name)
            return True
        except libvirt.libvirtError:
            return False

    def names(self, prefix: str = "") -> list[str]:
        # A refresh, so files libvirt did not make itself are listed too: the
        # serial logs qemu writes. It waits out another labctl's upload.
        _when_idle(lambda: self.pool.refresh(0))
        return sorted(n for n in self.pool.listVolumes() if n.startswith(prefix))

    def ensure_base(self, image: Image) -> BaseVolumes:
        """Upload the image's disk (and kernel/initrd) unless this digest is there."""
        disk, kernel, initrd = base_names(image)
        for name, source in ((disk, image.disk), (kernel, image.kernel), (initrd, image.initrd)):
            # The marker is written last: a killed upload leaves no marker and is redone.
            if source is not None and not self.exists(name + DONE):
                self.upload_file(name, source, mode="0644")
                self.upload_bytes(name + DONE, image.sha256.encode(), mode="0644")
        return BaseVolumes(self.path(disk),
                           self.path(kernel) if image.kernel else None,
                           self.path(initrd) if image.initrd else None)

    def stamp(self, name: str) -> str:
        """What changes when the volume's file is rewritten or replaced (its
        mtime and size): a template records its base's. Not its ctime: libvirt
        changes a backing file's owner when a domain starts on it."""
        try:
            root = ET.fromstring(self.pool.storageVolLookupByName(name).XMLDesc(0))
        except libvirt.libvirtError:
            return ""
        return f"{root.findtext('target/timestamps/mtime') or ''} " \
               f"{root.findtext('capacity') or ''}"

    def allocation(self, name: str) -> int:
        """Bytes the volume takes on disk."""
        return self.pool.storageVolLookupByName(name).info()[2]

    def copy(self, source: str, name: str) -> str:
        """A file copy of volume `source` (with its internal snapshots, which a
        libvirt clone would drop) as volume `name`, made on the pool's host."""
        source_path = self.path(source)
        target = str(PurePosixPath(source_path).with_name(name))
        if self.host_shell is None:
            shutil.copyfile(source_path, target)  # sparse enough: qcow2 holds only data
            os.chmod(target, 0o600)
        else:
            done = self.host_shell(f"cp {sh.quote(source_path)} "
                                   f"{sh.quote(target)} && chmod 0600 {sh.quote(target)}",
                                   COPY_SECONDS)
            if done.returncode != 0:
                raise LabctlError(f"cannot copy volume {source} on its host: "
                                  f"{done.stderr.strip() or 'cp failed'}")
        # another VM's seed upload (an asynchronous job) makes libvirt refuse a
        # refresh: restores of a 3-VM lab fell back to cold boots on it
        _when_idle(lambda: self.pool.refresh(0))
        return target

    def pool_dir(self) -> str:
        """The pool's folder on its host."""
        root = ET.fromstring(self.pool.XMLDesc(0))
        return root.findtext("target/path") or self._new_pool_dir()

    def create_overlay(self, name: str, base_path: str, capacity_gib: int) -> str:
        """A qcow2 linked clone of base_path: ~200 KB, instant."""
        self.delete(name)
        xml = (f"<volume><name>{name}</name><capacity unit='GiB'>{capacity_gib}</capacity>"
               "<target><format type='qcow2'/><permissions><mode>0600</mode></permissions>"
               f"</target><backingStore><path>{_escape(base_path)}</path>"
               "<format type='qcow2'/></backingStore></volume>")
        return self.pool.createXML(xml, 0).path()

    def upload_bytes(self, name: str, data: bytes, mode: str = "0600") -> str:
        vol = self._create_raw(name, len(data), mode)
        stream = self.conn.newStream(0)
        vol.upload(stream, 0, len(data), 0)
        view = memoryview(data)
        for start in range(0, len(data), UPLOAD_CHUNK):
            stream.send(bytes(view[start:start + UPLOAD_CHUNK]))
        stream.finish()
        return vol.path()

    def upload_file(self, name: str, source: Path, mode: str = "0644") -> str:
        size = source.stat().st_size
        vol = self._create_raw(name, size, mode)
        stream = self.conn.newStream(0)
        vol.upload(stream, 0, size, 0)
        with source.open("rb") as fh:
            stream.sendAll(lambda _s, n, f: f.read(min(n, UPLOAD_CHUNK)), fh)
        stream.finish()
        return vol.path()

    def create_ram(self, name: str, size: int, uid: int, gid: int) -> str:
        """An empty (sparse) file for a template VM's RAM, owned by the user
        qemu runs as: qemu opens it itself, and libvirt labels only the
        files its XML names."""
        self.delete(name)
        xml = (f"<volume><name>{name}</name><capacity unit='B'>{size}</capacity>"
               "<allocation>0</allocation><target><format type='raw'/><permissions>"
               f"<owner>{uid}</owner><group>{gid}</group><mode>0600</mode></permissions>"
               "</target></volume>")
        with libvirt_errors(f"cannot create volume {name}"):
            return self.pool.createXML(xml, 0).path()

    def link(self, source: str, name: str) -> str:
        """Volume `name` as a hard link of `source` on the pool's host: one
        file, so what a VM maps of it is one copy in that host's page cache."""
        with libvirt_errors(f"cannot find volume {source}"):
            source_path = self.path(source)
        target = str(PurePosixPath(source_path).with_name(name))
        self.delete(name)
        if self.host_shell is None:
            try:
                if os.path.lexists(target):  # the VM's own name, left unknown to the pool
                    os.unlink(target)
                os.link(source_path, target)
            except OSError as exc:
                raise LabctlError(f"cannot link volume {source}: {exc.strerror}") from None
        else:
            done = self.host_shell(f"ln -f {sh.quote(source_path)} {sh.quote(target)}", 30)
            if done.returncode != 0:
                raise LabctlError(f"cannot link volume {source} on its host: "
                                  f"{done.stderr.strip() or 'ln failed'}")
        _when_idle(lambda: self.pool.refresh(0))
        return target

    def _create_raw(self, name: str, size: int, mode: str) -> libvirt.virStorageVol:
        self.delete(name)
        xml = (f"<volume><name>{name}</name><capacity unit='B'>{max(size, 1)}</capacity>"
               f"<target><format type='raw'/><permissions><mode>{mode}</mode></permissions>"
               "</target></volume>")
        try:
            return self.pool.createXML(xml, 0)
        except libvirt.libvirtError as exc:
            raise LabctlError(f"cannot create volume {name}: {exc.get_error_message()}",
                              "check free disk space in the labctl pool") from None

    def volumes_with_backing(self) -> tuple[dict[str, str], dict[str, str]]:
        """Every volume's path, and the backing file of each overlay."""
        paths, backing = {}, {}
        for name in self.names():
            try:
                vol = self.pool.storageVolLookupByName(name)
                paths[name] = vol.path()
                if not name.startswith("base-"):
                    found = ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")
                    if found:
                        backing[name] = found
            except libvirt.libvirtError:
                continue  # deleted meanwhile
        return paths, backing

    def download(self, name: str) -> bytes:
        """A volume's bytes (serial logs: files qemu wrote, so refresh first)."""
        try:
            vol = self.pool.storageVolLookupByName(name)
        except libvirt.libvirtError:
            _when_idle(lambda: self.pool.refresh(0))
            try:
                vol = self.pool.storageVolLookupByName(name)
            except libvirt.libvirtError:
                return b""
        chunks: list[bytes] = []
        stream = self.conn.newStream(0)
        vol.download(stream, 0, 0, 0)
        stream.recvAll(lambda _s, data, out: out.append(data), chunks)
        stream.finish()
        return b"".join(chunks)

    def delete(self, name: str) -> bool:
        try:
            vol = self.pool.storageVolLookupByName(name)
        except libvirt.libvirtError:
            return False
        vol.delete(0)
        return True


def _when_idle(call, seconds: float = 120.0):
    """Retry a pool-wide call while another client's volume job runs (libvirt
    refuses a refresh then: "pool has asynchronous jobs running")."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except libvirt.libvirtError as exc:
            if "asynchronous jobs" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _escape(text: str) -> str:
    element = ET.Element("x")
    element.text = text
    return ET.tostring(element, encoding="unicode")[3:-4]
