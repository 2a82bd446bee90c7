"""Generated libvirt XML: golden files, and proven by libvirt's test driver
(define -> start -> destroy -> undefine) on a per-test host."""

from __future__ import annotations

import ipaddress
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from labctl.plan.layout import mac_address
from labctl.plan.records import BridgedNic, DhcpHost, DomainSpec, Meta, NetworkSpec, user_nic
from labctl.virt import metadata
from labctl.virt.domain import domain_xml
from labctl.virt.network import choose_subnet, network_xml

from .fixtures import DATA, GOLDEN

POOL = "/var/lib/libvirt/images/labctl"


def spec(domain_type: str) -> DomainSpec:
    return DomainSpec(
        name="course.docker-host", domain_type=domain_type, memory_mib=768, vcpus=2,
        disk=f"{POOL}/course.docker-host.qcow2", seed=f"{POOL}/course.docker-host.seed.iso",
        serial_log=f"{POOL}/course.docker-host.serial.log",
        metadata_xml=Meta("course", "vm", "docker-host", "0123456789abcdef", "0.1.0", "lab",
                          ssh_port=40022).to_xml(),
        kernel=f"{POOL}/base-debian-12-abc.vmlinuz", initrd=f"{POOL}/base-debian-12-abc.initrd",
        cmdline="root=/dev/vda rw console=ttyS0",
        bridged_nics=(BridgedNic("course.lan", "52:54:00:aa:bb:cc"),),
        user_nics=(user_nic(0, "52:54:00:11:22:33", ((40022, 22),), "10.0.9.0/24"),),
    )


@pytest.fixture
def conn(tmp_path: Path):
    node = tmp_path / "node.xml"
    shutil.copy(DATA / "test-driver-node.xml", node)
    connection = libvirt.open(f"test://{node}")
    yield connection
    connection.close()


@pytest.mark.parametrize("domain_type", ["qemu", "kvm"])
def test_domain_xml_golden(domain_type, golden):
    golden(GOLDEN / f"domain-{domain_type}.xml", domain_xml(spec(domain_type)))


def test_network_xml_golden(golden):
    net = NetworkSpec("course.lan", "nat", ipaddress.IPv4Network("10.213.7.0/24"),
                      Meta("course", "network", "lan", "feedface").to_xml(),
                      (DhcpHost("52:54:00:aa:bb:cc", "db", "10.213.7.10"),))
    golden(GOLDEN / "network-nat.xml", network_xml(net))


def test_domain_lifecycle_on_test_driver(conn):
    dom = conn.defineXML(domain_xml(spec("qemu")))
    dom.create()
    assert dom.isActive()
    found = metadata.from_xml(dom.XMLDesc(0))
    assert found == Meta("course", "vm", "docker-host", "0123456789abcdef", "0.1.0", "lab",
                         ssh_port=40022)
    dom.destroy()
    dom.undefine()
    assert conn.listAllDomains(0) == []


def test_network_lifecycle_on_test_driver(conn):
    net = NetworkSpec("course.lan", "isolated", ipaddress.IPv4Network("10.213.8.0/24"),
                      Meta("course", "network", "lan", "x").to_xml())
    created = conn.networkDefineXML(network_xml(net))
    created.create()
    assert metadata.from_xml(created.XMLDesc(0)).kind == "network"
    created.destroy()
    created.undefine()
    assert conn.listAllNetworks(0) == []


def test_metadata_round_trip_with_forwards():
    meta = Meta("lab", "vm", "web-1", "h", user="student", ssh_port=2222,
                forwards=((8080, 80), (5353, 53)))
    xml = f"<domain><name>x</name><metadata>{meta.to_xml()}</metadata></domain>"
    assert metadata.from_xml(xml) == meta
    assert metadata.from_xml("<domain><metadata/></domain>") is None


def test_mac_addresses_are_stable_and_distinct():
    assert mac_address("lab", "web", "lan") == mac_address("lab", "web", "lan")
    assert mac_address("lab", "web", "lan") != mac_address("lab", "web", "back")
    assert mac_address("a", "b", "c").startswith("52:54:00:")


def test_user_nic_forwards_only_to_loopback_and_is_sealed_on_request():
    sealed = user_nic(1, "52:54:00:00:00:01", ((2222, 22), (8000, 9000)), sealed=True)
    assert sealed.netdev == ("user,id=labctl1,restrict=on,hostfwd=tcp:127.0.0.2:2222-:22,"
                             "hostfwd=tcp:127.0.0.2:8000-:9000")
    assert sealed.device.endswith("bus=pcie.0,addr=0x11")
    open_ = user_nic(1, "52:54:00:00:00:01", ((2222, 22),))  # the default: internet
    # not 127.0.0.1: qemu maps a guest's connections to its host alias there
    assert open_.netdev == "user,id=labctl1,hostfwd=tcp:127.0.0.2:2222-:22"


