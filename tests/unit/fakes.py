"""Stand-ins for unit tests, each for one narrow interface: a transport that
answers commands from a table, a way of reaching VMs that returns it, and a
pool on libvirt's test:/// driver (which cannot upload volume contents).
tests/unit/test_transport_contract.py holds FakeTransport to the real one."""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from labctl.checks import batch
from labctl.errors import LabctlError
from labctl.events import Event
from labctl.images.cache import ImageCache
from labctl.labfiles import LabFiles
from labctl.plan.layout import VmPlan
from labctl.shell import join
from labctl.ssh.transport import CommandResult, TimedOut, TooMuchOutput
from labctl.ssh.wait import Readiness
from labctl.usecases.session import Session, Settings, check_first_boot
from labctl.virt.host import Host
from labctl.virt.storage import Storage

from .fixtures import DATA

# timeout(1) in a fake VM: the command after `-k N SECONDS` answered from the table
TIMEOUT_SHIM = """import json, os, sys
text = " ".join(sys.argv[4:])
for needle, (status, out, err) in json.load(open(os.environ["FAKE_TABLE"])).items():
    if needle in text:
        sys.stdout.write(out)
        sys.exit(status)
"""


_SHIMS: list[str] = []
_SHIMS_MADE = threading.Lock()


def _shims() -> str:
    """The fake VM's commands, written once per test process: writing them per
    call raced with other threads' forks (a child holding the file open for
    writing makes exec fail with ETXTBSY, and the real timeout(1) ran)."""
    with _SHIMS_MADE:
        if not _SHIMS:
            shims = Path(tempfile.mkdtemp(prefix="labctl-fake-vm-"))
            atexit.register(shutil.rmtree, shims, True)
            for name, body in (("podman", "exit 0"), ("docker", "exit 0"),  # timeout answers
                               ("systemctl", "exit 0"),  # docker's daemon is up
                               ("sudo", '[ "$1" = -n ] && shift\nexec "$@"')):  # keeps PATH
                (shims / name).write_text(f"#!/bin/sh\n{body}\n")
                (shims / name).chmod(0o755)
            (shims / "timeout").write_text(f"#!{sys.executable}\n" + TIMEOUT_SHIM)
            (shims / "timeout").chmod(0o755)
            _SHIMS.append(str(shims))
        return _SHIMS[0]


class FakeTransport:
    """Answers commands from a table of (substring -> (exit, stdout, stderr));
    anything else succeeds silently, or with `execute=True` runs in a local
    `sh -c` as sshd would run it. Records what it was asked."""

    label = "VM 'fake'"

    def __init__(self, answers: dict[str, tuple[int, str, str]] | None = None,
                 execute: bool = False):
        self.answers, self.commands, self.execute = answers or {}, [], execute
        self.closed = False

    def run(self, command, timeout=None, input_data=None, errors="replace", max_output=None):
        text = command if isinstance(command, str) else join(command)
        self.commands.append(text)
        if batch.RECORD in text and not self.execute:
            return self._batch(text, shlex.split(text), timeout, errors)
        for needle, (status, out, err) in self.answers.items():
            if needle in text:
                return CommandResult(text, status, out, err, 0.0)
        if not self.execute:
            return CommandResult(text, 0, "", "", 0.0)
        began = time.monotonic()
        try:
            done = subprocess.run(["sh", "-c", text], input=input_data, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"{self.label}: command timed out after {timeout:.0f} s: "
                           f"{text[:80]}") from None
        if max_output is not None and len(done.stdout) + len(done.stderr) > max_output:
            raise TooMuchOutput(f"{self.label}: command printed more than "
                                f"{max_output >> 10} KiB: {text[:80]}")
        return CommandResult(text, done.returncode, done.stdout.decode(errors="replace"),
                             done.stderr.decode(errors="replace"), time.monotonic() - began)

    def _batch(self, text: str, argv: list[str], timeout, errors: str) -> CommandResult:
        """A check batch (checks/batch.py) run by the real bash, each probe's
        timeout(1) a shim answering from the table, as one command would be."""
        with tempfile.NamedTemporaryFile("w", suffix=".json") as table:
            json.dump(self.answers, table)
            table.flush()
            done = subprocess.run(argv, capture_output=True, timeout=timeout,
                                  env={**os.environ, "PATH": f"{_shims()}:{os.environ['PATH']}",
                                       "FAKE_TABLE": table.name})
        return CommandResult(text, done.returncode, done.stdout.decode(errors=errors),
                             done.stderr.decode(errors="replace"), 0.0)

    def converse(self, command, answer, timeout=None):
        """As `run`: a fake guest says nothing for `answer` to answer."""
        return self.run(command, timeout)

    def stream(self, command, stdout, stderr) -> int:
        result = self.run(command)
        stdout.write(result.stdout.encode())
        stderr.write(result.stderr.encode())
        return result.exit_status

    def put(self, local, remote, mode=None) -> None:
        self.commands.append(f"put {remote}")

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()


