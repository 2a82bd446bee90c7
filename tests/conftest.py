"""Shared test options. `pytest --regenerate` rewrites golden files instead of
comparing against them; review the diff before committing."""

from __future__ import annotations

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


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):4d}:{int(seconds % 60):02d}"
