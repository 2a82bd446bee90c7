"""A class does not pull the internet thirty times: the lab registry runs as a
pull-through cache (CNCF distribution's proxy mode) of an upstream registry
-- here the simulated world's "Docker Hub" -- and the VMs use it as their
mirror for Docker Hub names. Three VMs pull the same image by its upstream
name; the upstream's own access log shows every layer fetched for the first
VM only, and nothing for the others. (CNCF distribution 2.8 fetches a missing
layer twice on that first miss -- one stream to the client, one to its store,
at the same moment -- so "once" is per class, not per request.)"""

from __future__ import annotations

import re

import pytest

from labctl.usecases.session import Session

from .conftest import LABS, WORLD_DIR, labctl, leftovers

CACHE = LABS / "cache.yaml"
HUB = "198.51.100.20:5000"  # scripts/world's registry


@pytest.fixture(scope="module")
def klass(settings, world):
    labctl("down", "itcache", check=False)
    labctl("up", str(CACHE))
    yield Session(settings)
    labctl("down", "itcache")
    assert leftovers("itcache", settings) == {}


def blob_fetches(log: str) -> dict[str, int]:
    """Digest -> how many times the upstream served that layer (GET of a blob)."""
    counts: dict[str, int] = {}
    for digest in re.findall(r'"GET /v2/library/busybox/blobs/(sha256:[0-9a-f]{64})', log):
        counts[digest] = counts.get(digest, 0) + 1
    return counts


def test_three_vms_pull_through_the_class_cache_and_upstream_serves_each_layer_once(klass):
    with klass.connect_vm("itcache", "seed") as seed:  # upstream gets the image
        seed.run(["sudo", "-n", "podman", "push", "--tls-verify=false",
                  "docker.io/library/busybox:latest", f"{HUB}/library/busybox:latest"],
                 timeout=300).check("pushing busybox to the world's hub")
    log_file = WORLD_DIR / "hub.log"
    started = labctl("registry", "up", "itcache", "--proxy", f"http://{HUB}").stdout
    assert "class cache of 'itcache'" in started and "pulling through" in started
    fetched = []  # upstream layer fetches caused by each pupil's pull
    for pupil in ("pupil-1", "pupil-2", "pupil-3"):
        before = len(log_file.read_text())
        with klass.connect_vm("itcache", pupil) as vm:
            vm.run(["sudo", "-n", "podman", "pull", "docker.io/library/busybox:latest"],
                   timeout=300).check(f"{pupil}: pulling busybox by its upstream name")
            assert vm.run(["sudo", "-n", "podman", "run", "--rm", "--network=none",
                           "docker.io/library/busybox:latest", "true"], timeout=120).ok
        fetched.append(blob_fetches(log_file.read_text()[before:]))
    first, *others = fetched
    assert first, "the upstream served no layer: the pulls did not go through the cache"
    assert all(count <= 2 for count in first.values()), first  # serve + store, see above
    assert others == [{}, {}], f"the cache went upstream again: {others}"
    labctl("registry", "down", "itcache")
