"""Build a guest image offline from Debian packages.

mmdebstrap (root file system, .debs cached between builds) -> recipe files and
setup script inside the chroot -> kernel + initrd copied out -> ext4 written by
`mke2fs -d` (no loop devices, no mounts) -> qcow2. Everything happens in a
staging directory of the image cache, renamed into place only when complete.
"""

from __future__ import annotations

import datetime
import re
import shutil
import time
from pathlib import Path
from typing import Any

from labctl import proc, shell
from labctl.datadir import ensure
from labctl.errors import LabctlError
from labctl.events import Event, Report
from labctl.images.cache import DISK, INITRD, KERNEL, Image, ImageCache, sha256_file
from labctl.images.recipe import Recipe

MMDEBSTRAP_TIMEOUT = 30 * 60


def build_image(recipe: Recipe, cache: ImageCache, deb_cache: Path, report: Report,
                log: Path) -> Image:
    """Build `recipe` into `cache`; every command's output goes to `log`, which
    outlives the staging directory so a failed build can be read."""
    subject = f"image {recipe.name}"
    start = time.monotonic()

    def step(stage: str, detail: str) -> None:
        report(Event(subject, stage, detail, time.monotonic() - start))

    for program, package in (("mmdebstrap", "mmdebstrap"), ("mke2fs", "e2fsprogs"),
                             ("qemu-img", "qemu-utils")):
        proc.require(program, package)
    ensure(deb_cache)
    ensure(log.parent)
    log.write_text(f"labctl image build {recipe.name}\n")
    with cache.staging(recipe.name) as stage:
        rootfs = stage / "rootfs"
        step("mmdebstrap", f"installing {len(recipe.packages)} packages from {recipe.suite} "
             "(1-3 min; .debs cached in " + str(deb_cache) + ")")
        proc.run(mmdebstrap_argv(recipe, rootfs, deb_cache), what="mmdebstrap", log=log,
                 timeout=MMDEBSTRAP_TIMEOUT)
        step("kernel", "copying kernel and initrd for direct kernel boot")
        kernel_version = _copy_boot_files(rootfs, stage)
        packages = installed_packages(rootfs)
        step("mke2fs", f"writing a {recipe.disk_gib} GiB ext4 file system")
        raw = stage / "disk.raw"
        proc.run(["mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", rootfs, raw,
                  f"{recipe.disk_gib}G"], what="mke2fs", log=log)
        shutil.rmtree(rootfs)
        step("qcow2", "converting to qcow2")
        proc.run(["qemu-img", "convert", "-O", "qcow2", raw, stage / DISK], what="qemu-img",
                 log=log)
        raw.unlink()
        step("manifest", "hashing")
        manifest = _manifest(recipe, stage / DISK, kernel_version, packages,
                             time.monotonic() - start)
        ImageCache.write_manifest(stage, manifest)
        for path in stage.iterdir():
            path.chmod(0o644)
    image = cache.get(recipe.name)
    step("done", f"{image.disk} ({manifest['size'] >> 20} MiB, "
         f"{manifest['build_seconds']:.0f} s)")
    return image


def mmdebstrap_argv(recipe: Recipe, rootfs: Path, deb_cache: Path) -> list[str]:
    q = shell.quote
    hooks = [
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
        f"--setup-hook=sync-in {q(str(deb_cache))} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {q(str(deb_cache))}",
    ]
    if recipe.files:
        hooks.append(f"--customize-hook=cp -a {q(str(recipe.files))}/. \"$1\"/")
    if recipe.setup:
        hooks.append(f"--customize-hook=cp {q(str(recipe.setup))} \"$1\"/tmp/labctl-setup.sh"
                     " && chroot \"$1\" sh -eu /tmp/labctl-setup.sh"
                     " && rm \"$1\"/tmp/labctl-setup.sh")
    return [
        "mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
        "--skip=essential/unlink", f"--include={','.join(recipe.packages)}",
        *hooks, recipe.suite, str(rootfs), *recipe.mirrors,
    ]


def _copy_boot_files(rootfs: Path, stage: Path) -> str:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabctlError("the image has no kernel in /boot",
                          "add a linux-image package to the recipe")
    kernel = kernels[-1]
    version = kernel.name.removeprefix("vmlinuz-")
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.exists():
        raise LabctlError(f"no initrd for kernel {version}", "add initramfs-tools to the recipe")
    shutil.copyfile(kernel, stage / KERNEL)
    shutil.copyfile(initrd, stage / INITRD)
    return version


def installed_packages(rootfs: Path) -> list[str]:
    """name=version of every installed package, from dpkg's status file."""
    status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text()
    out = []
    for stanza in status.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.MULTILINE))
        if fields.get("Status", "").endswith(" installed"):
            out.append(f"{fields['Package']}={fields['Version']}")
    return sorted(out)


def _manifest(recipe: Recipe, disk: Path, kernel_version: str, packages: list[str],
              seconds: float) -> dict[str, Any]:
    return {
        "name": recipe.name,
        "kind": "built",
        "description": recipe.description,
        "suite": recipe.suite,
        "recipe_digest": recipe.digest(),
        "sha256": sha256_file(disk),
        "size": disk.stat().st_size,
        "disk_gib": recipe.disk_gib,
        "kernel_version": kernel_version,
        "cmdline": recipe.cmdline,
        "packages": packages,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
    }
