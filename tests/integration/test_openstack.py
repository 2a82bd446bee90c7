"""A class on a real OpenStack: the all-in-one cloud of scripts/openstack
(Debian 12's own Zed packages) in a namespace of this run, reached as a
teacher with only a clouds.yaml. Two copies of a two-VM lab (one VM on a
sealed network, reached through the other), exec, a podman container, a
check, a hand-out used with plain OpenSSH, a reset that keeps the address and
keys, a snapshot restored by a rebuild, `bench` split as the cloud works, a
stock image the cloud has and a flavor named by the lab; refusals in one line:
an image the cloud lacks, over quota, a server in ERROR, keystone down;
then `down` and nothing of the class is left, found by tag."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import LABS, ROOT, Running, error_lines, labctl

SCRIPT = str(ROOT / "scripts" / "openstack")
FIXTURE = Path(os.environ.get("LABCTL_CLOUD_FIXTURE", "/var/cache/labctl-test/cloud-fixture"))
STOCK = "Debian 12 stock (itos)"  # the lab's db names it: an image the cloud already has
LAB = LABS / "openstack.yaml"
BENCH = LABS / "openstack-bench.yaml"
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
    conn = admin()  # a stock image the cloud's operators offer, public
    for old in conn.image.images(name=STOCK):
        conn.image.delete_image(old)
    (disk,) = FIXTURE.glob("*.qcow2")
    conn.create_image(STOCK, filename=str(disk), disk_format="qcow2", container_format="bare",
                      visibility="public", wait=True)
    yield
    for image in conn.image.images(name=STOCK):
        conn.image.delete_image(image)
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
    # db: the cloud's own image and the flavor the lab names (m1.tiny would fit)
    conn = admin()
    (stock,) = conn.image.images(name=STOCK)
    db = next(s for s in conn.compute.servers(all_projects=True) if s.name == "itos-2.db")
    assert db.image.id == stock.id
    assert (getattr(db.flavor, "original_name", None) or db.flavor.name) == "m1.small"


def test_an_image_the_cloud_does_not_have_is_one_line_before_anything_is_made(cloud, tmp_path):
    lab = tmp_path / "nosuch.yaml"
    lab.write_text("name: itnosuch\nvms:\n  - name: box\n    image: {cloud: no-such-image}\n")
    result = labctl("up", str(lab), "--uri", CLOUD, check=False)
    said = error_lines(result.stderr)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert said[0] == "error: cloud 'labctl-test' has no active image named 'no-such-image'", said
    assert STOCK in result.stderr  # the images it has, in the hint
    assert tagged("itnosuch") == []
    other = tmp_path / "nosuch-here.yaml"  # a lab never placed on the cloud: libvirt's
    other.write_text(lab.read_text().replace("itnosuch", "itnosuchlv"))
    on_libvirt = labctl("up", str(other), check=False)  # the default: this machine's libvirt
    assert "an image of an OpenStack cloud, but runs on qemu:///system" in on_libvirt.stderr
    labctl("down", "itnosuch")


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


def test_ansible_and_the_dashboard_see_the_clouds_vms(klass, tmp_path):
    """The inventory reaches web at its floating IP and db through web; the
    dashboard shows the class's VMs running, read from the cloud."""
    import sys
    import urllib.request

    from .conftest import start_dashboard

    ini = tmp_path / "inventory.ini"
    ini.write_text(labctl("inventory", "itos-1", "--ini").stdout)
    ansible = Path(sys.executable).with_name("ansible")
    ping = subprocess.run([str(ansible), "-i", str(ini), "all", "-m", "ping"],
                          capture_output=True, text=True, timeout=300)
    assert ping.returncode == 0 and ping.stdout.count("SUCCESS") == 2, ping.stdout + ping.stderr
    server, address, _port = start_dashboard("itos", "--uri", CLOUD)
    try:
        token = address.split("token=")[1]
        state = json.load(urllib.request.urlopen(
            address.replace("/?token=", "/api/state?token="), timeout=60))
        text = json.dumps(state)
        assert token not in text and "itos-1" in text and "itos-2" in text
        assert text.count('"running"') >= 4, text[:2000]
    finally:
        server.terminate()
        server.wait(10)


def address(copy: str, vm: str) -> str:
    status = json.loads(labctl("--json", "status", copy).stdout)
    return next(v["endpoint"] for v in status if v["name"] == vm)


