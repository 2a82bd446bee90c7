"""Opening libvirt, and deciding between KVM and TCG by probing what works."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import os
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import libvirt

from labctl.errors import BackendError, LabctlError
from labctl.plan.hosts import Accel
from labctl.virt.remote import CONNECT_SECONDS, libvirt_uri

DEFAULT_URI = "qemu:///system"

# Keep libvirt from printing its own copy of every error on stderr.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def library_version() -> str:
    """The libvirt library labctl is linked against (no daemon needed)."""
    major, rest = divmod(libvirt.getVersion(), 1_000_000)
    return f"{major}.{rest // 1000}.{rest % 1000}"


_DEFAULT_PORTS = {"ssh": 22, "libssh": 22, "libssh2": 22, "tcp": 16509, "tls": 16514, "": 16514}
# A host found unreachable is not asked again for this long: `status
# --all-copies` with ten copies on a dead host waited ten timeouts, not one.
UNREACHABLE_MEMORY = 15.0
_unreachable: dict[tuple[str, int], tuple[float, LabctlError]] = {}
_unreachable_lock = threading.Lock()


def connect(uri: str) -> libvirt.virConnect:
    _reachable(uri)
    try:
        return libvirt.open(libvirt_uri(uri))
    except libvirt.libvirtError as exc:
        hint = ("start libvirtd (scripts/libvirtd-netns start for tests and demos)"
                if "socket" in str(exc) or "No such file" in str(exc) else
                "check the URI (--uri or LABCTL_URI) and that libvirtd runs there")
        raise LabctlError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}",
                          hint) from None


def _reachable(uri: str) -> None:
    """A remote host answers on its transport's port within CONNECT_SECONDS, or
    one line says it is unreachable (local and ext/unix URIs are not asked)."""
    parsed = urlparse(uri)
    transport = parsed.scheme.partition("+")[2]
    if not parsed.hostname or transport not in _DEFAULT_PORTS:
        return
    host, port = parsed.hostname, parsed.port or _DEFAULT_PORTS[transport]
    if transport.startswith("ssh") or transport.startswith("libssh"):
        resolved = _ssh_target(host, parsed.port)
        if resolved is None:
            return  # a jump host or proxy command: only ssh knows the way
        host, port = resolved
    with _unreachable_lock:
        when, said = _unreachable.get((host, port), (0.0, None))
    if said is not None and time.monotonic() - when < UNREACHABLE_MEMORY:
        raise LabctlError(said.message, said.hint)
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        why = exc.strerror or f"no answer in {CONNECT_SECONDS} s"
        said = LabctlError(f"host {parsed.hostname} is unreachable ({why} on port {port})",
                           "is it up, with its sshd and libvirtd? ('labctl hosts' lists every "
                           "host; --replace-lost moves a class's copies off it)")
        with _unreachable_lock:
            _unreachable[(host, port)] = (time.monotonic(), said)
        raise said from None
    with _unreachable_lock:
        _unreachable.pop((host, port), None)


def _ssh_target(host: str, port: int | None) -> tuple[str, int] | None:
    """Where ssh itself would connect for `host` (its config may rename it or
    route it through a jump host: None then)."""
    import subprocess

    try:
        done = subprocess.run(["ssh", "-G", *(["-p", str(port)] if port else []), host],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return host, port or 22
    config = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    if done.returncode != 0:
        return host, port or 22
    if config.get("proxyjump", "none") != "none" or config.get("proxycommand", "none") != "none":
        return None
    return config.get("hostname", host), int(config.get("port", port or 22))


class LibvirtFailed(BackendError, libvirt.libvirtError):
    """A libvirtError as labctl's one line. Still a libvirtError, so code in
    virt/ that expects one from a call it makes (not found, already gone)
    keeps working through the translated boundary."""

    def __init__(self, original: libvirt.libvirtError):
        BackendError.__init__(self, f"libvirt failed: {original.get_error_message()}",
                              "is libvirtd running? 'labctl doctor' checks; then run the "
                              "command again")
        self.original = original

    def get_error_code(self):
        return self.original.get_error_code()

    def get_error_domain(self):
        return self.original.get_error_domain()

    def get_error_message(self):
        return self.original.get_error_message()


def speaks_labctl(cls):
    """Class decorator for virt/'s public classes: a libvirtError leaving any
    public method or property becomes LibvirtFailed (a BackendError)."""
    for name, attr in list(vars(cls).items()):
        if name.startswith("__"):
            continue
        if isinstance(attr, property):
            setattr(cls, name, property(_translated(attr.fget), attr.fset, attr.fdel, attr.__doc__))
        elif isinstance(attr, functools.cached_property):
            wrapped = functools.cached_property(_translated(attr.func))
            wrapped.__set_name__(cls, name)
            setattr(cls, name, wrapped)
        elif inspect.isfunction(attr):
            setattr(cls, name, _translated(attr))
    return cls


def _translated(func):
    @functools.wraps(func)
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LibvirtFailed:
            raise
        except libvirt.libvirtError as exc:
            raise LibvirtFailed(exc) from None

    return call


@contextlib.contextmanager
def libvirt_errors(what: str, hint: str | None = None) -> Iterator[None]:
    """Turn a libvirtError inside the block into one line saying what failed."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise LabctlError(f"{what}: {exc.get_error_message()}",
                          hint or "'labctl doctor' checks libvirtd, qemu and the host") from None


def is_local(uri: str) -> bool:
    parsed = urlparse(uri)
    return not parsed.hostname and "+" not in parsed.scheme



# ioctl numbers from <linux/kvm.h>
_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01
_KVM_CREATE_VCPU = 0xAE41


def probe_local_kvm(cpuinfo: str = "/proc/cpuinfo", device: str = "/dev/kvm") -> Accel:
    """KVM only if it can really run a guest here: the CPU exposes vmx/svm,
    /dev/kvm opens, and a VM with one vCPU can be created. libvirt's
    capabilities are not enough: they advertise kvm whenever /dev/kvm exists."""
    try:
        with open(cpuinfo) as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh
                          if line.startswith("flags")), [])
    except OSError:
        flags = []
    if "vmx" not in flags and "svm" not in flags:
        return Accel("qemu", "the CPU has no vmx/svm flag (no usable hardware virtualization); "
                     "using TCG emulation")
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return Accel("qemu", f"{device}: {exc.strerror}; using TCG emulation")
    try:
        if fcntl.ioctl(fd, _KVM_GET_API_VERSION) != 12:
            return Accel("qemu", "unexpected KVM API version; using TCG emulation")
        vm = fcntl.ioctl(fd, _KVM_CREATE_VM, 0)
        try:
            os.close(fcntl.ioctl(vm, _KVM_CREATE_VCPU, 0))
        finally:
            os.close(vm)
    except OSError as exc:
        return Accel("qemu", f"KVM cannot create a VM ({exc.strerror}); using TCG emulation")
    finally:
        os.close(fd)
    return Accel("kvm", "KVM works")


def probe_accel(conn: libvirt.virConnect, uri: str) -> Accel:
    if is_local(uri):
        return probe_local_kvm()
    # A remote host: trust libvirt's host CPU features, the best we can see.
    caps = conn.getCapabilities()
    if "name='vmx'" in caps or "name='svm'" in caps:
        return Accel("kvm", "the remote host CPU reports vmx/svm")
    return Accel("qemu", "the remote host CPU reports no vmx/svm; using TCG emulation")
