"""The container layer against a fake transport: command lines (golden, both
runtimes), inspect parsing, the container planner, image tars, errors."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.plan.containers import ContainerInfo, container_hash, plan_containers, run_args
from labctl.runtime.deploy import deploy_vm
from labctl.runtime.oci import OciRuntime
from labctl.runtime.sources import context_tar, local_image, source_digest, source_digests
from labctl.ssh.transport import CommandResult

from .fakes import FakeTransport
from .fixtures import GOLDEN, ROOT

COURSE = load_lab(ROOT / "examples" / "course.yaml")



def spec(container) -> str:
    """The spec hash a container of the course lab is labelled with."""
    return container_hash(container, source_digest(container, COURSE.directory))


@pytest.mark.parametrize("binary", ["docker", "podman"])
def test_run_command_lines_golden(binary, golden):
    vm = COURSE.vm("docker-host")
    lines = []
    for c in vm.containers:
        args = run_args("course", vm.name, c, "REF", "SPEC", "/home/lab/.labctl/binds/course")
        lines.append(OciRuntime(binary, FakeTransport(), "VM 'x'").command("run", "-d", *args))
    golden(GOLDEN / f"run-{binary}.txt", "\n".join(lines) + "\n")


DOCKER_INSPECT = [{"Name": "/web", "Config": {"Image": "busybox", "Labels": {
    "labctl.lab": "course", "labctl.vm": "docker-host", "labctl.spec": "abc"}},
    "State": {"Status": "running", "StartedAt": "2026-11-25T09:00:00.1Z"},
    "HostConfig": {"PortBindings": {"9000/tcp": [{"HostIp": "", "HostPort": "8000"}]}}}]
PODMAN_INSPECT = [{"Name": "web", "ImageName": "docker.io/library/busybox:latest",
                   "Config": {"Image": "docker.io/library/busybox:latest",
                              "Labels": {"labctl.lab": "course", "labctl.spec": "abc"}},
                   "State": {"Status": "exited", "StartedAt": "2026-11-25T09:00:00Z"},
                   "HostConfig": {"PortBindings": {}}}]


@pytest.mark.parametrize("binary,data,expected", [
    ("docker", DOCKER_INSPECT, ContainerInfo(
        "web", "docker", "busybox", "running", DOCKER_INSPECT[0]["Config"]["Labels"],
        ("8000->9000/tcp",), "2026-11-25T09:00:00.1Z")),
    ("podman", PODMAN_INSPECT, ContainerInfo(
        "web", "podman", "docker.io/library/busybox:latest", "exited",
        {"labctl.lab": "course", "labctl.spec": "abc"}, (), "2026-11-25T09:00:00Z")),
])
def test_containers_are_read_from_inspect(binary, data, expected):
    transport = FakeTransport({"ps -a -q": (0, "id1\n", ""),
                               "container inspect": (0, json.dumps(data), "")})
    (info,) = OciRuntime(binary, transport, "VM 'x'").containers("course")
    assert info == expected and info.spec_hash == "abc"
    assert transport.commands[0] == (f"sudo -n {binary} ps -a -q --filter "
                                     "label=labctl.lab=course")


def test_container_plan_covers_every_verb():
    vm = COURSE.vm("docker-host")
    chat, writer, reader = vm.containers
    observed = [
        ContainerInfo("chatserver", "docker", "x", "running",
                      {"labctl.spec": spec(chat)}),
        ContainerInfo("writer-1", "docker", "x", "exited",
                      {"labctl.spec": spec(writer)}),
        ContainerInfo("reader-2", "docker", "x", "running", {"labctl.spec": "old"}),
        ContainerInfo("leftover", "podman", "x", "running", {}),
    ]
    digests = source_digests(vm, COURSE.directory)
    verbs = [(a.verb, a.name) for a in plan_containers(vm, observed, digests)]
    assert verbs == [("delete", "docker-host/leftover"), ("keep", "docker-host/chatserver"),
                     ("start", "docker-host/writer-1"), ("recreate", "docker-host/reader-2")]


def test_runtime_switch_deletes_and_creates():
    vm = COURSE.vm("docker-host")
    podman_vm = dataclasses.replace(vm, containers=tuple(
        dataclasses.replace(c, runtime="podman") for c in vm.containers))
    observed = [ContainerInfo(c.name, "docker", "x", "running",
                              {"labctl.spec": spec(c)})
                for c in vm.containers]
    digests = source_digests(podman_vm, COURSE.directory)
    verbs = sorted({a.verb for a in plan_containers(podman_vm, observed, digests)})
    assert verbs == ["create", "delete"]


def test_missing_runtime_is_one_clear_line():
    transport = FakeTransport({"command -v docker": (1, "", "")})
    with pytest.raises(LabctlError) as info:
        deploy_vm(transport, COURSE, COURSE.vm("docker-host"), lambda e: None)
    assert info.value.message == "VM 'docker-host' has no docker: container 'chatserver' cannot run"
    assert info.value.hint.startswith("use 'runtime: podman'")


def test_busybox_rootfs_is_deterministic_and_complete():
    image = local_image("busybox")
    assert image is not None and image.ref == "docker.io/library/busybox:latest"
    assert local_image("busybox:latest") == image and local_image("nginx") is None
    assert image.tar == image.tar
    names = tarfile.open(fileobj=io.BytesIO(image.tar)).getnames()
    assert "bin/busybox" in names and "bin/sh" in names and "tmp" in names


def test_context_tar_is_deterministic_and_stays_inside(tmp_path: Path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM busybox\n")
    first = context_tar(tmp_path / "ctx")
    (tmp_path / "ctx" / "Dockerfile").touch()  # a new mtime changes nothing
    assert context_tar(tmp_path / "ctx") == first
    (tmp_path / "secret").write_text("no")
    (tmp_path / "ctx" / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(LabctlError, match="links outside the build context"):
        context_tar(tmp_path / "ctx")


def test_source_digest_follows_the_build_context():
    chat = COURSE.vm("docker-host").containers[0]
    assert source_digest(chat, COURSE.directory) == source_digest(chat, COURSE.directory)
    assert source_digest(dataclasses.replace(chat, build=None, image="nginx"),
                         COURSE.directory) == "ref:nginx"


class OneBadInspect(FakeTransport):
    """podman after a power cut: the batch inspect and id2's fail, ps still lists."""

    def run(self, command, timeout=None, input_data=None):
        text = command if isinstance(command, str) else " ".join(command)
        self.commands.append(text)
        if "ps -a -q" in text:
            return CommandResult(text, 0, "id1\nid2\n", "", 0.0)
        if "container inspect" in text:
            if text.endswith(" id1"):
                return CommandResult(text, 0, json.dumps(PODMAN_INSPECT), "", 0.0)
            return CommandResult(text, 125, "", 'Error: getting graph driver info "x": '
                                 "readlink /var/lib/containers/storage/overlay: invalid "
                                 "argument", 0.0)
        if "--filter id=id2" in text:
            return CommandResult(text, 0, "sleeper|node\n", "", 0.0)
        return CommandResult(text, 0, "", "", 0.0)


