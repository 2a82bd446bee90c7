"""What a command costs a student: `labctl --help` on its own, and
`labctl exec VM -- true` against plain OpenSSH with labctl's own ssh_config
(`ssh -F CONFIG VM true`), alternating in one run. Targets: --help at most
0.35 s; exec at most 1.2x plain ssh.

    scripts/libvirtd-netns start
    scripts/libvirtd-netns exec .venv/bin/python bench/cli_speed.py --repeat 15

Brings up examples/hello.yaml (or --lab) unless it is up, and takes it down
again unless --keep. Every connection goes to 127.0.0.1 inside the test
namespace. Not a test: it prints measurements and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABCTL = [str(Path(sys.executable).with_name("labctl"))]  # the console script people run


def timed(argv: list[str]) -> float:
    began = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--lab", type=Path, default=ROOT / "examples" / "hello.yaml")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args()

    helps = [timed([*LABCTL, "--help"]) for _ in range(args.repeat)]
    up = json.loads(subprocess.run([*LABCTL, "--json", "up", str(args.lab)], check=True,
                                   capture_output=True, text=True).stdout)
    try:
        lab, vm, domain = up["lab"], up["vms"][0]["name"], up["vms"][0]["domain"]
        config_path = up["ssh_config"]
        plain, labctl = [], []
        for _ in range(args.repeat):  # alternate, so drift hits both alike
            plain.append(timed(["ssh", "-F", config_path, domain, "true"]))
            labctl.append(timed([*LABCTL, "exec", f"{lab}.{vm}", "--", "true"]))
    finally:
        if not args.keep:
            subprocess.run([*LABCTL, "down", str(args.lab)], stdout=subprocess.DEVNULL)

    def show(what: str, values: list[float]) -> float:
        median = statistics.median(values)
        print(f"{what:<34} median {median:6.3f} s  (min {min(values):.3f}, "
              f"max {max(values):.3f}, n={len(values)})")
        return median

    print(f"labctl CLI speed, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores")
    help_median = show("labctl --help", helps)
    ssh_median = show("ssh -F <labctl ssh_config> VM true", plain)
    exec_median = show("labctl exec VM -- true", labctl)
    print(f"--help: {help_median:.3f} s (target <= 0.35 s)")
    print(f"exec / plain ssh: {exec_median / ssh_median:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
