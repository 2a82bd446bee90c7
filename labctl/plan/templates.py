"""Boot once, restore many: when a VM can start from a saved template instead
of booting, and the key that says two boots would be identical. Pure.

A template is a VM of labctl's own booted to ready once, its running state
(memory and disk) saved as an internal qcow2 snapshot. A VM restores it when
everything the key covers is equal: the image's digest, the VM's shape
(memory, vCPUs, disk, firmware, login user), its NICs in order (user-mode
with its subnet and whether it is sealed, or bridged onto a lab network: a
restored VM's bridged NICs are plugged in afresh with its own MACs, see
virt/snapshots.replug_nics), the
accelerator (KVM or TCG), libvirt's and qemu's versions, labctl's version.
Anything else boots cold, and says why in one line."""

from __future__ import annotations

from labctl import __version__
from labctl.plan.layout import VmPlan, spec_hash


def cold_reason(image_has_kernel: bool, host_refuses: str | None) -> str | None:
    """Why a VM of this image on this host must boot cold, or None when a
    template can start it (`host_refuses`: the backend's own reason)."""
    if not image_has_kernel:
        return "a disk-booted (cloud) image configures itself with cloud-init at boot"
    return host_refuses


def nic_kinds(plan: VmPlan) -> list[tuple[str, str | None, bool]]:
    """What the guest sees of its NICs: a user-mode NIC's network and whether
    it is sealed (its DHCP lease stays in the saved memory, and qemu's sealed
    DHCP gives no route and no resolver), or a bridged NIC of any network
    (plugged in afresh after a restore: it asks the VM's own network's DHCP)."""
    return [("user", n.subnet, n.sealed) if n.mode == "user" else ("bridged", None, False)
            for n in plan.nics]


def warm_services(plan: VmPlan) -> tuple[str, ...]:
    """Services a template starts before it is saved, because this VM will use
    them at once: dockerd takes ~30 s to start under TCG (every restored copy
    would pay it again); podman has no daemon. Part of the key: a VM that does
    not deploy docker containers does not carry a running dockerd."""
    return ("docker",) if plan.vm.containers and plan.vm.runtime == "docker" else ()


# How a template is made (usecases/templates.py): a new recipe is a new key, so
# no data dir keeps restoring templates saved the old way.
RECIPE = 5  # 2: free guest memory zeroed before the save; 3: labctl's own account;
# 4: its memory a file restored VMs map (virt/mapped.py); 5: a root shell left
# waiting for the identity script (usecases/identity.py)


def template_key(plan: VmPlan, image_sha256: str, domain_type: str, libvirt: str,
                 hypervisor: str, home: str = "") -> str:
    """`home`: the host a template lives on ("" this machine): each host keeps
    its own, the same shape built once on each."""
    vm = plan.vm
    return spec_hash("template", RECIPE, image_sha256, vm.memory_mib, vm.vcpus, vm.disk_gib,
                     vm.firmware, vm.user, nic_kinds(plan), domain_type, libvirt,
                     hypervisor, __version__, *warm_services(plan), *((home,) if home else ()))
