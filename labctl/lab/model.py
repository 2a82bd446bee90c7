"""Plain typed records of a lab. No I/O.

`build_lab` turns a schema-validated document into records; every default is
applied here (never in templates), and `count:` replicas are expanded here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Built-in VM defaults; a lab's `defaults:` section overrides them.
DEFAULT_IMAGE = "debian-12"
DEFAULT_VCPUS = 1
DEFAULT_MEMORY_MIB = 512
DEFAULT_DISK_GIB = 4
DEFAULT_USER = "lab"
# labctl's own account in every VM: its own key (never in a hand-out), sudo; checks
# and labctl's work log in with it, so nothing a student does to the lab user's
# account stops or steers them, and the lab user can be left without root.
ADMIN_USER = "labctl"
DEFAULT_RUNTIME = "podman"
DEFAULT_NETWORK = "default"  # the implicit network of a lab that declares none
DEFAULT_NETWORK_MODE = "user"  # works without a bridge: SSH forwarded to 127.0.0.1

# vm-boot, container-start and process are measured in the VM; host-* on this
# machine itself (the same container image, no VM around it).
BENCH_COMPARISONS = ("vm-boot", "container-start", "process", "host-container-start",
                     "host-process")
VM_COMPARISONS = BENCH_COMPARISONS[:3]


@dataclass(frozen=True)
class Network:
    name: str
    mode: str  # nat | isolated | user
    subnet: ipaddress.IPv4Network | None = None  # None: chosen at `up`
    internet: bool = True  # False: sealed, nothing outside the lab is reachable from it

    @property
    def sealed(self) -> bool:
        """No way out: an isolated network, or one whose internet is off."""
        return self.mode == "isolated" or not self.internet


@dataclass(frozen=True)
class Attachment:
    """A VM's NIC on a lab network, with an optional fixed address."""

    network: str
    ip: ipaddress.IPv4Address | None = None


@dataclass(frozen=True)
class Port:
    host: int
    container: int
    proto: str = "tcp"
    host_ip: str | None = None

    def __str__(self) -> str:
        prefix = f"{self.host_ip}:" if self.host_ip else ""
        return f"{prefix}{self.host}:{self.container}/{self.proto}"


@dataclass(frozen=True)
class Volume:
    source: str  # a volume name, or a path relative to the lab directory
    target: str
    kind: str  # named | bind
    read_only: bool = False


@dataclass(frozen=True)
class Build:
    context: str  # relative to the lab directory
    dockerfile: str = "Dockerfile"


@dataclass(frozen=True)
class Container:
    name: str
    runtime: str
    image: str | None = None  # a registry reference
    archive: str | None = None  # an OCI/docker archive, relative to the lab directory
    build: Build | None = None
    command: tuple[str, ...] | None = None
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    restart: str = "no"


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: str
    permissions: str = "0644"
    owner: str = "root:root"


@dataclass(frozen=True)
class VM:
    name: str  # the instance name (web-2 for the second replica of `web`)
    group: str  # the name in the lab file (web)
    image: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    user: str
    runtime: str
    networks: tuple[Attachment, ...]
    packages: tuple[str, ...] = ()
    runcmd: tuple[str | tuple[str, ...], ...] = ()
    write_files: tuple[WriteFile, ...] = ()
    containers: tuple[Container, ...] = ()
    image_url: str | None = None  # a stock cloud image to download (cached as `image`)
    image_sha256: str | None = None
    firmware: str = "bios"  # bios | efi: how a disk-booted image starts
    sudo: bool = True  # false: the lab user gets no sudo and no docker group (an exam)
    flavor: str | None = None  # on OpenStack: this flavor, not the smallest that fits


@dataclass(frozen=True)
class Bench:
    repeat: int = 5
    warmup: int = 1
    compare: tuple[str, ...] = BENCH_COMPARISONS
    runtimes: tuple[str, ...] = ("podman", "docker")
    image: str = "busybox"  # the container image started in the comparison
    vm_image: str | None = None  # None: the lab's default image


@dataclass(frozen=True)
class Mirrors:
    """Where a class's VMs fetch from instead of the internet."""

    registry: str | None = None  # host:port (or http://host:port) of a registry mirror
    apt: str | None = None  # a Debian mirror's base URL (replaces deb.debian.org/debian)
    apt_key: str | None = None  # the armored public key it signs with (the file's text)


ARMORED_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----"


@dataclass(frozen=True)
class Check:
    """One thing assessed in every copy (see lab/checkschema.py for the kinds)."""

    name: str
    vm: str
    kind: str  # command | file | container | tcp | http
    spec: tuple[tuple[str, Any], ...]  # the kind's own fields, as written
    description: str = ""
    points: int = 1
    timeout: int = 20
    student: bool = False  # students may run it themselves (their page's "check my work")

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.spec).get(key, default)


@dataclass(frozen=True)
class Lab:
    name: str
    source: Path  # the lab file; relative paths in it are relative to its directory
    description: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    networks: tuple[Network, ...] = ()
    vms: tuple[VM, ...] = ()
    bench: Bench | None = None
    copies: int = 1  # isolated copies `up` makes (one per student)
    students: tuple[str, ...] = ()  # names the copies (LAB-STUDENT); sets copies
    group: str = ""  # for a copy: the lab file's own name; "" otherwise
    copy: str = ""  # for a copy: its id (a student's name or 1..N)
    hosts: tuple[str, ...] = ()  # libvirt URIs copies are placed on (default: --uri)
    mirrors: Mirrors = Mirrors()
    checks: tuple[Check, ...] = ()
    # values generated for each copy (lab/percopy.py): how, and those this
    # lab was rendered with (stand-ins until a copy is made with its own)
    per_copy: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.source.parent

    def vm(self, name: str) -> VM:
        for vm in self.vms:
            if vm.name == name:
                return vm
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)


