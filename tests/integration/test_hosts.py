"""A class across two libvirt hosts that are somewhere else
(scripts/remote-hosts): each in its own network namespace with its own
libvirtd state and its own sshd, at 192.0.2.11 and 192.0.2.12 on a bridge;
labctl, in the test namespace, reaches them only through qemu+ssh. The second
does not expose its forwarded ports (`labctl_jump=1`): they listen on its
loopback and everything goes through its sshd. Four copies are placed by the
RAM left on each host, each host restores them from a template of its own
(the first starts empty every run: the image is uploaded to its pool and the
template built there; the second keeps its disk between runs, as a real host
does, and finds its base image and template again), every command follows a
copy to its host, forwards are bound to the host's address
(the second's loopback), plain OpenSSH reaches a copy on each host through its
hand-out (ProxyJump on the second), gc and doctor look at every host, a lab
on the second host gets its registry there (reached by its VM on the lab
network, not from here), then one host dies (every process in it, and its link):
its copies show as unreachable while the others keep working, a command on a
lost copy fails in one line naming the host, and `up --replace-lost` brings
them back on the other host. Nothing is left on either host after
`down --all-copies`."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import subprocess

import pytest

from labctl.usecases.template_store import TemplateStore
from labctl.virt import remote
from labctl.virt.connection import connect
from labctl.virt.storage import POOL

from .conftest import ROOT, labctl, leftovers

HELLO = ROOT / "examples" / "hello.yaml"
BENCH_LAB = ROOT / "tests" / "data" / "labs" / "integration" / "bench-containers.yaml"
NAT_LAB = ROOT / "tests" / "data" / "labs" / "integration" / "remote-registry.yaml"
SCRIPT = str(ROOT / "scripts" / "remote-hosts")
KEY = "/run/labctl-hosts/id_ed25519"
COPIES = {f"hello-{n}" for n in range(1, 5)}


def uri(n: int) -> str:
    return subprocess.run([SCRIPT, "uri", str(n)], check=True, capture_output=True,
                          text=True).stdout.strip()


def copies_on(host: str) -> set[str]:
    conn = connect(host)
    try:
        return {d.name().split(".")[0] for d in conn.listAllDomains(0)
                if d.name().startswith("hello-")}
    finally:
        conn.close()


def answers(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=3).close()
    except OSError:
        return False
    return True


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and lines, result
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def hosts(settings, tmp_path_factory):
    subprocess.run([SCRIPT, "start"], check=True)
    first, second = uri(1), uri(2) + "&labctl_jump=1"
    labctl("down", "hello", "--all-copies", check=False)
    # what an earlier run left on the second host's kept disk is an older
    # image's base or template at most (an image upgrade leaves them, as on a
    # real host); removed by gc there before the class, so the gc after it
    # must find nothing at all
    earlier = json.loads(labctl("--json", "gc", "--uri", second, "--dry-run").stdout)
    assert {row["kind"] for row in earlier} <= {"base", "template"}, earlier
    labctl("gc", "--uri", second, "--yes")
    up = labctl("up", str(HELLO), "--copies", "4", "--host", first, "--host", second)
    yield first, second, up, tmp_path_factory.mktemp("handouts")
    subprocess.run([SCRIPT, "start"], check=True)  # a host the test killed comes back empty
    labctl("down", "hello", "--all-copies")
    for host in (first, second):
        assert copies_on(host) == set()
        for name in COPIES:
            assert leftovers(name, dataclasses.replace(settings, uri=host)) == {}
    subprocess.run([SCRIPT, "stop"], check=True)


def test_copies_are_placed_on_both_hosts(hosts, settings):
    first, second, up, _ = hosts
    assert "class 'hello': 4 of 4 copies ready" in up.stdout
    assert copies_on(first) and copies_on(second)
    assert copies_on(first) | copies_on(second) == COPIES
    # each host built its own template and restored its copies from it (the
    # newest record of each host: a host's pool lost with the host keeps the
    # records of templates an earlier run made there, which are never used)
    templates = {t.host: t for t in sorted(TemplateStore(settings.data_dir).all(),
                                           key=lambda t: t.created)
                 if t.host in (remote.libvirt_uri(first), remote.libvirt_uri(second))}
    assert set(templates) == {remote.libvirt_uri(first), remote.libvirt_uri(second)}
    assert len(re.findall(r"restored from template", up.stderr)) == 4, up.stderr
    for host in (first, second):
        pool = connect(host).storagePoolLookupByName(POOL)
        assert any(v.startswith("base-debian-12-") for v in pool.listVolumes())
        assert templates[remote.libvirt_uri(host)].volume in pool.listVolumes()


def test_every_command_follows_the_copy_to_its_host(hosts, tmp_path):
    first, second, _, _ = hosts
    status = labctl("status", "hello", "--all-copies")
    for name in COPIES:
        assert f"lab {name}" in status.stdout
    for host, address in ((first, "192.0.2.11"), (second, "127.0.0.2")):
        copy = sorted(copies_on(host))[0]
        number = copy.split("-")[1]
        assert labctl("exec", f"{copy}.node", "--", "hostname").stdout.strip() == "node"
        assert "running" in labctl("status", "hello", "--copy", number).stdout
        note = tmp_path / f"note-{number}"
        note.write_text(f"for copy {number}\n")
        labctl("cp", str(note), "node:/tmp/note", "--lab", "hello", "--copy", number)
        assert labctl("exec", f"{copy}.node", "--", "cat", "/tmp/note").stdout == \
            f"for copy {number}\n"
        config = labctl("ssh-config", "hello", "--copy", number).stdout
        assert f"HostName {address}" in config
        assert ("-- 192.0.2.12" in config) == (host == second)  # labctl's way through
        # forwarded to the address the host is reached at (the jump host's
        # loopback), never every interface
        xml = connect(host).lookupByName(f"{copy}.node").XMLDesc(0)
        assert f"hostfwd=tcp:{address}:" in xml and "0.0.0.0" not in xml
        # from here, only the exposed host's forward answers at the host's address
        forwarded = int(config.split("Port ")[1].split()[0])
        host_address = "192.0.2.11" if host == first else "192.0.2.12"
        assert answers(host_address, forwarded) == (host == first)
    # a reset on the jump host: back to the state after 'up' (the note is gone)
    copy = sorted(copies_on(second))[0]
    labctl("reset", str(HELLO), "--copy", copy.split("-")[1])
    gone = labctl("exec", f"{copy}.node", "--", "test", "-e", "/tmp/note", check=False)
    assert gone.returncode == 1
    assert labctl("ps", "hello", "--all-copies").returncode == 0
    rows = {r["uri"]: r for r in json.loads(
        labctl("--json", "hosts", "--host", first, "--host", second).stdout)}
    for host in (first, second):
        assert rows[host]["reachable"] and rows[host]["accel"] in ("kvm", "qemu")
        assert set(rows[host]["labs"]) == copies_on(host)
    doctor = json.loads(labctl("--json", "doctor", "--all-hosts").stdout)
    assert {first, second} <= {row["host"] for row in doctor}
    gc = json.loads(labctl("--json", "gc", "--all-hosts", "--dry-run").stdout)
    assert [row for row in gc if row["host"] in (first, second)] == []  # all in use


def test_plain_openssh_reaches_a_copy_on_each_host_through_its_handout(hosts):
    first, second, _, handouts = hosts
    for host in (first, second):
        copy = sorted(copies_on(host))[0]
        number = copy.split("-")[1]
        labctl("handout", "hello", "--out", str(handouts), "--copy", number)
        config = handouts / number / "ssh_config"
        assert ("ProxyJump root@192.0.2.12" in config.read_text()) == (host == second)
        # the student's own way into the jump host (here: the hosts' test key)
        config.write_text(f"Host 192.0.2.12\n  IdentityFile {KEY}\n  StrictHostKeyChecking no\n"
                          "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n\n"
                          + config.read_text())
        result = subprocess.run(["ssh", "-F", "ssh_config", f"{copy}.node", "true"],
                                cwd=handouts / number, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr


def test_a_labs_registry_runs_on_the_labs_host(hosts):
    """The registry of a lab on the jump host runs there, on the lab network's
    gateway: the VM (reached through the host's sshd) gets answers from it,
    this machine does not, and it goes with `down`."""
    _, second, _, _ = hosts
    labctl("down", "remote-registry", check=False)
    # --cold: a one-off shape there (a lab-network NIC), whose template would
    # cost more than the one boot it serves; the registry is the point here
    labctl("up", str(NAT_LAB), "--uri", second, "--cold")
    try:
        (vm,) = json.loads(labctl("--json", "status", "remote-registry").stdout)
        assert vm["jump"] == "root@192.0.2.12" and vm["endpoint"].startswith("10.213.230.")
        started = labctl("registry", "up", "remote-registry").stdout
        assert "at 10.213.230.1:5000" in started
        status = json.loads(labctl("--json", "registry", "status", "remote-registry").stdout)
        assert status["host"] == second and status["address"] == "10.213.230.1:5000"
        pid = status["pid"]
        there = remote.run(second, f"cat /proc/{pid}/cmdline")
        assert "docker-registry" in there.stdout  # a process of the lab's host
        answer = labctl("exec", "remote-registry.box", "--", "bash", "-c",
                        "exec 3<>/dev/tcp/10.213.230.1/5000; "
                        "printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' >&3; head -1 <&3").stdout
        assert answer.startswith("HTTP/1.0 200"), answer
        with pytest.raises(OSError):  # not on this machine's side
            socket.create_connection(("10.213.230.1", 5000), timeout=3).close()
    finally:
        labctl("down", "remote-registry")
    assert remote.run(second, f"test -e /proc/{pid}").returncode != 0
    assert json.loads(labctl("--json", "registry", "status", "remote-registry").stdout) is None


def test_bench_measures_on_a_given_host(hosts, settings):
    """`bench run --host URI`: the VM the containers start in is on that host
    (here the jump host: reached through its sshd), and it is gone afterwards."""
    _, second, _, _ = hosts
    result = json.loads(labctl("--json", "bench", "run", str(BENCH_LAB), "--host",
                               second).stdout)
    data = result["data"]
    assert data["vm_boot"] == [] and len(data["containers"]["podman"]) == 2
    assert all(s["run_true"] > 0 for s in data["containers"]["podman"])
    assert leftovers("itbenchc-bench", dataclasses.replace(settings, uri=second)) == {}


def test_a_host_that_dies_mid_class(hosts):
    first, second, _, _ = hosts
    lost, kept = sorted(copies_on(first)), sorted(copies_on(second))
    subprocess.run([SCRIPT, "kill", "1"], check=True)
    status = labctl("status", "hello", "--all-copies", check=False)
    for name in lost:
        assert f"lab {name}: host unreachable ({first})" in status.stdout
        assert "host 192.0.2.11 is unreachable" in status.stdout
    for name in kept:
        assert f"lab {name}" in status.stdout
    line = one_line_error(labctl("exec", f"{lost[0]}.node", "--", "true", check=False))
    assert "192.0.2.11" in line
    assert labctl("exec", f"{kept[0]}.node", "--", "hostname").stdout.strip() == "node"
    refused = labctl("up", str(HELLO), "--copies", "4", "--host", first, "--host", second,
                     check=False)
    assert "192.0.2.11" in one_line_error(refused)
    assert "--replace-lost" in refused.stderr
    replaced = labctl("up", str(HELLO), "--copies", "4", "--host", first, "--host", second,
                      "--replace-lost")
    assert copies_on(second) == COPIES
    # the second host's template makes them again
    assert len(re.findall(r"restored from template", replaced.stderr)) == len(lost)
    for name in lost:
        assert labctl("exec", f"{name}.node", "--", "hostname").stdout.strip() == "node"
