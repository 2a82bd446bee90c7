"""The comparison's statistics, analysis and reports on recorded phase data
(golden JSON/CSV), and its measuring helpers against fakes."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from labctl.bench import report
from labctl.bench.analysis import analyse, headline_text, host_headline_text, ssh_ready
from labctl.bench.measure import (
    CLOUD_PHASES,
    GUEST_TIMER,
    SerialWatcher,
    StageClock,
    _parse_micros,
    parse_systemd_analyze,
)
from labctl.bench.stats import percentile, ratio_of_medians, summarize
from labctl.bench.store import Results
from labctl.errors import LabctlError
from labctl.runtime.oci import OciRuntime

from .fixtures import DATA, GOLDEN

RECORDED = json.loads((DATA / "bench" / "recorded-run.json").read_text())


def test_summary_statistics():
    s = summarize([10.0, 12.0, 11.0, 13.0, 14.0])
    assert (s.n, s.min, s.median, s.mean) == (5, 10.0, 12.0, 12.0)
    assert s.p95 == pytest.approx(13.8)
    assert s.stdev == pytest.approx(1.5811, abs=1e-4)
    assert s.cv == pytest.approx(0.1318, abs=1e-4) and s.noisy
    assert not summarize([10.0, 10.1, 9.9]).noisy
    assert percentile([1.0], 0.95) == 1.0


def test_a_clouds_boot_splits_into_accepted_scheduled_active():
    """On OpenStack the first phases are the cloud's own (API accepted ->
    scheduled -> ACTIVE); analysis, table and picture take them in order."""
    widths = [1.5, 2.0, 7.0, 0.5, 3.0, 20.0, 4.0, 1.0, 9.0]
    boots = [{"phases": dict(zip(CLOUD_PHASES, [w + i / 10 for w in widths], strict=True)),
              "total": sum(widths) + 9 * i / 10, "guest": {}} for i in range(3)]
    data = {**RECORDED, "vm_boot": boots}
    analysis = analyse(data)
    assert list(analysis["vm"]["phases"]) == list(CLOUD_PHASES)
    assert analysis["vm"]["ssh_ready"]["median"] == pytest.approx(sum(widths[:-1]) + 0.8)
    names = [what for what, _ in report.rows(analysis) if what.startswith("VM phase:")]
    assert names[:3] == ["VM phase: api-accepted", "VM phase: scheduled", "VM phase: active"]
    assert [p for p, _ in report._vm_phases(analysis)] == list(CLOUD_PHASES[:-1])


def test_stage_clock_notes_each_vm_stage_once_and_passes_events_on():
    from labctl.events import Event

    shown = []
    clock = StageClock(shown.append)
    for stage in ("accepted", "scheduled", "scheduled"):
        clock(Event("vm node", stage, ""))
    clock(Event("network lan", "created", ""))
    assert set(clock.seen) == {"accepted", "scheduled"} and len(shown) == 4
    assert clock.seen["accepted"] <= clock.seen["scheduled"]


def test_ratio_has_a_deterministic_interval_around_it():
    slow, fast = [24.0, 25.0, 23.5, 26.0, 24.5], [3.3, 3.4, 3.2, 3.6, 3.35]
    r = ratio_of_medians(slow, fast)
    assert r.value == pytest.approx(24.5 / 3.35)
    assert r.low <= r.value <= r.high and r.high - r.low < 1.5
    assert ratio_of_medians(slow, fast) == r  # seeded: the same numbers every time
    assert r.overlaps(ratio_of_medians(slow[::-1], fast))


def test_analysis_golden_and_phases_add_up(golden):
    analysis = analyse(RECORDED)
    assert analysis["vm"]["phase_sum_error"] < 1e-9
    for boot in RECORDED["vm_boot"]:
        assert sum(boot["phases"].values()) == pytest.approx(boot["total"])
        assert ssh_ready(boot) == pytest.approx(boot["total"] - boot["phases"]["boot-finished"])
    assert "docker run_true" in analysis["noisy"] and "podman run_true" not in analysis["noisy"]
    golden(GOLDEN / "bench" / "analysis.json", json.dumps(analysis, indent=1, sort_keys=True)
           + "\n")
    golden(GOLDEN / "bench" / "summary.csv", report.csv_text(analysis))


def test_html_report_shows_the_numbers():
    analysis = analyse(RECORDED)
    page = report.html_page("20261125-100000", RECORDED, analysis, b"\x89PNG fake")
    podman = analysis["headline"]["podman"]
    assert headline_text("podman", podman) in page
    assert f"{analysis['vm']['ssh_ready']['median']:.3f}" in page
    assert "Test CPU" in page and "data:image/png;base64," in page
    assert "Noisy (coefficient of variation over 10%): " in page


def test_plot_is_a_png():
    png = report.plot_png(RECORDED, analyse(RECORDED))
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_the_host_layer_is_the_courses_headline_and_the_pictures_first_row():
    analysis = analyse(RECORDED)
    host = analysis["headline_host"]["podman"]
    # a container on metal starts far faster than one inside the VM
    assert host["ratio"] > analysis["headline"]["podman"]["ratio"] * 3
    assert host["low"] <= host["ratio"] <= host["high"]
    page = report.html_page("r", RECORDED, analysis, b"\x89PNG fake")
    assert page.index(host_headline_text("podman", host)) < page.index(
        headline_text("podman", analysis["headline"]["podman"]))
    labels = [label for label, _ in report.layers(analysis)]
    assert labels == ["process on this machine", "podman run on this machine",
                      "process inside the VM", "podman run inside the VM",
                      "docker run inside the VM", "VM boot to SSH"]
    medians = [s["median"] for _, s in report.layers(analysis)]
    assert medians[0] < medians[1] < medians[-1]
    what = [w for w, _ in report.rows(analysis)]
    assert what[0] == "host podman: cold run" and "process on host: true" in what
    old = {k: v for k, v in RECORDED.items() if k != "host_layer"}  # runs before the layer
    assert analyse(old)["headline_host"] == {} and report.layers(analyse(old))


def test_the_host_layer_runs_the_guests_commands_here(tmp_path: Path):
    from labctl.bench.local import LocalTransport

    local = LocalTransport(tmp_path)
    assert local.run('printf %s "$HOME"').stdout == str(tmp_path)
    timed = _parse_micros(local.run(["sh", "-c", GUEST_TIMER + "echo true $(t /bin/true)"])
                          .stdout)
    assert 0 < timed["true"] < 5
    assert local.run("sleep 5", timeout=0.2).exit_status == 124
    runtime = OciRuntime("podman", local, "this machine", env={"CONTAINERS_CONF": "/x.conf"})
    assert runtime.command("info") == "sudo -n env CONTAINERS_CONF=/x.conf podman info"


def test_systemd_analyze_is_parsed():
    assert parse_systemd_analyze(
        "Startup finished in 4.144s (kernel) + 13.120s (userspace) = 17.265s\n") == {
        "kernel": 4.144, "userspace": 13.12}
    assert parse_systemd_analyze("Startup finished in 1min 2.5s (kernel) + 820ms (initrd) "
                                 "+ 9s (userspace) = 1min 12s") == {
        "kernel": 62.5, "initrd": 0.82, "userspace": 9.0}


def test_guest_timings_and_failures():
    assert _parse_micros("run_true 3300000\ncreate 1500000\n") == {"run_true": 3.3,
                                                                   "create": 1.5}
    with pytest.raises(LabctlError, match="timing run_cat failed in the VM"):
        _parse_micros("run_true 3300000\nrun_cat\n")


def test_serial_watcher_notes_markers_in_order(tmp_path: Path):
    log = tmp_path / "serial.log"
    watcher = SerialWatcher(lambda: log.read_bytes() if log.exists() else b"")
    watcher.start()

    def boot():
        for text in ("[ 0.0] Linux version\n", "Welcome to Debian!\n",
                     "<3>labctl-ready address=10.0.2.15/24\n"):
            time.sleep(0.05)
            with log.open("a") as fh:
                fh.write(text)

    writer = threading.Thread(target=boot)
    writer.start()
    writer.join()
    watcher.join(timeout=10)  # it ends by itself once every marker was seen
    seen = watcher.stop()
    assert seen["first-output"] < seen["init"] < seen["address"]


def test_serial_watcher_outlives_a_console_not_there_yet():
    """A cloud's console fails until the server is on a hypervisor: the
    watcher keeps looking (it once died there, every phase read 0)."""
    answers = iter([LabctlError("no console yet"), LabctlError("no console yet"),
                    b"[ 0.0] Linux version\n", b"Welcome to Debian!\n",
                    b"labctl-ready address=10.0.2.15/24\n"])

    def read() -> bytes:
        answer = next(answers, b"")
        if isinstance(answer, Exception):
            raise answer
        return answer

    watcher = SerialWatcher(read)
    watcher.start()
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert set(watcher.stop()) == {"first-output", "init", "address"}


def test_results_history_round_trip(tmp_path: Path):
    results = Results(tmp_path)
    first, second = results.add(RECORDED), results.add(RECORDED)
    assert first != second and results.get(first) == RECORDED
    assert [r[0] for r in results.history()] == [first, second]
    with pytest.raises(LabctlError, match="no bench run 'nope'"):
        results.get("nope")


def test_compare_without_vm_boot_reports_containers_only():
    data = {**RECORDED, "vm_boot": [], "settings": {**RECORDED["settings"],
                                                    "compare": ["container-start"]}}
    analysis = analyse(data)
    assert analysis["vm"] is None and analysis["headline"] == {}
    what = [w for w, _ in report.rows(analysis)]
    assert what and not any(w.startswith("VM") for w in what)
    assert "VM boots were not measured" in report.html_page("r1", data, analysis, None)


def test_bench_run_measures_what_compare_selects(tmp_path: Path):
    """On the test driver: compare [vm-boot, process] boots and times the VM,
    starts no container, and removes its bench lab; the run holds its lock."""
    import dataclasses

    from labctl.bench.run import bench_lab_name, run_bench
    from labctl.lab.loader import load_lab
    from labctl.lab.model import Bench
    from labctl.lock import lab_lock

    from .fakes import FakeReach, session_on
    from .fixtures import ROOT

    lab = load_lab(ROOT / "examples" / "hello.yaml")
    lab = dataclasses.replace(lab, bench=Bench(repeat=2, warmup=0,
                                               compare=("vm-boot", "process")))
    answers = {"date +%s%N": (0, "true 1200\ncat 2100\n", "")}
    session = session_on(tmp_path, FakeReach(answers))
    data = run_bench(session, lab)
    assert len(data["vm_boot"]) == 2 and data["containers"] == {}
    assert data["process"] == [{"true": 0.0012, "cat": 0.0021}] * 2
    assert data["settings"]["compare"] == ["vm-boot", "process"]
    assert session.host().domains() == [] and not session.files(bench_lab_name(lab)).dir.exists()
    blocked = session_on(tmp_path, FakeReach(answers), lock_wait=False)
    with lab_lock(blocked.data_dir, bench_lab_name(lab), "a test holding it"):
        with pytest.raises(LabctlError, match="is busy"):
            run_bench(blocked, lab)


def test_peers_dry_run_says_what_is_installed_and_what_it_would_run(tmp_path: Path):
    import subprocess
    import sys

    from .fakes import fake_image
    from .fixtures import ROOT

    fake_image(tmp_path)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "peers.py"), "--dry-run",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    tools = [line.split("  ")[0] for line in done.stdout.splitlines()
             if not line.startswith(" ")]
    assert tools == ["labctl cold", "labctl restored", "vagrant-libvirt", "virt-install",
                     "plain qemu"]
    assert all(("installed" in line) or ("MISSING" in line)
               for line in done.stdout.splitlines() if not line.startswith(" "))
    assert "labctl up --cold (a lab of 3 VM(s))" in done.stdout
    assert "virt-install --connect" in done.stdout and "qemu-system-x86_64 -machine q35" \
        in done.stdout


def test_the_phases_are_drawn_where_their_widths_mean_their_share(tmp_path):
    """On the log axis `define` (tens of ms) drew as a third of a 21 s boot:
    the phases stand on a linear axis of their own, each as wide as its share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    analysis = analyse(RECORDED)
    phases = report._vm_phases(analysis)
    fig, ax = plt.subplots()
    report._plot_phases(ax, phases, plt.get_cmap("tab10").colors)
    widths = [patch.get_width() for patch in ax.patches]
    assert ax.get_xscale() == "linear"
    assert widths == pytest.approx([width for _, width in phases])
    total = sum(widths)
    assert widths[0] / total < 0.05  # define is a sliver of the boot, as it is
    plt.close(fig)
    (tmp_path / "report.png").write_bytes(report.plot_png(RECORDED, analysis))


