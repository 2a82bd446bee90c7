"""All of one VM's in-VM probes in one SSH command. Pure: the script and the
parse of what it printed.

Under TCG every SSH command costs a fork of the user's shell and every podman
call starts a Go binary (~2 s): 8 copies x 10 checks took 85 s one command per
check, each container looked up twice per check. One bash script per VM runs
the probes in order, each under its own timeout(1), looks each container up
once (which runtime holds it, and its inspect output, which a `container`
check judges directly), and prints one record per probe:

    @@labctl-check INDEX STATUS STARTED ENDED BASE64(STDOUT)

STARTED/ENDED are bash's $EPOCHREALTIME (no fork to read the clock). A probe
with no record (the script was cut short) could not run."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from labctl.checks.probes import NO_CONTAINER, VmProbe
from labctl.shell import quote

RECORD = "@@labctl-check"
KILL_AFTER = 2  # seconds timeout(1) waits after TERM before KILL
TIMED_OUT = 124  # timeout(1)'s exit status

# Which runtime holds a container, and its inspect output, once per VM. A
# timeout while looking is remembered as status 124 for every probe of it.
PRELUDE = """\
declare -A RT INSP ST
rec() { printf '\\n%s %s %s %s %s %s\\n' '""" + RECORD + """' "$1" "$2" "$3" "$EPOCHREALTIME" \\
  "$(printf '%s' "$4" | base64 -w0)"; }
resolve() {
  [ -n "${ST[$1]+x}" ] && return 0
  RT[$1]=; INSP[$1]=; ST[$1]=0
  for r in $RUNTIMES; do
    command -v "$r" >/dev/null 2>&1 || continue
    INSP[$1]=$(timeout -k @KILL@ "$2" sudo -n "$r" container inspect "$1" 2>/dev/null)
    ST[$1]=$?
    if [ "${ST[$1]}" = 0 ]; then RT[$1]=$r; return 0; fi
    if [ "${ST[$1]}" = @TIMED_OUT@ ]; then return 0; fi
  done
  ST[$1]=0; INSP[$1]=
}
"""


@dataclass(frozen=True)
class Answer:
    status: int
    stdout: str
    seconds: float


def script(probes: list[tuple[VmProbe, int]], runtimes: tuple[str, ...]) -> str:
    """bash for a VM: each (probe, timeout) in order, a record each."""
    lines = [f"RUNTIMES={quote(' '.join(runtimes))}", PRELUDE.replace("@KILL@", str(KILL_AFTER))
             .replace("@TIMED_OUT@", str(TIMED_OUT))]
    for index, (probe, timeout) in enumerate(probes):
        lines.append("t0=$EPOCHREALTIME")
        run = (f"out=$(timeout -k {KILL_AFTER} {timeout} sh -c {quote(probe.command or '')} "
               f"2>/dev/null; echo \"@$?\"); s=${{out##*@}}; out=${{out%@*}}")
        if probe.container is None:
            lines.append(run)
        else:
            name = quote(probe.container)
            found = "s=0; out=$'\\n'\"${INSP[" + name + "]}\"" if probe.command is None \
                else f"export rt=\"${{RT[{name}]}}\"; {run}"
            lines += [f"resolve {name} {timeout}",
                      f"if [ \"${{ST[{name}]}}\" = {TIMED_OUT} ]; then s={TIMED_OUT}; out=; "
                      f"elif [ -z \"${{RT[{name}]}}\" ]; then s=0; out={quote(NO_CONTAINER)}; "
                      f"else {found}; fi"]
        lines.append(f"rec {index} \"$s\" \"$t0\" \"$out\"")
    return "\n".join(lines) + "\n"


def budget(probes: list[tuple[VmProbe, int]]) -> int:
    """Seconds the whole script may take: each probe's timeout, a container
    lookup per runtime, and slack for the shell."""
    return sum(timeout * (3 if probe.container else 1) + KILL_AFTER + 2
               for probe, timeout in probes) + 10


def parse(output: str, count: int) -> list[Answer | None]:
    """The answer of each probe, None where the script printed no record."""
    answers: list[Answer | None] = [None] * count
    pattern = rf"^{RECORD} (\d+) (\d+) ([\d.,]+) ([\d.,]+) ([A-Za-z0-9+/=]*)$"
    for found in re.finditer(pattern, output, re.MULTILINE):
        index = int(found.group(1))
        if index >= count:
            continue
        try:
            stdout = base64.b64decode(found.group(5)).decode(errors="replace")
        except (binascii.Error, ValueError):
            continue
        began, ended = (float(found.group(n).replace(",", ".")) for n in (3, 4))
        answers[index] = Answer(int(found.group(2)), stdout, round(max(ended - began, 0), 3))
    return answers
