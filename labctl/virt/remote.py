"""A libvirt host itself, beside its libvirt: the OpenSSH command line its
qemu+ssh URI implies (the same user, address, port, key and host-key policy
libvirt's own ssh uses), labctl's option in that URI, and a shell script run
on the host (the lab registry runs there; a jump host's listening ports are
read there).

labctl's one URI option, `labctl_jump=1`, says the host does not expose its
forwarded ports: VMs' forwards then listen on the host's loopback and labctl
(and the ssh configs it writes) reach them through the host's sshd, as
OpenSSH's ProxyJump does. libvirt never sees it (`libvirt_uri`)."""

from __future__ import annotations

import subprocess
from urllib.parse import parse_qsl, urlparse

from labctl import shell
from labctl.errors import LabctlError

JUMP = "labctl_jump"
# A host that died answers nothing: without a bound, ssh waits out TCP's own
# connect timeout (73 s measured here for a host whose link went down).
CONNECT_SECONDS = 10
_TRUE = {"1", "yes", "true"}


def libvirt_uri(uri: str) -> str:
    """The URI as libvirt must see it: without labctl's own option."""
    parsed = urlparse(uri)
    if JUMP not in parsed.query:
        return uri
    # the other parameters stay exactly as written (no re-encoding)
    kept = [part for part in parsed.query.split("&") if part.split("=", 1)[0] != JUMP]
    return parsed._replace(query="&".join(kept)).geturl()


def jumps(uri: str) -> bool:
    """True if the host's forwarded ports are reached through its sshd."""
    params = dict(parse_qsl(urlparse(uri).query, keep_blank_values=True))
    return params.get(JUMP, "").lower() in _TRUE and is_ssh(uri)


def is_ssh(uri: str) -> bool:
    parsed = urlparse(uri)
    return bool(parsed.hostname) and parsed.scheme.partition("+")[2] in ("ssh", "libssh",
                                                                         "libssh2")


def ssh_argv(uri: str, *options: str) -> list[str]:
    """`ssh [libvirt's options] [options] -- HOST`, reaching the host as libvirt
    does for this URI (append a remote command, or pass -W in `options`)."""
    parsed = urlparse(uri)
    if not is_ssh(uri):
        raise LabctlError(f"labctl reaches a host's own shell only through ssh, not {uri}",
                          "use a qemu+ssh://USER@HOST/system URI for this host")
    if parsed.hostname.startswith("-") or (parsed.username or "").startswith("-"):
        raise LabctlError(f"'{parsed.hostname}' in {uri} is not a host name")
    params = dict(parse_qsl(parsed.query, keep_blank_values=True))
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_SECONDS}"]
    if parsed.port:
        argv += ["-p", str(parsed.port)]
    if parsed.username:
        argv += ["-l", parsed.username]
    if params.get("keyfile"):
        argv += ["-i", params["keyfile"], "-o", "IdentitiesOnly=yes"]
    if params.get("no_verify") == "1":
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "LogLevel=ERROR"]
    if params.get("known_hosts"):
        argv += ["-o", f"UserKnownHostsFile={params['known_hosts']}"]
    return [*argv, *options, "--", parsed.hostname]


def jump_spec(uri: str) -> str:
    """USER@HOST[:PORT] of the host, as OpenSSH's ProxyJump takes it."""
    parsed = urlparse(uri)
    user = f"{parsed.username}@" if parsed.username else ""
    port = f":{parsed.port}" if parsed.port else ""
    return f"{user}{parsed.hostname}{port}"


def run(uri: str, script: str, timeout: float = 60,
        local: bool = False) -> subprocess.CompletedProcess[str]:
    """A POSIX shell script on the host (on this machine when `local`); its
    exit status and output. A host that cannot be reached is one line."""
    argv = ["sh", "-c", script] if local else [*ssh_argv(uri), shell.join(["sh", "-c", script])]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LabctlError(f"a command on host {urlparse(uri).hostname or 'localhost'} "
                          f"did not finish within {timeout:.0f} s") from None
    if not local and done.returncode == 255:
        why = (done.stderr.strip().splitlines() or ["ssh failed"])[-1]
        raise LabctlError(f"cannot run a command on host {urlparse(uri).hostname}: {why}",
                          "labctl uses the URI's user, key (keyfile=) and port with OpenSSH")
    return done
