"""A class across two libvirt hosts: the netns libvirtd (qemu:///system) and a
second libvirtd with its own state on qemu+tcp://127.0.0.1:16510/system
(scripts/libvirtd-second), both in the test namespace. Copies are placed by
the RAM left on each host, the image is uploaded to each host's pool, and
status, exec, hand-outs and down --all-copies work across both."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from labctl.virt.connection import connect
from labctl.virt.storage import POOL

from .conftest import ROOT, labctl, leftovers

HELLO = ROOT / "examples" / "hello.yaml"
SECOND = "qemu+tcp://127.0.0.1:16510/system"
HOSTS = ("qemu:///system", SECOND)


def copies_on(uri: str) -> set[str]:
    conn = connect(uri)
    try:
        return {d.name().split(".")[0] for d in conn.listAllDomains(0)
                if d.name().startswith("hello-")}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def spread(settings, tmp_path_factory):
    subprocess.run([str(ROOT / "scripts" / "libvirtd-second"), "start"], check=True)
    labctl("down", "hello", "--all-copies")
    up = labctl("up", str(HELLO), "--copies", "3", "--host", HOSTS[0], "--host", SECOND)
    yield up, tmp_path_factory.mktemp("handouts")
    labctl("down", "hello", "--all-copies")
    for uri in HOSTS:
        assert copies_on(uri) == set()
        for n in range(1, 4):
            assert leftovers(f"hello-{n}", dataclasses.replace(settings, uri=uri)) == {}
    subprocess.run([str(ROOT / "scripts" / "libvirtd-second"), "stop"], check=True)


def test_copies_are_placed_on_both_hosts(spread):
    up, _ = spread
    assert "class 'hello': 3 of 3 copies ready" in up.stdout
    first, second = copies_on(HOSTS[0]), copies_on(SECOND)
    assert first and second and first | second == {"hello-1", "hello-2", "hello-3"}
    pool = connect(SECOND).storagePoolLookupByName(POOL)
    assert any(v.startswith("base-debian-12-") for v in pool.listVolumes())


def test_every_command_follows_the_copy_to_its_host(spread):
    (remote,) = sorted(copies_on(SECOND))[:1]
    status = labctl("status", "hello", "--all-copies")
    for n in range(1, 4):
        assert f"lab hello-{n}" in status.stdout
    assert labctl("exec", f"{remote}.node", "--", "hostname").stdout.strip() == "node"
    assert "running" in labctl("status", "hello", "--copy", remote.split("-")[1]).stdout
    containers = labctl("ps", "hello", "--all-copies")
    assert containers.returncode == 0 and "class hello: containers" in containers.stdout


def test_handout_of_a_copy_on_the_second_host(spread):
    _, handouts = spread
    (remote,) = sorted(copies_on(SECOND))[:1]
    copy = remote.split("-")[1]
    labctl("handout", "hello", "--out", str(handouts), "--copy", copy)
    result = subprocess.run(["ssh", "-F", "ssh_config", f"{remote}.node", "true"],
                            cwd=handouts / copy, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
