"""Both backends keep the Backend protocol (labctl/backend.py): every
operation the use cases may ask for is there, with the same parameters --
the libvirt one, the OpenStack one and the unit tests' fake."""

from __future__ import annotations

import inspect

import pytest

from labctl import backend
from labctl.cloud.images import SnapshotImages
from labctl.cloud.project import Cloud
from labctl.cloud.provision import CloudProvisioner
from labctl.virt.host import Host
from labctl.virt.provision import Provisioner
from labctl.virt.storage import Storage

from .fake_backend import FakeBackend, FakeProvisioning, FakeVolumes


def members(protocol: type) -> dict[str, object]:
    return {name: value for name, value in vars(protocol).items()
            if not name.startswith("_") and name not in ("uri", "files")}


def parameters(function) -> list[str]:
    function = getattr(function, "fget", function)  # properties: their getter
    function = getattr(function, "func", function)  # cached properties: theirs
    return list(inspect.signature(inspect.unwrap(function)).parameters)


@pytest.mark.parametrize(("protocol", "implementation"), [
    (backend.Backend, Host), (backend.Provisioning, Provisioner), (backend.Volumes, Storage),
    (backend.Backend, FakeBackend), (backend.Provisioning, FakeProvisioning),
    (backend.Volumes, FakeVolumes), (backend.Backend, Cloud),
    (backend.Provisioning, CloudProvisioner), (backend.Volumes, SnapshotImages)])
def test_each_backend_keeps_the_protocol(protocol, implementation):
    for name, declared in members(protocol).items():
        assert hasattr(implementation, name), f"{implementation.__name__} has no {name}"
        assert parameters(getattr(implementation, name)) == parameters(declared), name


def test_nothing_above_the_backend_imports_libvirt():
    """Use cases, bench and the dashboard reach libvirt only through the
    protocol (the session's opener is the one place that names Host)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "labctl"
    for folder in ("usecases", "bench", "dashboard", "cli", "plan", "lab"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*import libvirt\b|from libvirt\b", text, re.M), path
            assert "libvirtError" not in text, path
            assert not re.search(r"^\s*(import|from) (openstack|keystoneauth1)\b", text,
                                 re.M), path


def test_the_use_cases_ask_only_what_the_protocol_offers():
    """Every `host.X` above the backend is an operation of the protocol: a use
    case that reached past it would break on the next backend."""
    import re
    from pathlib import Path

    offered = set(members(backend.Backend)) | {"uri"}
    root = Path(__file__).resolve().parents[2] / "labctl"
    asked = set()
    for folder in ("usecases", "bench", "dashboard"):
        for path in (root / folder).rglob("*.py"):
            asked |= set(re.findall(r"\bhost\.([a-z_]+)\b", path.read_text()))
    assert asked - offered == set()
