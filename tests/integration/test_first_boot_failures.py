"""A first boot that does not do what the lab file asks ends `up` with exit 1
naming the VM, the step and the guest's own last lines; the lab is left for
`up` to retry (the VM is recreated) or `down` to remove."""

from __future__ import annotations

from .conftest import LABS, error_lines, labctl, leftovers

FAILING = LABS / "failing.yaml"


def test_failed_packages_and_runcmd_end_up_loudly(settings, world):
    labctl("down", "itfail", check=False)
    try:
        result = labctl("up", str(FAILING), check=False)
        assert result.returncode == 1, result.stderr
        said = "\n".join(error_lines(result.stderr))
        assert "Traceback" not in result.stderr
        assert said.startswith("error: 0 of 2 VMs ready; VM '"), said
        # both VMs' failures are reported by their own step and the guest's words
        for line in ("VM 'pkg': packages: cowsay failed", "VM 'cmd': runcmd 2: echo about"):
            assert line in result.stderr, result.stderr
        assert "the real reason" in result.stderr and "| " in result.stderr
        planned = labctl("plan", str(FAILING)).stdout
        assert planned.count("recreate (its first boot failed)") == 2, planned
    finally:
        labctl("down", "itfail")
    assert leftovers("itfail", settings) == {}
