"""Shared test options. `pytest --regenerate` rewrites golden files instead of
comparing against them; review the diff before committing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regenerate", action="store_true", default=False,
                     help="rewrite golden files from the current output")


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """golden(path, text): compare text with the file, or rewrite it with --regenerate."""
    regenerate = request.config.getoption("--regenerate")

    def check(path: Path, text: str) -> None:
        if regenerate or not path.exists():
            if not regenerate:
                pytest.fail(f"golden file {path} is missing; run pytest --regenerate")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert text == path.read_text(), f"output differs from {path} (pytest --regenerate)"

    return check


# -- each module's time, printed at the end (CI's budget is read off it) ---------

_MODULE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    module = report.nodeid.split("::", 1)[0]
    _MODULE_SECONDS[module] = _MODULE_SECONDS.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Each module's time (setup, tests and teardown together), slowest first,
    and the integration modules' sum: what a CI run of ./scripts/test costs."""
    if not _MODULE_SECONDS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("time per module")
    ranked = sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1])
    for module, seconds in ranked:
        write(f"{_clock(seconds)}  {module}")
    integration = sum(s for m, s in ranked if m.startswith("tests/integration/"))
    write(f"{_clock(sum(s for _, s in ranked))}  all modules ({_clock(integration).strip()} "
          f"of it integration; slowest: {ranked[0][0]})")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With LABCTL_TEST_TIMES=FILE, each module's seconds as JSON: scripts/test
    adds up the streams it ran at once."""
    if os.environ.get("LABCTL_TEST_TIMES"):
        Path(os.environ["LABCTL_TEST_TIMES"]).write_text(json.dumps(_MODULE_SECONDS))


# -- streams: scripts/test runs the suite as two pytest processes at once ------
# A TCG guest keeps one of the machine's two cores busy while the other sat idle
# half of a serial run, so two streams run side by side, and then the few tests
# that must run alone. Both streams share the test namespace's libvirtd, the
# world and the data dir: two modules that use the same lab name, or where one
# looks at every host the data dir knows of while the other records one, run
# in one stream, one after the other (TOGETHER). Which stream runs a module is
# decided as they go: each takes the next group of modules left, heaviest
# first, so neither waits idle at the end whatever this machine's speed.
ALONE = {  # a module, or one test of a module (the rest of it runs in a stream)
    "test_faults.py::test_libvirtd_stopped_mid_run",  # stops the namespace's libvirtd
    "test_gc.py",  # removes whatever no lab holds, anyone's
}
# test_hosts shares the lab name 'hello' with test_classroom and the bench's
# lab 'itbenchc-bench' with test_bench, and a class on the cloud records a host
# that `doctor --all-hosts` in test_hosts would then be asked about
TOGETHER = ({"test_openstack.py", "test_hosts.py", "test_classroom.py", "test_bench.py"},)
HEAVY_FIRST = (  # by the last full runs' module times; a module not named goes after these
    "test_openstack.py", "test_containers.py", "test_chaos.py", "test_templates.py",
    "test_checks.py", "test_cloud_images.py", "test_faults.py", "test_bench.py",
    "test_registry.py", "test_internet.py", "test_class_cache.py",
    "test_first_boot_failures.py", "test_vms.py", "test_dashboard.py", "test_isolation.py",
)
UNIT = "unit tests"  # one group, last: CPU work that fills the end of a stream


def stream_of(path: Path, test: str = "") -> str:
    """"alone", or "streams": either stream runs it (`test`: its name without
    parameters)."""
    if path.parent.name == "integration" and (
            path.name in ALONE or f"{path.name}::{test}" in ALONE):
        return "alone"
    return "streams"


def group_of(path: Path) -> str:
    """The modules one stream runs together, named by the first of them."""
    if path.parent.name != "integration":
        return UNIT
    for together in TOGETHER:
        if path.name in together:
            return min(together, key=_rank)
    return path.name


def _rank(name: str) -> int:
    if name == UNIT:
        return len(HEAVY_FIRST) + 1
    return HEAVY_FIRST.index(name) if name in HEAVY_FIRST else len(HEAVY_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """LABCTL_TEST_STREAM=alone keeps the tests that run alone; a|b the others,
    heaviest group first (scripts/test)."""
    wanted = os.environ.get("LABCTL_TEST_STREAM")
    if not wanted:
        return
    wanted = "alone" if wanted == "alone" else "streams"
    kept = [item for item in items
            if stream_of(Path(str(item.fspath)), item.originalname) == wanted]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # stable: each module keeps its tests' order
    items[:] = sorted(kept, key=lambda item: _rank(group_of(Path(str(item.fspath)))))


def _claimed(items: list[pytest.Item], claims: Path):
    """The items of each group this stream claims first (an exclusive create
    in the folder both streams share), in order."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(group_of(Path(str(item.fspath))), []).append(item)
    for group, members in groups.items():
        try:
            os.close(os.open(claims / group, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue  # the other stream runs it
        yield from members


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    """With LABCTL_TEST_CLAIMS=DIR (scripts/test), run only the groups this
    stream claims as it reaches them; otherwise pytest's own loop."""
    claims = os.environ.get("LABCTL_TEST_CLAIMS")
    if not claims or os.environ.get("LABCTL_TEST_STREAM") == "alone":
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} errors during collection")
    if session.config.option.collectonly:
        return True
    left = _claimed(session.items, Path(claims))
    item = next(left, None)
    while item is not None:
        # the next group is claimed as the last test of this one starts: pytest
        # tears a module's fixtures down by what runs next
        following = next(left, None)
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        item = following
    return True


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):4d}:{int(seconds % 60):02d}"
