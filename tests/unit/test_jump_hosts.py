"""A host that does not expose its forwarded ports (`labctl_jump=1` in its URI):
libvirt never sees the option, forwards listen on the host's loopback, and
labctl (and the ssh configs it writes) go through the host's sshd."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from labctl.errors import LabctlError
from labctl.labfiles import SshEntry, ssh_config_text
from labctl.ssh.transport import Endpoint, open_socket
from labctl.virt import access, ports, remote

JUMP = "qemu+ssh://root@192.0.2.12:2222/system?keyfile=/run/k/id_ed25519&no_verify=1&labctl_jump=1"

# Stands in for `ssh -W HOST:PORT`: stdin/stdout carried to a TCP connection.
RELAY = """import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while (d := os.read(0, 65536)):
        s.sendall(d)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while (d := s.recv(65536)):
    os.write(1, d)
"""


def test_libvirt_never_sees_labctls_option_and_the_rest_stays_as_written():
    assert remote.libvirt_uri(JUMP) == \
        "qemu+ssh://root@192.0.2.12:2222/system?keyfile=/run/k/id_ed25519&no_verify=1"
    assert remote.libvirt_uri("qemu:///system") == "qemu:///system"
    assert remote.libvirt_uri("qemu+ssh://h/system?labctl_jump=1") == "qemu+ssh://h/system"
    assert remote.jumps(JUMP) and not remote.jumps(remote.libvirt_uri(JUMP))
    assert not remote.jumps("qemu+tcp://h/system?labctl_jump=1")  # no sshd to jump through
    assert remote.jump_spec(JUMP) == "root@192.0.2.12:2222"


def test_the_hosts_ssh_is_the_one_libvirt_would_use():
    argv = remote.ssh_argv(JUMP, "-W", "127.0.0.2:40022")
    assert argv[0] == "ssh" and argv[-2:] == ["--", "192.0.2.12"]
    joined = " ".join(argv)
    for part in ("-p 2222", "-l root", "-i /run/k/id_ed25519", "StrictHostKeyChecking=no",
                 "BatchMode=yes", "-W 127.0.0.2:40022"):
        assert part in joined
    assert argv.index("-W") < argv.index("--")  # an option, never the remote command
    with pytest.raises(LabctlError, match="only through ssh"):
        remote.ssh_argv("qemu+tcp://h/system")
    with pytest.raises(LabctlError, match="not a host name"):
        remote.ssh_argv("qemu+ssh://-oProxyCommand=x/system")


def test_forwards_on_a_jump_host_listen_on_its_loopback_and_are_reached_through_it():
    assert access.forward_bind(JUMP) == access.LOOPBACK
    assert access.forward_host(JUMP) == access.LOOPBACK
    reached = access.reach(JUMP, access.LOOPBACK, 40022)
    assert (reached.host, reached.port, reached.jump) == ("127.0.0.2", 40022,
                                                          "root@192.0.2.12:2222")
    assert reached.via[-4:] == ("-W", "127.0.0.2:40022", "--", "192.0.2.12")
    assert reached.describe() == "127.0.0.2:40022 via root@192.0.2.12:2222"
    plain = access.reach("qemu+ssh://root@192.0.2.11/system", "192.0.2.11", 40022)
    assert plain == Endpoint("192.0.2.11", 40022)


def test_a_jumped_endpoint_is_a_real_socket_through_the_jump_command():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def echo():
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"SSH-2.0-fake\r\n")
                conn.sendall(conn.recv(100))

        threading.Thread(target=echo, daemon=True).start()
        via = (sys.executable, "-c", RELAY, "127.0.0.1", str(port))
        sock = open_socket(Endpoint("127.0.0.1", port, via, "me@jump"), timeout=10)
        with sock:
            assert sock.recv(4, socket.MSG_PEEK) == b"SSH-"  # what readiness peeks at
            sock.sendall(b"hello")
            got = b""
            while len(got) < len(b"SSH-2.0-fake\r\nhello"):
                got += sock.recv(100)
            assert got == b"SSH-2.0-fake\r\nhello"
    # nothing listens any more: the jump's end closes, as ssh -W's does
    with open_socket(Endpoint("127.0.0.1", port, via, "me@jump"), timeout=10) as sock:
        assert sock.recv(4, socket.MSG_PEEK) == b""


def test_the_hosts_listening_ports_are_read_from_ss():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        listed = ports.listening(subprocess.run(["ss", "-Htln"], capture_output=True,
                                                text=True, check=True).stdout)
    assert port in listed
    assert ports.listening("LISTEN 0 128 [::]:22 [::]:*\nLISTEN 0 5 127.0.0.2:40022 0.0.0.0:*") \
        == {22, 40022}
    chosen = ports.pick(listed, "127.0.0.2", ports.LISTED)
    assert chosen not in listed and ports.REMOTE_RANGE[0] <= chosen < ports.REMOTE_RANGE[1]


def test_ssh_configs_go_through_the_jump_host():
    entry = SshEntry("c1.node", "127.0.0.2", 40022, "lab", "root@192.0.2.12",
                     "ssh -o BatchMode=yes -W 127.0.0.2:40022 -- 192.0.2.12")
    mine = ssh_config_text([entry], "key", "known", "# mine")
    assert "  ProxyCommand ssh -o BatchMode=yes -W 127.0.0.2:40022 -- 192.0.2.12\n" in mine
    assert "ProxyJump" not in mine
    student = SshEntry("c1.node", "127.0.0.2", 40022, "lab", "root@192.0.2.12")
    assert "  ProxyJump root@192.0.2.12\n" in ssh_config_text([student], "k", "kh", "#")
    assert "  ProxyJump ana@lab-host\n" in ssh_config_text([student], "k", "kh", "#",
                                                          "ana@lab-host")
    straight = SshEntry("c2.node", "192.0.2.11", 40023, "lab")
    text = ssh_config_text([straight], "k", "kh", "#")
    assert "Proxy" not in text
