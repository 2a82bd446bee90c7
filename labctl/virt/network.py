"""Network XML for a lab network, and choosing subnets that collide with
nothing: not with other libvirt networks, not with the host's routes."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable
from pathlib import Path

from labctl.errors import LabctlError
from labctl.plan.records import NetworkSpec
from labctl.render import render

# Auto-chosen subnets come from here, /24 each: unlikely to be a home or campus LAN.
AUTO_POOL = ipaddress.IPv4Network("10.213.0.0/16")


def network_xml(spec: NetworkSpec, templates: Path | None = None) -> str:
    return render("network.xml.j2", templates, n=spec)


def host_routes() -> list[ipaddress.IPv4Network]:
    """Destinations of this host's IPv4 routes (empty if `ip` is unavailable)."""
    try:
        out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    nets = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "prohibit", "blackhole"):
            word = line.split()[1]
        try:
            net = ipaddress.IPv4Network(word, strict=False)
        except ValueError:
            continue
        if net.prefixlen > 0:  # the default route collides with nothing
            nets.append(net)
    return nets


def choose_subnet(taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    taken = list(taken)
    for candidate in AUTO_POOL.subnets(new_prefix=24):
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise LabctlError(f"no free /24 left in {AUTO_POOL} for a lab network",
                      "set 'subnet:' on the network in the lab file")
