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
        assert not ports.is_free(taken, "127.0.0.1", local=True)
        assert not ports.is_free(taken, "127.0.0.1", local=False)  # it answered
        chosen = ports.pick({taken}, "127.0.0.1", local=False)
        assert chosen != taken and ports.REMOTE_RANGE[0] <= chosen < ports.REMOTE_RANGE[1]
    assert ports.is_free(taken, "127.0.0.1", local=True)
    assert ports.is_free(taken, "127.0.0.1", local=False)  # refused now: nobody listens
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


def test_a_dead_host_is_named_in_one_line_within_seconds(monkeypatch):
    """A remote URI is asked on its transport's port before libvirt (whose ssh
    would wait out TCP's own timeout); local URIs are not asked at all."""
    import pytest

    from labctl.virt import connection

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nobody listens once this closes
    with pytest.raises(LabctlError) as info:
        connection.connect(f"qemu+ssh://root@127.0.0.1:{closed}/system")
    assert info.value.message == \
        f"host 127.0.0.1 is unreachable (Connection refused on port {closed})"
    assert "--replace-lost" in info.value.hint
    asked: list = []
    monkeypatch.setattr(connection.socket, "create_connection",
                        lambda *a, **k: asked.append(a) or socket.socket())
    monkeypatch.setattr(connection.libvirt, "open", lambda uri: uri)
    assert connection.connect("test:///default") == "test:///default"
    assert connection.connect("qemu:///system") == "qemu:///system"
    assert connection.connect("qemu+ssh://h/system") == "qemu+ssh://h/system"
    assert asked == [(("h", 22),)]


def test_a_remote_uri_with_a_query_string_is_a_uri():
    import pytest

    from labctl.lab.values import Invalid, libvirt_uri

    remote = "qemu+ssh://root@192.0.2.11/system?keyfile=/run/k/id_ed25519&no_verify=1"
    assert libvirt_uri(remote) == remote
    for bad in ("qemu:///system;reboot", "qemu+ssh://h/system?x=`id`", "not a uri"):
        with pytest.raises(Invalid):
            libvirt_uri(bad)


def test_a_host_ssh_reaches_through_a_jump_host_is_not_probed_directly(monkeypatch):
    import subprocess

    from labctl.virt import connection

    said = "hostname 10.9.9.9\nport 2222\nproxyjump bastion\nproxycommand none\n"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, said, ""))
    assert connection._ssh_target("lab-host", None) is None
    said = said.replace("proxyjump bastion", "proxyjump none")
    assert connection._ssh_target("lab-host", None) == ("10.9.9.9", 2222)  # ssh's alias
