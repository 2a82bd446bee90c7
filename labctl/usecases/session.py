"""What every use case stands on, built once per command: the settings, the
libvirt hosts opened so far, each lab's local files, its lock, and how a VM is
reached (SSH). Unit tests give a Session a host on libvirt's test:/// driver
and a fake way to reach VMs; the use cases cannot tell."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from labctl import interrupt
from labctl.backend import Backend
from labctl.errors import LabctlError
from labctl.events import Event, Report, ignore
from labctl.images.cache import ImageCache
from labctl.images.guest import BOOT_FAILURE, BOOT_STATE, parse_failure
from labctl.lab.model import ADMIN_USER
from labctl.labfiles import LabFiles
from labctl.lock import lab_lock
from labctl.plan.layout import VmPlan
from labctl.ssh import transport as ssh
from labctl.ssh.transport import CommandResult, SSHTransport
from labctl.ssh.wait import Probes, Readiness, wait_ready
from labctl.virt.connection import DEFAULT_URI


@dataclass(frozen=True)
class Settings:
    uri: str = DEFAULT_URI
    data_dir: Path = Path()
    templates: Path | None = None
    workers: int | None = None  # VMs provisioned at once; None: 2 under TCG, 4 with KVM
    budgets: dict[str, float] = field(default_factory=dict)
    lock_wait: bool = True  # False: fail at once if another labctl holds the lab
    lock_timeout: float | None = None  # seconds to wait for it; None: as long as it takes
    cold: bool = False  # True: boot every VM, never restore a template (--cold)
    # open labs boot only under a libvirtd in a network namespace of its own
    # (LABCTL_REQUIRE_NETNS=1: the project's scripts and CI set it)
    require_netns: bool = False

    @property
    def images(self) -> ImageCache:
        return ImageCache(self.data_dir / "images")

    @classmethod
    def from_env(cls, uri: str | None, data_dir: Path, **extra) -> Settings:
        """The one place the environment is read into settings."""
        return cls(uri=uri or os.environ.get("LABCTL_URI") or DEFAULT_URI, data_dir=data_dir,
                   require_netns=os.environ.get("LABCTL_REQUIRE_NETNS") == "1", **extra)


class VmReach(Protocol):
    """How labctl gets a command line into a VM: wait for it after a start, or
    connect to one that runs."""

    def wait_ready(self, host: Backend, files: LabFiles, plan: VmPlan, report: Report,
                   began: float, budgets: dict[str, float]) -> tuple[SSHTransport, Readiness]: ...

    def connect(self, host: Backend, files: LabFiles, domain: str, vm: str,
                user: str) -> SSHTransport: ...

    def login_as(self, host: Backend, domain: str, label: str, user: str, private: str,
                 pinned: str) -> SSHTransport: ...


class SshReach:
    """The real thing: staged readiness over SSH, the lab's key, pinned host keys."""

    def wait_ready(self, host: Backend, files: LabFiles, plan: VmPlan, report: Report,
                   began: float, budgets: dict[str, float]) -> tuple[SSHTransport, Readiness]:
        label = f"VM '{plan.vm.name}'"
        private = files.admin_key().private
        pinned = files.pinned_host_key(plan.domain) or ""
        answers: list[CommandResult] = []
        probes = Probes(
            is_running=lambda: host.is_running(plan.domain),
            address=lambda: host.endpoint(plan.domain),
            login=lambda sock: ssh.login(sock, label, ADMIN_USER, private, pinned),
            boot_finished=lambda t: boot_state(t, answers),
            serial_tail=lambda n: host.serial_tail(plan.domain, n),
            backend_gap=host.probe_seconds,
        )
        transport, readiness = wait_ready(plan.vm.name, probes, report, start=began,
                                          budgets=budgets)
        check_first_boot(transport, plan.vm.name, answers[-1] if answers else None)
        return transport, readiness

    def connect(self, host: Backend, files: LabFiles, domain: str, vm: str) -> SSHTransport:
        """labctl's own login (its account and key, not the lab user's)."""
        endpoint = host.endpoint(domain) if host.is_running(domain) else None
        if endpoint is None:
            raise LabctlError(f"VM '{vm}' of lab '{files.lab}' is not running or has no "
                              "address", "run 'labctl up' for the lab")
        return ssh.login(endpoint, f"VM '{vm}'", ADMIN_USER, files.admin_key().private,
                         files.pinned_host_key(domain) or "")


    def login_as(self, host: Backend, domain: str, label: str, user: str, private: str,
                 pinned: str) -> SSHTransport:
        """One login with given keys (a restored template's, before the VM has
        its own identity)."""
        endpoint = host.endpoint(domain) if host.is_running(domain) else None
        if endpoint is None:
            raise LabctlError(f"{label}: no address yet")
        return ssh.login(endpoint, label, user, private, pinned)


