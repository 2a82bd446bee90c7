"""Checks: each kind's probe and verdict (pure, on canned or locally run
output), and `run_checks` over a lab on libvirt's test:/// driver with a fake
SSH reach: a copy x check grid where a VM that cannot be reached is "could
not run", never a pass; results kept in the history; CSV/JSON/HTML agree."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from labctl.checks import batch, probes
from labctl.checks.probes import ERROR, FAIL, PASS
from labctl.checks.results import CheckRun
from labctl.checks.store import CheckHistory
from labctl.errors import LabctlError, UsageError
from labctl.lab.loader import load_lab
from labctl.lab.model import Check
from labctl.render import render_html
from labctl.usecases import lab as lab_cases
from labctl.usecases.checks import run_checks

from .fakes import FakeReach, session_on


def check(kind: str, **spec) -> Check:
    return Check("c", "node", kind, tuple(spec.items()))


# A VM's runtimes and sudo, as shell scripts on PATH before the real ones:
# podman holds `web`, docker holds `db`; each logs what it was asked.
FAKE_BIN = {
    "sudo": '[ "$1" = -n ] && shift\nexec "$@"\n',
    "podman": 'echo "podman $*" >> "$FAKE_LOG"\n'
              'if [ "$1 $2 $3" = "container inspect web" ]; then cat "$FAKE_WEB"; exit 0; fi\n'
              'if [ "$1 $2" = "exec web" ]; then shift 2; exec "$@"; fi\nexit 125\n',
    "docker": 'echo "docker $*" >> "$FAKE_LOG"\n'
              'if [ "$1 $2 $3" = "container inspect db" ]; then\n'
              '  echo \'[{"State": {"Running": true}}]\'; exit 0; fi\n'
              'if [ "$1 $2" = "exec db" ]; then shift 2; exec "$@"; fi\nexit 1\n',
    "systemctl": '[ "$*" = "is-active --quiet docker.service" ] && [ -n "$FAKE_DOCKERD" ]\n',
}


def run_locally(*checks: Check, bin_dir: Path, web: object = None,
                runtimes: tuple[str, ...] = ("podman", "docker"),
                student: str | None = None, dockerd: bool = True) -> list[batch.Answer | None]:
    """The checks' batch script, run by the real bash here, with the fake
    runtimes and sudo of FAKE_BIN in bin_dir (inspect output indented, as
    podman and docker print it; `student`: the lab user labctl names)."""
    for name, body in FAKE_BIN.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "web.json").write_text(json.dumps(web or [], indent=4))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FAKE_LOG": str(bin_dir / "log"), "FAKE_WEB": str(bin_dir / "web.json"),
           "FAKE_DOCKERD": "1" if dockerd else ""}
    env["SUDO_USER"] = "labctl"  # the script runs from labctl's account, not the student's
    plan = [(probes.vm_probe(c), c.timeout) for c in checks]
    done = subprocess.run(batch.command(plan, runtimes, student or "root"), capture_output=True,
                          timeout=60, env=env)  # bytes, as the checks read them
    return batch.parse(done.stdout, len(plan))


def judged(*checks: Check, **how) -> list[probes.Verdict]:
    return [probes.judge_vm(c, a.status, a.stdout)
            for c, a in zip(checks, run_locally(*checks, **how), strict=True)]


def test_command_exit_and_stdout_pattern(tmp_path: Path):
    c = check("command", run="echo hello world", stdout=r"hello\s+w")
    assert judged(c, bin_dir=tmp_path)[0].status == PASS
    c = check("command", run="echo nope; exit 3")
    verdict = judged(c, bin_dir=tmp_path)[0]
    assert verdict == probes.Verdict(FAIL, "exit 3, expected 0: nope")
    c = check("command", run="exit 3", exit=3)
    assert judged(c, bin_dir=tmp_path)[0].status == PASS
    c = check("command", run="echo bye", stdout="hello")
    assert "does not contain /hello/" in judged(c, bin_dir=tmp_path)[0].reason


def test_file_exists_and_contains(tmp_path: Path):
    f = tmp_path / "index.html"
    f.write_text("<h1>it's me</h1>\n")
    c = check("file", path=str(f), contains="it's me")
    assert judged(c, bin_dir=tmp_path)[0].status == PASS
    c = check("file", path=str(tmp_path / "none"))
    assert judged(c, bin_dir=tmp_path)[0] == \
        probes.Verdict(FAIL, f"no file {tmp_path / 'none'}")
    c = check("file", path=str(f), contains="^nothing$")
    assert judged(c, bin_dir=tmp_path)[0].status == FAIL


DOCKER_INSPECT = [{"State": {"Running": True, "Status": "running"},
                   "Config": {"Image": "nginx"},
                   "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "",
                                                              "HostPort": "8000"}]}},
                   "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/x",
                               "Destination": "/data"}]}]
PODMAN_INSPECT = [{"State": {"Running": False, "Status": "exited"},
                   "Config": {"Image": "docker.io/library/nginx:latest"},
                   "NetworkSettings": {"Ports": {"80/tcp": [{"HostPort": "8000"}]}},
                   "Mounts": []}]


def test_container_running_with_image_port_and_volume():
    c = check("container", name="web", image="docker.io/library/nginx", port=8000,
              volume="data")
    assert probes.judge_vm(c, 0, "\n" + json.dumps(DOCKER_INSPECT)).status == PASS
    assert probes.judge_vm(c, 0, "\n" + json.dumps(PODMAN_INSPECT)) == \
        probes.Verdict(FAIL, "container 'web' is exited")
    running = [{**PODMAN_INSPECT[0], "State": {"Running": True}}]
    assert probes.judge_vm(c, 0, "\n" + json.dumps(running)) == \
        probes.Verdict(FAIL, "has no volume data")
    assert probes.judge_vm(check("container", name="web", port=9000), 0,
                           "\n" + json.dumps(DOCKER_INSPECT)).reason == \
        "does not publish port 9000"
    assert probes.judge_vm(check("container", name="web", image="httpd"), 0,
                           "\n" + json.dumps(DOCKER_INSPECT)).status == FAIL
    assert probes.judge_vm(c, 0, probes.NO_CONTAINER + "\n") == \
        probes.Verdict(FAIL, "no container 'web'")


def test_one_script_per_vm_looks_each_container_up_once(tmp_path: Path):
    running = [{**PODMAN_INSPECT[0], "State": {"Running": True}}]
    checks = [check("container", name="web", port=8000),
              check("command", container="web", run="echo inside", stdout="^inside$"),
              check("file", container="web", path=str(tmp_path / "web.json"), contains="Running"),
              check("command", container="ghost", run="true"),
              check("container", name="db"),  # docker's: asked after podman
              check("file", container="web", path="/no/such/file")]
    verdicts = judged(*checks, bin_dir=tmp_path, web=running)
    assert [v.status for v in verdicts] == [PASS, PASS, PASS, FAIL, PASS, FAIL]
    assert verdicts[3].reason == "no container 'ghost'"
    assert verdicts[5].reason == "no file /no/such/file"
    asked = (tmp_path / "log").read_text().splitlines()
    assert asked.count("podman container inspect web") == 1  # once for four checks
    assert asked.count("podman container inspect ghost") == 1 == \
        asked.count("docker container inspect ghost")
    # the VM's own runtime first: a docker VM does not start podman for its containers
    (tmp_path / "log").unlink()
    judged(check("container", name="db"), bin_dir=tmp_path, runtimes=("docker", "podman"))
    assert (tmp_path / "log").read_text().splitlines() == ["docker container inspect db"]


def test_a_stopped_docker_daemon_is_not_started_by_a_check(tmp_path: Path):
    """Asking docker's socket-activated daemon would start it: a check never
    changes a VM, and a stopped daemon runs no container."""
    (verdict,) = judged(check("container", name="db"), bin_dir=tmp_path, dockerd=False)
    assert verdict.status == FAIL and verdict.reason == "no container 'db'"
    assert "docker" not in (tmp_path / "log").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="nsenter and setpriv need root, as in a VM")
def test_a_root_container_is_entered_directly_and_a_student_command_runs_as_the_student(
        tmp_path: Path):
    """No `podman exec` (a Go binary: seconds under TCG) for a running root
    container: its namespaces are entered at its pid (here: a process of this
    machine, whose root and environment nsenter takes); a container with a
    USER of its own still goes through its runtime."""
    target = subprocess.Popen(["sleep", "60"], env={"PATH": "/usr/bin:/bin", "MARK": "from-c"})
    try:
        inside = {**PODMAN_INSPECT[0], "State": {"Running": True, "Pid": target.pid},
                  "Config": {"Image": "x", "User": ""}}
        probe = check("command", container="web", run="echo $MARK", stdout="^from-c$")
        assert [v.status for v in judged(probe, bin_dir=tmp_path, web=[inside])] == [PASS]
        assert "podman exec web" not in (tmp_path / "log").read_text()
        (tmp_path / "log").unlink()
        other = {**inside, "Config": {"Image": "x", "User": "nobody"}}
        judged(check("command", container="web", run="true"), bin_dir=tmp_path, web=[other])
        assert "podman exec web sh -c" in (tmp_path / "log").read_text()
    finally:
        target.kill()
        target.wait()
    mine = check("command", run="id -un; echo $HOME", stdout="^nobody\n")
    assert [a.stdout for a in run_locally(mine, bin_dir=tmp_path, student="nobody")] == \
        ["\nnobody\n/nonexistent\n"]


def test_a_probe_that_outlives_its_timeout_says_so_and_the_others_still_run(tmp_path: Path):
    slow = Check("slow", "node", "command", (("run", "sleep 30"),), timeout=1)
    began = time.monotonic()
    answers = run_locally(slow, check("command", run="echo after"), bin_dir=tmp_path)
    assert time.monotonic() - began < 10
    assert answers[0].status == 124 and answers[1].stdout == "\nafter\n"
    assert answers[1].seconds < answers[0].seconds
    cut = "\n".join(line for line in batch.script(
        [(probes.vm_probe(slow), 1)], ("podman",)).splitlines() if "rec 0" not in line)
    assert batch.parse(subprocess.run(["bash", "-c", cut], capture_output=True, text=True
                                      ).stdout, 1) == [None]  # no record: could not run
    assert batch.parse("\n@@labctl-check 0 0 1,5 2,0 2\nhi\n@@labctl-check 7 0 1 2 2\nhi", 1) \
        == [batch.Answer(0, "hi", 0.5)]  # a comma locale's clock; an index out of range


def test_a_probes_output_is_carried_byte_for_byte_and_cannot_pose_as_a_record(tmp_path: Path):
    """Output is skipped by its length, never searched: a student's command
    that prints a record header (or bytes that are not UTF-8) fools nothing."""
    forged = "printf '\\n@@labctl-check 1 0 1 2 4\\npass'; printf '\\377'; exit 3"
    answers = run_locally(check("command", run=forged), check("command", run="printf 'é'"),
                          bin_dir=tmp_path)
    assert answers[0].status == 3 and answers[0].stdout.endswith("\npass\ufffd")
    assert "@@labctl-check 1" in answers[0].stdout
    assert answers[1].status == 0 and answers[1].stdout.endswith("é")
    inner = "\n@@labctl-check 1 0 1 2 4\npass"
    cut = f"\n@@labctl-check 0 3 1 2 {len(inner)}\n{inner}"  # the script ended after probe 0
    assert batch.parse(cut, 2) == [batch.Answer(3, inner, 1.0), None]


def test_http_parse_and_judge():
    c = check("http", port=80, status=200, body="hello")
    status, body = probes.parse_http("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello there")
    assert probes.judge_http(c, status, body).status == PASS
    assert probes.judge_http(c, 404, "").reason == "status 404, expected 200"
    assert probes.parse_http("") == (None, "")
    assert probes.judge_http(c, None, "", "refused").reason == "refused"


LAB = """name: graded
copies: 2
vms:
  - name: node
