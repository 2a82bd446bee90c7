"""What a VM resumed from saved state is given before it is used: the clock
from the host's (a dialogue on the script's own stdin, ClockTalk), fresh
randomness, and -- restored from a template -- its own identity (its seed's
first boot, a new machine-id). Guest-side shell, run as root in one command
(in the shell a template left waiting, through the guest agent, or over SSH);
every process it starts costs ~0.05-0.3 s under TCG, so it starts as few as
it can. give_identity makes a restored VM itself (templates.py);
resetpoints.py gives a VM back at its own reset point the clock and
randomness."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from labctl import shell
from labctl.errors import LabctlError
from labctl.ssh.transport import HostKeyMismatch, SSHTransport

if TYPE_CHECKING:
    from labctl.backend import Backend, GuestAgent
    from labctl.plan.layout import VmPlan
    from labctl.usecases.session import Session
    from labctl.usecases.template_store import Template

CLOCK_DIALOGUE = """set -eu
export LC_ALL=C  # EPOCHREALTIME with a dot
# The clock first, from labctl's own, in a dialogue on this command's stdin
# (ClockTalk): each round trip is two bash builtins, no process started, so
# it measures the link, not the guest's load. labctl answers "shift US" until
# the guest is within CLOCK_SLACK, then "ok".
while :; do
    echo 'clock?'
    read -r _now
    echo "clock $EPOCHREALTIME"
    read -r verb us
    [ "$verb" = shift ] || break
    t=$(( ${EPOCHREALTIME/./} + us ))
    date -u -s "@${t%??????}.${t: -6}" >/dev/null
done
"""

RESEED = """# Fresh randomness: every copy of a saved state resumes the same CRNG, and
# writing to urandom only mixes the pool, so make the kernel reseed from it
# now (RNDRESEEDCRNG), before anything random is drawn.
# (perl-base is essential in Debian and starts in half python's time)
perl -e 'open(my $f, ">", "/dev/urandom") or die "urandom: $!";
         syswrite($f, pack("H*", $ARGV[0])) or die "urandom: $!";
         ioctl($f, 0x5207, 0) or die "RNDRESEEDCRNG: $!"' {seed}
"""

_MADE_ITSELF = """[ ! -e /var/lib/labctl/failed ] || rm -f /var/lib/labctl/failed
# This VM's seed script, sent inline by labctl (which rendered the seed): no
# seed disk mounted, read and unmounted while the student waits. The instance
# is recorded as the first boot records it, so a reboot does not apply the
# seed again; the extras (packages, runcmd) go where the first boot puts them.
(
{firstboot}
)
{extras}
echo {instance} > /var/lib/labctl/instance-id
# a new random one: systemd-machine-id-setup would reuse the template's (from
# the running system, or the SMBIOS UUID the template's memory holds)
read -r uuid < /proc/sys/kernel/random/uuid
echo "${{uuid//-/}}" > /etc/machine-id  # bash's own: no tr process
sync  # the new identity on disk before it is used: a power cut keeps it
# The readiness unit again only when it has work (every process counts under
# TCG): this VM's extras (packages, runcmd), or NICs plugged afresh (a lab
# network's address and resolver). Else the template's boot-finished stands.
if [ -f /var/lib/labctl/extras.sh ] || [ {replugged} = 1 ]; then
    rm -f /run/labctl-boot-finished
    systemctl restart --no-block labctl-ready.service
fi
# journald files its journal under the machine-id: podman's journald log driver
# found no journal for the new id ("failed to get cursor") until it restarts.
# It restarts in the background (~0.5 s under TCG) unless this VM runs
# containers, which labctl deploys right after readiness.
# sshd needs no restart for the VM's own host key: OpenSSH 9.2 re-executes
# itself for every connection and reads the key then (checked: the next
# connection is offered the new key). From 9.8 on the listener holds the keys
# and hands them to sshd-session: there sshd restarts too (one systemctl).
"""
_RESTARTS = """journald="restart{no_block} systemd-journald"
if [ -e /usr/lib/openssh/sshd-session ]; then
    systemctl $journald ssh
else
    systemctl $journald
fi
"""
IDENTITY = RESEED + _MADE_ITSELF + _RESTARTS
# The same in the waiting shell (below): its perl reseeds, sets the clock and
# syncs, and a restart in the background waits until the VM is ready (`later`,
# run by the shell once it has said the script's status).
HANDED_IDENTITY = "reseed {seed}\n" + _MADE_ITSELF + """\
if [ -e /usr/lib/openssh/sshd-session ]; then
    systemctl restart{no_block} systemd-journald ssh
elif [ -n "{no_block}" ]; then
    later="systemctl restart systemd-journald"
else
    systemctl restart systemd-journald
