"""Minimal real `labctl bench run`s: 2 cold VM boots against podman on this
machine (the course's headline), end to end; and containers only, in a VM and
on this machine (the host layer)."""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import LABS, labctl, leftovers


def test_bench_end_to_end(settings, tmp_path):
    html = tmp_path / "report.html"
    result = json.loads(labctl("--json", "bench", "run", str(LABS / "bench.yaml"),
                               "--html", str(html), "--csv", str(tmp_path / "s.csv")).stdout)
    data, analysis = result["data"], result["analysis"]
    assert len(data["vm_boot"]) == 2 and data["containers"] == {}
    assert len(data["host_layer"]["containers"]["podman"]) == 2 and len(data["process"]) == 2
    for boot in data["vm_boot"]:
        assert sum(boot["phases"].values()) == pytest.approx(boot["total"])
        assert boot["phases"]["init-to-address"] > 0 and boot["guest"]["userspace"] > 0
    assert data["host"]["accel"] in ("qemu", "kvm") and data["host"]["image_sha256"]
    headline = analysis["headline_host"]["podman"]  # the course's: VM vs container on metal
    assert headline["low"] <= headline["ratio"] <= headline["high"] and headline["ratio"] > 1
    page = html.read_text()
    assert f"{analysis['vm']['ssh_ready']['median']:.3f}" in page
    assert (tmp_path / "s.csv").read_text().startswith("what,n,min,median")
    history = json.loads(labctl("--json", "bench", "history").stdout)
    assert result["run_id"] in [r["run_id"] for r in history]
    assert leftovers("itbench-bench", settings) == {}


def test_bench_compare_container_start_measures_no_vm_boot(settings):
    result = json.loads(labctl("--json", "bench", "run",
                               str(LABS / "bench-containers.yaml")).stdout)
    data, analysis = result["data"], result["analysis"]
    assert data["vm_boot"] == [] and analysis["vm"] is None
    assert len(data["containers"]["podman"]) == 2 and data["process"] == []
    assert all(s["run_true"] > 0 for s in data["containers"]["podman"])
    assert leftovers("itbenchc-bench", settings) == {}
    # the host layer: the same image started by podman on this machine
    host = data["host_layer"]
    assert len(host["containers"]["podman"]) == 2 and len(host["process"]) == 2
    assert all(0 < s["run_true"] for s in host["containers"]["podman"])
    assert analysis["host"]["containers"]["podman"]["run_true"]["median"] < \
        analysis["containers"]["podman"]["run_true"]["median"]  # no VM around it
    assert host["how"]["podman"]  # "defaults", or the compat conf and why
    images = subprocess.run(["podman", "images", "--format", "{{.Labels}}"],
                            capture_output=True, text=True, check=True).stdout
    assert "labctl.source" not in images  # it tidied the host's image store
