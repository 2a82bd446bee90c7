"""All of one VM's in-VM probes in one SSH command. Pure: the script and the
parse of what it printed.

Under TCG every process start is dear: a sudo ~4 s, a podman call (a Go
binary) 10-20 s when eight VMs check at once on two cores. So one bash script
per VM, run as root by one sudo, runs the probes in order, each under its own
timeout(1): a student's own command as the student (setpriv, no PAM), file
probes directly, each container looked up once (which runtime holds it, and
its inspect output, which a `container` check judges directly), and commands
inside a running root container entered with nsenter (its namespaces, root,
working directory and environment) instead of `podman exec` -- a container
with a USER of its own is still entered through its runtime. One record per
probe, its output's bytes right after the header:

    @@labctl-check INDEX STATUS STARTED ENDED LENGTH
    <LENGTH bytes of stdout>

Every fork counts (~0.3 s each with eight busy VMs), so a probe's output goes
to a file read back by bash's own `read`, its length is bash's own ${#out} in
the C locale, and the clock is bash's $EPOCHREALTIME: no command
substitution, pipe or base64 per probe. Records are read in order, each
skipping exactly its LENGTH bytes, so a probe's output can never pose as
another record. A probe with no record (the script was cut short) could not
run."""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl.checks.probes import MAX_BYTES, NO_CONTAINER, VmProbe
from labctl.shell import quote

RECORD = "@@labctl-check"
KILL_AFTER = 2  # seconds timeout(1) waits after TERM before KILL
TIMED_OUT = 124  # timeout(1)'s exit status
TOO_MUCH = 128 + 25  # killed by SIGXFSZ: the probe wrote past the file size limit

# Who the student is (the lab user, named by labctl: the script runs from
# labctl's own account), how to become them, and each container
# looked up once per VM: its runtime, inspect output, and the pid to enter
# when it runs as root. A timeout while looking is remembered as status 124
# for every probe of it.
PRELUDE = """\
declare -A RT INSP ST PID
ASUSER=()
if [ "$(id -u)" = 0 ] && [ "$U" != root ]; then
  if command -v setpriv >/dev/null 2>&1; then
    ASUSER=(setpriv "--reuid=$U" "--regid=$(id -g "$U")" --init-groups --reset-env)
  else ASUSER=(runuser -u "$U" --); fi
fi
NSENTER=$(command -v nsenter 2>/dev/null || true)
# Each probe's output in a file of its own, in a directory only root opens: a
# process a probe leaves behind can only ever write to its own (removed) file.
D=$(mktemp -d /run/labctl-check.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$D"' EXIT
O=$D/prelude
# No probe writes more than this into its file (SIGXFSZ stops it): output
# without end never fills the VM's /run nor reaches labctl.
ulimit -f @KIB@
# probe INDEX TIMEOUT COMMAND...: run in a process group of its own (timeout's),
# and whatever it left running in that group is stopped when it ends.
probe() {
  O=$D/$1
  local limit=$2
  shift 2
  timeout -k @KILL@ "$limit" "$@" >"$O" 2>/dev/null </dev/null &
  local p=$!
  wait "$p"; s=$?
  kill -KILL -- "-$p" 2>/dev/null
  return 0
}
# rec INDEX STATUS STARTED: the probe's output is in $O
rec() {
  local LC_ALL=C out
  IFS= read -r -d '' out < "$O"
  printf '\\n%s %s %s %s %s %s\\n%s' '""" + RECORD + """' "$1" "$2" "$3" "$EPOCHREALTIME" \\
    "${#out}" "$out"
  rm -f "$O"
}
resolve() {
  [ -n "${ST[$1]+x}" ] && return 0
  RT[$1]=; INSP[$1]=; ST[$1]=0; PID[$1]=
  for r in $RUNTIMES; do
    command -v "$r" >/dev/null 2>&1 || continue
    # docker's daemon is socket-activated: asking a stopped one starts it (~30 s
    # under TCG), and a check never changes a VM. Stopped, it runs no container.
    if [ "$r" = docker ] && command -v systemctl >/dev/null 2>&1 &&
        ! systemctl is-active --quiet docker.service; then continue; fi
    INSP[$1]=$(timeout -k @KILL@ "$2" "$r" container inspect "$1" 2>/dev/null)
    ST[$1]=$?
    if [ "${ST[$1]}" = 0 ]; then RT[$1]=$r; break; fi
    if [ "${ST[$1]}" = @TIMED_OUT@ ]; then return 0; fi
  done
  if [ -z "${RT[$1]}" ]; then ST[$1]=0; INSP[$1]=; return 0; fi
  local pid= user= pid_re='"Pid": *([0-9]+)' user_re='"User": *"([^"]*)"'
  [[ ${INSP[$1]} =~ $pid_re ]] && pid=${BASH_REMATCH[1]}
  [[ ${INSP[$1]} =~ $user_re ]] && user=${BASH_REMATCH[1]}
  case "$user" in ""|root|0|0:0|root:root) ;; *) return 0 ;; esac
  if [ -n "$NSENTER" ] && [ -n "$pid" ] && [ "$pid" != 0 ] && [ -r "/proc/$pid/environ" ]; then
    PID[$1]=$pid
  fi
}
"""


