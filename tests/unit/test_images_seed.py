"""Seed files, the seed ISO, image recipes and the builder's command line."""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib
import pytest
import yaml

from labctl.errors import LabctlError
from labctl.images.builder import installed_packages, mmdebstrap_argv
from labctl.images.recipe import available, load_recipe
from labctl.images.seed import SEED_FILES, render_seed, seed_iso
from labctl.lab.model import WriteFile
from labctl.plan.records import SeedSpec

from .fixtures import GOLDEN

SPEC = SeedSpec(
    instance_id="course.docker-host-0123", hostname="docker-host", user="student",
    authorized_key="ssh-ed25519 AAAAlogin labctl-course",
    host_key_private=("-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n"
                      "-----END OPENSSH PRIVATE KEY-----\n"),
    host_key_public="ssh-ed25519 AAAAhost root@course.docker-host",
    packages=("curl",), runcmd=("echo 'quoted; $(not run)'", ("touch", "/tmp/a b")),
    write_files=(WriteFile("/etc/motd", "it's here\n", "0640", "root:adm"),),
    macs=("52:54:00:aa:bb:cc", "52:54:00:dd:ee:ff"),
    admin_key="ssh-ed25519 AAAAadmin labctl-admin-course",
)


@pytest.mark.parametrize("name", SEED_FILES)
def test_seed_files_golden(name, golden):
    golden(GOLDEN / "seed" / name, render_seed(SPEC)[name])


def test_hostile_values_stay_quoted():
    hostile = SeedSpec("i", "h", "u", "key'; reboot; '", "x", "y",
                       runcmd=(("echo", "$(reboot)", "`reboot`", "a;b"),))
    files = render_seed(hostile)
    assert "authorize \"$user\" \"$home\" 'key'\"'\"'; reboot; '\"'\"''" in \
        files["labctl-firstboot.sh"]
    assert "echo '$(reboot)' '`reboot`' 'a;b'" in files["labctl-extras.sh"]


def test_seed_iso_is_a_cidata_volume_with_every_file():
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(seed_iso(render_seed(SPEC))))
    assert iso.pvd.volume_identifier.rstrip() == b"cidata"
    for name in SEED_FILES:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
        assert out.getvalue().decode() == render_seed(SPEC)[name]
    iso.close()


def test_recipe_loads_and_digest_covers_its_files():
    recipe = load_recipe("debian-12")
    assert "debian-12" in available()
    assert "openssh-server" in recipe.packages and recipe.disk_gib == 3
    assert recipe.files and (recipe.files / "etc" / "fstab").is_file()
    assert len(recipe.digest()) == 64


def test_unknown_recipe_is_one_clear_error():
    with pytest.raises(LabctlError, match="no image recipe named 'debian-13'"):
        load_recipe("debian-13")


def test_mmdebstrap_command_line_golden(golden):
    recipe = load_recipe("debian-12")
    argv = mmdebstrap_argv(recipe, Path("/stage/rootfs"), Path("/cache/debs"))
    root = str(recipe.path.parent)
    text = "\n".join(a.replace(root, "IMAGES") for a in argv) + "\n"
    golden(GOLDEN / "mmdebstrap.argv", text)


def test_installed_packages_reads_dpkg_status(tmp_path: Path):
    status = tmp_path / "var" / "lib" / "dpkg"
    status.mkdir(parents=True)
    (status / "status").write_text(
        "Package: b\nStatus: install ok installed\nVersion: 2\n\n"
        "Package: a\nStatus: deinstall ok config-files\nVersion: 1\n\n"
        "Package: c\nStatus: install ok installed\nVersion: 1:3\n")
    assert installed_packages(tmp_path) == ["b=2", "c=1:3"]


def test_network_config_is_dhcp_on_each_nic_by_mac():
    import yaml

    config = yaml.safe_load(render_seed(SPEC)["network-config"])
    assert config == {"version": 2, "ethernets": {
        "nic0": {"match": {"macaddress": "52:54:00:aa:bb:cc"}, "dhcp4": True},
        "nic1": {"match": {"macaddress": "52:54:00:dd:ee:ff"}, "dhcp4": True}}}


def test_labctls_own_account_and_a_lab_user_without_root():
    """Checks log in as labctl with a key no hand-out holds; `sudo: false`
    leaves the lab user without sudo and without the docker group (an exam)."""
    import dataclasses

    import yaml

    exam = render_seed(dataclasses.replace(SPEC, sudo=False))
    assert 'usermod --lock -G "" "$user"' in exam["labctl-firstboot.sh"]
    assert "labctl-admin,docker \"$user\"" not in exam["labctl-firstboot.sh"]
    assert "AAAAadmin" in exam["labctl-firstboot.sh"]
    users = {u["name"]: u for u in yaml.safe_load(exam["user-data"])["users"]}
    assert "sudo" not in users["student"]
    assert users["labctl"]["ssh_authorized_keys"] == ["ssh-ed25519 AAAAadmin labctl-admin-course"]
    assert users["labctl"]["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    normal = yaml.safe_load(render_seed(SPEC)["user-data"])["users"]
    assert normal[0]["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert "AAAAadmin" not in normal[0]["ssh_authorized_keys"][0]


def test_a_stock_images_seed_carries_the_same_scope_drop_in_as_labctls_image():
    """The podman scopes' 10 s stop lives in two places: labctl's image has the
    file, a stock cloud image gets it from the seed; they must say the same."""
    root = Path(__file__).parents[2]
    path = "etc/systemd/system/libpod-.scope.d/labctl.conf"
    in_image = (root / "images" / "debian-12" / "rootfs" / path).read_text()
    user_data = yaml.safe_load(render_seed(SPEC)["user-data"])
    (entry,) = [f for f in user_data["write_files"] if f["path"] == "/" + path]
    settings = [line for line in in_image.splitlines() if line and not line.startswith("#")]
    assert entry["content"].splitlines() == settings
