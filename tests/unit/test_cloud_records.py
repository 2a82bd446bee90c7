"""The OpenStack backend's plain parts: its URI, labels, flavor choice,
quota arithmetic and the seed it hands labctl's own image, without a cloud."""

import dataclasses
import os
import subprocess
import sys

import pytest

from labctl.cloud import records
from labctl.cloud.provision import _firstboot
from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.lab.values import Invalid, host_uri
from labctl.plan.records import Meta


def test_uri_names_a_cloud_and_its_options():
    assert records.parse_uri("openstack:uni") == records.CloudUri("uni")
    where = records.parse_uri("openstack:uni?from=192.0.2.0/24&external=public")
    assert (where.ssh_from, where.external) == ("192.0.2.0/24", "public")
    for bad in ("openstack:", "openstack:uni?colour=red"):
        with pytest.raises(LabctlError, match="is not an OpenStack host"):
            records.parse_uri(bad)


@pytest.mark.parametrize("uri", ["openstack:uni", "openstack:my-cloud.2",
                                 "openstack:uni?from=198.51.100.0/24"])
def test_a_lab_file_may_name_a_cloud(uri):
    assert host_uri(uri) == uri


@pytest.mark.parametrize("uri", ["openstack:", "openstack:-x", "openstack:uni?auth=x",
                                 "openstack:a b", "openstack:uni;rm"])
def test_a_lab_file_cannot_smuggle_anything_else(uri):
    with pytest.raises(Invalid):
        host_uri(uri)


def test_libvirt_uris_are_still_checked_as_before():
    assert host_uri("qemu:///system") == "qemu:///system"
    with pytest.raises(Invalid):
        host_uri("xen:///system")


def test_meta_survives_novas_255_character_values():
    meta = Meta("class-17", "vm", "web", "0123456789abcdef", user="lab",
                data_dir="/home/teacher/" + "d" * 400, group="class", copy="17",
                forwards=((8080, 80),))
    metadata = records.server_metadata(meta)
    assert len(metadata) > 1 and all(len(v) <= 255 for v in metadata.values())
    back = records.meta_from_server(metadata)
    assert back is not None
    assert (back.lab, back.name, back.spec_hash, back.data_dir, back.copy, back.forwards) == (
        meta.lab, meta.name, meta.spec_hash, meta.data_dir, meta.copy, meta.forwards)
    assert records.meta_from_server({"other": "x"}) is None
    assert records.meta_from_text("not json") is None


def test_tags_find_a_lab_and_its_copy():
    tags = records.tags("class-3", "class", "3")
    assert tags == ["labctl", "labctl-lab:class-3", "labctl-group:class", "labctl-copy:3"]
    assert records.lab_of(tags) == "class-3"
    assert records.lab_of(["other"]) is None


FLAVORS = [records.Flavor("m1.tiny", 512, 1, 5), records.Flavor("m1.small", 1024, 1, 10),
           records.Flavor("m1.medium", 2048, 2, 20)]


def test_the_smallest_flavor_that_holds_the_vm():
    assert records.pick_flavor(FLAVORS, 512, 1, 4, "web").name == "m1.tiny"
    assert records.pick_flavor(FLAVORS, 1024, 1, 8, "web").name == "m1.small"
    assert records.pick_flavor(FLAVORS, 600, 2, 4, "web").name == "m1.medium"
    with pytest.raises(LabctlError, match=r"VM 'big': no flavor of the cloud holds 4096 MiB, "
                                          r"1 vCPUs and 8 GiB \(the biggest is m1.medium"):
        records.pick_flavor(FLAVORS, 4096, 1, 8, "big")


LAB = """\
name: two
networks:
  - name: front
    mode: nat
  - name: back
    mode: isolated
vms:
  - name: web
    memory: 1G
    vcpus: 2
    networks: [front, back]
  - name: db
    memory: 512M
    networks: [back]
"""


def test_what_one_copy_takes_from_the_quotas(tmp_path):
    (tmp_path / "two.yaml").write_text(LAB)
    lab = load_lab(tmp_path / "two.yaml")
    needs = records.per_copy(lab)
    assert needs["instances"] == 2 and needs["cores"] == 3 and needs["RAM (MiB)"] == 1536
    assert needs["floating IPs"] == 1  # db sits on a sealed network only: reached through web
    assert needs["networks"] == 2 and needs["routers"] == 1 and needs["security groups"] == 1
    assert needs["ports"] == 3 + 2 + 1  # NICs, a DHCP port a network, the router's interface


NAMED = """\
name: named
defaults: {flavor: m1.medium}
vms:
  - name: web
    image: {cloud: "Debian 12 (uni)"}
    memory: 512M
  - name: db
    memory: 512M
    flavor: m1.tiny
"""