@dataclass(frozen=True)
class Answer:
    status: int
    stdout: str
    seconds: float


def command(probes: list[tuple[VmProbe, int]], runtimes: tuple[str, ...],
            student: str = "root") -> list[str]:
    """The one SSH command that runs a VM's probes: the script as root
    (`student`: the lab user a student's own command runs as)."""
    return ["sudo", "-n", "bash", "-c", script(probes, runtimes, student)]


def script(probes: list[tuple[VmProbe, int]], runtimes: tuple[str, ...],
           student: str = "root") -> str:
    """bash for a VM: each (probe, timeout) in order, a record each."""
    lines = [f"RUNTIMES={quote(' '.join(runtimes))}", f"U={quote(student)}",
             PRELUDE.replace("@KILL@", str(KILL_AFTER)).replace("@TIMED_OUT@", str(TIMED_OUT))
             .replace("@KIB@", str(MAX_BYTES // 1024 + 1))]
    for index, (probe, timeout) in enumerate(probes):
        lines.append(f"t0=$EPOCHREALTIME; O=$D/{index}")
        run = f"probe {index} {timeout}"
        shell = f"sh -c {quote(probe.command or '')}"
        if probe.container is None:
            user = '"${ASUSER[@]}" ' if probe.as_user else ""
            lines.append(f"{run} {user}{shell}")
            lines.append(f"rec {index} \"$s\" \"$t0\"")
            continue
        name = quote(probe.container)
        if probe.command is None:
            found = "s=0; printf '\\n%s' \"${INSP[" + name + "]}\" > \"$O\""
        elif probe.inside:
            found = (f"if [ -n \"${{PID[{name}]}}\" ]; then "
                     f"mapfile -d '' -t CENV < \"/proc/${{PID[{name}]}}/environ\"; "
                     f"{run} env -i \"${{CENV[@]}}\" \"$NSENTER\" -t \"${{PID[{name}]}}\" "
                     f"-a -r -w -- {shell}; "
                     f"else {run} \"${{RT[{name}]}}\" exec {name} {shell}; fi")
        else:
            found = f"{run} {shell}"
        lines += [f"resolve {name} {timeout}",
                  f"if [ \"${{ST[{name}]}}\" = {TIMED_OUT} ]; then s={TIMED_OUT}; : > \"$O\"; "
                  f"elif [ -z \"${{RT[{name}]}}\" ]; then s=0; "
                  f"printf %s {quote(NO_CONTAINER)} > \"$O\"; "
                  f"else {found}; fi",
                  f"rec {index} \"$s\" \"$t0\""]
    return "\n".join(lines) + "\n"


def budget(probes: list[tuple[VmProbe, int]]) -> int:
    """Seconds the whole script may take: each probe's timeout, a container
    lookup per runtime, and slack for the shell."""
    return sum(timeout * (3 if probe.container else 1) + KILL_AFTER + 2
               for probe, timeout in probes) + 10


def max_output(probes: list[tuple[VmProbe, int]]) -> int:
    """What the script may print: each probe's capped output and its record
    (a container's inspect output comes back whole, so a margin for it)."""
    return len(probes) * (MAX_BYTES + (256 << 10)) + (64 << 10)


def parse(output: str | bytes, count: int) -> list[Answer | None]:
    """The answer of each probe, None where the script printed no record.
    `output`: the script's stdout as bytes (or str decoded with
    surrogateescape, which gives the same bytes back)."""
    raw = output if isinstance(output, bytes) else output.encode("utf-8", "surrogateescape")
    answers: list[Answer | None] = [None] * count
    header = re.compile(rb"\n" + RECORD.encode() +
                        rb" (\d+) (\d+) ([\d.,]+) ([\d.,]+) (\d+)\n")
    position = 0
    while (found := header.search(raw, position)) is not None:
        length = int(found.group(5))
        data = raw[found.end():found.end() + length]
        position = found.end() + length  # a probe's output is skipped, never searched
        index = int(found.group(1))
        if index >= count or len(data) < length:
            continue
        began, ended = (float(found.group(n).replace(b",", b".")) for n in (3, 4))
        answers[index] = Answer(int(found.group(2)), data.decode(errors="replace"),
                                round(max(ended - began, 0), 3))
    return answers
