"""A class: isolated copies of one lab, one per student.

A copy is an ordinary lab named LAB-ID (ID a student's name or 1..N), so
everything per lab -- libvirt names, networks, overlays, keys, lock, files --
is per copy by construction; its metadata also carries the group (the lab
file's name) and the copy id. Explicit subnets are moved one block per copy
(10.213.250.0/24 -> copy 2 on 10.213.251.0/24, fixed addresses moved alike),
so copies never share an address plan; unset subnets are chosen per copy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

from labctl.errors import LabctlError, UsageError
from labctl.lab.labschema import MAX_COPIES
from labctl.lab.model import Attachment, Lab, Network
from labctl.names import copy_name

PRIVATE = ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("172.16.0.0/12"), \
    ipaddress.ip_network("192.168.0.0/16")


def copy_ids(lab: Lab, copies: int | None = None) -> list[str]:
    """The lab's copy ids: its students, or 1..N (--copies overrides the file)."""
    if copies is not None:
        return [str(i) for i in range(1, copies + 1)]
    if lab.students:
        return list(lab.students)
    return [str(i) for i in range(1, lab.copies + 1)]


def is_class(lab: Lab, copies: int | None = None) -> bool:
    return copies is not None or bool(lab.students) or lab.copies > 1


def make_copy(lab: Lab, copy: str, index: int) -> Lab:
    """The lab as copy `copy` (index 0-based in the class)."""
    offset = index * _stride(lab)
    shifted = tuple(_shift_network(lab, n, offset, index) for n in lab.networks)
    moves = {n.name: offset if n.subnet is not None and n.mode != "user" else 0
             for n in lab.networks}
    vms = tuple(dataclasses.replace(vm, networks=tuple(
        Attachment(a.network, a.ip + moves[a.network] if a.ip is not None else None)
        for a in vm.networks)) for vm in lab.vms)
    return dataclasses.replace(lab, name=copy_name(lab.name, copy), networks=shifted, vms=vms,
                               copies=1, students=(), group=lab.name, copy=copy)


def _stride(lab: Lab) -> int:
    """How far each copy's address plan moves: the span of the lab's explicit
    subnets rounded up to a power of two, so no two copies overlap."""
    subnets = [n.subnet for n in lab.networks if n.subnet is not None and n.mode != "user"]
    if not subnets:
        return 0
    start = min(int(n.network_address) for n in subnets)
    end = max(int(n.broadcast_address) for n in subnets)
    return 1 << (end - start).bit_length()


def expand(lab: Lab, copies: int | None = None, only: str | None = None,
           render: Callable[[str], Lab] | None = None) -> list[Lab]:
    """The class's copies (or the one named); `render(copy)` gives the lab
    file as rendered for that copy (its own per-copy values), default `lab`."""
    ids = copy_ids(lab, copies)

    def made(copy: str, index: int) -> Lab:
        return make_copy(render(copy) if render else lab, copy, index)

    if only is not None:
        if only in ids:
            return [made(only, ids.index(only))]
        if only.isdigit() and not lab.students and 1 <= int(only) <= MAX_COPIES:
            return [made(only, int(only) - 1)]  # made with --copies N
        raise UsageError(f"lab '{lab.name}' has no copy '{only}'", f"its copies: {_shown(ids)}")
    return [made(copy, k) for k, copy in enumerate(ids)]


def _shift_network(lab: Lab, net: Network, offset: int, index: int) -> Network:
    if net.subnet is None or net.mode == "user" or offset == 0:
        return net
    moved = ipaddress.ip_network(f"{net.subnet.network_address + offset}/{net.subnet.prefixlen}")
    if not any(moved.subnet_of(block) for block in PRIVATE):
        raise LabctlError(f"lab '{lab.name}': copy {index + 1} would need network "
                          f"'{net.name}' on {moved}, outside the private ranges",
                          "leave 'subnet' unset (chosen per copy) or start lower")
    return dataclasses.replace(net, subnet=moved)


def _shown(ids: list[str]) -> str:
    return ", ".join(ids[:10]) + (f" ... ({len(ids)} in all)" if len(ids) > 10 else "")