checks:
  - name: os
    description: the OS answers
    points: 2
    vm: node
    command: {run: cat /etc/os-release, stdout: Debian}
  - name: page
    vm: node
    file: {path: /srv/index.html, contains: hello}
"""


@pytest.fixture
def graded(tmp_path: Path):
    (tmp_path / "graded.yaml").write_text(LAB)
    lab = load_lab(tmp_path / "graded.yaml")
    reach = FakeReach({"cat /etc/os-release": (0, "\nPRETTY_NAME=Debian GNU/Linux 12\n", ""),
                       "/srv/index.html": (0, probes.MISSING + "\n", "")})
    session = session_on(tmp_path, reach)
    from labctl.usecases import classes
    classes.up_any(session, lab, lambda *_: None)
    return session, lab


def test_a_class_is_checked_copy_by_copy_and_kept(graded):
    session, lab = graded
    with pytest.raises(UsageError, match="is a class: say which copy"):
        run_checks(session, lab)
    run = run_checks(session, lab, all_copies=True)
    assert [c.copy for c in run.copies] == ["1", "2"] and run.total_points == 3
    for copy in run.copies:
        assert [(o.check, o.status) for o in copy.outcomes] == [("os", PASS), ("page", FAIL)]
        assert copy.earned == 2
    assert run.copies[0].outcomes[1].reason == "no file /srv/index.html"
    (kept,) = CheckHistory(session.data_dir).runs("graded")
    assert kept.to_dict() == run.to_dict() and run.run_id == "1"
    only = run_checks(session, lab, copy="2")
    assert [c.copy for c in only.copies] == ["2"]
    # CSV, JSON and HTML say the same
    rows = only.csv_text().splitlines()
    assert rows[1] == "2,graded-2,os,pass,2,2,"
    assert CheckRun.from_dict(json.loads(json.dumps(only.to_dict()))) == only
    page = render_html("reports/checks.html.j2", run=only, symbols={"pass": "✓", "fail": "✗",
                                                                     "error": "?"})
    assert "no file /srv/index.html" in page and "2 / 3" in page


def test_a_vm_with_a_guest_agent_is_checked_through_it_without_a_login(graded):
    """The same verdicts, the probes' script run by the agent as root (no
    SSH connection, no sudo), the student's commands still as the student."""
    from .fakes import DriverHost
    session, lab = graded
    reach = session.reach
    DriverHost.agent_runs = runs = []
    try:
        before = list(reach.connected)
        run = run_checks(session, lab, all_copies=True)
    finally:
        DriverHost.agent_runs = None
    for copy in run.copies:
        assert [(o.check, o.status) for o in copy.outcomes] == [("os", PASS), ("page", FAIL)]
    assert reach.connected == before  # no SSH login for the in-VM probes
    assert sorted(domain for domain, _ in runs) == ["graded-1.node", "graded-2.node"]
    assert all("U=lab" in script and not script.startswith("sudo") for _, script in runs)


