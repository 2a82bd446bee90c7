"""Time to SSH-ready: a VM brought up by `labctl up` versus the same image
booted by hand with plain qemu (same kernel, disk, seed, memory, TCG cache),
alternating in one run. labctl's overhead is libvirt, planning and its staged
readiness wait; the target is a ratio of at most 1.2.

    scripts/libvirtd-netns start
    scripts/libvirtd-netns exec .venv/bin/python bench/boot_vs_plain.py --repeat 3

Runs inside the test namespace: every connection goes to 127.0.0.1 there.
Not a test: it prints measurements and asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paramiko

from labctl.datadir import default_data_dir
from labctl.images.cache import ImageCache
from labctl.images.seed import render_seed, seed_iso
from labctl.lab.loader import load_lab
from labctl.plan.records import TB_CACHE_MIB, SeedSpec
from labctl.ssh.keys import generate
from labctl.usecases.lab import down, up
from labctl.usecases.session import Session, Settings
from labctl.virt.connection import DEFAULT_URI, probe_local_kvm
from labctl.virt.ports import free_local_port

LAB = """name: benchboot
vms:
  - name: node
    image: {image}
    memory: 512M
"""


def labctl_boot(settings: Settings, lab_file: Path) -> tuple[float, float]:
    """(start -> SSH ready, the whole `up` including plan, volumes, seed, define)."""
    lab = load_lab(lab_file)
    down(Session(settings), lab.name)
    try:
        began = time.monotonic()
        result = up(Session(settings), lab)
        return result.vms[0].readiness.stages["auth"], time.monotonic() - began
    finally:
        down(Session(settings), lab.name)



def plain_boot(image, accel: str, workdir: Path) -> float:
    """qemu-system-x86_64 by hand; ready = an authenticated `true` over SSH."""
    login, host = generate("bench"), generate("bench-host")
    overlay, seed, serial = workdir / "plain.qcow2", workdir / "seed.iso", workdir / "serial.log"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(image.disk), str(overlay), "4G"], check=True)
    seed.write_bytes(seed_iso(render_seed(SeedSpec(
        f"plain-{time.time()}", "node", "lab", login.public, host.private, host.public))))
    port = free_local_port()
    accel_arg = "kvm" if accel == "kvm" else f"tcg,tb-size={TB_CACHE_MIB}"
    argv = ["qemu-system-x86_64", "-machine", "q35", "-accel", accel_arg, "-m", "512",
            "-smp", "1", "-nodefaults", "-display", "none", "-serial", f"file:{serial}",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", image.cmdline,
            "-drive", f"file={overlay},if=virtio,format=qcow2",
            "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
            "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci"]
    start = time.monotonic()
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(login.private))
    try:
        while time.monotonic() - start < 300:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.settimeout(10)
                    if sock.recv(4, socket.MSG_PEEK) != b"SSH-":
                        raise OSError("no banner yet")
                    transport = paramiko.Transport(sock)
                    transport.start_client(timeout=30)
                    transport.auth_publickey("lab", key)
                    channel = transport.open_session()
                    channel.exec_command("true")
                    channel.recv_exit_status()
                    transport.close()
                    return time.monotonic() - start
            except (OSError, paramiko.SSHException, EOFError):
                time.sleep(0.05)
        raise RuntimeError("plain qemu guest did not answer SSH within 300 s")
    finally:
        qemu.kill()
        qemu.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image", default="debian-12")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("LABCTL_DATA_DIR") or default_data_dir()))
    args = parser.parse_args()
    settings = Settings(DEFAULT_URI, args.data_dir, cold=True)  # a boot against a boot
    image = ImageCache(args.data_dir / "images").get(args.image)
    accel = probe_local_kvm().domain_type
    times: dict[str, list[float]] = {"labctl up": [], "plain qemu": [], "whole up": []}
    with tempfile.TemporaryDirectory() as tmp:
        lab_file = Path(tmp) / "benchboot.yaml"
        lab_file.write_text(LAB.format(image=args.image))
        for i in range(args.repeat):  # alternate, so drift hits both alike
            ready, whole = labctl_boot(settings, lab_file)
            times["labctl up"].append(ready)
            times["whole up"].append(whole)
            times["plain qemu"].append(plain_boot(image, accel, Path(tmp)))
            print(f"round {i + 1}: labctl {times['labctl up'][-1]:.1f} s, "
                  f"plain qemu {times['plain qemu'][-1]:.1f} s", flush=True)
    print(f"\ntime from start to an authenticated SSH command ({accel}, image {image.name} "
          f"{image.sha256[:12]}, {args.repeat} rounds)")
    print(f"{'':<12}{'min':>8}{'median':>8}{'max':>8}")
    for name, values in times.items():
        print(f"{name:<12}{min(values):>7.1f}s{statistics.median(values):>7.1f}s"
              f"{max(values):>7.1f}s")
    plain = statistics.median(times["plain qemu"])
    for name in ("labctl up", "whole up"):
        ratio = statistics.median(times[name]) / plain
        verdict = "within" if ratio <= 1.2 else "OVER"
        print(f"ratio {name} / plain qemu (medians): {ratio:.2f}  ({verdict} the 1.2 target)")
    print("labctl up: from starting the domain; whole up: the command, from plan to SSH")


if __name__ == "__main__":
    main()
