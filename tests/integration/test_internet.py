"""Internet by default, sealed on request, against the simulated world of
scripts/world (a namespace of this run at documentation addresses, with no
route beyond it). An open VM reaches the world by name and by address; a
sealed one reaches neither, nor resolves names, whether its network is
qemu user-mode or a libvirt NAT network."""

from __future__ import annotations

import pytest

from labctl.lab.loader import load_lab
from labctl.usecases.lab import down, up
from labctl.usecases.session import Session

from .conftest import LABS, WORLD_TOKEN, WORLD_WWW, fetch_from, leftovers

NET = LABS / "internet.yaml"


@pytest.fixture(scope="module")
def itnet(settings, world_key):
    lab = load_lab(NET, {"apt_key": world_key})
    session = Session(settings)
    down(session, lab.name)
    up(session, lab)
    yield session
    down(session, lab.name)
    assert leftovers(lab.name, settings) == {}


@pytest.mark.parametrize("vm_name", ["out", "gate"])  # qemu user-mode, libvirt NAT
def test_an_open_vm_reaches_the_world_by_name_and_address(itnet, vm_name):
    with itnet.connect_vm("itnet", vm_name) as vm:
        assert WORLD_TOKEN in fetch_from(vm, "www.world.test")
        assert WORLD_TOKEN in fetch_from(vm, WORLD_WWW)
        # at once: a resolver that waits on every name is a broken network
        lookup = vm.run("getent hosts deb.debian.org")
        assert lookup.stdout.startswith(WORLD_WWW) and lookup.duration < 3, lookup
        assert not vm.run("getent hosts no-such-name.example", timeout=30).ok


def test_packages_come_from_the_labs_apt_mirror_it_trusts(itnet):
    """`out` installed `catatonit` at first boot from the world's repository,
    signed by a key only the lab's mirrors.apt_key made the VM trust."""
    with itnet.connect_vm("itnet", "out") as vm:
        assert "apt.world.test/debian" in vm.run("cat /etc/apt/sources.list").stdout
        policy = vm.run("apt-cache policy catatonit").stdout
        assert "http://apt.world.test/debian bookworm/main" in policy, policy
        assert vm.run("sudo -n apt-get update -q").ok  # signature checked, no warnings
    with itnet.connect_vm("itnet", "shut") as vm:  # the sealed VM got the set-up too
        assert vm.run("test -s /etc/apt/trusted.gpg.d/labctl-mirror.asc").ok


@pytest.mark.parametrize("vm_name", ["shut", "vault"])
def test_a_sealed_vm_reaches_nothing_outside_its_lab(itnet, vm_name):
    with itnet.connect_vm("itnet", vm_name) as vm:
        assert WORLD_TOKEN not in fetch_from(vm, WORLD_WWW)
        assert WORLD_TOKEN not in fetch_from(vm, "www.world.test")
        assert not vm.run("getent hosts www.world.test", timeout=30).ok  # no DNS leak
        # nor the world's DNS server directly
        assert not vm.run("timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.53/53'",
                          timeout=30).ok