fi
"""

# A restored VM's identity costs no process start when the template left a
# root shell waiting for it: under TCG, qemu-ga's spawn of bash and perl's own
# start were ~0.7 s of a ~2 s identity, and every process started before the
# first login slows that login too. The template starts the shell before it is
# saved (a transient unit), with a perl that reseeds, moves the clock and syncs
# on request (x86_64 system calls: elsewhere the shell does not start and the
# VM makes itself the slower way). labctl writes the script next to it over
# the agent's file calls and wakes it through its FIFO; the shell runs it once,
# writes its output and exit status, and ends. Root's only: the folder is 0700.
# Templates keep the shell they were saved with: a change to it (or to what a
# handed script may call) needs a new RECIPE in plan/templates.py.
WAITING_DIR = "/run/labctl-identity"
WAITING_SHELL = r"""set -u
dir=/run/labctl-identity
coproc HELPER { exec perl -e '
    use Config;
    use integer;  # nanoseconds since 1970 need all 64 bits
    $| = 1;
    open(my $rand, ">", "/dev/urandom") or die "urandom: $!";
    while (my $line = <STDIN>) {
        my ($verb, $arg) = split(" ", $line);
        if ($verb eq "hello") {
            print($Config{archname} =~ /^x86_64-linux/ ? "ok\n" : "no\n");
            next;
        } elsif ($verb eq "reseed") {
            syswrite($rand, pack("H*", $arg)) or die "urandom: $!";
            ioctl($rand, 0x5207, 0) or die "RNDRESEEDCRNG: $!";
        } elsif ($verb eq "sync") {
            syscall(162) == 0 or die "sync: $!";
        } elsif ($verb eq "shift") {  # microseconds
            my $ts = pack("q2", 0, 0);
            syscall(228, 0, $ts) == 0 or die "clock_gettime: $!";
            my ($s, $ns) = unpack("q2", $ts);
            my $at = $s * 1000000000 + $ns + $arg * 1000;
            syscall(227, 0, pack("q2", $at / 1000000000, $at % 1000000000)) == 0
                or die "clock_settime: $!";
        }
        print "ok\n";
    }'; }
exec 4>&"${HELPER[1]}" 5<&"${HELPER[0]}"  # a coprocess's own are not a subshell's
ask() { printf '%s\n' "$*" >&4 && IFS= read -r answer <&5 && [ "$answer" = ok ]; }
reseed() { ask reseed "$1"; }
shift_clock() { ask shift "$1"; }
sync() { ask sync; }  # sync(2) without a process
ask hello || exit 1
exec 3<>"$dir/inbox"  # read-write: no writer's close ends the wait
: > "$dir/waiting"
IFS= read -r _ <&3 || exit 1
later=  # the script may leave a command for once the VM is ready
later_after=10  # seconds: readiness and a first command are through by then
finish() {
    : > "$dir/script"  # it held the VM's host key
    echo "$1" > "$dir/status"
    if [ -n "$later" ]; then  # not in the way of the VM's readiness
        read -rt "$later_after" _ <&3 || :
        $later >/dev/null 2>&1 || :
    fi
}
trap 'finish $?' EXIT
exec >"$dir/out" 2>"$dir/err" </dev/null
. "$dir/script"
"""
START_WAITING = """set -eu
d={folder}
# on any failure nothing is left: restored VMs make themselves the slower way
trap 'rm -rf "$d"; echo "the waiting shell did not start" >&2' EXIT
rm -rf "$d"
mkdir -m 0700 "$d"
mkfifo -m 0600 "$d/inbox"
# from a file: systemd would expand the $ of a command line given to it
printf '%s' {shell} > "$d/shell"
systemd-run --quiet --collect --unit=labctl-identity -p Type=exec /bin/bash "$d/shell"
for _ in $(seq 100); do
    if [ -e "$d/waiting" ]; then
        trap - EXIT
        exit 0
    fi
    sleep 0.1
done
exit 1
"""


def start_waiting() -> str:
    """Shell (as root) that leaves the waiting shell in a template about to be saved."""
    return START_WAITING.format(folder=WAITING_DIR, shell=shell.quote(WAITING_SHELL))


def clock_shift(offset: float) -> str:
    """Shell that moves the guest's clock by `offset` seconds (measured by the
    guest agent, relative to the guest's own clock, so the time this script
    takes to start does not count); nothing within CLOCK_SLACK."""
    if abs(offset) <= CLOCK_SLACK:
        return "set -eu\n"
    return ("set -eu\nexport LC_ALL=C\n"
            f"t=$(( ${{EPOCHREALTIME/./}} + {round(offset * 1e6)} ))\n"
            'date -u -s "@${t%??????}.${t: -6}" >/dev/null\n')


def handed_clock(offset: float) -> str:
    """clock_shift for the waiting shell: its perl moves the clock."""
    if abs(offset) <= CLOCK_SLACK:
        return "set -eu\n"
    return f"set -eu\nshift_clock {round(offset * 1e6)}\n"


def identity_values(seed_files: dict[str, str], replugged: bool,
                    containers: bool) -> dict[str, object]:
    """IDENTITY's values for one VM, from the seed labctl rendered for it."""
    instance = next((line.split(":", 1)[1].strip()
                     for line in seed_files.get("meta-data", "").splitlines()
                     if line.startswith("instance-id:")), "")
    if not instance or "labctl-firstboot.sh" not in seed_files:
        raise LabctlError("the VM's seed has no first-boot script or instance-id")
    extras = seed_files.get("labctl-extras.sh")
    return {"firstboot": seed_files["labctl-firstboot.sh"], "instance": shell.quote(instance),
            "extras": (f"printf '%s' {shell.quote(extras)} > /var/lib/labctl/extras.sh"
                       if extras is not None else ""),
            "replugged": int(replugged), "no_block": "" if containers else " --no-block"}


