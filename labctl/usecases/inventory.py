"""`labctl inventory`: an Ansible inventory of a lab's VMs (or every copy of
a class) with everything a login needs: address, port, user, the lab's key,
and its pinned known_hosts (StrictHostKeyChecking: no prompt, no impostor).
Groups: the lab (or class), each copy, and each VM name across copies."""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl.errors import LabctlError
from labctl.shell import quote
from labctl.usecases.classes import existing_copies
from labctl.usecases.lab import status
from labctl.usecases.session import Session


@dataclass(frozen=True)
class InventoryHost:
    name: str  # the libvirt domain name, LAB.VM: also the pinned key's alias
    vm: str
    lab: str
    copy: str
    vars: dict[str, str | int]


def group_name(name: str) -> str:
    """Ansible group names are identifiers: 'web-1' -> 'web_1'."""
    return re.sub(r"\W", "_", name)


def hosts(session: Session, name: str, all_copies: bool = False) -> list[InventoryHost]:
    copies = existing_copies(session, name)
    if all_copies or (copies and not session.lab_host(name).domains(name)):
        if not copies:
            raise LabctlError(f"class '{name}' has no copies", f"run 'labctl up {name}.yaml'")
        labs = copies
    else:
        labs = {name: ""}
    found = []
    for lab, copy in labs.items():
        files = session.files(lab)
        for vm in status(session, lab):
            if not vm.endpoint:
                continue  # not running: nothing Ansible could reach
            address, _, port = vm.endpoint.rpartition(":")
            options = (f"-o HostKeyAlias={vm.domain} "
                       f"-o UserKnownHostsFile={quote(str(files.known_hosts_path))} "
                       "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes")
            if vm.proxy:  # a jump host: through its sshd, as labctl itself goes
                options += " -o " + quote(f"ProxyCommand={vm.proxy}")
            found.append(InventoryHost(vm.domain, vm.name, lab, copy, {
                "ansible_host": address, "ansible_port": int(port), "ansible_user": vm.user,
                "ansible_ssh_private_key_file": str(files.login_key_path),
                "ansible_ssh_common_args": options,
                "ansible_python_interpreter": "/usr/bin/python3",
            }))
    if not found:
        raise LabctlError(f"lab '{name}' has no running VMs", f"run 'labctl up {name}.yaml'")
    return found


def as_yaml_dict(name: str, found: list[InventoryHost]) -> dict:
    """The YAML inventory: host variables once, under the copy's group."""
    by_copy: dict[str, dict] = {}
    by_vm: dict[str, dict] = {}
    for h in found:
        copy_group = group_name(h.lab)
        by_copy.setdefault(copy_group, {"hosts": {}})["hosts"][h.name] = dict(h.vars)
        by_vm.setdefault(group_name(h.vm), {"hosts": {}})["hosts"][h.name] = None
    top = group_name(name)
    children: dict = {top: {"children": by_copy} if set(by_copy) != {top} else by_copy[top]}
    for vm_group, group in by_vm.items():
        if vm_group not in children and vm_group not in by_copy:
            children[vm_group] = group
    return {"all": {"children": children}}


def as_ini(name: str, found: list[InventoryHost]) -> str:
    lines: list[str] = []
    copies: dict[str, list[InventoryHost]] = {}
    for h in found:
        copies.setdefault(group_name(h.lab), []).append(h)
    for group, members in copies.items():
        lines.append(f"[{group}]")
        for h in members:
            pairs = " ".join(f"{k}={_ini_value(v)}" for k, v in h.vars.items())
            lines.append(f"{h.name} {pairs}")
        lines.append("")
    top = group_name(name)
    if set(copies) != {top}:
        lines += [f"[{top}:children]", *copies, ""]
    vm_groups: dict[str, list[str]] = {}
    for h in found:
        vm_groups.setdefault(group_name(h.vm), []).append(h.name)
    for group, names in vm_groups.items():
        if group not in copies and group != top:
            lines += [f"[{group}]", *names, ""]
    return "\n".join(lines)


def _ini_value(value: str | int) -> str:
    """Quoted for Ansible's INI parser when it has spaces: in double quotes when
    it holds single ones (a ProxyCommand, shell-quoted inside the options)."""
    text = str(value)
    if not re.search(r"\s", text):
        return text
    if "'" in text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"'{text}'"
