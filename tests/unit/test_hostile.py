"""Hostile input end to end through the CLI: every bad lab file and every
fuzzed argument list ends in at most one error line plus a hint (exit 1 or 2),
never a traceback, and nothing is created -- no lab files in the data dir and
no object in libvirt (the in-process test:/// driver stands in for libvirtd)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import libvirt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.cli import main
from labctl.shell import join, quote

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "data" / "labs" / "invalid"
HOSTILE_FILES = sorted(INVALID.glob("*.yaml"))
URI = "test:///default"
HOSTILE_WORDS = ["; rm -rf /", "$(reboot)", "`id`", "a'b\"c", "x\ny", "../../etc/passwd",
                 "--json", "-", "", " ", "\x00", "é\u202e", "9" * 40, "-1", "1e309", "%s%n",
                 "web.node", "*", "{{ 7*7 }}", "/dev/zero"]


def run(capsys, argv: list[str]) -> tuple[int, list[str]]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


def nothing_created(data_dir: Path) -> None:
    made = [p for p in data_dir.rglob("*") if "locks" not in p.parts and "logs" not in p.parts]
    assert made == [], made
    conn = libvirt.open(URI)
    try:  # the test driver's stock objects only
        assert sorted(d.name() for d in conn.listAllDomains(0)) == ["test"]
        assert sorted(n.name() for n in conn.listAllNetworks(0)) == ["default"]
    finally:
        conn.close()


@pytest.mark.parametrize("lab_file", HOSTILE_FILES, ids=[p.stem for p in HOSTILE_FILES])
def test_every_bad_lab_file_is_refused_before_anything_is_made(lab_file, capsys, tmp_path):
    for command in (["up", str(lab_file)], ["plan", str(lab_file)]):
        code, lines = run(capsys, [f"--data-dir={tmp_path}", *command, "--uri", URI])
        assert code == 2, lines
        assert 1 <= len(lines) <= 2 and lines[0].startswith(str(lab_file)), lines
        assert not any("Traceback" in line or "internal error" in line for line in lines)
    nothing_created(tmp_path)


COMMANDS = [["up"], ["plan"], ["down"], ["status"], ["validate"], ["exec"], ["ps"],
            ["logs"], ["port"], ["restart"], ["cp"], ["ssh-config"], ["gc", "--dry-run"],
            ["bench", "history"], ["bench", "report"], ["image", "list"], ["schema"],
            ["registry", "status"], ["down", "--name"]]  # doctor: a report, not an error
OPTIONS = ["--var", "--parallel", "--timeout", "--total-timeout", "--wait-lock", "--no-wait",
           "--json", "--lab", "--copy", "-v", "--name", "--help"]
LABS = [str(ROOT / "examples" / "hello.yaml"), *map(str, HOSTILE_FILES[:10])]


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS),
       args=st.lists(st.one_of(st.sampled_from(HOSTILE_WORDS), st.sampled_from(OPTIONS),
                               st.sampled_from(LABS), st.text(max_size=12)), max_size=5))
def test_fuzzed_arguments_never_crash_or_create(command, args, capsys, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    argv = [f"--data-dir={data_dir}", *command, *args]
    if command[0] not in ("validate", "schema", "image"):
        argv += ["--uri", URI]
    code, lines = run(capsys, argv)
    shown = shlex.join(argv)
    assert code in (0, 1, 2), (shown, lines)
    assert not any("Traceback" in line or "internal error" in line for line in lines), \
        (shown, lines)
    if code != 0:
        assert lines, (shown, "a failure must say why")
    nothing_created(data_dir)


@pytest.mark.parametrize("command", [["up"], ["plan"], ["validate"], ["down"], ["exec"]])
def test_a_nul_byte_in_an_argument_is_one_usage_line(command, capsys, tmp_path):
    """No shell can pass one, but a caller's argv list can: the path checks
    under it (os.stat) raise ValueError, which must not become an internal error."""
    argv = [f"--data-dir={tmp_path}", *command, "lab\x00.yaml"]
    code, lines = run(capsys, [*argv, "--uri", URI] if command[0] != "validate" else argv)
    assert code == 2 and lines == ["error: an argument holds a NUL byte",
                                   "  hint: no path, name or value can contain one"], lines
    nothing_created(tmp_path)


@pytest.mark.parametrize("word", [*HOSTILE_WORDS[:6], "$HOME", "a b\tc", "'", '"', "\\",
                                  "!", "#x", "&&", "|", ">/tmp/x", "$((1+1))", "~root"])
def test_quoting_survives_a_real_shell(word):
    """shell.quote/join is the one way values reach a guest shell: what the
    shell receives is exactly the word, nothing runs."""
    if "\x00" in word:
        pytest.skip("NUL cannot be in an argv")
    out = subprocess.run(["sh", "-c", f"printf '%s\\n' {quote(word)} {join([word, word])}"],
                         capture_output=True, text=True, env={**os.environ, "HOME": "/nowhere"},
                         check=True).stdout
    assert out == f"{word}\n{word}\n{word}\n"