def set_clock_running(transport: SSHTransport, script: str, what: str,
                      **values: object) -> None:
    """Set the guest's clock from labctl's (the dialogue), then run `script`
    as root with `{seed}` filled in from this machine's randomness (and any
    other `values`)."""
    transport.converse(["sudo", "-n", "bash", "-c", CLOCK_DIALOGUE + filled(script, **values)],
                       ClockTalk(), timeout=120).check(what)


def filled(script: str, **values: object) -> str:
    """`script` with `{seed}` from this machine's randomness and the other `values`."""
    return script.format(seed=os.urandom(512).hex(), **values)


CLOCK_SLACK = 0.2  # seconds the guest's clock may differ from the host's
CLOCK_ROUNDS = 4  # shifts at most: the first is off by its own latency only


class ClockTalk:
    """labctl's side of the identity script's clock dialogue. Each round: the
    guest says `clock?`, labctl says `now` and notes when; the guest answers
    with its clock at once (`clock SECONDS`). The guest read its clock between
    that `now` and the answer's arrival, so the host's clock then was their
    midpoint: labctl answers `shift MICROSECONDS` (the guest sets its clock
    relative to itself, so the shift's own latency does not count), or `ok`
    once the difference is within CLOCK_SLACK or what the round trip can
    tell."""

    def __init__(self, clock=time.time):
        self.clock, self.asked, self.rounds = clock, 0.0, 0

    def __call__(self, line: str) -> str | None:
        if line == "clock?":
            self.asked = self.clock()
            return "now"
        if not line.startswith("clock "):
            return None
        arrived = self.clock()
        try:
            delta = (self.asked + arrived) / 2 - float(line.split()[1])
        except (IndexError, ValueError):
            return "ok"  # not a number: leave the clock as it is
        self.rounds += 1
        if abs(delta) <= max(CLOCK_SLACK, (arrived - self.asked) / 2) \
                or self.rounds > CLOCK_ROUNDS:
            return "ok"
        return f"shift {round(delta * 1e6)}"


def give_identity(session: Session, host: Backend, plan: VmPlan, template: Template,
                  seed_files: dict[str, str], replugged: bool) -> None:
    """Make the VM itself: through its guest agent when the template has one
    (no login), else logged in as the template (its key, its pinned host
    key); the template's keys are gone from it afterwards. `replugged`: its
    NICs on lab networks were plugged afresh (the readiness unit runs again)."""
    what = f"VM '{plan.vm.name}': giving the restored VM its identity"
    values = identity_values(seed_files, replugged, bool(plan.vm.containers))
    deadline = time.monotonic() + session.settings.budgets.get("restore", 120)
    if template.agent:
        agent = _agent_of(host, plan.domain, time.monotonic() + AGENT_WAIT)
        if agent is not None:
            offset = agent.clock_offset()
            budget = max(deadline - time.monotonic(), 5)
            done = agent.hand(WAITING_DIR,
                              handed_clock(offset) + filled(HANDED_IDENTITY, **values), budget)
            if done is None:  # no shell waits in this template: one started for it
                done = agent.run(["/bin/bash", "-s"],
                                 clock_shift(offset) + filled(IDENTITY, **values), budget)
            done.check(what)
            return
    label = f"VM '{plan.vm.name}' (restored)"
    while True:  # the restored VM answers within seconds; wait for that only
        try:
            transport = session.reach.login_as(host, plan.domain, label, template.user,
                                               template.login_private, template.host_public)
            break
        except HostKeyMismatch:
            raise  # not the template: never retried, never trusted
        except LabctlError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    with transport:  # once: the script changes the keys this login used
        set_clock_running(transport, IDENTITY, what, **values)


AGENT_WAIT = 3.0  # seconds a restored template's agent may take to answer; then SSH


def _agent_of(host: Backend, domain: str, until: float) -> GuestAgent | None:
    while True:
        found = host.guest_agent(domain)
        if found is not None or time.monotonic() > until:
            return found
        time.sleep(0.05)