def test_choose_subnet_avoids_taken_ranges():
    taken = [ipaddress.IPv4Network("10.213.0.0/23"), ipaddress.IPv4Network("10.213.2.128/25")]
    assert choose_subnet(taken) == ipaddress.IPv4Network("10.213.3.0/24")


def test_forwards_bind_where_the_host_is_reached_never_every_interface(monkeypatch):
    import socket

    from labctl.errors import LabctlError
    from labctl.virt.access import LOOPBACK, forward_bind

    assert forward_bind("qemu:///system") == LOOPBACK
    assert forward_bind("qemu+ssh://teacher@192.0.2.7/system") == "192.0.2.7"
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("198.51.100.7", 0))]
        if host == "lab2.example" else real(host, *a))
    assert forward_bind("qemu+ssh://teacher@lab2.example/system") == "198.51.100.7"
    with pytest.raises(LabctlError, match="cannot resolve 'no-such-host.invalid'"):
        forward_bind("qemu+ssh://teacher@no-such-host.invalid/system")


def test_a_template_vms_memory_file_goes_to_qemu_beside_libvirts_own_arguments(conn):
    """Kata's VM templating through libvirt 9.0 (virt/mapped.py): the RAM's
    file is qemu's, through <qemu:commandline>, after the forwarded ports'
    arguments, and a later -machine names it; mapping again replaces it."""
    from labctl.virt import mapped

    xml = domain_xml(spec("qemu"))
    shared = mapped.with_memory_file(xml, f"{POOL}/t.ram", 768, shared=True)
    assert mapped.memory_file(shared) == (f"{POOL}/t.ram", True)
    private = mapped.with_memory_file(shared, f"{POOL}/course.docker-host.ram", 768, False)
    assert mapped.memory_file(private) == (f"{POOL}/course.docker-host.ram", False)
    values = [a.get("value") for a in ET.fromstring(private).iter(f"{{{mapped.QEMU_NS}}}arg")]
    assert values.count("-object") == 1 and values[-2:] == ["-machine",
                                                           "memory-backend=labctl.ram"]
    assert '"size":805306368' in values[-3] and '"share":false' in values[-3]
    assert values[:len(values) - 4] == [a.get("value") for a in ET.fromstring(xml).iter(
        f"{{{mapped.QEMU_NS}}}arg")]  # the ports' own arguments untouched
    assert mapped.memory_file(xml) is None
    conn.defineXML(private)  # libvirt takes it


def test_no_memory_file_where_a_security_driver_would_refuse_it_to_qemu():
    from labctl.virt import mapped

    def caps(*models: str, label: str = "+64055:+64055") -> str:
        secmodels = "".join(f"<secmodel><model>{m}</model><doi>0</doi>"
                            + (f"<baselabel type='qemu'>{label}</baselabel>" if m == "dac"
                               else "") + "</secmodel>" for m in models)
        return f"<capabilities><host>{secmodels}</host></capabilities>"

    assert mapped.qemu_owner(caps("none", "dac"), "qemu") == (64055, 64055)
    assert mapped.qemu_owner(caps("apparmor", "dac"), "qemu") is None
    assert mapped.qemu_owner(caps("selinux", "dac"), "kvm") is None
    assert mapped.qemu_owner(caps("none"), "qemu") == (0, 0)  # qemu as libvirtd's user


def test_a_vms_unchanged_pages_of_the_memory_file_are_not_its_own(tmp_path):
    """Admission charges a restored VM what it holds of its own: the pages of
    the template's file it maps unchanged are one copy for every VM."""
    import mmap
    import os

    from labctl.virt import mapped

    ram = tmp_path / "lab.vm.ram"
    ram.write_bytes(os.urandom(8 << 20))
    (tmp_path / "lab.vm.pid").write_text(f"{os.getpid()}\n")
    with ram.open("rb") as fh:
        view = mmap.mmap(fh.fileno(), 8 << 20, flags=mmap.MAP_PRIVATE,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        assert sum(view[i] for i in range(0, 8 << 20, 4096)) >= 0  # every page read
        assert mapped.file_pages_mib("lab.vm", str(tmp_path)) == 8
        view[: 4 << 20] = bytes(4 << 20)  # half of it written: the VM's own now
        assert mapped.file_pages_mib("lab.vm", str(tmp_path)) == 4
        assert mapped.file_pages_mib("other.vm", str(tmp_path)) == 0  # no pid file
    finally:
        view.close()
