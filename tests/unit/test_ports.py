"""Forwarded ports: free on the host that binds them (a local bind here; a
remote host answers for itself: a refused connection is a free port), and a
port taken between labctl's choice and qemu's bind is chosen again."""

from __future__ import annotations

import socket
from pathlib import Path

from labctl.errors import LabctlError
from labctl.lab.loader import load_lab
from labctl.usecases import lab as lab_cases
from labctl.virt import ports
from labctl.virt.provision import Provisioner

from .fakes import FakeReach, session_on
from .fixtures import ROOT

HELLO = load_lab(ROOT / "examples" / "hello.yaml")

QEMU_SAID = ("cannot start VM 'hello.node': internal error: qemu unexpectedly closed the "
             "monitor: 2026-11-29T22:50:01.123Z qemu-system-x86_64: -netdev user,id=labctl0,"
             "hostfwd=tcp:127.0.0.2:{port}-:22: Could not set up host forwarding rule "
             "'tcp:127.0.0.2:{port}-:22'")


def test_a_port_is_free_where_it_is_bound_or_where_the_host_refuses_it():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        taken = server.getsockname()[1]
        assert not ports.is_free(taken, "127.0.0.1", how=ports.BIND)
        assert not ports.is_free(taken, "127.0.0.1", how=ports.CONNECT)  # it answered
        chosen = ports.pick({taken}, "127.0.0.1", how=ports.CONNECT)
        assert chosen != taken and ports.REMOTE_RANGE[0] <= chosen < ports.REMOTE_RANGE[1]
    assert ports.is_free(taken, "127.0.0.1", how=ports.BIND)
    assert ports.is_free(taken, "127.0.0.1", how=ports.CONNECT)  # refused now: nobody listens
    assert ports.refused_port(QEMU_SAID.format(port=40023)) == 40023
    assert ports.refused_port("cannot start VM: no space left") is None


def test_a_port_taken_before_qemu_binds_it_is_chosen_again(tmp_path: Path, monkeypatch):
    events: list = []
    session = session_on(tmp_path, FakeReach(), events, cold=True)
    real_start = Provisioner.start_vm
    tried: list[int] = []

    def start_vm(self, domain):
        (found,) = [d for d in self.host.domains() if d.libvirt_name == domain]
        tried.append(found.meta.ssh_port)
        if len(tried) == 1:  # another program took it meanwhile
            raise LabctlError(QEMU_SAID.format(port=found.meta.ssh_port))
        return real_start(self, domain)

    monkeypatch.setattr(Provisioner, "start_vm", start_vm)
    result = lab_cases.up(session, HELLO)
    assert not any(vm.error for vm in result.vms)
    assert len(tried) == 2 and tried[0] != tried[1]
    assert any("was taken after it was chosen" in e.detail for e in events)

