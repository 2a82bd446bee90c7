"""Keys, the lab's OpenSSH files, and the KVM probe: local, no VM needed."""

from __future__ import annotations

import stat
from pathlib import Path

from labctl.labfiles import LabFiles, SshEntry
from labctl.ssh.keys import generate, load_or_create
from labctl.virt.connection import is_local, probe_local_kvm

from .fixtures import GOLDEN


def test_private_keys_are_0600_and_never_in_repr(tmp_path: Path):
    pair = load_or_create(tmp_path / "keys" / "id_ed25519", "me")
    mode = stat.S_IMODE((tmp_path / "keys" / "id_ed25519").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert pair.public.startswith("ssh-ed25519 ") and pair.public.endswith(" me")
    assert "PRIVATE" not in repr(pair)
    assert load_or_create(tmp_path / "keys" / "id_ed25519", "me") == pair  # reused


def test_ssh_files_pin_keys_by_alias(tmp_path: Path, golden):
    files = LabFiles(tmp_path, "hello")
    host = files.host_key("hello.node")
    path = files.write_ssh_files([SshEntry("hello.node", "127.0.0.1", 40022, "lab")])
    text = path.read_text().replace(str(tmp_path), "DATA")
    golden(GOLDEN / "ssh_config", text)
    known = files.known_hosts_path.read_text()
    assert known == f"hello.node {' '.join(host.public.split()[:2])}\n"
    files.forget_host("hello.node")
    assert files.pinned_host_key("hello.node") is None
    assert files.remove() and not files.dir.exists()


def test_kvm_probe_needs_cpu_flags(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor: 0\nflags\t\t: fpu sse2 hypervisor\n")
    accel = probe_local_kvm(str(cpuinfo), str(tmp_path / "kvm"))
    assert accel.domain_type == "qemu" and "no vmx/svm" in accel.reason
    cpuinfo.write_text("flags: fpu vmx\n")
    accel = probe_local_kvm(str(cpuinfo), str(tmp_path / "no-such-kvm"))
    assert accel.domain_type == "qemu" and "No such file" in accel.reason


def test_local_and_remote_uris():
    assert is_local("qemu:///system") and is_local("qemu:///session")
    assert not is_local("qemu+ssh://root@host/system") and not is_local("qemu+tcp://h/system")


def test_generated_keys_differ():
    assert generate("a").public != generate("a").public


def test_concurrent_key_creation_agrees(tmp_path: Path):
    import threading

    results = []
    threads = [threading.Thread(target=lambda: results.append(
        load_or_create(tmp_path / "id_ed25519", "c"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({pair.private for pair in results}) == 1
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".*"))
