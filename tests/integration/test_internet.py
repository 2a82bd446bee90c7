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
def itnet(settings, world):
    lab = load_lab(NET)
    session = Session(settings)
    down(session, lab.name)
    up(session, lab)
    yield session
    down(session, lab.name)
    assert leftovers(lab.name, settings) == {}


NAT_EGRESS_OPEN_QUESTION = (
    "open NAT networks reached the world when booted by hand in the namespace "
    "(2026-11-29), but not inside the suite: not understood yet (session note)")


@pytest.mark.parametrize("vm_name", [
    "out",  # qemu user-mode networking
    pytest.param("gate", marks=pytest.mark.xfail(reason=NAT_EGRESS_OPEN_QUESTION)),  # NAT
])
def test_an_open_vm_reaches_the_world_by_name_and_address(itnet, vm_name):
    with itnet.connect_vm("itnet", vm_name) as vm:
        assert WORLD_TOKEN in fetch_from(vm, "www.world.test")
        assert WORLD_TOKEN in fetch_from(vm, WORLD_WWW)
        assert vm.run("getent hosts deb.debian.org").stdout.startswith(WORLD_WWW)


@pytest.mark.parametrize("vm_name", ["shut", "vault"])
def test_a_sealed_vm_reaches_nothing_outside_its_lab(itnet, vm_name):
    with itnet.connect_vm("itnet", vm_name) as vm:
        assert WORLD_TOKEN not in fetch_from(vm, WORLD_WWW)
        assert WORLD_TOKEN not in fetch_from(vm, "www.world.test")
        assert not vm.run("getent hosts www.world.test", timeout=30).ok  # no DNS leak
        # nor the world's DNS server directly
        assert not vm.run("timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.53/53'",
                          timeout=30).ok
