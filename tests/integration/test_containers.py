"""The course lab (examples/course.yaml) for real: a server built from a
Dockerfile inside the VM and published with 8000:9000, answering the host; two
containers sharing the named volume volshare, whose data outlives them; the same
scenario on docker and on podman, on one VM that is kept between them."""

from __future__ import annotations

import json
import urllib.request

import pytest

from labctl.lab.loader import load_lab
from labctl.usecases.lab import down
from labctl.usecases.session import Session

from .conftest import LABS, ROOT, labctl, leftovers

COURSE = ROOT / "examples" / "course.yaml"
ERRORS = LABS / "errors"


@pytest.fixture(scope="module")
def course(settings):
    down(Session(settings), "course")
    yield
    down(Session(settings), "course")
    assert leftovers("course", settings) == {}


def containers() -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(labctl("--json", "ps", "course").stdout)}


def in_vm(command: str) -> str:
    return labctl("exec", "course.docker-host", "--", command).stdout


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_course_cycle(course, runtime):
    up = json.loads(labctl("--json", "up", str(COURSE), "--var", f"runtime={runtime}").stdout)
    (vm,) = up["vms"]
    assert vm["action"] in (("create",) if runtime == "docker" else ("keep",))
    assert {c["action"] for c in vm["containers"]} >= {"create"}
    rows = containers()
    assert set(rows) == {"chatserver", "writer-1", "reader-2"}
    assert {r["runtime"] for r in rows.values()} == {runtime}
    assert all(r["state"] == "running" for r in rows.values())
    assert rows["chatserver"]["ports"] == ["8000->9000/tcp"]

    # The server answers from the host, through the port labctl forwards.
    address = labctl("port", "course.docker-host", "8000").stdout.strip()
    page = urllib.request.urlopen(f"http://{address}/", timeout=30).read().decode()
    assert "Hello from a container inside a VM" in page

    # One named volume, two containers: written by one, read by the other...
    assert labctl("exec", "course.docker-host/reader-2", "--",
                  "cat /extshare/greeting").stdout == "hello from writer-1\n"
    # ...and still there once both are gone and a new container mounts it.
    at_once = " -t 0" if runtime == "podman" else ""  # podman's rm -f waits 10 s otherwise
    in_vm(f"sudo {runtime} rm -f{at_once} writer-1 reader-2")
    survivor = in_vm(f"sudo {runtime} run --rm -v volshare:/x busybox cat /x/greeting")
    assert survivor == "hello from writer-1\n"

    # up puts back what was removed and restarts nothing else.
    started = containers()["chatserver"]["started"]
    again = json.loads(labctl("--json", "up", str(COURSE), "--var", f"runtime={runtime}").stdout)
    verbs = {c["name"]: c["action"] for c in again["vms"][0]["containers"]}
    assert verbs == {"docker-host/chatserver": "keep", "docker-host/writer-1": "create",
                     "docker-host/reader-2": "create"}
    assert containers()["chatserver"]["started"] == started
    third = labctl("up", str(COURSE), "--var", f"runtime={runtime}")
    assert "nothing changed" in third.stdout
    logs = labctl("logs", "course.docker-host/chatserver")
    assert logs.returncode == 0

    # The course's own checks (what the slides teach) all pass after `up`.
    checked = json.loads(labctl("--json", "check", str(COURSE), "--var",
                                f"runtime={runtime}").stdout)
    (copy,) = checked["copies"]
    assert [o for o in copy["outcomes"] if o["status"] != "pass"] == []
    assert copy["earned"] == checked["total_points"] == 9

    if runtime == "podman":  # each container's scopes: killed 10 s into a shutdown, not 90
        scopes = in_vm("systemctl list-units --type=scope --no-legend --plain 'libpod-*' "
                       "| cut -d' ' -f1").split()
        assert len([s for s in scopes if not s.startswith("libpod-conmon-")]) == 3, scopes
        stops = in_vm("systemctl show -p TimeoutStopUSec --value " + " ".join(scopes)).split()
        assert stops == ["10s"] * len(scopes), stops


def test_missing_image_names_vm_and_container(course):
    result = labctl("up", str(ERRORS / "missing-image.yaml"), check=False)
    assert result.returncode == 1
    assert ("VM 'docker-host', container 'ghost': image 'nginx:1.25' is not in the VM and "
            "could not be pulled") in result.stderr
    assert "ghost" not in containers()


def test_failed_build_names_vm_and_container(course):
    result = labctl("up", str(ERRORS / "bad-build.yaml"), check=False)
    assert result.returncode == 1
    assert "VM 'docker-host', container 'broken': the build of ./badbuild failed" in result.stderr
    assert "broken" not in containers()


def test_port_taken_in_the_vm(course):
    in_vm("sudo podman rm -f squatter >/dev/null 2>&1; sudo podman run -d --name squatter "
          "-p 8000:80 docker.io/library/busybox:latest httpd -f -p 80")
    try:
        result = labctl("up", str(ERRORS / "port-taken.yaml"), check=False)
        assert result.returncode == 1
        assert ("VM 'docker-host', container 'late': host port 8000 is already in use in the VM"
                in result.stderr)
        assert "late" not in containers()
    finally:
        in_vm("sudo podman rm -f -t 0 squatter")  # httpd as PID 1 ignores SIGTERM: 10 s


def test_course_lab_loads(course):
    assert load_lab(COURSE).vm("docker-host").containers[0].ports[0].host == 8000


ARCHIVE_LAB = """name: course
defaults: {memory: 768M, runtime: docker}
vms:
  - name: docker-host
    containers:
      - name: fromarchive
        image: {archive: ./bb.tar}
        # a shell that ends on SIGTERM: `restart` stops it at once, where
        # httpd as PID 1 ignores the signal and the runtime waits 10 s
        command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 9000 -h /www & wait"]
        ports: ["8000:9000"]
        volumes: ["./site:/www:ro"]
"""


def test_archive_image_and_bind_mount(course, tmp_path):
    in_vm("sudo podman save -o /tmp/bb.tar docker.io/library/busybox:latest && "
          "sudo chmod 0644 /tmp/bb.tar")
    labctl("cp", "course.docker-host:/tmp/bb.tar", str(tmp_path / "bb.tar"))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("served from a bind mount\n")
    (tmp_path / "archive.yaml").write_text(ARCHIVE_LAB)
    up = json.loads(labctl("--json", "up", str(tmp_path / "archive.yaml")).stdout)
    assert up["vms"][0]["action"] == "keep"  # same machine: only containers change
    assert {c["name"]: c["action"] for c in up["vms"][0]["containers"]}[
        "docker-host/fromarchive"] == "create"
    address = labctl("port", "course.docker-host", "8000").stdout.strip()

    def page() -> str:
        return urllib.request.urlopen(f"http://{address}/", timeout=30).read().decode()

    assert page() == "served from a bind mount\n"
    labctl("restart", "course.docker-host/fromarchive")
    assert page() == "served from a bind mount\n"
    again = labctl("up", str(tmp_path / "archive.yaml"))
    assert "nothing changed" in again.stdout
