"""scripts/test's two streams: each takes the next group of modules left,
heaviest first; modules that must share a stream form one group."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import _claimed, _rank, group_of


class Item:  # what the scheduler reads of a pytest item
    def __init__(self, path: str) -> None:
        self.fspath = path


def names(items) -> list[str]:
    return [Path(item.fspath).name for item in items]


def test_groups_heaviest_first_and_each_runs_in_one_stream(tmp_path):
    items = [Item(f"/x/tests/integration/{name}") for name in
             ("test_vms.py", "test_hosts.py", "test_new.py", "test_openstack.py",
              "test_classroom.py")] + [Item("/x/tests/unit/test_cli.py")]
    ordered = sorted(items, key=lambda item: _rank(group_of(Path(item.fspath))))
    # the cloud's group first (with the two that share its stream), a module the
    # list does not name after the named ones, the unit tests last
    assert names(ordered) == ["test_hosts.py", "test_openstack.py", "test_classroom.py",
                              "test_vms.py", "test_new.py", "test_cli.py"]
    a, b = _claimed(ordered, tmp_path), _claimed(ordered, tmp_path)
    assert names([next(a)]) == ["test_hosts.py"]  # a claims the cloud's group
    assert names([next(b)]) == ["test_vms.py"]  # b the next one left
    ran_a, ran_b = names(a), names(b)
    assert ran_a == ["test_openstack.py", "test_classroom.py", "test_new.py", "test_cli.py"]
    assert ran_b == []
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["test_new.py", "test_openstack.py", "test_vms.py", "unit tests"]
