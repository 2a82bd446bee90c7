"""Valid lab files load to the expected model records."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from labctl.errors import LabFileError, UsageError
from labctl.lab.loader import load_lab, parse_var_overrides
from labctl.lab.model import Attachment, Bench, Build, Network, Port, Volume, WriteFile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
VALID = ROOT / "tests" / "data" / "labs" / "valid"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_loads(path: Path):
    assert load_lab(path).vms


def test_examples_cover_the_course_labs():
    names = {p.stem for p in EXAMPLES}
    assert {"hello", "course", "multi-vm", "compare"} <= names


def test_hello_gets_every_default():
    lab = load_lab(ROOT / "examples" / "hello.yaml")
    assert lab.name == "hello"
    assert lab.networks == (Network("default", "user"),)
    (vm,) = lab.vms
    assert (vm.name, vm.image, vm.vcpus, vm.memory_mib, vm.disk_gib, vm.user, vm.runtime) == (
        "node", "debian-12", 1, 512, 4, "lab", "podman")
    assert vm.networks == (Attachment("default"),)
    assert lab.bench is None


def test_course_lab_renders_variables_and_overrides():
    lab = load_lab(ROOT / "examples" / "course.yaml")
    vm = lab.vm("docker-host")
    assert vm.runtime == "docker" and vm.memory_mib == 768
    web, writer, reader = vm.containers
    assert web.build == Build("chatserver") and web.ports == (Port(8000, 9000),)
    assert web.restart == "unless-stopped" and web.runtime == "docker"
    assert writer.command == ("sh", "-c",
                              "echo hello from writer-1 > /myshare/greeting; sleep infinity")
    assert writer.volumes == (Volume("volshare", "/myshare", "named"),)
    assert reader.volumes[0].source == "volshare"

    overridden = load_lab(ROOT / "examples" / "course.yaml",
                          parse_var_overrides(["web_port=8080", "runtime=podman"]))
    assert overridden.vm("docker-host").containers[0].ports == (Port(8080, 9000),)
    assert overridden.vm("docker-host").runtime == "podman"


def test_count_expands_replicas():
    lab = load_lab(ROOT / "examples" / "multi-vm.yaml", {"web_count": 3})
    assert [vm.name for vm in lab.vms] == ["web-1", "web-2", "web-3", "db"]
    assert {vm.group for vm in lab.vms[:3]} == {"web"}
    assert lab.vm("db").networks == (Attachment("back", ipaddress.IPv4Address("10.77.2.10")),)


def test_full_lab_uses_every_key():
    lab = load_lab(VALID / "full.yaml")
    assert lab.variables == {"greeting": "hello"}
    assert lab.network("lan").subnet == ipaddress.IPv4Network("10.20.0.0/24")
    app1, app2, db = lab.vms
    assert (app1.name, app2.name) == ("app-1", "app-2")
    assert (app1.vcpus, app1.memory_mib, app1.disk_gib, app1.user, app1.runtime) == (
        2, 1024, 8, "student", "docker")
    assert app1.runcmd == ("echo ready", ("touch", "/tmp/ready"))
    assert app1.write_files == (WriteFile("/etc/motd", "hello\n", "0640", "root:root"),)
    web, sidecar = app1.containers
    assert web.build == Build("web", "Containerfile")
    # An unquoted 8080:80 is a port mapping, not YAML 1.1's base-60 number.
    assert web.ports == (Port(8080, 80), Port(5353, 53, "udp", "127.0.0.1"))
    assert web.volumes == (Volume("site", "/srv", "bind", True), Volume("cache", "/cache", "named"))
    assert web.env == (("MODE", "prod"), ("PORT", "80"))
    assert web.restart == "no"  # YAML 1.1 reads `no` as false
    assert sidecar.archive == "images/app.tar" and sidecar.image is None
    assert sidecar.env == (("A", "1"), ("B", "two=2"))
    assert (db.memory_mib, db.disk_gib, db.runtime) == (2048, 20, "podman")
    assert db.containers[0].command == ("store", "--listen", "0.0.0.0")
    assert lab.bench == Bench(3, 0, ("vm-boot", "container-start"), ("podman",), "busybox",
                              "debian-12")


def test_yaml_merge_keys(tmp_path: Path):
    lab_file = tmp_path / "merge.yaml"
    lab_file.write_text("name: m\nx-base: &base\n  memory: 1G\n  vcpus: 2\nvms:\n"
                        "  - <<: *base\n    name: a\n    vcpus: 1\n")
    with pytest.raises(LabFileError, match="unknown key 'x-base'"):
        load_lab(lab_file)
    lab_file.write_text("name: m\nvms:\n  - &a {name: a, memory: 1G, vcpus: 2}\n"
                        "  - <<: *a\n    name: b\n    vcpus: 1\n")
    a, b = load_lab(lab_file).vms
    assert (b.name, b.memory_mib, b.vcpus) == ("b", 1024, 1)


def test_missing_file_and_directory(tmp_path: Path):
    with pytest.raises(LabFileError) as info:
        load_lab(tmp_path / "nope.yaml")
    assert info.value.lines() == [f"{tmp_path}/nope.yaml: no such lab file",
                                  "  hint: check the path"]
    with pytest.raises(LabFileError, match="not a file"):
        load_lab(tmp_path)


def test_var_overrides_are_typed_and_checked():
    assert parse_var_overrides(["n=3", "name=web", "flag=true", "empty="]) == {
        "n": 3, "name": "web", "flag": True, "empty": ""}
    with pytest.raises(UsageError, match="not KEY=VALUE"):
        parse_var_overrides(["novalue"])
    with pytest.raises(UsageError):
        parse_var_overrides(["1bad=2"])