def test_copies_are_checked_as_many_at_once_as_their_hosts_cores_serve(graded, monkeypatch):
    import threading

    from labctl.plan import capacity
    from labctl.usecases import checks as checks_cases

    assert capacity.checks_at_once(SimpleNamespace(domain_type="qemu"), 2) == 2  # TCG: 1 a core
    assert capacity.checks_at_once(SimpleNamespace(domain_type="kvm"), 2) == 8
    session, lab = graded
    monkeypatch.setattr(capacity, "checks_at_once", lambda _accel, _cpus: 1)
    running, most, lock = [0], [0], threading.Lock()
    real = checks_cases.check_copy

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(checks_cases, "check_copy", counted)
    run = run_checks(session, lab, all_copies=True)
    assert len(run.copies) == 2 and most[0] == 1


def test_a_vm_that_is_down_could_not_run_never_passes(graded):
    session, lab = graded
    session.host().conn.lookupByName("graded-1.node").destroy()
    run = run_checks(session, lab, all_copies=True)
    down, up = run.copies
    assert all(o.status == ERROR and o.reason.startswith("could not run: VM 'node'")
               for o in down.outcomes), down
    assert down.earned == 0 and down.could_not_run == 2 and up.passed == 1


def test_student_output_is_escaped_in_the_page(graded):
    session, lab = graded
    session.reach.answers["/srv/index.html"] = (0, "\n<script>alert(1)</script>", "")
    run = run_checks(session, lab, copy="1", keep=False)
    page = render_html("reports/checks.html.j2", run=run, symbols={"pass": "✓", "fail": "✗",
                                                                    "error": "?"})
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_lab_without_checks_or_not_up(tmp_path: Path):
    (tmp_path / "plain.yaml").write_text("name: plain\nvms:\n  - name: node\n")
    session = session_on(tmp_path)
    with pytest.raises(UsageError, match="has no checks"):
        run_checks(session, load_lab(tmp_path / "plain.yaml"))
    (tmp_path / "one.yaml").write_text(LAB.replace("copies: 2\n", "").replace("graded", "one"))
    with pytest.raises(LabctlError, match="lab 'one' is not up"):
        run_checks(session, load_lab(tmp_path / "one.yaml"))