def test_a_lab_may_name_the_clouds_image_and_flavor(tmp_path):
    from labctl.images.cache import ImageCache

    (tmp_path / "named.yaml").write_text(NAMED)
    lab = load_lab(tmp_path / "named.yaml")
    web, db = lab.vms
    assert web.image == "glance:Debian 12 (uni)" and db.image == "debian-12"
    assert (web.flavor, db.flavor) == ("m1.medium", "m1.tiny")  # defaults, then the VM's own
    image = ImageCache(tmp_path / "images").get(web.image)  # nothing on disk for it
    assert image.in_cloud == "Debian 12 (uni)" and not image.configures_itself
    assert image.kernel is None and len(image.sha256) == 64
    # the flavor named is used, and is what the quotas count
    assert records.flavor_for(FLAVORS, web).name == "m1.medium"
    needs = records.per_copy(lab, {vm.name: records.flavor_for(FLAVORS, vm) for vm in lab.vms})
    medium, tiny = (next(f for f in FLAVORS if f.name == n) for n in ("m1.medium", "m1.tiny"))
    assert needs["RAM (MiB)"] == medium.ram_mib + tiny.ram_mib
    assert needs["cores"] == medium.vcpus + tiny.vcpus
    with pytest.raises(LabctlError) as missing:
        records.flavor_for(FLAVORS, dataclasses.replace(web, flavor="M1.Small"))
    assert missing.value.message == "VM 'web': the cloud has no flavor 'M1.Small'"
    assert missing.value.hint == "did you mean 'm1.small'?"


def test_a_clouds_image_on_a_libvirt_host_is_refused_before_anything_is_made(tmp_path):
    from labctl.usecases.bringup import refuse_cloud_images_off_cloud

    (tmp_path / "named.yaml").write_text(NAMED)
    lab = load_lab(tmp_path / "named.yaml")

    class LibvirtHost:
        uri = "qemu:///system"

    with pytest.raises(LabctlError) as refused:
        refuse_cloud_images_off_cloud(lab, LibvirtHost())
    assert refused.value.message == ("VM 'web' uses 'Debian 12 (uni)', an image of an "
                                     "OpenStack cloud, but runs on qemu:///system")

    class CloudHost:
        uri = "openstack:uni"

    refuse_cloud_images_off_cloud(lab, CloudHost())


def test_a_class_over_quota_is_refused_with_the_numbers():
    quotas = [records.Quota("instances", 2, 10), records.Quota("floating IPs", 1, 3),
              records.Quota("RAM (MiB)", 1536, -1)]
    records.refuse_over_quota(quotas, 3, "uni")  # fits
    with pytest.raises(LabctlError) as refused:
        records.refuse_over_quota(quotas, 30, "uni")
    assert refused.value.message == (
        "30 copies do not fit in the quotas of cloud 'uni' (instances: 60 needed, 10 left; "
        "floating IPs: 30 needed, 3 left): 3 would")
    assert "--copies 3" in refused.value.hint


def test_labctls_own_image_gets_the_seed_files_byte_for_byte(tmp_path):
    files = {"meta-data": "instance-id: x-1\n",
             "labctl-firstboot.sh": "echo 'quotes' \"and\" $HOME `x`\nLABCTL_SEED_END\n",
             "user-data": "#cloud-config\nno newline at the end"}
    script = tmp_path / "user_data"
    script.write_text(_firstboot(files))
    subprocess.run(["sh", "-eu", str(script), str(tmp_path / "seed")], check=True)
    for name, text in files.items():
        want = text if text.endswith("\n") else text + "\n"
        assert (tmp_path / "seed" / name).read_text() == want


