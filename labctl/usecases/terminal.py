"""A terminal into one VM: an SSH login as the lab's user with the lab's key
(as a student's own `ssh` would), the VM's pinned host key checked, and an
interactive shell on a PTY. The dashboard carries it to a browser."""

from __future__ import annotations

import paramiko

from labctl.errors import LabctlError
from labctl.ssh.transport import SSHTransport
from labctl.usecases.session import Session

MAX_COLS, MAX_ROWS = 500, 200


def open_shell(session: Session, lab: str, vm: str, cols: int, rows: int
               ) -> tuple[SSHTransport, paramiko.Channel]:
    host = session.lab_host(lab)
    found = host.domain(lab, vm)
    if found is None or not found.active:
        raise LabctlError(f"VM '{vm}' of lab '{lab}' is not running", "start it: labctl up")
    files = session.files(lab)
    pinned = files.pinned_host_key(found.libvirt_name) or ""
    transport = session.reach.login_as(host, found.libvirt_name, f"VM '{vm}'", found.meta.user,
                                       files.login_key().private, pinned)
    try:
        channel = transport.shell(_within(cols, MAX_COLS), _within(rows, MAX_ROWS))
    except Exception:
        transport.close()
        raise
    return transport, channel


def _within(value: int, top: int) -> int:
    return max(10, min(int(value), top))
