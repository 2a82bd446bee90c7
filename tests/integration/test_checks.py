"""`labctl check` and `labctl inventory` on the real stack: a class of two
copies where alice did the work (the test does it over SSH) and bob did not;
one check of each kind passes only with the work, one fails whatever is done.
The table, JSON, CSV and HTML agree; a VM that is down is "could not run";
real ansible-playbook logs in through the inventory."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.virt.connection import connect

from .conftest import LABS, assert_dashboard_sealed, dashboard_from_inside, labctl, leftovers

LAB = LABS / "checks.yaml"
WORK = ("echo 42 > /home/lab/answer.txt && cp /etc/code /home/lab/code.txt && "
        "mkdir -p /tmp/site && "
        "echo 'done by alice' > /tmp/site/index.html && "
        "sudo -n docker run --rm -v data:/data -v /tmp/site:/site busybox "
        "cp /site/index.html /data/index.html && "
        "sudo -n docker run -d --name web -p 8080:80 -v data:/data busybox "
        "httpd -f -p 80 -h /data >/dev/null")
ONLY_WITH_WORK = {"answer-cmd", "own-code", "answer-file", "web-container", "web-tcp",
                  "web-http", "in-container"}


@pytest.fixture(scope="module")
def graded(settings):
    labctl("down", str(LAB), "--all-copies", check=False)
    labctl("up", str(LAB))
    labctl("exec", "itcheck-alice.node", "--", "sh", "-c", WORK)  # alice's work
    yield settings
    labctl("down", str(LAB), "--all-copies")
    for copy in ("alice", "bob"):
        assert leftovers(f"itcheck-{copy}", settings) == {}


def test_every_kind_passes_with_the_work_and_fails_without(graded, tmp_path):
    csv_path, html_path = tmp_path / "checks.csv", tmp_path / "checks.html"
    result = json.loads(labctl("--json", "check", str(LAB), "--all-copies", "--csv",
                               str(csv_path), "--html", str(html_path)).stdout)
    by_copy = {c["copy"]: {o["check"]: o for o in c["outcomes"]} for c in result["copies"]}
    assert set(by_copy) == {"alice", "bob"}
    for name, outcome in by_copy["alice"].items():
        assert outcome["status"] == ("pass" if name in ONLY_WITH_WORK else "fail"), outcome
    for outcome in by_copy["bob"].values():
        assert outcome["status"] == "fail", outcome  # bob did nothing: nothing passes
    assert by_copy["alice"]["false-cmd"]["reason"] == "exit 1, expected 0"
    assert by_copy["alice"]["missing-http"]["reason"] == "status 404, expected 200"
    assert by_copy["bob"]["web-container"]["reason"] == "no container 'web'"
    alice = next(c for c in result["copies"] if c["copy"] == "alice")
    assert alice["earned"] == 2 + 1 + 1 + 3 + 1 + 1 + 1 and result["total_points"] == 15
    # the CSV and the page say the same as the JSON
    rows = list(csv.DictReader(csv_path.open()))
    assert {(r["copy"], r["check"]): r["status"] for r in rows} == {
        (copy, name): o["status"] for copy, outcomes in by_copy.items()
        for name, o in outcomes.items()}
    page = html_path.read_text()
    assert "10 / 15" in page and "0 / 15" in page and "status 404, expected 200" in page
    # the table for people, and the history
    table = labctl("check", str(LAB), "--copy", "alice").stdout
    assert "7 of 12 checks passed" in table, table
    history = json.loads(labctl("--json", "check", "history", "itcheck").stdout)
    assert [len(r["copies"]) for r in history[-2:]] == [2, 1]


def test_each_copy_has_its_own_code_and_its_checks_expect_it(graded, tmp_path):
    """per_copy: the two copies' codes differ, the roster lists them, and
    alice's code copied into bob's VM does not pass bob's check."""
    codes = {c: labctl("exec", f"itcheck-{c}.node", "--", "cat", "/etc/code").stdout
             for c in ("alice", "bob")}
    assert codes["alice"] != codes["bob"] and all(len(c) == 10 for c in codes.values())
    labctl("handout", str(LAB), "--out", str(tmp_path))
    roster = {r["student"]: r["code"] for r in csv.DictReader((tmp_path / "roster.csv").open())}
    assert roster == codes
    labctl("exec", "itcheck-bob.node", "--", "sh", "-c",
           f"echo {codes['alice']} > /home/lab/code.txt")  # a copied answer
    try:
        run = json.loads(labctl("--json", "check", str(LAB), "--copy", "bob").stdout)
        (bob,) = run["copies"]
        own = next(o for o in bob["outcomes"] if o["check"] == "own-code")
        assert own["status"] == "fail", own
    finally:
        labctl("exec", "itcheck-bob.node", "--", "rm", "-f", "/home/lab/code.txt")


