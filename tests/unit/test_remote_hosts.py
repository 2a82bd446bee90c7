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
