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
# half of a serial run, so the modules are split in two streams that run side by
# side, and then the few that must run alone. A new module joins stream "a".
# Both streams share the test namespace's libvirtd, the world and the data dir:
# two modules that use the same lab name, or where one looks at every host the
# data dir knows of while the other records one, belong to the same stream.
ALONE = {  # a module, or one test of a module (the rest of it runs in its stream)
    "test_faults.py::test_libvirtd_stopped_mid_run",  # stops the namespace's libvirtd
    "test_gc.py",  # removes whatever no lab holds, anyone's
}
STREAM_B = {  # about half of the integration time, by the last full run's module times
    # (test_hosts, test_classroom and test_openstack stay in stream a together:
    # the first two share the lab name 'hello', and a class on the cloud records
    # a host that `doctor --all-hosts` in test_hosts would then be asked about)
    "test_containers.py", "test_templates.py", "test_chaos.py", "test_checks.py",
    "test_bench.py", "test_cloud_images.py", "test_registry.py", "test_faults.py",
}


def stream_of(path: Path, test: str = "") -> str:
    """The stream of a test (`test`: its name without parameters)."""
    if path.parent.name != "integration":
        return "a"
    if path.name in ALONE or f"{path.name}::{test}" in ALONE:
        return "alone"
    return "b" if path.name in STREAM_B else "a"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """LABCTL_TEST_STREAM=a|b|alone keeps that stream's tests (scripts/test)."""
    wanted = os.environ.get("LABCTL_TEST_STREAM")
    if not wanted:
        return
    kept = [item for item in items
            if stream_of(Path(str(item.fspath)), item.originalname) == wanted]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):4d}:{int(seconds % 60):02d}"
