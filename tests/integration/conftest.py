"""The real stack: libvirtd (in the test namespace), qemu, the built guest
image. scripts/test starts the daemons, builds or reuses the image in a data
dir outside the checkout, and sets LABCTL_IT=1; without it these tests skip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import libvirt
import pytest

from labctl.usecases.session import Settings
from labctl.virt.connection import DEFAULT_URI, connect
from labctl.virt.storage import POOL, Storage

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "tests" / "data" / "labs" / "integration"


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every test here is marked
def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs the real stack: run ./scripts/test")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)
            if os.environ.get("LABCTL_IT") != "1":
                item.add_marker(skip)


WORLD_DIR = Path(os.environ.get("LABCTL_WORLD_DIR", "/run/labctl-world"))
WORLD_WWW = "198.51.100.10"  # scripts/world: the world's web server (www.world.test)
WORLD_TOKEN = "hello from the simulated world"


@pytest.fixture(scope="session")
def world() -> Path:
    """The simulated internet of scripts/world, which scripts/test starts."""
    if not (WORLD_DIR / "www.pid").exists():
        pytest.fail("the simulated world is not running: scripts/test starts it "
                    "(scripts/world start)")
    if not (WORLD_DIR / "www" / "debian" / "dists" / "bookworm" / "InRelease").exists():
        pytest.fail("the world has no apt repository: scripts/test makes it "
                    "(scripts/world apt DEBS)")
    (WORLD_DIR / "www" / "hello.txt").write_text(WORLD_TOKEN + "\n")
    return WORLD_DIR


@pytest.fixture(scope="session")
def world_key(world) -> str:
    """The world apt repository's signing key (a lab's mirrors.apt_key)."""
    return str(world / "www" / "world-archive-key.asc")


def fetch_from(vm, host: str, path: str = "/hello.txt") -> str:
    """An HTTP GET made inside the VM (bash's /dev/tcp: no curl in the image);
    its output, empty when nothing answered within 10 s."""
    script = (f"exec 3<>/dev/tcp/{host}/80 && printf 'GET {path} HTTP/1.0\\r\\n"
              f"Host: {host}\\r\\n\\r\\n' >&3 && cat <&3")
    return vm.run(["timeout", "10", "bash", "-c", script], timeout=60).stdout


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(uri=DEFAULT_URI, data_dir=Path(os.environ["LABCTL_DATA_DIR"]))


# -- the slowest labctl commands of the run, printed at its end -----------------
# A module's time says where the minutes went; these say which command waited
# and what it last said (a wait that ran to its budget shows here in CI's log).
SLOW_SECONDS = float(os.environ.get("LABCTL_TEST_SLOW_SECONDS", "120"))  # lower it to profile
_SLOW: list[tuple[float, str, str]] = []


def _timed(args: tuple[str, ...], began: float, stderr: str) -> None:
    took = time.monotonic() - began
    if took >= SLOW_SECONDS:
        tail = " | ".join(line.strip() for line in stderr.splitlines()[-4:])
        _SLOW.append((took, "labctl " + " ".join(args), tail))


def pytest_terminal_summary(terminalreporter) -> None:
    if not _SLOW:
        return
    terminalreporter.section(f"labctl commands that took {SLOW_SECONDS:.0f} s or more")
    for took, command, tail in sorted(_SLOW, reverse=True)[:30]:
        terminalreporter.write_line(f"{took:6.0f} s  {command[:150]}")
        terminalreporter.write_line(f"          last said: {tail[:300]}")


def labctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (inside the test namespace, like this process)."""
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True,
                            text=True, timeout=900)
    _timed(args, began, result.stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


class Running:
    """`labctl ARGS` in the background, its stderr (progress lines) read as it
    comes, so a test can act at a given point: kill it, stop libvirtd..."""

    def __init__(self, *args: str):
        self.args = args
        self.began = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "labctl", *args], text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, needle: str, timeout: float) -> bool:
        """True once a line contains `needle`; False if it ended or timed out first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(needle in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return False
                self._changed.wait(min(left, 0.2))
        return True

    def finish(self, timeout: float = 900) -> tuple[int, str, str]:
        stdout = self.proc.stdout.read() if self.proc.stdout else ""
        code = self.proc.wait(timeout)
        self._reader.join(10)
        _timed(self.args, self.began, "\n".join(self.lines))
        return code, stdout, "\n".join(self.lines)

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Send `sig` if it still runs; true if it did."""
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(sig)
        return True


def error_lines(stderr: str) -> list[str]:
    """The final 'error:' line and its hint: what a user is told at the end."""
    lines = stderr.splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("error:")), default=None)
    return [] if start is None else lines[start:]