# Containers a fresh VM has: none; docker is not running.
FRESH_VM = {"systemctl is-active --quiet docker.service": (3, "", ""),
            "ps -a -q": (0, "", "")}


class FakeReach:
    """VMs are 'ready' as soon as they are started; every connection is a
    FakeTransport that remembers the VMs it reached."""

    def __init__(self, answers: dict[str, tuple[int, str, str]] | None = None):
        self.answers = {**FRESH_VM, **(answers or {})}
        self.waited: list[str] = []
        self.connected: list[str] = []
        self.transports: list[FakeTransport] = []  # every connection made, in order

    def wait_ready(self, host: Host, files: LabFiles, plan: VmPlan, report, began: float,
                   budgets) -> tuple[FakeTransport, Readiness]:
        assert host.is_running(plan.domain), f"{plan.domain} was never started"
        self.waited.append(plan.domain)
        report(Event(f"vm {plan.vm.name}", "boot-finished"))
        stages = {"running": 0.1, "address": 0.2, "banner": 0.3, "auth": 0.4,
                  "boot-finished": 0.5}
        transport = FakeTransport(self.answers)
        self.transports.append(transport)  # it carries what follows readiness too
        check_first_boot(transport, plan.vm.name)  # the real check, on canned answers
        return transport, Readiness(began, stages, 0.01, host.endpoint(plan.domain))

    def login_as(self, host: Host, domain: str, label: str, user: str, private: str,
                 pinned: str):
        if not host.is_running(domain):
            raise LabctlError(f"{label}: not running")
        self.connected.append(domain)
        return FakeTransport(self.answers)

    def connect(self, host: Host, files: LabFiles, domain: str, vm: str):
        if not host.is_running(domain):  # as SshReach: no connection to a VM that is off
            raise LabctlError(f"VM '{vm}' of lab '{files.lab}' is not running or has no "
                              "address", "run 'labctl up' for the lab")
        self.connected.append(domain)
        self.transports.append(FakeTransport(self.answers))
        return self.transports[-1]


class DriverStorage(Storage):
    """The labctl pool on test:///: volumes are made, their contents dropped
    (the test driver has no virStorageVolUpload)."""

    def upload_bytes(self, name: str, data: bytes, mode: str = "0600") -> str:
        return self._create_raw(name, len(data), mode).path()

    def upload_file(self, name: str, source: Path, mode: str = "0644") -> str:
        return self._create_raw(name, source.stat().st_size, mode).path()

    def download(self, name: str) -> bytes:
        return b""

    def copy(self, source: str, name: str) -> str:
        size = self.pool.storageVolLookupByName(source).info()[1]
        return self._create_raw(name, size, "0600").path()


class DriverHost(Host):
    """test:/// cannot hot-plug devices: a restored VM's NIC replug is recorded."""

    replugged: list[str] = []  # every replug of this test process, by domain
    agent_runs: list[tuple[str, str]] | None = None  # (domain, script) with an agent; None: none
    agent_waiting = False  # a template's waiting shell answers hand()

    def replug_nics(self, name: str) -> None:
        self._dom(name)  # a domain that must exist
        DriverHost.replugged.append(name)

    # test:/// runs no qemu: a template's memory file is made and recorded,
    # a restore with it recorded and done the snapshot's way
    maps_memory = False
    restored_with: list[tuple[str, str]] = []  # (domain, ram volume) of each restore

    def map_memory(self, name: str, ram: str, memory_mib: int) -> bool:
        if not DriverHost.maps_memory:
            return False
        self.storage.create_ram(ram, memory_mib << 20, 0, 0)
        return True

    def restore_into(self, name: str, snapshot: str, ram: str = "") -> None:
        DriverHost.restored_with.append((name, ram))
        super().restore_into(name, snapshot)

    resident: int | None = None  # MiB each running domain holds; None: cannot tell

    def resident_mib(self, name: str) -> int | None:
        self._dom(name)
        return DriverHost.resident

    def guest_agent(self, name: str):
        self._dom(name)
        return None if DriverHost.agent_runs is None else \
            FakeAgent(name, DriverHost.agent_runs, DriverHost.agent_waiting)


