"""Pure planning: desired layout + observed libvirt objects -> ordered actions.

`labctl plan` prints this list; `labctl up` executes it. Order: VMs that go
away first, then networks, then VMs (a recreated network's VMs are recreated
too, because their spec hash includes the network's).
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl.plan.layout import Layout

VERB_SYMBOL = {"create": "+", "recreate": "~", "revert": "<", "start": ">", "delete": "-",
               "keep": "="}


@dataclass(frozen=True)
class Observed:
    kind: str  # vm | network
    name: str  # the name inside the lab
    libvirt_name: str
    spec_hash: str
    active: bool
    reachable: bool = True  # false: the data dir lost the keys to log in
    boot_failed: bool = False  # its first boot failed (packages, runcmd, cloud-init)


@dataclass(frozen=True)
class Action:
    verb: str  # create | recreate | revert (to a reset point) | start | delete | keep
    kind: str  # vm | network
    name: str
    reason: str = ""

    @property
    def changes(self) -> bool:
        return self.verb != "keep"

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{VERB_SYMBOL[self.verb]} {self.kind} {self.name}: {self.verb}{why}"


def plan(layout: Layout, observed: list[Observed]) -> list[Action]:
    seen = {(o.kind, o.name): o for o in observed}
    desired = [("network", n.network.name, n.spec_hash) for n in layout.networks]
    desired += [("vm", v.vm.name, v.spec_hash) for v in layout.vms]
    wanted = {(kind, name) for kind, name, _ in desired}
    deletes = [Action("delete", o.kind, o.name, "no longer in the lab file")
               for o in observed if (o.kind, o.name) not in wanted]
    deletes.sort(key=lambda a: (a.kind != "vm", a.name))  # VMs before their networks
    actions = []
    for kind, name, digest in desired:
        current = seen.get((kind, name))
        if current is None:
            actions.append(Action("create", kind, name))
        elif current.spec_hash != digest:
            actions.append(Action("recreate", kind, name, "its definition changed"))
        elif current.boot_failed:
            actions.append(Action("recreate", kind, name, "its first boot failed"))
        elif not current.reachable:
            actions.append(Action("recreate", kind, name, "its SSH keys are gone from the "
                                  "data dir"))
        elif not current.active:
            actions.append(Action("start", kind, name, "it is stopped"))
        else:
            actions.append(Action("keep", kind, name, "unchanged"))
    return deletes + actions


def summary(actions: list[Action]) -> str:
    counts: dict[str, int] = {}
    for action in actions:
        counts[action.verb] = counts.get(action.verb, 0) + 1
    if not any(a.changes for a in actions):
        return f"nothing to do: {len(actions)} object(s) unchanged"
    order = ("create", "recreate", "revert", "start", "delete", "keep")
    return ", ".join(f"{counts[v]} to {v}" if v != "keep" else f"{counts[v]} unchanged"
                     for v in order if v in counts)