def boot_state(transport: SSHTransport, answers: list[CommandResult]) -> bool:
    """Has the first boot finished? Its BOOT_FAILURE answer is kept in
    `answers` for check_first_boot (asked in the same command)."""
    result = transport.run(["sh", "-c", BOOT_STATE], timeout=60)
    if result.exit_status not in (0, 1):  # NOT_FINISHED, or no answer yet
        return False
    answers.append(result)
    return True


def check_first_boot(transport: SSHTransport, vm: str,
                     result: CommandResult | None = None) -> None:
    """Fail loudly if the VM's first boot did not do what the lab file asked
    (packages, runcmd, cloud-init modules): the step and the guest's words.
    `result`: BOOT_FAILURE's answer if it was already asked (boot_state)."""
    result = result or transport.run(["sh", "-c", BOOT_FAILURE], timeout=60)
    if result.ok:
        return
    transport.close()
    failure = parse_failure(result.stdout)
    raise FirstBootFailed(failure.message(vm), failure.hint())


class FirstBootFailed(LabctlError):
    """The VM runs, but its first boot failed: `up` recreates it next time."""


def open_backend(uri: str) -> Backend:
    """The backend a host URI names: an OpenStack cloud (openstack:CLOUD) or a
    libvirt host (imported here, not at the top: commands that never open a
    host load neither libvirt nor openstacksdk)."""
    from labctl.cloud.records import is_cloud

    if is_cloud(uri):
        from labctl.cloud.project import Cloud

        return Cloud(uri)
    from labctl.virt.host import Host

    return Host(uri)


class Session:
    def __init__(self, settings: Settings, report: Report = ignore,
                 open_host: Callable[[str], Backend] | None = None, reach: VmReach | None = None):
        self.settings = settings
        self.report = report
        self.reach: VmReach = reach or SshReach()
        self._open_host = open_host or open_backend
        self._hosts: dict[str, Backend] = {}
        self._hosts_lock = threading.Lock()

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def host(self, uri: str | None = None) -> Backend:
        """The host at `uri` (default: the settings'), opened once per session."""
        uri = uri or self.settings.uri
        with self._hosts_lock:
            if uri not in self._hosts:
                self._hosts[uri] = self._open_host(uri)
            return self._hosts[uri]

    def placed_uri(self, lab: str) -> str:
        """The host a lab was placed on (a class over several hosts), else the default."""
        return self.files(lab).placement().get("uri") or self.settings.uri

    def lab_host(self, lab: str) -> Backend:
        return self.host(self.placed_uri(lab))

    def files(self, lab: str) -> LabFiles:
        return LabFiles(self.data_dir, lab)

    @contextlib.contextmanager
    def changing(self, lab: str, action: str) -> Iterator[None]:
        """Every use case that changes a lab holds its lock (saying so while it
        waits), and defers Ctrl-C to the core's next safe point."""
        def waiting(holder: str) -> None:
            limit = (f"up to {self.settings.lock_timeout:.0f} s"
                     if self.settings.lock_timeout is not None else "--no-wait to give up")
            self.report(Event(f"lab {lab}", "busy", f"{holder}; waiting ({limit})"))

        def stopping() -> None:
            self.report(Event(f"lab {lab}", "stopping", "after the steps in flight "
                              "(Ctrl-C again to abort at once)"))

        with lab_lock(self.data_dir, lab, action, wait=self.settings.lock_wait,
                      timeout=self.settings.lock_timeout, waiting=waiting), \
                interrupt.deferred_sigint(stopping):
            yield

    def connect_vm(self, lab: str, vm: str) -> SSHTransport:
        """An authenticated SSH connection to one running VM of a lab."""
        host = self.lab_host(lab)
        found = host.domain(lab, vm)
        if found is None:
            known = ", ".join(f.meta.name for f in host.domains(lab)) or "none"
            raise LabctlError(f"lab '{lab}' has no VM '{vm}'", f"its VMs: {known}")
        return self.reach.connect(host, self.files(lab), found.libvirt_name, vm)

    def close(self) -> None:
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
