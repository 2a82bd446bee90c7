"""Two labs on separate networks cannot reach each other, while each reaches its
own network; and two different labs are brought up in parallel (their locks
are separate)."""

from __future__ import annotations

import pytest

from labctl.usecases.lab import down
from labctl.usecases.session import Session

from .conftest import LABS, Running, leftovers

A, B = LABS / "iso-a.yaml", LABS / "iso-b.yaml"


@pytest.fixture(scope="module")
def two_labs(settings):
    for name in ("itisoa", "itisob"):
        down(Session(settings), name)
    try:
        runs = [Running("up", str(A)), Running("up", str(B))]  # at the same time
        results = [run.finish(timeout=600) for run in runs]
        assert [code for code, _, _ in results] == [0, 0], [e[-800:] for _, _, e in results]
        yield
    finally:
        for name in ("itisoa", "itisob"):
            down(Session(settings), name)
            assert leftovers(name, settings) == {}


def reaches(lab: str, vm: str, host: str, port: int, settings) -> bool:
    transport = Session(settings).connect_vm(lab, vm)
    try:
        return transport.run(f"timeout 5 bash -c '</dev/tcp/{host}/{port}'", timeout=30).ok
    finally:
        transport.close()


def test_each_lab_reaches_its_own_network(two_labs, settings):
    assert reaches("itisoa", "a", "10.213.251.1", 53, settings)  # its gateway's DNS
    assert reaches("itisob", "b", "10.213.252.1", 53, settings)


def test_labs_cannot_reach_each_other(two_labs, settings):
    assert not reaches("itisoa", "a", "10.213.252.10", 22, settings)
    assert not reaches("itisob", "b", "10.213.251.10", 22, settings)
