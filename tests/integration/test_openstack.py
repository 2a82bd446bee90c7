"""A class on a real OpenStack: the all-in-one cloud of scripts/openstack
(Debian 12's own Zed packages) in a namespace of this run, reached as a
teacher with only a clouds.yaml. Two copies of a two-VM lab (one VM on a
sealed network, reached through the other), exec, a podman container, a
check, a hand-out used with plain OpenSSH, a reset that keeps the address and
keys; refusals in one line: over quota, a server in ERROR, keystone down;
then `down` and nothing of the class is left, found by tag."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from .conftest import LABS, ROOT, error_lines, labctl

SCRIPT = str(ROOT / "scripts" / "openstack")
LAB = LABS / "openstack.yaml"
CLOUD = "openstack:labctl-test"
COPIES = ("itos-1", "itos-2")


def admin():
    import openstack

    return openstack.connect(cloud="labctl-admin")


def tagged(lab: str) -> list[str]:
    """Every object of the lab the cloud still holds, found by tag (as admin)."""
    conn, tag = admin(), f"labctl-lab:{lab}"
    left = [f"server {s.name}" for s in conn.compute.servers(all_projects=True)
            if s.name.startswith(f"{lab}.")]
    for kind in ("ports", "ips", "networks", "subnets", "routers", "security_groups"):
        left += [f"{kind} {o.id}" for o in getattr(conn.network, kind)(tags=tag)]
    left += [f"image {i.name}" for i in conn.image.images()
             if (i.properties or {}).get("labctl_lab") == lab]
    return left


@pytest.fixture(scope="module")
def cloud():
    started = subprocess.run([SCRIPT, "start"], capture_output=True, text=True, timeout=900)
    assert started.returncode == 0, started.stderr
    clouds = subprocess.run([SCRIPT, "clouds"], capture_output=True, text=True).stdout.strip()
    os.environ["OS_CLIENT_CONFIG_FILE"] = clouds
    yield
    os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
    subprocess.run([SCRIPT, "stop"], capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def klass(cloud, tmp_path_factory):
    up = labctl("up", str(LAB), "--copies", "2", "--host", CLOUD)
    handouts = tmp_path_factory.mktemp("handouts")
    labctl("handout", str(LAB), "--out", str(handouts))
    yield up, handouts
    labctl("down", "itos", "--all-copies", check=False)


def test_a_class_on_the_cloud(klass):
    up, _ = klass
    assert "class 'itos': 2 of 2 copies ready" in up.stdout
    assert labctl("exec", "itos-1.web", "--", "hostname").stdout.strip() == "web"
    # db has no floating IP: labctl goes through web, on the network they share
    assert labctl("exec", "itos-2.db", "--", "hostname").stdout.strip() == "db"
    running = labctl("exec", "itos-1.web", "--", "sh", "-c",
                     "sudo podman ps --format '{{.Names}}'").stdout
    assert "site" in running.split()
    status = {vm["name"]: vm for vm in json.loads(labctl("--json", "status", "itos-1").stdout)}
    assert status["web"]["state"] == "running"
    assert status["web"]["endpoint"].startswith("198.51.100.")  # its floating IP
    assert status["db"]["jump"] == "itos-1.web"  # reached through web
    assert "snapshots are disk images" in labctl("status", "itos-1").stdout


def test_checks_and_a_handout_with_plain_openssh(klass):
    _, handouts = klass
    labctl("exec", "itos-1.db", "--", "sh", "-c", "echo 42 > /home/lab/answer.txt")
    run = json.loads(labctl("--json", "check", str(LAB), "--all-copies", check=False).stdout)
    status = {(c["copy"], o["check"]): o["status"] for c in run["copies"] for o in c["outcomes"]}
    # the site answers from labctl's side of the cloud (a port its security group opens)
    assert status[("1", "site-runs")] == status[("2", "site-runs")] == "pass", status
    assert status[("1", "answer")] == "pass" and status[("2", "answer")] == "fail", status
    folder = handouts / "1"
    result = subprocess.run(["ssh", "-F", "ssh_config", "itos-1.web", "hostname"],
                            cwd=folder, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "web", result.stderr
    result = subprocess.run(["ssh", "-F", "ssh_config", "itos-1.db", "hostname"],  # a jump
                            cwd=folder, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "db", result.stderr


def address(copy: str, vm: str) -> str:
    status = json.loads(labctl("--json", "status", copy).stdout)
    return next(v["endpoint"] for v in status if v["name"] == vm)


def test_a_reset_keeps_the_address_and_the_keys(klass):
    before = address("itos-2", "web")
    labctl("exec", "itos-2.web", "--", "touch", "/home/lab/mark")
    labctl("reset", str(LAB), "web", "--copy", "2")
    assert address("itos-2", "web") == before
    gone = labctl("exec", "itos-2.web", "--", "test", "-e", "/home/lab/mark", check=False)
    assert gone.returncode == 1  # a fresh disk, and the pinned key still matches


def test_a_class_over_the_quota_is_refused_before_anything_is_made(cloud):
    result = labctl("up", str(LAB), "--copies", "40", "--host", CLOUD, check=False)
    said = error_lines(result.stderr)
    assert result.returncode != 0 and len(said) >= 1, result.stderr
    refused = re.match(r"error: (\d+) copies do not fit in the quotas of cloud 'labctl-test' "
                       r"\(instances: (\d+) needed, \d+ left", said[0])
    assert refused, said  # the copies still to start, two VMs each
    assert int(refused[2]) == 2 * int(refused[1]) and "RAM (MiB)" in said[0], said
    assert tagged("itos-40") == [] and "Traceback" not in result.stderr


def test_a_server_nova_cannot_place_is_one_line_with_novas_fault(cloud, tmp_path):
    conn = admin()
    conn.compute.create_flavor(name="m1.vast", ram=512, vcpus=1, disk=2048, is_public=True)
    lab = tmp_path / "vast.yaml"
    lab.write_text("name: itvast\nvms:\n  - name: huge\n    memory: 512M\n    disk: 2048G\n")
    try:
        result = labctl("up", str(lab), "--uri", CLOUD, check=False)
        said = "\n".join(error_lines(result.stderr))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "huge" in said and "went to ERROR" in said and "No valid host" in said, said
    finally:
        labctl("down", "itvast", check=False)
        conn.compute.delete_flavor(conn.compute.find_flavor("m1.vast"))
    assert tagged("itvast") == []


def test_keystone_down_is_one_line(klass):
    subprocess.run([SCRIPT, "keystone", "stop"], check=True, timeout=60)
    try:
        result = labctl("status", "itos-1", check=False)
        said = error_lines(result.stderr)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "cloud 'labctl-test' does not answer" in said[0], said
    finally:
        subprocess.run([SCRIPT, "keystone", "start"], check=True, timeout=120)


def test_down_leaves_nothing_tagged(klass):
    labctl("down", "itos", "--all-copies")
    for name in COPIES:
        assert tagged(name) == []
