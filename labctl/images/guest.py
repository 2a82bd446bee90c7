"""What labctl reads inside a guest to know its first boot is over, and
whether it went wrong. Two kinds of image: those labctl built (a first-boot
unit runs the seed's extras and keeps a failure in /var/lib/labctl/failed) and
stock cloud images (cloud-init reports in /run/cloud-init/result.json, and
its modules' output is in /var/log/cloud-init-output.log)."""

from __future__ import annotations

from dataclasses import dataclass

# cloud-init writes boot-finished during its final stage and result.json (its
# errors) only when that stage ends: both, or a failure read in between is missed.
BOOT_FINISHED = ("test -e /run/labctl-boot-finished || { test -e /var/lib/cloud/instance/"
                 "boot-finished && test -e /run/cloud-init/result.json; }")

# Prints the failed step and the guest's last lines, and exits 1, if the first
# boot failed; prints nothing and exits 0 if it went well.
BOOT_FAILURE = r"""
if [ -s /var/lib/labctl/failed ]; then cat /var/lib/labctl/failed; exit 1; fi
if [ -s /run/cloud-init/result.json ] && command -v python3 >/dev/null; then
    python3 - <<'PY' || { tail -n 8 /var/log/cloud-init-output.log 2>/dev/null; exit 1; }
import json, sys
errors = json.load(open("/run/cloud-init/result.json"))["v1"].get("errors") or []
if errors:
    print("cloud-init: " + "; ".join(str(e) for e in errors))
    sys.exit(1)
PY
fi
exit 0
"""

# Both in one command (one process less per VM and start, under TCG ~0.2 s):
# NOT_FINISHED while the first boot runs, then BOOT_FAILURE's answer.
NOT_FINISHED = 3
BOOT_STATE = f"if ! {{ {BOOT_FINISHED}; }}; then exit {NOT_FINISHED}; fi\n{BOOT_FAILURE}"


@dataclass(frozen=True)
class BootFailure:
    step: str  # what failed: "packages: nginx", "runcmd 2: make", "cloud-init: ..."
    lines: tuple[str, ...]  # the guest's own last lines about it

    def message(self, vm: str) -> str:
        last = self.lines[-1] if self.lines else "no output"
        return f"VM '{vm}': {self.step} failed: {last}"

    def hint(self) -> str:
        shown = "\n".join(f"    | {line}" for line in self.lines[-8:]) or "    (no output)"
        return (f"the guest said:\n{shown}\n  fix the lab file (or what it needs): the next "
                "'labctl up' recreates this VM")


def parse_failure(output: str) -> BootFailure:
    lines = [line.rstrip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return BootFailure("first boot", ())
    return BootFailure(lines[0], tuple(lines[1:]))