def test_the_lab_registry_serves_the_clouds_vms_from_labctls_side(klass):
    """On a cloud the registry runs on labctl's machine, at its address towards
    the cloud, a port per lab; a VM with a way out pushes to it and pulls back."""
    started = labctl("registry", "up", "itos-1").stdout
    address = re.search(r"at (198\.51\.100\.129:\d+)", started)
    assert address, started
    pushed = labctl("push", "itos-1.web/site", "--as", "site:1").stdout.strip()
    assert pushed == f"pushed {address[1]}/site:1"
    pulled = labctl("exec", "itos-1.web", "--", "sh", "-c",
                    f"sudo podman rmi -f {address[1]}/site:1 >/dev/null && "
                    f"sudo podman pull -q {address[1]}/site:1 >/dev/null && echo pulled")
    assert pulled.stdout.strip() == "pulled"
    labctl("registry", "down", "itos-1")
    assert labctl("registry", "status", "itos-1").stdout.strip() == "not running"


def test_a_reset_and_a_snapshot_restore_keep_the_address_and_the_keys(klass):
    """A reset recreates copy 2's web (a fresh disk); meanwhile a snapshot of
    copy 1's web, disk only on a cloud, is a server image and a restore
    rebuilds the server from it, returning once labctl logs in again. Both
    keep the floating IP and the pinned host key."""
    before = {copy: address(copy, "web") for copy in ("itos-1", "itos-2")}
    labctl("exec", "itos-2.web", "--", "touch", "/home/lab/mark")
    reset = Running("reset", str(LAB), "web", "--copy", "2")  # alongside: both boot
    try:
        labctl("exec", "itos-1.web", "--", "sh", "-c", "echo saved > /home/lab/state && sync")
        labctl("snapshot", "save", "itos-1.web", "before", "-m", "a file written")
        listed = labctl("snapshot", "list", "itos-1.web").stdout
        assert "before" in listed and "a file written" in listed
        labctl("exec", "itos-1.web", "--", "rm", "/home/lab/state")
        labctl("snapshot", "restore", "itos-1.web", "before")
        assert labctl("exec", "itos-1.web", "--", "cat", "/home/lab/state").stdout == "saved\n"
        # its image goes with `snapshot rm` (and with `down`, test_down_leaves_nothing_tagged)
        labctl("snapshot", "save", "itos-1.web", "spare")
        labctl("snapshot", "rm", "itos-1.web", "spare")
        assert [i for i in tagged("itos-1") if "spare" in i] == []
    finally:
        code, _out, stderr = reset.finish(timeout=900)
    assert code == 0, stderr
    assert {copy: address(copy, "web") for copy in before} == before
    gone = labctl("exec", "itos-2.web", "--", "test", "-e", "/home/lab/mark", check=False)
    assert gone.returncode == 1  # a fresh disk, and the pinned key still matches


def test_bench_on_the_cloud_splits_accepted_scheduled_active(cloud):
    ran = labctl("--json", "bench", "run", str(BENCH), "--host", CLOUD)
    assert "Traceback" not in ran.stderr, ran.stderr
    result = json.loads(ran.stdout)
    assert result["data"]["host"]["accel"] == "cloud"  # not a guess of KVM
    (boot,) = result["data"]["vm_boot"]
    assert list(boot["phases"])[:3] == ["api-accepted", "scheduled", "active"]
    assert sum(boot["phases"].values()) == pytest.approx(boot["total"])
    assert boot["phases"]["api-accepted"] > 0 and boot["phases"]["active"] > 0
    # Nova's console was read as the guest booted: its kernel came before its init
    assert boot["phases"]["kernel"] > 0, boot["phases"]
    assert boot["phases"]["login"] > 0 or boot["phases"]["address-to-banner"] > 0
    assert [s["run_true"] > 0 for s in result["data"]["containers"]["podman"]] == [True]
    assert tagged("itosb-bench") == []


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
        assert result.stderr.splitlines() == said  # keystoneauth's warning is not shown
    finally:
        subprocess.run([SCRIPT, "keystone", "start"], check=True, timeout=120)


def test_gc_finds_a_router_left_of_a_lab_by_its_tags(cloud):
    import openstack

    teacher = openstack.connect(cloud="labctl-test")
    router = teacher.network.create_router(name="itgone.router")
    teacher.network.set_tags(router, ["labctl", "labctl-lab:itgone"])
    listed = json.loads(labctl("--json", "gc", "--dry-run", "--uri", CLOUD).stdout)
    assert {(g["kind"], g["name"]) for g in listed} >= {("leftovers", "itgone")}, listed
    labctl("gc", "--yes", "--uri", CLOUD)
    assert tagged("itgone") == []


def test_down_leaves_nothing_tagged(klass):
    labctl("down", "itos", "--all-copies")
    for name in COPIES:
        assert tagged(name) == []