CLOUD_IMAGE_PREFIX = "glance:"  # not a cache name (those have no colon)


def cloud_image_name(name: str) -> str:
    """How labctl names an image that lives in the OpenStack cloud (Glance)."""
    return CLOUD_IMAGE_PREFIX + name


def url_image_name(sha256: str) -> str:
    """The cache name of an image given by URL and checksum: its digest decides it."""
    return f"cloud-{sha256[:12]}"


def replica_names(name: str, count: int) -> list[str]:
    """`count: N` gives name-1..name-N; a single VM keeps its name."""
    return [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]


def build_lab(doc: dict[str, Any], source: Path, variables: dict[str, Any],
              values: dict[str, Any] | None = None) -> Lab:
    """Records from a document the schema has validated and normalised."""
    internet = doc.get("internet", True)  # each network may say otherwise
    networks = tuple(
        Network(n["name"], n.get("mode", "nat"), n.get("subnet"), n.get("internet", internet))
        for n in doc.get("networks", [])
    )
    if not networks:
        networks = (Network(DEFAULT_NETWORK, DEFAULT_NETWORK_MODE, internet=internet),)
    defaults = doc.get("defaults", {})
    vms: list[VM] = []
    for spec in doc.get("vms", []):
        vms.extend(_build_vms(spec, defaults, networks[0].name))
    bench = None
    if "bench" in doc:
        spec = doc["bench"]
        lists = {k: tuple(spec[k]) for k in ("compare", "runtimes") if k in spec}
        bench = Bench(**{**spec, **lists})
    return Lab(
        name=doc["name"],
        source=source,
        description=doc.get("description", ""),
        variables=variables,
        networks=networks,
        vms=tuple(vms),
        bench=bench,
        copies=len(doc["students"]) if doc.get("students") else doc.get("copies", 1),
        students=tuple(doc.get("students", ())),
        hosts=tuple(doc.get("hosts", ())),
        mirrors=_mirrors(doc.get("mirrors", {}), source.parent),
        checks=tuple(_check(c) for c in doc.get("checks", ())),
        per_copy=doc.get("per_copy", {}),
        values=values or {},
    )


def _build_vms(spec: dict[str, Any], defaults: dict[str, Any], first_network: str) -> list[VM]:
    def pick(key: str, builtin: Any) -> Any:
        return spec.get(key, defaults.get(key, builtin))

    runtime = pick("runtime", DEFAULT_RUNTIME)
    attachments = tuple(
        Attachment(a, None) if isinstance(a, str) else Attachment(a["network"], a.get("ip"))
        for a in spec.get("networks", [])
    ) or (Attachment(first_network),)
    containers = tuple(_build_container(c, runtime) for c in spec.get("containers", []))
    write_files = tuple(WriteFile(**w) for w in spec.get("write_files", []))
    image = pick("image", DEFAULT_IMAGE)
    url = image if isinstance(image, dict) and "url" in image else {}
    if isinstance(image, dict) and "cloud" in image:
        image = cloud_image_name(image["cloud"])
    return [
        VM(
            name=name,
            group=spec["name"],
            image=url_image_name(url["sha256"]) if url else image,
            image_url=url.get("url"),
            image_sha256=url.get("sha256"),
            firmware=pick("firmware", "bios"),
            vcpus=pick("vcpus", DEFAULT_VCPUS),
            memory_mib=pick("memory", DEFAULT_MEMORY_MIB),
            disk_gib=pick("disk", DEFAULT_DISK_GIB),
            user=pick("user", DEFAULT_USER),
            sudo=pick("sudo", True),
            flavor=pick("flavor", None),
            runtime=runtime,
            networks=attachments,
            packages=tuple(spec.get("packages", [])),
            runcmd=tuple(c if isinstance(c, str) else tuple(c) for c in spec.get("runcmd", [])),
            write_files=write_files,
            containers=containers,
        )
        for name in replica_names(spec["name"], spec.get("count", 1))
    ]


def _build_container(spec: dict[str, Any], vm_runtime: str) -> Container:
    image = spec.get("image")
    build = spec.get("build")
    if isinstance(build, str):
        build = {"context": build}
    env = spec.get("env", {})
    if isinstance(env, list):  # KEY=VALUE pairs, already split by the schema
        env = dict(env)
    command = spec.get("command")
    return Container(
        name=spec["name"],
        runtime=spec.get("runtime", vm_runtime),
        image=image if isinstance(image, str) else None,
        archive=image["archive"] if isinstance(image, dict) else None,
        build=Build(**build) if build else None,
        command=tuple(command) if command is not None else None,
        ports=tuple(spec.get("ports", [])),
        volumes=tuple(spec.get("volumes", [])),
        env=tuple(sorted(env.items())),
        restart=spec.get("restart", "no"),
    )


def _mirrors(doc: dict[str, Any], lab_dir: Path) -> Mirrors:
    """The key file's text travels with the lab: it goes into each VM's seed."""
    key = (lab_dir / doc["apt_key"]).read_text() if doc.get("apt_key") else None
    return Mirrors(registry=doc.get("registry"), apt=doc.get("apt"), apt_key=key)


CHECK_KINDS = ("command", "file", "container", "tcp", "http")


def _check(doc: dict[str, Any]) -> Check:
    (kind,) = [k for k in CHECK_KINDS if k in doc]  # the rules allow exactly one
    return Check(name=doc["name"], vm=doc["vm"], kind=kind, spec=tuple(doc[kind].items()),
                 description=doc.get("description", ""), points=doc.get("points", 1),
                 timeout=doc.get("timeout", 20), student=doc.get("student", False))
