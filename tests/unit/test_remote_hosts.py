"""Reaching a libvirt host that is elsewhere: a dead one is named in one line
within seconds, ssh's own idea of where a host is (aliases, jump hosts) is
followed, and a remote URI's query string is part of it."""

from __future__ import annotations

import socket

import pytest

from labctl.errors import LabctlError


def test_a_dead_host_is_named_in_one_line_within_seconds(monkeypatch):
    """A remote URI is asked on its transport's port before libvirt (whose ssh
    would wait out TCP's own timeout); local URIs are not asked at all."""
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


def test_a_templates_overlay_on_another_host_is_copied_by_that_hosts_shell(tmp_path):
    """libvirt's clone drops a qcow2's internal snapshots (the saved state), so
    a template's overlay is copied as a file: on another host by its shell,
    its failure one line."""
    import subprocess

    from labctl.virt.storage import Storage

    from .fakes import driver_host, node_uri

    host = driver_host(node_uri(tmp_path))
    host.storage.upload_bytes("labctl-template-x.qcow2", b"q")
    ran: list[str] = []
    status = 0

    def on_the_host(script: str, timeout: float) -> subprocess.CompletedProcess[str]:
        ran.append(script)
        return subprocess.CompletedProcess(script, status, "", "cp: No space left on device")

    remote_pool = Storage(host.conn, on_the_host)
    source = remote_pool.path("labctl-template-x.qcow2")
    target = source.replace("labctl-template-x.qcow2", "lab.vm.qcow2")
    assert remote_pool.copy("labctl-template-x.qcow2", "lab.vm.qcow2") == target
    assert ran == [f"cp {source} {target} && chmod 0600 {target}"]  # any POSIX cp
    status = 1
    with pytest.raises(LabctlError) as info:
        remote_pool.copy("labctl-template-x.qcow2", "lab.vm.qcow2")
    assert info.value.message == ("cannot copy volume labctl-template-x.qcow2 on its host: "
                                  "cp: No space left on device")


@pytest.mark.parametrize("answer, said", [
    (0, None),
    (1, "a template on another host is copied by its shell, which cannot write "
        "/var/lib/libvirt/images/labctl there"),
    (LabctlError("cannot run a command on host h: Permission denied (publickey)"),
     "a template on another host is copied by its shell (cannot run a command on host h: "
     "Permission denied (publickey))"),
])
def test_a_remote_host_restores_templates_only_where_its_shell_can_write_the_pool(
        answer, said):
    """Asked once per host; this machine is never asked."""
    import subprocess
    from types import SimpleNamespace

    from labctl.virt.host import Host

    asked: list[str] = []

    def run(script: str, timeout: float = 60):
        asked.append(script)
        if isinstance(answer, Exception):
            raise answer
        return subprocess.CompletedProcess(script, answer, "", "")

    host = Host.__new__(Host)
    host.uri = "qemu+ssh://root@h/system?keyfile=/k&labctl_jump=1"
    host.__dict__["storage"] = SimpleNamespace(pool_dir=lambda: "/var/lib/libvirt/images/labctl")
    host.__dict__["shell"] = SimpleNamespace(run=run)
    assert host.templates_refused() == said
    assert host.templates_refused() == said and len(asked) == 1
    assert asked == ["test -d /var/lib/libvirt/images/labctl -a -w /var/lib/libvirt/images/labctl"]
    assert host.template_home == "qemu+ssh://root@h/system?keyfile=/k"  # libvirt's URI
    here = Host.__new__(Host)
    here.uri = "qemu:///system"
    assert here.templates_refused() is None and here.template_home == ""


def test_a_dead_host_is_asked_once_not_once_per_copy(monkeypatch):
    """Ten copies on a host that does not answer: one wait of CONNECT_SECONDS,
    then the same line at once for each, until the memory runs out."""
    from labctl.virt import connection

    asked: list = []

    def no_answer(address, timeout):
        asked.append(address)
        raise TimeoutError()  # strerror None: "no answer in N s"

    monkeypatch.setattr(connection, "_unreachable", {})
    monkeypatch.setattr(connection.socket, "create_connection", no_answer)
    monkeypatch.setattr(connection, "_ssh_target", lambda host, port: (host, port or 22))
    said = set()
    for _ in range(10):
        with pytest.raises(LabctlError) as info:
            connection.connect("qemu+ssh://root@192.0.2.99/system")
        said.add(info.value.message)
    assert asked == [("192.0.2.99", 22)]
    assert said == {f"host 192.0.2.99 is unreachable (no answer in "
                    f"{connection.CONNECT_SECONDS} s on port 22)"}
    clock = connection.time.monotonic() + connection.UNREACHABLE_MEMORY + 1
    monkeypatch.setattr(connection.time, "monotonic", lambda: clock)
    with pytest.raises(LabctlError):
        connection.connect("qemu+ssh://root@192.0.2.99/system")
    assert len(asked) == 2  # asked again once the memory ran out
