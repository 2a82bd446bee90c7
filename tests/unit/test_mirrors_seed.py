"""The lab's mirrors reach a new VM through its seed, before anything is
installed: labctl's first-boot extras set them up as their first step, and
cloud-init gets them in bootcmd (init stage, before `packages`) and keeps
the sources bootcmd rewrote."""

from __future__ import annotations

import yaml

from labctl.images.seed import render_seed
from labctl.lab.loader import load_lab
from labctl.plan.layout import lab_layout
from labctl.plan.specs import seed_spec

from .fixtures import DATA, DIGEST

LAB = DATA / "labs" / "valid" / "apt-mirror.yaml"


def seed():
    lab = load_lab(LAB)
    plan = lab_layout(lab, {vm.image: DIGEST for vm in lab.vms}).vms[0]
    return lab, render_seed(seed_spec(plan, "ssh-ed25519 AAAA", "PRIVATE", "ssh-ed25519 BBBB",
                                           "ssh-ed25519 CCCC"))


def test_extras_set_up_the_mirror_and_its_key_before_packages():
    lab, files = seed()
    extras = files["labctl-extras.sh"]
    assert extras.index('step "mirrors:') < extras.index("apt-get update")
    assert "apt.world.test/debian" in extras
    assert lab.mirrors.apt_key.splitlines()[1] in extras  # the key's text itself


def test_cloud_init_gets_the_mirror_in_bootcmd_and_keeps_it():
    lab, files = seed()
    data = yaml.safe_load(files["user-data"])
    assert data["apt"] == {"preserve_sources_list": True}
    (setup,) = data["bootcmd"]
    assert "/etc/apt/trusted.gpg.d/labctl-mirror.asc" in setup and "apt.world.test" in setup
    assert data["packages"] == ["catatonit"]


def test_no_mirrors_no_setup():
    from labctl.plan.records import SeedSpec
    files = render_seed(SeedSpec("i", "h", "u", "k", "p", "q", packages=("x",)))
    assert "bootcmd" not in files["user-data"] and "mirrors" not in files["labctl-extras.sh"]
