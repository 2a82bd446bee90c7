"""The course's build -> push -> run cycle across two VMs with the lab
registry (examples/registry.yaml): built in one VM, pushed, pulled and run in
another; the registry listens only on the lab network and goes with `down`."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from labctl.usecases.lab import down
from labctl.usecases.session import Session

from .conftest import ROOT, labctl, leftovers

LAB = ROOT / "examples" / "registry.yaml"


@pytest.fixture(scope="module")
def registry_lab(settings):
    down(Session(settings), "registry")
    labctl("up", str(LAB))
    yield
    down(Session(settings), "registry")
    assert leftovers("registry", settings) == {}
    assert not (settings.data_dir / "registry" / "registry").exists()


def test_push_then_run_from_the_registry(registry_lab):
    assert "no registry running" in labctl("push", "registry.builder/chatserver",
                                           check=False).stderr
    started = labctl("registry", "up", "registry").stdout
    assert "at 10.213.240.1:5000" in started
    pushed = labctl("push", "registry.builder/chatserver", "--as", "chatserver:1").stdout
    assert pushed.strip() == "pushed 10.213.240.1:5000/chatserver:1"
    catalog = urllib.request.urlopen("http://10.213.240.1:5000/v2/_catalog", timeout=10)
    assert json.load(catalog) == {"repositories": ["chatserver"]}

    labctl("up", str(LAB), "--var", "pull=true")
    rows = json.loads(labctl("--json", "ps", "registry").stdout)
    runner = next(r for r in rows if r["vm"] == "runner")
    assert runner["image"].startswith("10.213.240.1:5000/chatserver") and \
        runner["state"] == "running"
    address = labctl("port", "registry.runner", "8000").stdout.strip()
    page = urllib.request.urlopen(f"http://{address}/", timeout=30).read().decode()
    assert "Hello from a container inside a VM" in page


def test_registry_listens_only_on_the_lab_network(registry_lab):
    status = labctl("registry", "status", "registry").stdout
    assert status.startswith("running at 10.213.240.1:5000")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 5000), timeout=2)
