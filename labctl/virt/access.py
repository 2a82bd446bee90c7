"""Reaching a running VM, read from its own domain XML (works without the lab
file): the SSH endpoint (forwarded port, or the newest DHCP lease of its MAC)
and the tail of its serial console log."""

from __future__ import annotations

import ipaddress
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse

import libvirt

from labctl.errors import LabctlError
from labctl.ssh.transport import Endpoint
from labctl.virt import metadata, remote
from labctl.virt.connection import is_local

# User-mode forwards listen on this loopback address, not on 127.0.0.1: qemu's
# user network maps a guest's connections to its host alias (10.0.2.2) onto
# 127.0.0.1 only, so an open guest cannot reach another VM's forwarded SSH or
# published ports (another student's copy) through the host.
LOOPBACK = "127.0.0.2"


def forward_host(uri: str) -> str:
    """Where a user-mode VM's forwarded ports are reached: LOOPBACK on the
    local host and on a jump host (its own loopback, through its sshd); on
    another remote libvirt host, that host (by the URI's name)."""
    if is_local(uri) or remote.jumps(uri):
        return LOOPBACK
    return urlparse(uri).hostname or LOOPBACK


def reach(uri: str, host: str, port: int) -> Endpoint:
    """host:port as seen from the libvirt host at `uri`, reached from here:
    straight, or through that host's sshd when it is a jump host."""
    if not remote.jumps(uri):
        return Endpoint(host, port)
    return Endpoint(host, port, tuple(remote.ssh_argv(uri, "-W", f"{host}:{port}")),
                    remote.jump_spec(uri))


def forward_bind(uri: str) -> str:
    """The address qemu binds forwarded ports to: loopback locally and on a
    jump host; on another remote host the address labctl reaches it at (the
    URI's, or its name resolved here) -- never every interface of that host."""
    host = forward_host(uri)
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError as exc:
        raise LabctlError(f"cannot resolve '{host}' of {uri}: {exc.strerror or exc}",
                          "put the host's address in the URI") from None


def endpoint(uri: str, conn: libvirt.virConnect, dom: libvirt.virDomain) -> Endpoint | None:
    """Where labctl reaches the VM's sshd (`uri`: its host's, as labctl names it)."""
    xml = dom.XMLDesc(0)
    meta = metadata.from_xml(xml)
    if meta is not None and meta.ssh_port:
        return reach(uri, forward_host(uri), meta.ssh_port)
    for network, mac in bridged_nics(xml):
        try:
            leases = conn.networkLookupByName(network).DHCPLeases(mac, 0)
        except libvirt.libvirtError:
            continue
        # dnsmasq keeps old leases for a reused MAC: the newest is the live one.
        leases = [lease for lease in leases if lease.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4]
        if leases:
            newest = max(leases, key=lambda lease: lease.get("expirytime", 0))
            return reach(uri, newest["ipaddr"], 22)
    return None


def bridged_nics(domain_xml: str) -> list[tuple[str, str]]:
    root = ET.fromstring(domain_xml)
    out = []
    for iface in root.findall("devices/interface[@type='network']"):
        source, mac = iface.find("source"), iface.find("mac")
        if source is not None and mac is not None:
            out.append((source.get("network", ""), mac.get("address", "")))
    return out


def serial_log_path(domain_xml: str) -> Path | None:
    source = ET.fromstring(domain_xml).find("devices/serial/source")
    return Path(source.get("path")) if source is not None and source.get("path") else None

