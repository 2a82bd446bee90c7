"""Images in Glance: a base image uploaded once and found again by its digest
(labctl's own image as a disk with its kernel and initrd beside it, a stock
cloud image as its disk), and students' snapshots as server images (disk
only: a cloud keeps no memory state)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from labctl.backend import BaseVolumes, Snapshot
from labctl.cloud import records
from labctl.cloud.connection import CloudFailed
from labctl.errors import BackendError

if TYPE_CHECKING:
    from labctl.cloud.project import Cloud
    from labctl.images.cache import Image

DIGEST = "labctl_sha256"  # the property a base image is found by
SNAPSHOT_PROPERTY = "labctl_server"  # a snapshot image's server
UPLOAD_SECONDS = 1800


def _find(conn, **properties: str) -> object | None:
    """An active image with these properties (asked of Glance, and checked
    here: a filter a Glance does not know is ignored, not refused)."""
    for image in conn.image.images(**properties):
        props = {**(image.properties or {}), **{k: getattr(image, k, None) for k in properties
                                                  if hasattr(image, k)}}
        if _is_snapshot(image):
            continue  # Nova copies the base's properties, labctl_sha256 too, into a snapshot
        if image.status == "active" and all(props.get(k) == v for k, v in properties.items()):
            return image
    return None


def _is_snapshot(image) -> bool:
    props = image.properties or {}
    return bool(props.get(SNAPSHOT_PROPERTY)) or props.get("image_type") == "snapshot" \
        or getattr(image, "image_type", None) == "snapshot"


def _upload(conn, name: str, path, disk_format: str, properties: dict[str, str]):
    container = disk_format if disk_format in ("aki", "ari") else "bare"
    image = conn.create_image(name, filename=str(path), disk_format=disk_format,
                              container_format=container, visibility="private", wait=True,
                              timeout=UPLOAD_SECONDS, allow_duplicates=True, tags=[records.TAG],
                              validate_checksum=False, **properties)
    image = conn.image.get_image(image.id)
    if image.status != "active":
        conn.image.delete_image(image, ignore_missing=True)
        raise CloudFailed(f"image {name}: Glance left it {image.status}")
    return image


def ensure_image(conn, image: Image, cloud_name: str = "") -> BaseVolumes:
    if image.in_cloud is not None:
        return BaseVolumes(named_image(conn, image.in_cloud, cloud_name).id, None, None)
    digest = image.sha256
    found = _find(conn, **{DIGEST: digest})
    if found is not None:
        return BaseVolumes(found.id, None, None)
    name = f"labctl-{image.name}-{digest[:12]}"
    extra: dict[str, str] = {DIGEST: digest}
    if image.kernel is not None:  # labctl's own image boots its kernel directly
        kernel = _find(conn, **{DIGEST: f"{digest}-kernel"}) or _upload(
            conn, f"{name}-kernel", image.kernel, "aki", {DIGEST: f"{digest}-kernel"})
        ramdisk = _find(conn, **{DIGEST: f"{digest}-initrd"}) or _upload(
            conn, f"{name}-initrd", image.initrd, "ari", {DIGEST: f"{digest}-initrd"})
        extra.update(kernel_id=kernel.id, ramdisk_id=ramdisk.id,
                     os_command_line=image.cmdline or "")
    found = _upload(conn, name, image.disk, "qcow2", extra)
    return BaseVolumes(found.id, None, None)


def named_image(conn, name: str, cloud_name: str):
    """An image the lab names (`image: {cloud: NAME}`), as the project sees it:
    its own, shared with it or public; by name, or by ID."""
    active = [i for i in conn.image.images(name=name) if i.status == "active"]
    if not active:
        found = conn.image.find_image(name, ignore_missing=True)
        active = [found] if found is not None and found.status == "active" else []
    if len(active) != 1:
        seen = sorted(i.name for i in conn.image.images() if i.status == "active"
                      and not i.name.startswith("labctl-") and "@" not in i.name)
        said = "no active image" if not active else f"{len(active)} images"
        raise CloudFailed(f"cloud '{cloud_name}' has {said} named '{name}'",
                          f"its images: {', '.join(seen[:8]) or 'none'}"
                          + (" (give the image's ID instead)" if active else ""))
    return active[0]


def snapshot_name(server: str, snapshot: str) -> str:
    return f"{server}@{snapshot}"


def take_snapshot(cloud: Cloud, name: str, snapshot: str, description: str) -> None:
    server = cloud.server(name)
    if server is None:
        raise BackendError(f"no VM {name} in cloud '{cloud.cloud_name}'")
    lab = records.meta_from_server(server.metadata)
    image = cloud.conn.compute.create_server_image(
        server, snapshot_name(name, snapshot),
        metadata={SNAPSHOT_PROPERTY: name, "labctl_description": description[:255],
                  "labctl_state": "running" if server.status == "ACTIVE" else "shutoff",
                  "labctl_lab": lab.lab if lab else ""}, wait=True, timeout=UPLOAD_SECONDS)
    for tag in records.tags(lab.lab, lab.group, lab.copy) if lab else [records.TAG]:
        cloud.conn.image.add_tag(image, tag)  # Glance takes tags one by one, not in an update


def _snapshot_images(cloud: Cloud, name: str) -> list:
    return [i for i in cloud.conn.image.images(**{SNAPSHOT_PROPERTY: name})
            if i.name.startswith(f"{name}@")]


def snapshots(cloud: Cloud, name: str) -> list[Snapshot]:
    out = []
    for image in _snapshot_images(cloud, name):
        props = image.properties or {}
        created = image.created_at or datetime.datetime.now(datetime.UTC).isoformat()
        out.append(Snapshot(image.name.partition("@")[2], created,
                            props.get("labctl_state", "shutoff"),
                            props.get("labctl_description", "")))
    return sorted(out, key=lambda s: s.created)


def revert_snapshot(cloud: Cloud, name: str, snapshot: str) -> None:
    """The server rebuilt from its snapshot image: same ports, same address."""
    image = next((i for i in _snapshot_images(cloud, name)
                  if i.name == snapshot_name(name, snapshot)), None)
    server = cloud.server(name)
    if image is None or server is None:
        raise BackendError(f"VM {name} has no snapshot '{snapshot}'")
    cloud.conn.compute.rebuild_server(server, image=image.id)
    cloud.conn.compute.wait_for_server(server, status="ACTIVE", wait=UPLOAD_SECONDS, interval=1)


def delete_snapshot(cloud: Cloud, name: str, snapshot: str) -> None:
    for image in _snapshot_images(cloud, name):
        if image.name == snapshot_name(name, snapshot):
            cloud.conn.image.delete_image(image)


class SnapshotImages:
    """The backend's disk store, as the use cases see it: here, the labs'
    snapshot images (base images are shared by digest and stay)."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud

    def _images(self, prefix: str = "") -> list:
        return [i for i in self.cloud.conn.image.images(tag=records.TAG)
                if (i.properties or {}).get(SNAPSHOT_PROPERTY) and i.name.startswith(prefix)]

    def names(self, prefix: str = "") -> list[str]:
        return [i.name for i in self._images(prefix)]

    def exists(self, name: str) -> bool:
        return bool(self.names(name))

    def delete(self, name: str) -> bool:
        gone = False
        for image in self._images(name):
            if image.name == name:
                self.cloud.conn.image.delete_image(image)
                gone = True
        return gone

    def copy(self, source: str, name: str) -> str:
        raise BackendError("volumes are copied on libvirt hosts only")

    def allocation(self, name: str) -> int:
        return 0

    def stamp(self, name: str) -> str:
        return ""  # Glance's images are found by digest (labctl_sha256), not stamped

    def volumes_with_backing(self) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {}