def test_a_port_of_a_vm_that_is_down_could_not_run(tmp_path: Path):
    """A VM's DHCP lease (or forward) outlives it: tcp and http checks must
    say "could not run", not "nothing answers", when the VM is off."""
    (tmp_path / "ports.yaml").write_text(
        "name: ports\nvms:\n  - name: node\n  - name: peer\nchecks:\n"
        "  - {name: tcp, vm: node, tcp: {port: 8000}}\n"
        "  - {name: web, vm: node, http: {port: 8000, from: peer}}\n")
    lab = load_lab(tmp_path / "ports.yaml")
    session = session_on(tmp_path)
    lab_cases.up(session, lab)
    session.host().conn.lookupByName("ports.node").destroy()
    (copy,) = run_checks(session, lab, keep=False).copies
    assert [(o.status, o.reason) for o in copy.outcomes] == [
        (ERROR, "could not run: VM 'node' of lab 'ports' is not running")] * 2


def test_network_probes_from_a_vm_run_as_shell_and_silence_is_a_fail():
    import socket

    from labctl.ssh.transport import CommandResult
    from labctl.usecases.checks import TIMED_OUT, _run

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert subprocess.run(["sh", "-c", probes.tcp_from_vm("127.0.0.1", port)]).returncode == 0
    assert subprocess.run(["sh", "-c", probes.tcp_from_vm("127.0.0.1", port)],
                          stderr=subprocess.DEVNULL).returncode != 0  # closed now

    class Silent:  # the VM's timeout(1) ran out: a probe's answer, a command's failure
        def run(self, command, timeout, max_output=None):
            assert command.startswith("timeout -k 2 7 sh -c ") and timeout == 17
            return CommandResult(command, TIMED_OUT, "", "", 7.0)

    assert _run(Silent(), "true", 7, timeout_is_an_answer=True) == (TIMED_OUT, "")
    with pytest.raises(LabctlError, match="timed out after 7 s"):
        _run(Silent(), "true", 7)


