"""Layout (names, NICs, spec hashes) and the planner: pure, so tested exhaustively."""

from __future__ import annotations

import dataclasses

from labctl.plan.actions import Action, Observed, plan, summary
from labctl.plan.layout import lab_layout

from .fixtures import DIGEST, layout_of


def observed_from(layout, active=True, **hash_overrides):
    out = [Observed("network", n.network.name, n.libvirt_name, n.spec_hash, active)
           for n in layout.networks]
    out += [Observed("vm", v.vm.name, v.domain, hash_overrides.get(v.vm.name, v.spec_hash),
                     active) for v in layout.vms]
    return out


def test_names_use_the_lab_prefix_and_dots():
    layout = layout_of("multi-vm.yaml")
    assert [v.domain for v in layout.vms] == ["multi.web-1", "multi.web-2", "multi.db"]
    assert [n.libvirt_name for n in layout.networks] == ["multi.front", "multi.back"]
    assert layout.vm("db").volumes == ("multi.db.qcow2", "multi.db.seed.iso",
                                       "multi.db.serial.log")
    assert layout.networks[1].reservations == (
        (layout.vm("db").nics[0].mac, "db", "10.77.2.10"),)


def test_user_network_lives_in_the_vm_only():
    layout = layout_of("hello.yaml")
    assert layout.networks == ()
    (nic,) = layout.vm("node").nics
    assert (nic.mode, nic.libvirt_network) == ("user", None)
    assert layout.vm("node").uses_user_network


def test_spec_hash_follows_the_machine_not_its_containers():
    base = layout_of("course.yaml")
    lab = base.lab
    vm = lab.vms[0]
    web, *others = vm.containers
    other_image = dataclasses.replace(vm, containers=(
        dataclasses.replace(web, command=("httpd", "-f")), *others[:1]))
    unpublished = dataclasses.replace(vm, containers=tuple(others))
    bigger = dataclasses.replace(lab, vms=(dataclasses.replace(vm, memory_mib=2048),))
    assert base.vms[0].published == (8000,)
    same = lab_layout(dataclasses.replace(lab, vms=(other_image,)), {"debian-12": DIGEST})
    assert same.vms[0].spec_hash == base.vms[0].spec_hash
    # A user-mode VM forwards published ports from 127.0.0.1: they are part of it.
    fewer = lab_layout(dataclasses.replace(lab, vms=(unpublished,)), {"debian-12": DIGEST})
    assert fewer.vms[0].published == () and fewer.vms[0].spec_hash != base.vms[0].spec_hash
    assert lab_layout(bigger, {"debian-12": DIGEST}).vms[0].spec_hash != base.vms[0].spec_hash
    podman = dataclasses.replace(lab, vms=(dataclasses.replace(vm, runtime="podman"),))
    assert lab_layout(podman, {"debian-12": DIGEST}).vms[0].spec_hash == base.vms[0].spec_hash
    assert lab_layout(lab, {"debian-12": "cd" * 32}).vms[0].spec_hash != base.vms[0].spec_hash


def test_changed_network_changes_its_vms():
    before = layout_of("multi-vm.yaml")
    after = layout_of("multi-vm.yaml")
    lab = dataclasses.replace(after.lab, networks=(
        after.lab.networks[0], dataclasses.replace(after.lab.networks[1], mode="nat")))
    after = lab_layout(lab, {"debian-12": DIGEST})
    assert after.vm("db").spec_hash != before.vm("db").spec_hash


def test_plan_from_nothing_creates_networks_before_vms():
    actions = plan(layout_of("multi-vm.yaml"), [])
    assert [(a.verb, a.kind, a.name) for a in actions] == [
        ("create", "network", "front"), ("create", "network", "back"),
        ("create", "vm", "web-1"), ("create", "vm", "web-2"), ("create", "vm", "db")]
    assert summary(actions) == "5 to create"


def test_plan_of_an_unchanged_lab_keeps_everything():
    layout = layout_of("multi-vm.yaml")
    actions = plan(layout, observed_from(layout))
    assert {a.verb for a in actions} == {"keep"}
    assert summary(actions) == "nothing to do: 5 object(s) unchanged"


def test_plan_recreates_starts_and_deletes():
    layout = layout_of("multi-vm.yaml", web_count=3)
    observed = observed_from(layout_of("multi-vm.yaml"), db="old-hash")
    observed = [dataclasses.replace(o, active=False) if o.name == "web-1" else o
                for o in observed]
    observed.append(Observed("vm", "old", "multi.old", "x", True))
    actions = plan(layout, observed)
    assert actions[0] == Action("delete", "vm", "old", "no longer in the lab file")
    verbs = {(a.kind, a.name): a.verb for a in actions}
    assert verbs == {("vm", "old"): "delete", ("network", "front"): "keep",
                     ("network", "back"): "keep", ("vm", "web-1"): "start",
                     ("vm", "web-2"): "keep", ("vm", "web-3"): "create",
                     ("vm", "db"): "recreate"}
    assert str(actions[0]) == "- vm old: delete (no longer in the lab file)"
    assert summary(actions) == "1 to create, 1 to recreate, 1 to start, 1 to delete, 3 unchanged"


def test_count_one_keeps_the_plain_name():
    assert [v.vm.name for v in layout_of("multi-vm.yaml", web_count=1).vms] == ["web", "db"]


def test_vm_whose_keys_are_gone_is_recreated():
    layout = layout_of("hello.yaml")
    observed = [dataclasses.replace(o, reachable=False) for o in observed_from(layout)]
    (action,) = plan(layout, observed)
    assert (action.verb, action.reason) == ("recreate", "its SSH keys are gone from the data dir")
