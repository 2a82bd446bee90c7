"""The host ports a user-mode VM's forwards bind (SSH, published ports),
chosen free on the host that binds them.

Locally a bind on the forwards' address says whether a port is free. On a
remote libvirt host nothing here can bind its ports, so the host answers for
itself: a port nobody listens on refuses a connection at once (RST), a taken
one accepts it, and silence (a firewall) counts as taken. Between the choice
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


def is_free(port: int, address: str, local: bool) -> bool:
    if local:
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


def pick(avoid: set[int], address: str, local: bool) -> int:
    """A port free on the host binding `address` and not in `avoid` (ports
    other labctl VMs of that host reserve, or ports that just failed)."""
    for _ in range(100):
        if local:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((address, 0))
                port = sock.getsockname()[1]
        else:
            port = random.randrange(*REMOTE_RANGE)
            if port in avoid or not is_free(port, address, local):
                continue
        if port not in avoid:
            return port
    raise LabctlError(f"no free TCP port for a VM's forwards on {address}",
                      "free some ports there, or use a lab network (mode: nat) instead of "
                      "user-mode networking")


_FORWARD_FAILED = re.compile(r"host forwarding rule '?tcp:[^:]*:(\d+)-")


def refused_port(message: str) -> int | None:
    """The host port qemu could not bind, from libvirt's start error."""
    found = _FORWARD_FAILED.search(message)
    return int(found.group(1)) if found else None
