"""What each kind of check runs in a VM, and how its output is judged. Both
halves are pure: the use case (usecases/checks.py) carries the commands over
SSH or makes the host-side connection, and hands the outcome back here.

Every probe only reads: it lists, inspects, cats, connects. A probe's shell
prints a marker line first, so "the container does not exist" (a fail) is told
apart from "the command could not run" (SSH refused, timeout)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from labctl.lab.model import Check
from labctl.shell import quote

MAX_BYTES = 1 << 20  # of a file or a body that is searched for a pattern
MISSING = "labctl-check: missing"
NO_CONTAINER = "labctl-check: no container"

PASS, FAIL, ERROR = "pass", "fail", "error"  # error: could not run


@dataclass(frozen=True)
class Verdict:
    status: str  # pass | fail | error
    reason: str = ""  # short, for the table: why it failed or could not run


@dataclass(frozen=True)
class VmProbe:
    """What a check runs in its VM (see checks/batch.py: the whole batch runs
    as root, a plain command as the lab user)."""
    command: str | None  # shell; None: the container's inspect output is the answer
    container: str | None = None  # looked up first (podman or docker)
    inside: bool = False  # `command` runs inside `container`
    as_user: bool = False  # as the lab user (a student's own command)


def vm_probe(check: Check) -> VmProbe | None:
    """The probe a check runs in its VM, or None when it connects from
    elsewhere (tcp and http). Its output starts with a marker line."""
    spec = dict(check.spec)
    if check.kind == "command":
        run = f"echo; sh -c {quote(spec['run'])}"
        if "container" in spec:
            return VmProbe(run, spec["container"], inside=True)
        return VmProbe(run, as_user=True)
    if check.kind == "file":
        path = quote(spec["path"])
        probe = (f"if test -e {path}; then echo; head -c {MAX_BYTES} {path}; "
                 f"else echo {quote(MISSING)}; fi")
        if "container" in spec:
            return VmProbe(probe, spec["container"], inside=True)
        return VmProbe(probe)
    if check.kind == "container":
        return VmProbe(None, spec["name"])
    return None


def judge_vm(check: Check, exit_status: int, output: str) -> Verdict:
    """The verdict on what vm_command printed (marker line first)."""
    spec = dict(check.spec)
    marker, _, rest = output.partition("\n")
    if marker == NO_CONTAINER:
        name = spec.get("container") or spec.get("name")
        return Verdict(FAIL, f"no container '{name}'")
    if check.kind == "command":
        want = spec.get("exit", 0)
        if exit_status != want:
            return Verdict(FAIL, f"exit {exit_status}, expected {want}" + _tail(rest))
        return _search(spec.get("stdout"), rest, "output")
    if check.kind == "file":
        if marker == MISSING:
            return Verdict(FAIL, f"no file {spec['path']}")
        if exit_status != 0:
            return Verdict(FAIL, f"cannot read {spec['path']}" + _tail(rest))
        return _search(spec.get("contains"), rest, spec["path"])
    return _judge_container(spec, exit_status, rest)


def _judge_container(spec: dict, exit_status: int, text: str) -> Verdict:
    if exit_status != 0:
        return Verdict(ERROR, "inspect failed" + _tail(text))
    try:
        (info,) = json.loads(text)
    except ValueError:
        return Verdict(ERROR, "inspect gave no JSON")
    state = info.get("State") or {}
    if not state.get("Running"):
        return Verdict(FAIL, f"container '{spec['name']}' is {state.get('Status', 'not running')}")
    image = (info.get("Config") or {}).get("Image") or info.get("ImageName") or ""
    if "image" in spec and _image(image) != _image(spec["image"]):
        return Verdict(FAIL, f"runs image {image}, expected {spec['image']}")
    if "port" in spec and spec["port"] not in _published(info):
        return Verdict(FAIL, f"does not publish port {spec['port']}")
    if "volume" in spec and not any(spec["volume"] in (m.get("Name"), m.get("Source"),
                                                       m.get("Destination"))
                                    for m in info.get("Mounts") or ()):
        return Verdict(FAIL, f"has no volume {spec['volume']}")
    return Verdict(PASS)


def _image(ref: str) -> str:
    """'nginx', 'docker.io/library/nginx:latest' and 'nginx:latest' are one image."""
    ref = re.sub(r"^(docker\.io/|index\.docker\.io/)", "", ref)
    ref = re.sub(r"^library/", "", ref)
    return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"


def _published(info: dict) -> set[int]:
    """VM-side ports the container publishes (docker and podman alike)."""
    ports: set[int] = set()
    bindings = ((info.get("HostConfig") or {}).get("PortBindings") or {}) | \
        ((info.get("NetworkSettings") or {}).get("Ports") or {})
    for binds in bindings.values():
        for bind in binds or ():
            if str(bind.get("HostPort", "")).isdigit():
                ports.add(int(bind["HostPort"]))
    return ports


def _search(pattern: str | None, text: str, what: str) -> Verdict:
    if pattern is None or re.search(pattern, text, re.MULTILINE):
        return Verdict(PASS)
    return Verdict(FAIL, f"{what} does not contain /{pattern}/" + _tail(text))


def _tail(text: str) -> str:
    last = [line for line in text.strip().splitlines() if line.strip()][-1:]
    return f": {last[0][:80]}" if last else ""


def tcp_from_vm(address: str, port: int) -> str:
    """Shell for a VM that connects to address:port (bash's /dev/tcp: no nc
    needed); exit 0 when it answered. The caller bounds its time."""
    return f"bash -c {quote(f'exec 3<>/dev/tcp/{address}/{port}')}"


def http_from_vm(address: str, port: int, path: str) -> str:
    """Shell for a VM that GETs http://address:port/path (HTTP/1.0 over bash's
    /dev/tcp) and prints the raw response. The path is an argument of printf,
    never part of its format (a '%' or a quote in it stays what it is)."""
    script = (f"exec 3<>/dev/tcp/{address}/{port} && "
              f"printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' {quote(path)} "
              f"{quote(address)} >&3 && head -c {MAX_BYTES} <&3")
    return f"bash -c {quote(script)}"


def http_request(address: str, path: str) -> bytes:
    """The same request, sent from the host."""
    return f"GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode()


def judge_http(check: Check, status: int | None, body: str, error: str = "") -> Verdict:
    spec = dict(check.spec)
    if status is None:
        return Verdict(FAIL, error or f"nothing answers on port {spec['port']}")
    want = spec.get("status", 200)
    if status != want:
        return Verdict(FAIL, f"status {status}, expected {want}")
    return _search(spec.get("body"), body, "body")


def parse_http(raw: str) -> tuple[int | None, str]:
    """(status, body) of a raw HTTP/1.x response; (None, '') if it is not one."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    found = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", head)
    return (int(found.group(1)), body) if found else (None, "")