def test_a_container_its_runtime_cannot_inspect_is_damaged_and_recreated():
    web, damaged = OciRuntime("podman", OneBadInspect(), "VM 'x'").containers("course")
    assert web.name == "web" and web.state == "exited"
    assert (damaged.name, damaged.state, damaged.labels["labctl.vm"]) == (
        "sleeper", "damaged", "node")
    vm = load_lab(ROOT / "tests" / "data" / "labs" / "integration" / "fault.yaml").vm("node")
    (action,) = plan_containers(vm, [damaged], source_digests(vm, ROOT))
    assert (action.verb, action.reason) == (
        "recreate", "podman lost part of it (the VM stopped uncleanly)")


def test_mirror_configuration_commands_run_in_a_real_shell(tmp_path):
    """The mirror set-up a VM runs, executed against a scratch root: podman's
    drop-in names the mirror for docker.io, docker's daemon.json lists it, apt
    sources move to the mirror."""
    import subprocess

    from labctl.plan.mirrors import mirror_config_commands

    root = tmp_path
    (root / "etc/apt").mkdir(parents=True)
    (root / "etc/apt/sources.list.d").mkdir()
    (root / "etc/apt/sources.list").write_text(
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n")
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n")
    key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ'x\n-----END PGP PUBLIC KEY BLOCK-----\n"
    script = mirror_config_commands("http://10.213.1.1:5000", "http://mirror.example/debian",
                                    key)
    script = script.replace("/etc/", f"{root}/etc/").replace("systemctl", "false")
    subprocess.run(["sh", "-c", script], check=True)
    podman = (root / "etc/containers/registries.conf.d/60-labctl-mirror.conf").read_text()
    assert 'prefix = "docker.io"' in podman and 'location = "10.213.1.1:5000"' in podman
    assert json.loads((root / "etc/docker/daemon.json").read_text()) == {
        "registry-mirrors": ["http://10.213.1.1:5000"], "insecure-registries": ["10.213.1.1:5000"]}
    assert (root / "etc/apt/sources.list").read_text() == (
        "deb http://mirror.example/debian bookworm main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n")  # not the archive
    assert "URIs: http://mirror.example/debian\n" in \
        (root / "etc/apt/sources.list.d/debian.sources").read_text()
    assert (root / "etc/apt/trusted.gpg.d/labctl-mirror.asc").read_text() == key


def test_a_fresh_vm_is_not_searched_for_containers_it_cannot_have():
    """A VM just created (new disk, or a template's) holds none of labctl's
    containers: no `ps` before deploying, no `rm` before each run (each a
    podman or docker call, seconds under TCG)."""
    bare = dataclasses.replace(COURSE.vm("docker-host"), containers=())
    again = FakeTransport()
    deploy_vm(again, COURSE, bare, lambda e: None)
    assert any(" ps " in c for c in again.commands)  # a VM that was up before is looked at
    fresh = FakeTransport()
    deploy_vm(fresh, COURSE, bare, lambda e: None, fresh=True)
    assert fresh.commands == []
    fresh = FakeTransport()
    deploy_vm(fresh, COURSE, COURSE.vm("docker-host"), lambda e: None, fresh=True)
    asked = " ; ".join(fresh.commands)
    assert " run " in asked and " ps " not in asked and " rm " not in asked, asked


@pytest.mark.parametrize("binary, expected", [
    ("docker", "sudo -n docker rm -f -v web"),
    ("podman", "sudo -n podman rm -f -t 0 -v web"),
])
def test_a_container_is_removed_at_once_by_either_runtime(binary, expected):
    transport = FakeTransport()
    OciRuntime(binary, transport, "VM 'x'").remove("web")
    assert transport.commands[-1].endswith(expected), transport.commands


def test_a_container_not_seen_is_run_without_a_removal_first_and_a_taken_name_is_replaced():
    """`up` on a VM that was up before: a container labctl did not find is
    run at once (no `rm` first: a podman call, seconds under TCG); when its
    name is taken all the same (one labctl did not see as its own), that one is
    removed and the run asked again, as before."""
    writer = dataclasses.replace(COURSE.vm("docker-host"), containers=tuple(
        c for c in COURSE.vm("docker-host").containers if c.name == "writer-1"))

    class NameTakenOnce(FakeTransport):
        def run(self, command, *args, **kwargs):
            text = command if isinstance(command, str) else " ".join(command)
            if " run -d " in text and not any(" run -d " in c for c in self.commands):
                self.commands.append(text)
                return CommandResult(text, 125, "", 'docker: Error response from daemon: '
                                     'Conflict. The container name "/writer-1" is already in '
                                     'use by container "0ab1".', 0.0)
            return super().run(command, *args, **kwargs)

    quiet = FakeTransport()
    deploy_vm(quiet, COURSE, writer, lambda e: None)
    asked = [c for c in quiet.commands if " rm " in c or " run -d " in c]
    assert len(asked) == 1 and " run -d " in asked[0], asked
    taken = NameTakenOnce()
    deploy_vm(taken, COURSE, writer, lambda e: None)
    asked = [c for c in taken.commands if " rm " in c or " run -d " in c]
    assert [(" rm " in c, " run -d " in c) for c in asked] == \
        [(False, True), (True, False), (False, True)], asked
