"""The host ports a user-mode VM's forwards bind (SSH, published ports),
chosen free on the host that binds them.

Locally a bind on the forwards' address says whether a port is free (BIND).
On a remote libvirt host nothing here can bind its ports, so the host answers
for itself (CONNECT): a port nobody listens on refuses a connection at once
(RST), a taken one accepts it, and silence (a firewall) counts as taken. A
jump host's forwards listen on its loopback, which nothing here can reach: the
caller reads its listening ports there (`ss`) and avoids them (LISTED). Between the choice
and qemu's bind another program may still take the port: qemu then fails to
start with "Could not set up host forwarding rule", and the caller chooses
again (`refused_port`)."""

from __future__ import annotations

import random
import re
import socket

from labctl.errors import LabctlError

REMOTE_RANGE = (20000, 61000)  # below Linux's default ephemeral range's end
PROBE_SECONDS = 1.0


BIND, CONNECT, LISTED = "bind", "connect", "listed"


def is_free(port: int, address: str, how: str) -> bool:
    if how == LISTED:
        return True  # the host's listening ports are in the caller's `avoid`
    if how == BIND:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
        return True
    try:
        socket.create_connection((address, port), timeout=PROBE_SECONDS).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # no answer: not known to be free
    return False  # something listens there


def pick(avoid: set[int], address: str, how: str) -> int:
    """A port free on the host binding `address` and not in `avoid` (ports
    other labctl VMs of that host reserve, or ports that just failed)."""
    for _ in range(100):
        if how == BIND:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((address, 0))
                port = sock.getsockname()[1]
        else:
            port = random.randrange(*REMOTE_RANGE)
            if port in avoid or not is_free(port, address, how):
                continue
        if port not in avoid:
            return port
    raise LabctlError(f"no free TCP port for a VM's forwards on {address}",
                      "free some ports there, or use a lab network (mode: nat) instead of "
                      "user-mode networking")


def listening(ss_output: str) -> set[int]:
    """Ports in `ss -Htln` output (Local Address:Port is the fourth column)."""
    found = set()
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].rpartition(":")[2].isdigit():
            found.add(int(fields[3].rpartition(":")[2]))
    return found


_FORWARD_FAILED = re.compile(r"host forwarding rule '?tcp:[^:]*:(\d+)-")


def refused_port(message: str) -> int | None:
    """The host port qemu could not bind, from libvirt's start error."""
    found = _FORWARD_FAILED.search(message)
    return int(found.group(1)) if found else None


def free_local_port(address: str = "127.0.0.1") -> int:
    """A port free on this machine right now, chosen by the kernel (servers
    the tests and benchmarks start themselves; VMs' forwards use `pick`)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]