def test_a_cloud_that_does_not_answer_is_one_line(tmp_path, monkeypatch):
    from labctl.cloud.connection import CloudFailed, connect

    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  closed:\n    auth: {auth_url: 'http://127.0.0.1:9/v3', username: u,\n"
        "           password: p, project_name: x, user_domain_name: Default,\n"
        "           project_domain_name: Default}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
    with pytest.raises(CloudFailed) as failed:
        connect("closed")
    assert failed.value.message == ("cannot open cloud 'closed': cloud 'closed' does not answer "
                                    "(connection refused at http://127.0.0.1:9)")
    with pytest.raises(CloudFailed, match="cannot open cloud 'nowhere'") as missing:
        connect("nowhere")
    assert "clouds.yaml" in missing.value.hint and "\n" not in missing.value.message


def test_a_librarys_warning_goes_to_the_debug_log_not_above_the_error(tmp_path):
    """keystoneauth warns "Failed to discover available identity versions"
    before it fails: with no logging set up, Python printed that line above
    labctl's error. The screen keeps the error and its hint; the log keeps the rest."""
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  closed:\n    auth: {auth_url: 'http://127.0.0.1:9/v3', username: u,\n"
        "           password: p, project_name: x, user_domain_name: Default,\n"
        "           project_domain_name: Default}\n")
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml"),
           "LABCTL_DATA_DIR": str(tmp_path / "data")}
    ran = subprocess.run([sys.executable, "-m", "labctl", "gc", "--dry-run", "--uri",
                          "openstack:closed"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        "error: cannot open cloud 'closed': cloud 'closed' does not answer "
        "(connection refused at http://127.0.0.1:9)",
        "  hint: is its identity service (keystone) up and its auth_url right?"]
    logged = (tmp_path / "data" / "logs" / "debug.log").read_text()
    assert "keystoneauth" in logged and "Failed to discover" in logged


def test_a_servers_fixed_and_floating_addresses():
    from types import SimpleNamespace

    from labctl.cloud.access import addresses, jump_argv

    server = SimpleNamespace(addresses={
        "lab.front": [{"addr": "10.0.2.5", "version": 4, "OS-EXT-IPS:type": "fixed"},
                      {"addr": "fd00::5", "version": 6, "OS-EXT-IPS:type": "fixed"},
                      {"addr": "198.51.100.150", "version": 4, "OS-EXT-IPS:type": "floating"}],
        "lab.back": [{"addr": "10.0.3.7", "version": 4, "OS-EXT-IPS:type": "fixed"}]})
    assert addresses(server) == ({"lab.front": "10.0.2.5", "lab.back": "10.0.3.7"},
                                 "198.51.100.150")
    assert addresses(SimpleNamespace(addresses=None)) == ({}, None)
    argv = jump_argv("/k", "labctl", "198.51.100.150", "10.0.3.7")
    assert argv[-1] == "labctl@198.51.100.150" and "10.0.3.7:22" in argv
    assert argv[argv.index("--") - 1] == "10.0.3.7:22"  # nothing after -- but the jump


def test_a_base_image_is_never_a_snapshot_that_inherited_its_digest():
    """Nova copies the base image's properties into a server snapshot,
    labctl_sha256 included: found by digest, the snapshot (min_disk of the
    server's flavor) booted the next lab's VMs and broke the smallest flavor."""
    from types import SimpleNamespace

    from labctl.cloud.images import _find

    digest = {"labctl_sha256": "ab" * 32}
    snapshot = SimpleNamespace(name="lab.web@before", status="active", image_type="snapshot",
                               properties={**digest, "labctl_server": "lab.web"})
    base = SimpleNamespace(name="labctl-debian-12", status="active", properties=dict(digest))
    conn = SimpleNamespace(image=SimpleNamespace(images=lambda **_: [snapshot, base]))
    assert _find(conn, **digest) is base
    conn = SimpleNamespace(image=SimpleNamespace(images=lambda **_: [snapshot]))
    assert _find(conn, **digest) is None


def test_a_server_still_building_has_no_console_yet_not_an_error():
    """Nova answers 404 for the console of a server still in BUILD (no
    instance on a hypervisor yet): `bench` polls from the moment the server
    exists, so that is an empty console, not a failure."""
    from types import SimpleNamespace

    from openstack.exceptions import NotFoundException

    from labctl.cloud.project import Cloud

    def console(server, length):
        if server.status == "BUILD":
            raise NotFoundException("404: Instance could not be found.")
        return {"output": "Welcome to Debian\n"}

    cloud = Cloud.__new__(Cloud)
    cloud.cloud_name, server = "c", SimpleNamespace(status="BUILD")
    cloud.conn = SimpleNamespace(compute=SimpleNamespace(
        find_server=lambda name, ignore_missing: server, get_server_console_output=console))
    assert cloud.serial_tail("lab.vm", 10) == ""
    server.status = "ACTIVE"
    assert cloud.serial_tail("lab.vm", 10) == "Welcome to Debian\n"


def test_the_console_reader_finds_the_server_once_and_asks_nova_once_a_second(monkeypatch):
    """bench polls the reader every 10 ms; each real ask is Nova's work while
    the VM it measures boots."""
    from types import SimpleNamespace

    from labctl.cloud import project
    from labctl.cloud.project import Cloud

    clock, finds, asks = [100.0], [], []
    monkeypatch.setattr(project.time, "monotonic", lambda: clock[0])
    output = ["", "[ 0.0] Linux\n", "[ 0.0] Linux\nWelcome to Debian\n"]

    def console(server, length):
        asks.append(server)
        return {"output": output[min(len(asks) - 1, 2)]}

    cloud = Cloud.__new__(Cloud)
    cloud.cloud_name = "c"
    cloud.conn = SimpleNamespace(compute=SimpleNamespace(
        find_server=lambda name, ignore_missing: finds.append(name) or "srv",
        get_server_console_output=console))
    read = cloud.serial_reader("lab.vm")
    got = []
    for _ in range(300):  # three seconds of polls every 10 ms
        got.append(read())
        clock[0] += 0.01
    assert finds == ["lab.vm"] and len(asks) == 3
    assert b"".join(got) == b"[ 0.0] Linux\nWelcome to Debian\n"