def test_a_marker_the_poller_saw_late_does_not_eat_the_ssh_phases():
    """A cloud's console is read once a second: its address marker was seen
    after SSH had answered and logged in, and pushed banner and auth after
    it (login 0.0, address-to-banner 0.0 in CI). The measured SSH points
    stay where they were; the marker is capped by the banner."""
    from labctl.bench.measure import VM_PHASES, boot_phases

    head = [0.0, 0.1, 0.5]  # t0, defined, started
    seen = {"first-output": 1.0, "init": 3.0, "address": 9.7}  # the address seen late
    phases = boot_phases(VM_PHASES, head, seen, [9.0, 9.4, 9.6])
    assert phases["address-to-banner"] == 0.0 and phases["login"] == pytest.approx(0.4)
    assert phases["init-to-address"] == pytest.approx(6.0)
    assert sum(phases.values()) == pytest.approx(9.6)
    # a local console, polled every 10 ms: its markers are where they were seen
    phases = boot_phases(VM_PHASES, head, {"first-output": 1.0, "init": 3.0, "address": 8.0},
                         [9.0, 9.4, 9.6])
    assert [round(phases[p], 3) for p in VM_PHASES] == [0.1, 0.4, 0.5, 2.0, 5.0, 1.0, 0.4, 0.2]
    # nothing seen: the console's phases are empty, the SSH ones as measured
    phases = boot_phases(VM_PHASES, head, {}, [9.0, 9.4, 9.6])
    assert phases["init-to-address"] == pytest.approx(8.5) and phases["login"] == \
        pytest.approx(0.4)