def test_ansible_playbook_runs_through_the_inventory(graded, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(labctl("inventory", "itcheck", "--all-copies").stdout)
    playbook = tmp_path / "answer.yml"
    playbook.write_text(
        "- hosts: itcheck_alice\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.ping:\n"
        "    - ansible.builtin.command: cat /home/lab/answer.txt\n      register: answer\n"
        "    - ansible.builtin.assert:\n        that: answer.stdout == '42'\n")
    ansible = Path(sys.executable).with_name("ansible-playbook")
    done = subprocess.run([str(ansible), "-i", str(inventory), str(playbook)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True",
                               "ANSIBLE_NOCOLOR": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok=3" in done.stdout and "failed=0" in done.stdout
    ini = tmp_path / "inventory.ini"
    ini.write_text(labctl("inventory", "itcheck", "--all-copies", "--ini").stdout)
    ping = subprocess.run([str(ansible.with_name("ansible")), "-i", str(ini), "node",
                           "-m", "ping"], capture_output=True, text=True, timeout=300)
    assert ping.returncode == 0 and ping.stdout.count("SUCCESS") == 2, ping.stdout + ping.stderr


HOSTILE = LABS / "checks-hostile.yaml"
# an HTTP server in alice's VM that sends its answer a byte a second, for ever
DRIP = ("sudo -n docker run -d --name drip -p 8082:8082 busybox sh -c 'while :; do "
        "(printf \"HTTP/1.0 200 OK\\r\\n\\r\\n\"; while :; do printf x; sleep 1; done) "
        "| nc -l -p 8082; done' >/dev/null")


def test_what_a_student_controls_cannot_hang_or_fake_a_check(graded):
    """Output without end, a command that never stops printing and a server
    that drips each end within the checks' time with what happened; writers
    a check leaves behind cannot change the next probes' answers."""
    import time

    labctl("exec", "itcheck-alice.node", "--", "sh", "-c", DRIP)
    began = time.monotonic()
    result = json.loads(labctl("--json", "check", str(HOSTILE), "--copy", "alice").stdout)
    took = time.monotonic() - began
    (alice,) = result["copies"]
    got = {o["check"]: (o["status"], o["reason"]) for o in alice["outcomes"]}
    assert got["flood"][0] == "error" and "printed without end" in got["flood"][1], got
    assert got["chatter"] == ("error", "could not run: timed out after 3 s"), got
    assert got["drip"] == ("error", "could not run: timed out after 4 s"), got
    assert got["leave-writers"][0] == "pass", got
    assert got["hostname-file"] == ("pass", ""), got
    assert got["hostname-cmd"] == ("pass", ""), got
    assert took < 5 + 3 + 4 + 30 + 60, took  # the checks' own times and slack for TCG
    labctl("exec", "itcheck-alice.node", "--", "sudo", "-n", "docker", "rm", "-f", "drip")


def test_checks_do_not_log_in_as_the_student(graded):
    """A student who removes their own key, leaves the sudo group or blocks
    their account stops nothing: checks use labctl's account and key."""
    labctl("exec", "itcheck-bob.node", "--", "sh", "-c",
           "sudo -n gpasswd -d lab labctl-admin >/dev/null; : > ~/.ssh/authorized_keys")
    result = json.loads(labctl("--json", "check", str(LAB), "--copy", "bob").stdout)
    (bob,) = result["copies"]
    assert bob["could_not_run"] == 0, bob
    assert {o["check"]: o["status"] for o in bob["outcomes"]}["false-cmd"] == "fail"
    # the student's own hand-out key opens nothing of labctl's
    done = labctl("exec", "itcheck-alice.node", "--", "ls", "/var/lib/labctl/.ssh", check=False)
    assert done.returncode != 0  # labctl's home is its own


def test_the_dashboard_is_sealed_from_a_vm_on_a_nat_network(graded):
    lines = dashboard_from_inside("itcheck-alice.node", "itcheck")
    assert_dashboard_sealed(lines)


def test_a_vm_that_is_down_could_not_run(graded):
    conn = connect(graded.uri)
    try:
        conn.lookupByName("itcheck-bob.node").destroy()  # the fixture's down removes it
    finally:
        conn.close()
    result = json.loads(labctl("--json", "check", str(LAB), "--copy", "bob").stdout)
    (bob,) = result["copies"]
    assert all(o["status"] == "error" and o["reason"].startswith("could not run")
               for o in bob["outcomes"]), bob
    assert bob["earned"] == 0 and bob["could_not_run"] == 12
