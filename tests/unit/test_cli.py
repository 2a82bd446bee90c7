"""The CLI through main(): exit codes, one-line errors, JSON output, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labctl import __version__
from labctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "data" / "labs" / "invalid"


def run(capsys, *args: str, data_dir: Path | None = None) -> tuple[int, str, str]:
    argv = ([f"--data-dir={data_dir}"] if data_dir else []) + list(args)
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def test_validate_examples_exit_zero(capsys):
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))
    code, out, err = run(capsys, "validate", *examples)
    assert code == 0, err
    assert out.count(": ok (lab ") == len(examples)


def test_validate_bad_file_is_one_line_and_exit_2(capsys):
    code, out, err = run(capsys, "validate", str(INVALID / "unknown-vm-key.yaml"))
    assert code == 2
    assert err.splitlines() == [
        f"{INVALID}/unknown-vm-key.yaml:4:5: unknown key 'memroy' in vms[0]",
        "  hint: did you mean 'memory'?",
    ]
    assert "Traceback" not in out + err


def test_validate_json_reports_each_file(capsys):
    code, out, _ = run(capsys, "--json", "validate", str(ROOT / "examples" / "hello.yaml"),
                       str(INVALID / "count-zero.yaml"))
    assert code == 2
    hello, bad = json.loads(out)
    assert hello == {"file": str(ROOT / "examples" / "hello.yaml"), "ok": True, "lab": "hello",
                     "vms": 1, "containers": 0, "networks": 1}
    assert bad["ok"] is False and bad["location"].endswith("count-zero.yaml:4:12")


def test_var_option_reaches_the_loader(capsys):
    code, out, _ = run(capsys, "validate", str(ROOT / "examples" / "multi-vm.yaml"),
                       "--var", "web_count=4")
    assert code == 0 and "5 VM(s)" in out
    code, _, err = run(capsys, "validate", str(ROOT / "examples" / "multi-vm.yaml"),
                       "--var", "oops")
    assert code == 2 and err.startswith("error: --var 'oops' is not KEY=VALUE")


def test_schema_is_json(capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and "vms" in schema["properties"] and schema["required"] == ["name", "vms"]


def test_version(capsys):
    code, out, _ = run(capsys, "--json", "version")
    assert code == 0 and json.loads(out)["labctl"] == __version__


def test_internal_error_points_to_debug_log(capsys, tmp_path, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("labctl.lab.loader.load_lab", broken)
    code, out, err = run(capsys, "validate", "x.yaml", data_dir=tmp_path)
    log = tmp_path / "logs" / "debug.log"
    assert code == 70
    assert err.splitlines() == [
        "error: internal error: boom",
        f"  hint: this is a bug in labctl; details are in {log}",
    ]
    assert "Traceback" not in err and "RuntimeError: boom" in log.read_text()


def test_python_dash_m_and_usage_errors():
    result = subprocess.run([sys.executable, "-m", "labctl", "no-such-command"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "No such command" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_quick_is_two_repetitions_no_warmup_one_runtime(capsys, monkeypatch, tmp_path):
    import labctl.bench.run as bench_run

    seen = {}

    def fake_run_bench(session, lab, repeat, warmup, runtimes):
        seen.update(repeat=repeat, warmup=warmup, runtimes=runtimes)
        raise SystemExit(0)

    monkeypatch.setattr(bench_run, "run_bench", fake_run_bench)
    run(capsys, "bench", "run", str(ROOT / "examples" / "compare.yaml"), "--quick",
        data_dir=tmp_path)
    assert seen == {"repeat": 2, "warmup": 0, "runtimes": ("podman",)}
    run(capsys, "bench", "run", str(ROOT / "examples" / "compare.yaml"), "--quick",
        "--repeat", "4", "--runtime", "docker", data_dir=tmp_path)
    assert seen == {"repeat": 4, "warmup": 0, "runtimes": ("docker",)}


def test_help_wraps_at_the_terminal_not_at_the_source(tmp_path):
    """Docstrings are wrapped at the source's width: --help broke them there."""
    import os

    env = {**os.environ, "COLUMNS": "200", "XDG_CACHE_HOME": str(tmp_path)}
    shown = subprocess.run([sys.executable, "-m", "labctl", "--help"], capture_output=True,
                           text=True, env=env, check=True).stdout
    line = next(line for line in shown.splitlines() if "│ handout" in line)
    assert "and roster.csv for the instructor." in line, line
    line = next(line for line in shown.splitlines() if "│ port " in line)
    assert "reach it with ssh -L)" in line, line


def test_an_error_stays_one_line_and_a_hint_keeps_its_lines():
    from labctl.errors import LabctlError

    error = LabctlError("VM 'x': bad\nname\x1b[2J", "the guest said:\n    | a\x07b")
    assert error.lines() == ["error: VM 'x': bad\\nname\\x1b[2J",
                             "  hint: the guest said:\n    | a\\x07b"]
