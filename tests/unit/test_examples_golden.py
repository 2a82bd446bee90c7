"""Golden files generated from the lab files in examples/: for every VM its
domain XML and cloud-init seed, for every network its XML, for every
container its `run` line (docker and podman). The host's own facts (volume
paths, forwarded ports, keys) are fixed stand-ins, so a change in the output
is a change in what labctl makes of a lab file. `pytest --regenerate`
rewrites them; review the diff."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

import pytest

from labctl.images.seed import render_seed
from labctl.lab.loader import load_lab
from labctl.plan.containers import container_hash, run_args
from labctl.plan.layout import lab_layout
from labctl.plan.records import Meta
from labctl.plan.specs import VmFacts, domain_spec, network_spec, seed_spec, vm_meta
from labctl.runtime.oci import OciRuntime
from labctl.runtime.sources import source_digest
from labctl.virt.domain import domain_xml
from labctl.virt.network import network_xml

from .fakes import FakeTransport
from .fixtures import DIGEST, GOLDEN, ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
POOL = "/var/lib/libvirt/images/labctl"
LOGIN = "ssh-ed25519 AAAALOGINKEY labctl-LAB"
HOST_PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nHOSTKEY\n-----END OPENSSH PRIVATE KEY-----"
HOST_PUBLIC = "ssh-ed25519 AAAAHOSTKEY root@VM"
ADMIN = "ssh-ed25519 AAAAADMINKEY labctl-admin-LAB"
AUTO_SUBNET = ipaddress.IPv4Network("10.213.0.0/24")  # what choose_subnet gives an empty host


BUILT = {"debian-12"}  # images labctl built boot their kernel directly; the rest their disk


def facts(plan, index: int) -> VmFacts:
    user = plan.uses_user_network
    built = plan.vm.image in BUILT
    return VmFacts(
        "qemu", f"{POOL}/{plan.overlay}", f"{POOL}/{plan.seed}",
        f"{POOL}/base-IMAGE.vmlinuz" if built else None,
        f"{POOL}/base-IMAGE.initrd" if built else None,
        "root=/dev/vda rw console=ttyS0" if built else None, 40022 + index if user else None,
        tuple((8000 + k, port) for k, port in enumerate(plan.published)) if user else ())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_what_labctl_makes_of_each_example(path: Path, golden):
    lab = load_lab(path)
    layout = lab_layout(lab, {vm.image: DIGEST for vm in lab.vms})
    out = GOLDEN / "examples" / path.stem
    for net in layout.networks:
        meta = Meta(lab.name, "network", net.network.name, net.spec_hash, data_dir="DATA")
        golden(out / f"network-{net.network.name}.xml",
               network_xml(network_spec(net, net.network.subnet or AUTO_SUBNET, meta)))
    for index, plan in enumerate(layout.vms):
        name = plan.vm.name
        vm_facts = facts(plan, index)
        meta = vm_meta(plan, lab.name, vm_facts, "DATA")
        golden(out / f"{name}.domain.xml", domain_xml(domain_spec(plan, vm_facts, meta)))
        seed = render_seed(seed_spec(plan, LOGIN, HOST_PRIVATE, HOST_PUBLIC, ADMIN))
        for part, text in seed.items():
            golden(out / f"{name}.seed" / part, text)
        # a seed file labctl no longer makes must not linger as a golden one
        assert {p.name for p in (out / f"{name}.seed").iterdir()} == set(seed), \
            f"stale golden files in {out / f'{name}.seed'}"
        if plan.vm.containers:
            lines = []
            for c in plan.vm.containers:
                container_hash(c, source_digest(c, lab.directory))  # its sources exist and hash
                args = run_args(lab.name, name, c, "REF", "SPEC",
                                f"/home/{plan.vm.user}/.labctl/binds/{lab.name}")
                lines.append(OciRuntime(c.runtime, FakeTransport(), name).command(
                    "run", "-d", *args))
            golden(out / f"{name}.run.txt", "\n".join(lines) + "\n")


def test_every_example_has_golden_files():
    made = {p.name for p in (GOLDEN / "examples").iterdir()}
    assert made == {p.stem for p in EXAMPLES}, "run pytest --regenerate for new examples"


def test_a_class_copy_restored_from_a_template_gets_the_idle_translation_cache():
    """Forty restored copies of a class fit a small machine: each one's TCG
    cache is capped lower; a lone lab's VM and anything booted keep 512 MiB."""

    lab = load_lab(ROOT / "examples" / "hello.yaml")
    (plan,) = lab_layout(lab, {vm.image: DIGEST for vm in lab.vms}).vms
    booted = facts(plan, 0)
    restored = dataclasses.replace(booted, restored=True)

    def cache(vm_facts, copy: str) -> str:
        meta = vm_meta(plan, lab.name, vm_facts, "DATA", copy=copy)
        return re.search(r"<tb-cache unit='MiB'>(\d+)<", domain_xml(
            domain_spec(plan, vm_facts, meta))).group(1)

    assert cache(restored, "3") == "64"
    assert cache(restored, "") == cache(booted, "3") == cache(booted, "") == "512"