def test_a_clouds_run_does_not_claim_kvm_or_this_machines_cpu():
    """Nova's hypervisors are not a project's to see: the run says so instead
    of recording the pacing guess (kvm) and this machine's CPU as the guests'."""
    from types import SimpleNamespace

    from labctl.backend import HostFacts
    from labctl.bench.run import host_facts
    from labctl.cloud.project import Cloud

    accel = Cloud.accel.fget(SimpleNamespace(cloud_name="uni"))
    assert accel.is_kvm and not accel.seen and accel.label == "cloud"
    cloud = SimpleNamespace(accel=accel, facts=lambda: HostFacts(
        "OpenStack compute API 2.93", "Nova (cloud 'uni')", 2))
    image = SimpleNamespace(name="debian-12", sha256="0" * 64)
    facts = host_facts(cloud, image, {})
    assert facts["accel"] == "cloud" and facts["qemu"] == "Nova (cloud 'uni')"
    assert facts["cpu"].endswith("(labctl's machine; the cloud's are not seen)")
    local = host_facts(SimpleNamespace(accel=replace(accel, domain_type="qemu", seen=True),
                                       facts=lambda: HostFacts("9.0.0", "QEMU 7.2.0", 2)),
                       image, {})
    assert local["accel"] == "qemu" and local["qemu"] == "7.2.0" and "(" not in local["cpu"]