def test_output_without_end_is_stopped_and_said(tmp_path: Path):
    """`yes` in a command check filled the VM's /run and came back "fail:
    exit 1": a probe's output is capped where it is written, and the probe
    after it still runs."""
    flood = Check("flood", "node", "command", (("run", "yes"),), timeout=5)
    began = time.monotonic()
    answers = run_locally(flood, check("command", run="echo after"), bin_dir=tmp_path)
    assert time.monotonic() - began < 5
    assert answers[0].status == batch.TOO_MUCH
    assert len(answers[0].stdout.encode()) <= probes.MAX_BYTES + 1024
    assert answers[1].stdout == "\nafter\n"


def test_a_leftover_process_cannot_change_another_probes_answer(tmp_path: Path):
    """A command check that leaves a writer behind (in its group, or escaped
    with setsid) must not overwrite what later probes print."""
    target = tmp_path / "greeting"
    target.write_text("hello\n")
    stay = ("(sleep 0.3; while :; do echo FORGED; sleep 0.05; done) & "
            "setsid sh -c 'sleep 0.3; while :; do echo FORGED; sleep 0.05; done' & echo started")
    slow_read = f"sleep 1; cat {target}"
    answers = run_locally(check("command", run=stay), check("command", run=slow_read),
                          check("file", path=str(target), contains="hello"), bin_dir=tmp_path)
    assert answers[0].stdout == "\nstarted\n"
    assert answers[1].stdout == "\nhello\n"
    assert "FORGED" not in answers[2].stdout and "hello" in answers[2].stdout
    subprocess.run(["pkill", "-f", "echo FORGED"], check=False)


def test_a_slow_http_server_is_timed_out_within_the_checks_time():
    """A byte every half second kept a per-read timeout waiting for ever."""
    import socket
    import threading

    from labctl.ssh.transport import Endpoint
    from labctl.usecases import checks as use

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def drip():
        conn, _ = server.accept()
        conn.recv(1024)
        try:
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
            for _ in range(40):  # bounded: 20 s at most
                conn.sendall(b"x")
                time.sleep(0.5)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=drip, daemon=True).start()
    slow = Check("page", "node", "http", (("port", 80), ("path", "/")), timeout=2)
    began = time.monotonic()
    outcome = use._timed(slow, lambda: use._http_from_host(
        slow, Endpoint("127.0.0.1", server.getsockname()[1])))
    assert time.monotonic() - began < 4
    assert (outcome.status, outcome.reason) == ("error", "could not run: timed out after 2 s")
    server.close()


def test_an_http_path_stays_a_path_in_the_vms_shell(tmp_path: Path):
    """The path was pasted into printf's format: '%20' vanished and a quote ran shell."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen = []

    def answer():
        conn, _ = server.accept()
        got = b""
        while b"\r\n\r\n" not in got:  # the whole request: closing on unread bytes resets
            got += conn.recv(4096) or b"\r\n\r\n"
        seen.append(got)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nok")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    marker = tmp_path / "ran"
    path = f"/a%20b%s'$(touch {marker})'"
    done = subprocess.run(["sh", "-c", probes.http_from_vm("127.0.0.1",
                                                           server.getsockname()[1], path)],
                          capture_output=True, timeout=10)
    assert seen and seen[0].startswith(f"GET {path} HTTP/1.0\r\n".encode())
    assert not marker.exists() and probes.parse_http(done.stdout.decode()) == (200, "ok")
    server.close()