def leftovers(lab: str, settings: Settings) -> dict[str, list[str]]:
    """Every kind of thing a lab can leave behind, by its 'LAB.' prefix."""
    conn = connect(settings.uri)
    try:
        conn.storagePoolLookupByName(POOL)  # raises if there is no pool yet
        volumes = Storage(conn).names(prefix=f"{lab}.")  # refreshed: serial logs count
    except libvirt.libvirtError:  # no pool yet: nothing in it
        volumes = []
    found = {
        "domains": [d.name() for d in conn.listAllDomains(0) if d.name().startswith(f"{lab}.")],
        "networks": [n.name() for n in conn.listAllNetworks(0)
                     if n.name().startswith(f"{lab}.")],
        "volumes": volumes,
        "files": [str(p) for p in (settings.data_dir / "labs" / lab).glob("**/*")],
        "registry": [str(p) for p in (settings.data_dir / "registry" / lab).glob("*")],
    }
    conn.close()
    return {k: v for k, v in found.items() if v}


# -- the dashboard seen from inside a student's VM --------------------------------

def start_dashboard(*args: str) -> tuple[subprocess.Popen, str, int]:
    """`labctl dashboard ARGS` on a free loopback port, as an instructor starts
    it: (the process, the address it printed with its token, the port), once
    it listens. The caller terminates the process."""
    import socket

    from labctl.virt.ports import free_local_port

    port = free_local_port()
    server = subprocess.Popen([sys.executable, "-m", "labctl", "dashboard", *args,
                               "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    printed = server.stdout.readline()  # "dashboard: http://127.0.0.1:PORT/?token=..."
    address = printed.split()[1] if printed.strip() else ""
    assert address.startswith(f"http://127.0.0.1:{port}/?token="), printed
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, address, port
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise AssertionError(f"the dashboard never listened on {port}")


DASHBOARD_PATHS = ("/", "/api/state", "/api/events", "/api/handout.zip?lab=LAB",
                   "/api/checks.csv?lab=LAB")


def dashboard_from_inside(vm_name: str, lab: str) -> list[str]:
    """Start `labctl dashboard` here (127.0.0.1, as an instructor does), then
    from inside the VM -- as its lab user, who has root -- ask every endpoint
    at each address that leads back to this machine (user-mode's 10.0.2.2,
    the VM's default gateway, the host's side of each of its networks), GETs
    and a JSON POST.
    One line per try: 'PATH@ADDR unreachable' or 'PATH@ADDR STATUS-LINE'."""
    server, _address, port = start_dashboard()
    try:
        paths = " ".join(p.replace("LAB", lab) for p in DASHBOARD_PATHS)
        body = json.dumps({"lab": lab, "vm": "node"})
        post = (f"POST /api/reset HTTP/1.0\\r\\nHost: 127.0.0.1:{port}\\r\\n"
                f"Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n")
        script = f"""
gw=$(ip -4 route show default | awk '{{print $3; exit}}')
# the host's side of each lab network (libvirt gives it the subnet's .1)
sides=$(ip -4 -o addr show scope global |
  awk '{{split($4, a, "/"); split(a[1], o, "."); print o[1]"."o[2]"."o[3]".1"}}')
for h in $(printf '%s\n' 10.0.2.2 $gw $sides | sort -u); do
  # an address that leads nowhere (10.0.2.2 off user-mode) would hang a connect
  if ! timeout 5 bash -c "exec 3<>/dev/tcp/$h/{port}"; then
    echo "any@$h unreachable"; continue
  fi
  for p in {paths}; do
    if exec 3<>/dev/tcp/$h/{port}; then
      printf 'GET %s HTTP/1.0\\r\\nHost: %s:{port}\\r\\n\\r\\n' "$p" "$h" >&3
      IFS= read -r -t 10 line <&3; echo "$p@$h ${{line%$'\\r'}}"; exec 3<&-
    else echo "$p@$h unreachable"; fi
  done
  if exec 3<>/dev/tcp/$h/{port}; then
    printf '{post}%s' '{body}' >&3
    IFS= read -r -t 10 line <&3; echo "POST@$h ${{line%$'\\r'}}"; exec 3<&-
  else echo "POST@$h unreachable"; fi
done 2>/dev/null
"""
        done = labctl("exec", vm_name, "--", "timeout", "120", "bash", "-c", script)
        return [line for line in done.stdout.splitlines() if "@" in line]
    finally:
        server.terminate()
        server.wait(10)


def assert_dashboard_sealed(lines: list[str]) -> None:
    assert lines, "the VM asked nothing"
    for line in lines:
        assert line.endswith(" unreachable") or " 403 " in line, line
