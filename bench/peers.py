"""labctl against its peers, side by side in one run: the same image (its
kernel, disk and a NoCloud seed of labctl's, 1 vCPU, 512 MiB) brought to an
authenticated SSH command on every VM by labctl (cold, and restored from a
template), vagrant + vagrant-libvirt, virt-install and plain qemu, for 1 VM
and for 3, tools alternating round by round; then the teardown. Prints medians
and each tool's ratio to plain qemu and to labctl (cold).

    scripts/libvirtd-netns start
    scripts/libvirtd-netns exec .venv/bin/python bench/peers.py [--rounds 2] [--sizes 1 3]
    .venv/bin/python bench/peers.py --dry-run     # what is installed, what would run

Everything runs inside the test namespace: vagrant-libvirt talks to the
namespaced libvirtd (whose /dev/kvm is hidden, as for labctl: no tool pays
libvirt's ~75 s KVM probe), forwards bind 127.0.0.1 there. Not a test: it
prints measurements and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from peer_tools import PlainQemu, Vagrant, VirtInstall

from labctl.datadir import default_data_dir
from labctl.images.cache import Image, ImageCache
from labctl.lab.loader import load_lab
from labctl.usecases.lab import down, up
from labctl.usecases.session import Session, Settings
from labctl.virt.connection import DEFAULT_URI

LAB = """name: peers
vms:
  - name: node
    image: {image}
    memory: 512M
    vcpus: 1
    count: {n}
"""


class Labctl:
    def __init__(self, settings: Settings, workdir: Path, cold: bool):
        self.name = "labctl cold" if cold else "labctl restored"
        self.settings = Settings(settings.uri, settings.data_dir, cold=cold)
        self.workdir = workdir

    def installed(self) -> str | None:
        return None

    def describe(self, n: int) -> str:
        return f"labctl up{' --cold' if self.settings.cold else ''} (a lab of {n} VM(s))"

    def up(self, n: int, image) -> None:
        lab_file = self.workdir / f"peers-{n}.yaml"
        lab_file.write_text(LAB.format(image=image.name, n=n))
        up(Session(self.settings), load_lab(lab_file))  # returns once SSH answers

    def down(self, n: int) -> None:
        down(Session(self.settings), "peers")


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        said = (exc.stderr or exc.stdout or b"")
        said = said.decode(errors="replace") if isinstance(said, bytes) else said
        lines = [line.strip() for line in said.strip().splitlines()
                 if line.strip() and not line.lstrip().startswith("from ")]  # not a backtrace
        return f"{' '.join(map(str, exc.cmd[:2]))}: {lines[0] if lines else exc.returncode}"
    return str(exc)


def readable_copy(image: Image, workdir: Path) -> Image:
    copy = workdir / "image"
    copy.mkdir()
    for item in image.directory.iterdir():
        shutil.copy2(item, copy / item.name)
    return Image(image.name, copy, image.manifest)


def timed(fn: Callable[[], None]) -> float:
    began = time.monotonic()
    fn()
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--image", default="debian-12")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--tools", nargs="+", metavar="NAME",
                        help="only these (e.g. 'plain qemu' virt-install)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("LABCTL_DATA_DIR") or default_data_dir()))
    args = parser.parse_args()
    settings = Settings(DEFAULT_URI, args.data_dir)
    image = ImageCache(args.data_dir / "images").get(args.image)
    workdir = Path(tempfile.mkdtemp(prefix="labctl-peers-"))
    workdir.chmod(0o755)  # libvirt's qemu user reads the disks the peers put here
    # The peers' VMs run as libvirt's qemu user, which cannot read labctl's image
    # cache (0700): they boot a copy in the work dir (labctl uses its own cache).
    theirs = image if args.dry_run else readable_copy(image, workdir)
    tools = [Labctl(settings, workdir, cold=True), Labctl(settings, workdir, cold=False),
             Vagrant(workdir, theirs), VirtInstall(workdir, theirs), PlainQemu(workdir, theirs)]
    if args.tools:
        tools = [t for t in tools if t.name in args.tools]
    if args.dry_run:
        for tool in tools:
            missing = tool.installed()
            print(f"{tool.name:<16} {'MISSING: ' + missing if missing else 'installed'}")
            for n in args.sizes:
                print(f"    {n} VM(s): {tool.describe(n)}")
        shutil.rmtree(workdir, ignore_errors=True)
        return
    ready = [t for t in tools if t.installed() is None]
    for tool in tools:
        if tool not in ready:
            print(f"skipping {tool.name}: {tool.installed()}")
    up_times: dict[tuple[str, int], list[float]] = {}
    down_times: dict[tuple[str, int], list[float]] = {}
    try:
        # Not measured: labctl's template, vagrant's box, each tool's first read of the image.
        for tool in list(ready):
            try:
                tool.up(1, image)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"leaving out {tool.name}: its first up failed: {describe_failure(exc)}")
                ready.remove(tool)
            tool.down(1)
        for r in range(args.rounds):
            for n in args.sizes:
                order = ready if r % 2 == 0 else ready[::-1]  # alternate: drift hits all alike
                for tool in order:
                    up_s = timed(lambda t=tool, n=n: t.up(n, image))
                    down_s = timed(lambda t=tool, n=n: t.down(n))
                    up_times.setdefault((tool.name, n), []).append(up_s)
                    down_times.setdefault((tool.name, n), []).append(down_s)
                    print(f"round {r + 1}, {n} VM(s), {tool.name}: up {up_s:.1f} s, "
                          f"down {down_s:.1f} s", flush=True)
    finally:
        for tool in tools:  # the ones left out too: a failed first up may leave things
            for n in args.sizes:
                try:
                    tool.down(n)
                except Exception as exc:  # noqa: BLE001 - report and go on cleaning
                    print(f"cleanup of {tool.name}: {exc}")
            if hasattr(tool, "cleanup"):
                tool.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    report(up_times, down_times, args.sizes, [t.name for t in ready], args.rounds)


def report(up_times, down_times, sizes, names, rounds) -> None:
    facts = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    print(f"\nto an authenticated SSH command on every VM (median of {rounds}; kernel {facts})")
    print(f"{'tool':<16}{'VMs':>4}{'up (s)':>9}{'min-max':>14}{'x qemu':>8}{'x labctl':>9}"
          f"{'down (s)':>9}{'s/VM':>6}")
    for n in sizes:
        qemu = statistics.median(up_times.get(("plain qemu", n), [float("nan")]))
        cold = statistics.median(up_times.get(("labctl cold", n), [float("nan")]))
        for name in names:
            ups, downs = up_times[(name, n)], down_times[(name, n)]
            med, down_med = statistics.median(ups), statistics.median(downs)
            print(f"{name:<16}{n:>4}{med:>9.1f}{f'{min(ups):.1f}-{max(ups):.1f}':>14}"
                  f"{med / qemu:>8.2f}{med / cold:>9.2f}{down_med:>9.1f}{down_med / n:>6.1f}")


if __name__ == "__main__":
    main()