class FakeAgent:
    """A guest agent that answers: its guest is 30 s behind, every command exits 0."""

    def __init__(self, domain: str, runs: list[tuple[str, str]], waiting: bool = False):
        self.domain, self.runs, self.waiting = domain, runs, waiting

    def hand(self, folder: str, script: str, timeout: float) -> CommandResult | None:
        """The waiting shell, if the fake has one: the script is noted, exits 0."""
        if not self.waiting:
            return None
        self.runs.append((self.domain, f"# handed to {folder}\n{script}"))
        return CommandResult("(waiting shell)", 0, "", "", 0.01)

    def clock_offset(self) -> float:
        return 30.0

    def run(self, argv: list[str], stdin: str, timeout: float, errors: str = "replace",
            max_output: int = 64 << 10) -> CommandResult:
        """A script given as `bash -c` (the checks') runs here, as root, the lab
        user named in it replaced by root (this machine has no such user)."""
        if argv[:2] != ["/bin/bash", "-c"]:
            self.runs.append((self.domain, stdin))
            return CommandResult(" ".join(argv), 0, "", "", 0.01)
        self.runs.append((self.domain, argv[2]))
        script = re.sub(r"^U=\S+$", "U=root", argv[2], flags=re.M)
        done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=timeout)
        return CommandResult(" ".join(argv[:2]), done.returncode, done.stdout.decode(errors=errors),
                             done.stderr.decode(errors="replace"), 0.01)


def driver_host(uri: str) -> Host:
    host = DriverHost(uri)
    host.storage = DriverStorage(host.conn)
    return host


def node_uri(tmp_path: Path, name: str = "node") -> str:
    """A private, empty libvirt host on the test driver."""
    node = tmp_path / f"{name}.xml"
    shutil.copyfile(DATA / "test-driver-node.xml", node)
    return f"test://{node}"


def fake_image(data_dir: Path, name: str = "debian-12", sha256: str = "ab" * 32) -> None:
    """A cached image whose files are tiny stand-ins (nothing boots on test:///)."""
    from labctl.images.cache import DISK, INITRD, KERNEL

    with ImageCache(data_dir / "images").staging(name) as stage:
        for part in (DISK, KERNEL, INITRD):
            (stage / part).write_bytes(b"x" * 16)
        ImageCache.write_manifest(stage, {"name": name, "kind": "built", "sha256": sha256,
                                          "size": 16, "cmdline": "root=/dev/vda console=ttyS0"})


def session_on(tmp_path: Path, reach: FakeReach | None = None, events: list | None = None,
               **settings) -> Session:
    uri = settings.pop("uri", None) or node_uri(tmp_path)
    data = tmp_path / "data"
    if not (data / "images").exists():
        fake_image(data)
    sink = events.append if events is not None else (lambda _e: None)
    return Session(Settings(uri=uri, data_dir=data, **settings), sink, open_host=driver_host,
                   reach=reach or FakeReach())


def wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


class EchoChannel:
    """A shell that answers each line it is sent with 'you said: LINE' (the
    browser terminal's unit tests); records resizes."""

    def __init__(self):
        import queue

        self.out: queue.Queue[bytes] = queue.Queue()
        self.sizes: list[tuple[int, int]] = []
        self.closed = False

    def recv(self, _size: int) -> bytes:
        return self.out.get()

    def sendall(self, data: bytes) -> None:
        for line in data.decode().splitlines():
            self.out.put(f"you said: {line}\r\n".encode())

    def resize_pty(self, width: int, height: int) -> None:
        self.sizes.append((width, height))

    def close(self) -> None:
        self.closed = True
        self.out.put(b"")
