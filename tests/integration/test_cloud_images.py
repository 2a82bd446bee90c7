"""A stock cloud image, end to end. The fixture is built the way
distributions build theirs (scripts/cloud-fixture: its own partition table
and GRUB, stock cloud-init, no labctl file, no users or host keys) and served
by the simulated world laid out like cloud.debian.org. labctl resolves it
from the catalogue (the site's SHA512SUMS) and by URL + sha256, boots it from
its own bootloader, and cloud-init alone creates the user with the login key,
installs labctl's pinned host key, sets the hostname, writes files and runs
commands; readiness waits for cloud-init to finish."""

from __future__ import annotations

import hashlib
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.virt.connection import connect

from .conftest import LABS, error_lines, labctl, leftovers

FIXTURE = Path(os.environ.get("LABCTL_CLOUD_FIXTURE", "/var/cache/labctl-test/cloud-fixture"))
IMAGE = "debian-12-genericcloud-amd64.qcow2"
SITE = "images/cloud/bookworm/latest"
MIRROR = f"http://cloud.debian.org/{SITE}/"  # the world's DNS points the real name there


@pytest.fixture(scope="module")
def served(world) -> str:
    """The fixture on the world's web server, as the distribution lays it out."""
    if not (FIXTURE / IMAGE).exists():
        pytest.fail(f"no cloud image fixture in {FIXTURE}: scripts/test builds it "
                    "(scripts/cloud-fixture)")
    site = world / "www" / SITE
    site.mkdir(parents=True, exist_ok=True)
    for name in (IMAGE, "SHA512SUMS"):
        (site / name).unlink(missing_ok=True)
        (site / name).symlink_to(FIXTURE / name)
    digest = hashlib.sha256()
    with (FIXTURE / IMAGE).open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    yield digest.hexdigest()
    shutil.rmtree(world / "www" / "images", ignore_errors=True)


def test_the_catalogue_pulls_by_the_distributions_checksum_file(served, settings):
    try:
        out = labctl("image", "pull", "debian-12-cloud", "--mirror", MIRROR).stdout
        assert "pulled image 'debian-12-cloud'" in out and "sha512 verified" in out
        listed = labctl("--json", "image", "list").stdout
        assert f'"sha256": "{served}"' in listed
    finally:
        labctl("image", "rm", "debian-12-cloud", check=False)


def test_a_stock_cloud_image_boots_and_cloud_init_does_its_work(served, settings, world_key):
    """Two VMs of the image: `stock` (BIOS) must come up configured; `broken`
    boots it through UEFI and has a runcmd that fails, and cloud-init's error
    (so the UEFI boot got as far as cloud-init) must fail `up` loudly."""
    lab = str(LABS / "cloud.yaml")
    labctl("down", "itcloud", check=False)
    try:
        result = labctl("up", lab, "--var", f"sha256={served}", "--var",
                        f"apt_key={world_key}", check=False)
        assert result.returncode == 1, result.stderr
        said = "\n".join(error_lines(result.stderr))
        assert said.startswith("error: 1 of 2 VMs ready; VM 'broken': cloud-init: "), said
        assert "scripts-user" in said and "Runparts: 1 failures (runcmd)" in said
        efi = ET.fromstring(connect(settings.uri).lookupByName("itcloud.broken").XMLDesc(0))
        loader = efi.findtext("os/loader") or ""
        assert "OVMF" in loader and "secboot" not in loader.lower(), loader  # no Secure Boot
        assert "Traceback" not in result.stderr
        run = lambda *cmd: labctl("exec", "itcloud.stock", "--", *cmd).stdout  # noqa: E731
        assert run("hostname").strip() == "stock"
        assert run("id", "-un").strip() == "lab"  # the lab's user, with the lab's key
        assert run("cat", "/etc/labctl-cloud") == "written by cloud-init\n"
        assert run("cat", "/var/tmp/runcmd-done") == "runcmd ran as root\n"
        # `packages` installed from the world's repository, trusted by the lab's key
        assert run("dpkg-query", "-W", "-f", "${Status}", "catatonit") == "install ok installed"
        assert "apt.world.test" in run("sh", "-c", "cat /etc/apt/sources.list "
                                       "/etc/apt/sources.list.d/* 2>/dev/null || true")
        assert "status: done" in run("cloud-init", "status")
        assert not run("sh", "-c", "ls /usr/local/lib/labctl 2>/dev/null || true")  # none of ours
        # but a podman container's scope stops 10 s into a shutdown, as in labctl's image
        assert run("sudo", "-n", "systemd-run", "--quiet", "--scope", "--unit=libpod-labctl-t",
                   "--", "systemctl", "show", "-p", "TimeoutStopUSec", "--value",
                   "libpod-labctl-t.scope") == "10s\n"
        # labctl's pinned host key, and only that key type, is what sshd offers
        pinned = (settings.data_dir / "labs" / "itcloud" / "hostkeys" /
                  "itcloud.stock.pub").read_text().split()[1]
        assert pinned in run("sudo", "-n", "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
        planned = labctl("plan", lab, "--var", f"sha256={served}", "--var",
                         f"apt_key={world_key}").stdout
        assert "= vm stock: keep" in planned and "~ vm broken: recreate (its first boot " \
            "failed)" in planned, planned
    finally:
        labctl("down", "itcloud")
        labctl("image", "rm", f"cloud-{served[:12]}", check=False)
    assert leftovers("itcloud", settings) == {}
