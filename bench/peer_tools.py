"""The peers bench/peers.py runs: each brings N VMs of one labctl image (its
kernel, disk, and a NoCloud seed per VM) up until every VM answers an
authenticated SSH command, and takes them down again. Every VM gets 1 vCPU,
512 MiB, q35 and the same TCG translation cache as labctl's."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import paramiko

from labctl.images.seed import render_seed, seed_iso
from labctl.plan.records import TB_CACHE_MIB, SeedSpec
from labctl.ssh.keys import KeyPair, generate
from labctl.virt.connection import DEFAULT_URI, probe_local_kvm
from labctl.virt.ports import free_local_port

USER = "lab"



def accel_arg() -> str:
    return "kvm" if probe_local_kvm().is_kvm else f"tcg,tb-size={TB_CACHE_MIB}"


def write_seed(path: Path, name: str, login: KeyPair) -> Path:
    host = generate(f"{name}-host")
    path.write_bytes(seed_iso(render_seed(SeedSpec(
        f"{name}-{time.time()}", name, USER, login.public, host.private, host.public))))
    return path


def overlay(path: Path, image) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(image.disk), str(path), "4G"], check=True)
    return path


def ssh_true(host: str, port: int, private: str, limit: float = 600) -> None:
    """Until an authenticated `true` succeeds (the same criterion for every tool)."""
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(private))
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.settimeout(10)
                if sock.recv(4, socket.MSG_PEEK) != b"SSH-":
                    raise OSError("no banner yet")
                transport = paramiko.Transport(sock)
                transport.start_client(timeout=30)
                transport.auth_publickey(USER, key)
                channel = transport.open_session()
                channel.exec_command("true")
                status = channel.recv_exit_status()
                transport.close()
                if status == 0:
                    return
        except (OSError, paramiko.SSHException, EOFError):
            time.sleep(0.05)
    raise RuntimeError(f"{host}:{port} did not answer SSH within {limit:.0f} s")


def wait_all(endpoints: list[tuple[str, int]], private: str) -> None:
    errors: list[BaseException] = []

    def one(host: str, port: int) -> None:
        try:
            ssh_true(host, port, private)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=e) for e in endpoints]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def user_nic(port: int) -> list[str]:
    return ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=n0,bus=pcie.0,addr=0x10"]


class _DiskPeer:
    """A peer that boots each VM from an overlay of the image and a seed of its
    own, one command per VM (`launch`), then waits for every VM's SSH."""

    dir: Path
    login: KeyPair
    image: object  # the image copy the peer boots (not labctl's cache)

    def argv(self, i: int, port: int) -> list[str]:
        raise NotImplementedError

    def launch(self, i: int, port: int) -> None:
        raise NotImplementedError

    def describe(self, n: int) -> str:
        return f"{n} x " + " ".join(self.argv(1, 2222))

    def up(self, n: int, _labctls_image=None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = []
        for i in range(1, n + 1):
            overlay(self.dir / f"node{i}.qcow2", self.image)
            write_seed(self.dir / f"seed{i}.iso", f"node{i}", self.login)
            ports.append(free_local_port())
            self.launch(i, ports[-1])
        wait_all([("127.0.0.1", p) for p in ports], self.login.private)


class PlainQemu(_DiskPeer):
    name = "plain qemu"

    def __init__(self, workdir: Path, image):
        self.dir, self.image, self.procs = workdir / "qemu", image, []
        self.login = generate("peers-qemu")

    def installed(self) -> str | None:
        return None if shutil.which("qemu-system-x86_64") else "qemu-system-x86_64 not found"

    def argv(self, i: int, port: int) -> list[str]:
        return ["qemu-system-x86_64", "-machine", "q35", "-accel", accel_arg(), "-m", "512",
                "-smp", "1", "-nodefaults", "-display", "none",
                "-serial", f"file:{self.dir / f'serial-{i}.log'}",
                "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
                "-append", self.image.cmdline,
                "-drive", f"file={self.dir / f'node{i}.qcow2'},if=virtio,format=qcow2",
                "-drive", f"file={self.dir / f'seed{i}.iso'},if=virtio,format=raw,readonly=on",
                *user_nic(port), "-device", "virtio-rng-pci"]

    def launch(self, i: int, port: int) -> None:
        self.procs.append(subprocess.Popen(self.argv(i, port), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))

    def down(self, n: int) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


class VirtInstall(_DiskPeer):
    name = "virt-install"

    def __init__(self, workdir: Path, image):
        self.dir, self.image = workdir / "virtinst", image
        self.login = generate("peers-virtinst")

    def installed(self) -> str | None:
        return None if shutil.which("virt-install") else "virt-install not found (virtinst)"

    def argv(self, i: int, port: int) -> list[str]:
        image = self.image
        return ["virt-install", "--connect", DEFAULT_URI, "--name", f"peers-virtinst-{i}",
                "--virt-type", "kvm" if probe_local_kvm().is_kvm else "qemu",
                "--machine", "q35", "--memory", "512", "--vcpus", "1", "--import",
                "--osinfo", "detect=on,require=off",
                "--disk", f"path={self.dir / f'node{i}.qcow2'},bus=virtio,format=qcow2",
                "--disk", f"path={self.dir / f'seed{i}.iso'},bus=virtio,format=raw,readonly=on",
                # quoted: the command line has spaces (and may have commas)
                "--boot", f"kernel={image.kernel},initrd={image.initrd},"
                          f'kernel_args="{image.cmdline}"',
                "--network", "none", "--graphics", "none", "--noautoconsole",
                "--serial", f"file,path={self.dir / f'serial-{i}.log'}",
                # joined with '=': a value starting with '-' is an option to argparse
                f"--qemu-commandline={' '.join(user_nic(port))}"]

    def launch(self, i: int, port: int) -> None:
        subprocess.run(self.argv(i, port), check=True, capture_output=True)

    def down(self, n: int) -> None:
        for i in range(1, n + 1):
            name = f"peers-virtinst-{i}"
            subprocess.run(["virsh", "-c", DEFAULT_URI, "destroy", name], capture_output=True)
            subprocess.run(["virsh", "-c", DEFAULT_URI, "undefine", name], capture_output=True)
        # virt-install made a storage pool of the disks' directory (named after it)
        for verb in ("pool-destroy", "pool-undefine"):
            subprocess.run(["virsh", "-c", DEFAULT_URI, verb, self.dir.name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


VAGRANTFILE = """Vagrant.configure("2") do |config|
  config.vm.box = "labctl-peers"
  config.vm.box_check_update = false
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.username = "{user}"
  config.ssh.private_key_path = "{key}"
  config.ssh.insert_key = false
  (1..{n}).each do |i|
    config.vm.define "node#{{i}}" do |node|
      node.vm.provider :libvirt do |lv|
        lv.uri = "{uri}"
        lv.driver = "{driver}"
        lv.machine_type = "q35"
        lv.memory = 512
        lv.cpus = 1
        lv.graphics_type = "none"
        lv.video_type = "none"
        lv.storage_pool_name = "labctl-peers"
        lv.kernel = "{kernel}"
        lv.initrd = "{initrd}"
        lv.cmd_line = "{cmdline}"
        lv.storage :file, path: "peers-seed#{{i}}.iso", device: "vdb", type: "raw",
                   bus: "virtio", allow_existing: true
      end
    end
  end
end
"""


class Vagrant:
    """vagrant up with vagrant-libvirt: a box made of the image's disk, its
    kernel booted directly (as labctl does), the seed as a second disk, SSH
    over vagrant-libvirt's own management network."""

    name = "vagrant-libvirt"

    def __init__(self, workdir: Path, image):
        self.dir, self.image = workdir / "vagrant", image
        self.pool = workdir / "vagrant-pool"
        self.login = generate("peers-vagrant")
        self.env = {"VAGRANT_HOME": str(workdir / "vagrant-home"),
                    "VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_DEFAULT_PROVIDER": "libvirt",
                    "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        self.box_added = False

    def installed(self) -> str | None:
        if not shutil.which("vagrant"):
            return "vagrant not found"
        plugins = subprocess.run(["vagrant", "plugin", "list"], capture_output=True,
                                 text=True, env=self.env).stdout
        return None if "vagrant-libvirt" in plugins else "the vagrant-libvirt plugin is missing"

    def describe(self, n: int) -> str:
        return (f"vagrant up --provider=libvirt ({n} machine(s), box from {self.image.disk}, "
                "kernel boot, seed on vdb), SSH via vagrant-libvirt's management network")

    def _vagrant(self, *args: str) -> None:
        subprocess.run(["vagrant", *args], cwd=self.dir, env=self.env, check=True,
                       capture_output=True)

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pool.mkdir(parents=True, exist_ok=True)
        virsh = ["virsh", "-c", DEFAULT_URI]
        if subprocess.run([*virsh, "pool-info", "labctl-peers"], capture_output=True).returncode:
            subprocess.run([*virsh, "pool-create-as", "labctl-peers", "dir", "--target",
                            str(self.pool)], check=True, capture_output=True)
        if not self.box_added:  # not measured: a box is made once
            box = self.dir.parent / "labctl-peers.box"
            with tarfile.open(box, "w") as tar:
                meta = json.dumps({"provider": "libvirt", "format": "qcow2",
                                   "virtual_size": 4}).encode()
                info = tarfile.TarInfo("metadata.json")
                info.size = len(meta)
                tar.addfile(info, io.BytesIO(meta))
                tar.add(self.image.disk, arcname="box.img")
            self._vagrant("box", "add", "--force", "--name", "labctl-peers", str(box))
            box.unlink()
            self.box_added = True

    def up(self, n: int, _labctls_image=None) -> None:
        self._prepare()
        key = self.dir / "id_ed25519"
        key.write_text(self.login.private)
        key.chmod(0o600)
        for i in range(1, n + 1):
            write_seed(self.pool / f"peers-seed{i}.iso", f"node{i}", self.login)
        subprocess.run(["virsh", "-c", DEFAULT_URI, "pool-refresh", "labctl-peers"],
                       check=True, capture_output=True)
        (self.dir / "Vagrantfile").write_text(VAGRANTFILE.format(
            user=USER, key=key, n=n, uri=DEFAULT_URI,
            driver="kvm" if probe_local_kvm().is_kvm else "qemu", kernel=self.image.kernel,
            initrd=self.image.initrd, cmdline=self.image.cmdline))
        self._vagrant("up", "--provider=libvirt")  # returns once vagrant's SSH works
        config = subprocess.run(["vagrant", "ssh-config"], cwd=self.dir, env=self.env,
                                check=True, capture_output=True, text=True).stdout
        endpoints, host = [], None
        for line in config.splitlines():
            words = line.split()
            if words[:1] == ["HostName"]:
                host = words[1]
            elif words[:1] == ["Port"] and host:
                endpoints.append((host, int(words[1])))
        wait_all(endpoints, self.login.private)

    def cleanup(self) -> None:
        """What vagrant-libvirt made besides the machines: its management
        network and the pool its box and disks lived in."""
        virsh = ["virsh", "-c", DEFAULT_URI]
        for command in (["net-destroy", "vagrant-libvirt"], ["net-undefine", "vagrant-libvirt"],
                        ["pool-destroy", "labctl-peers"]):
            subprocess.run([*virsh, *command], capture_output=True)

    def down(self, n: int) -> None:
        if (self.dir / "Vagrantfile").exists():
            subprocess.run(["vagrant", "destroy", "-f"], cwd=self.dir, env=self.env,
                           capture_output=True)
        for seed in self.pool.glob("peers-seed*.iso"):
            seed.unlink()
