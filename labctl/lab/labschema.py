"""The lab file format, version 1, written once in schema.py's types.

This is the single description of what a lab file may contain: validation
(config.py) and `labctl schema` both read it. README's reference section
mirrors it.
"""

from __future__ import annotations

from typing import Any

from labctl.lab import values
from labctl.lab.checkschema import CHECK
from labctl.lab.model import BENCH_COMPARISONS
from labctl.lab.schema import (
    Bool,
    Either,
    Enum,
    Field,
    Int,
    ListOf,
    MapOf,
    Obj,
    Parsed,
    Str,
    Type,
)

MAX_COUNT = 50  # replicas of one VM; a class of students uses copies, not count
MAX_COPIES = 200  # copies of a lab: a large class spread over several hosts
RUNTIMES = ("podman", "docker")


class AnyValue(Type):
    what = "a value"

    def check(self, value: Any, path: Any) -> Any:
        return value

    def json_schema(self) -> dict[str, Any]:
        return {}


def _name(max_len: int, doc: str) -> Parsed:
    return Parsed(values.name(max_len), "a name", doc,
                  {"type": "string", "pattern": values.NAME_RE.pattern, "maxLength": max_len})


def _parsed(fn: Any, what: str, doc: str, accepts: tuple[type, ...] = (str,)) -> Parsed:
    return Parsed(fn, what, doc, accepts=accepts)


IMAGE_NAME = _parsed(values.image_name, "an image name", "guest image name in labctl's image cache")
URL_IMAGE = Obj("a cloud image to download", {
    "url": Field(_parsed(values.image_url, "a URL", "http(s) or file URL of a qcow2 or raw "
                         "cloud image"), required=True),
    "sha256": Field(_parsed(values.sha256_hex, "a sha256 checksum", "64 hex digits"),
                    required=True),
}, doc="downloaded once, checked, cached by digest")
CLOUD_IMAGE = Obj("an image of the cloud", {
    "cloud": Field(Str("the image's name in the OpenStack cloud's image service (Glance)",
                       max_len=255), required=True),
}, doc="an image that already lives in the OpenStack cloud the lab runs on (not on libvirt)")


class ImageDict(Type):
    """{url, sha256} or {cloud: NAME}, told apart by the key `cloud`."""
    what = "{url, sha256} or {cloud: NAME}"

    def check(self, value: Any, path: Any) -> Any:
        return (CLOUD_IMAGE if "cloud" in value else URL_IMAGE).check(value, path)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [URL_IMAGE.json_schema(), CLOUD_IMAGE.json_schema()]}


IMAGE = Either("an image name, {url, sha256} or {cloud: NAME}", {
    str: IMAGE_NAME,
    dict: ImageDict(),
}, doc="the guest image: a name in labctl's cache (built, pulled or in the catalogue), "
       "{url, sha256} of a stock cloud image, or {cloud: NAME} of an image in the "
       "OpenStack cloud")
MEMORY = _parsed(values.size("MiB", 128, 1 << 20), "a size", "RAM, e.g. '512M' or '2G'", (str, int))
DISK = _parsed(values.size("GiB", 1, 2048), "a size", "disk size, e.g. '10G'", (str, int))
VCPUS = Int(1, 64, "virtual CPUs")
USER = _parsed(values.lab_user, "a user name", "the lab user created in every VM (SSH login)")
RUNTIME = Enum(*RUNTIMES, doc="container runtime inside the VM")
STR_LIST = ListOf(Str(), "list of strings")
COMMAND = Either("a command (string or list of strings)", {
    str: _parsed(values.command, "a command", "shell-style words"),
    list: ListOf(Str(), max_items=256),
}, doc="the container's command; a string is split like a shell would")
ENV = Either("environment (mapping or list of KEY=VALUE)", {
    dict: MapOf(Str(scalars=True), key=_parsed(values.env_key, "a variable name", "")),
    list: ListOf(_parsed(values.env_pair, "KEY=VALUE", "")),
}, doc="environment variables of the container")
REL_PATH = _parsed(values.relative_path, "a relative path", "path relative to the lab file")
CONTAINER_IMAGE = Either("an image reference or {archive: PATH}", {
    str: _parsed(values.image_ref, "an image reference", "e.g. busybox or registry:5000/web:1"),
    dict: Obj("an archive image", {"archive": Field(REL_PATH, required=True)},
              doc="an OCI or docker archive, uploaded and loaded in the VM"),
})
BUILD = Either("a build context or {context, dockerfile}", {
    str: REL_PATH,
    dict: Obj("a build", {"context": Field(REL_PATH, required=True),
                          "dockerfile": Field(Str(max_len=255))}),
}, doc="build the image in the VM from this context directory")

CONTAINER = Obj("a container", {
    "name": Field(Parsed(values.container_name(63), "a name",
                         "container name, unique in its VM (two characters at least)",
                         {"type": "string", "pattern": values.NAME_RE.pattern,
                          "minLength": 2, "maxLength": 63}), required=True),
    "image": Field(CONTAINER_IMAGE),
    "build": Field(BUILD),
    "command": Field(COMMAND),
    "ports": Field(ListOf(_parsed(values.port, "a port mapping", "HOST:CONTAINER[/proto]",
                                  (str, int)), max_items=100)),
    "volumes": Field(ListOf(_parsed(values.volume, "a volume", "NAME:/path or ./dir:/path[:ro]"),
                            max_items=100)),
    "env": Field(ENV),
    # YAML 1.1 reads a bare `no` as false: accept it as docker's "no".
    "restart": Field(Enum("no", "always", "on-failure", "unless-stopped",
                          aliases={False: "no"}, doc="restart policy")),
    "runtime": Field(RUNTIME),
})

WRITE_FILE = Obj("a file", {
    "path": Field(_parsed(values.pattern(values.ABS_PATH_RE, "an absolute path"), "a path",
                          "absolute path in the VM"),
                  required=True),
    "content": Field(Str(max_len=1 << 20), required=True),
    "permissions": Field(_parsed(values.file_mode, "a file mode", "octal, e.g. '0644'",
                                 (str, int))),
    "owner": Field(_parsed(values.pattern(values.OWNER_RE, "a valid owner", "write 'user:group'"),
                           "an owner", "user:group")),
})

ATTACHMENT = Either("a network name or {network, ip}", {
    str: _name(40, "network name"),
    dict: Obj("a network attachment", {
        "network": Field(_name(40, "network name"), required=True),
        "ip": Field(_parsed(values.ipv4, "an IPv4 address", "fixed address on that network")),
    }),
})

VM_FIELDS = {
    "image": Field(IMAGE),
    "firmware": Field(Enum("bios", "efi", doc="how a disk-booted cloud image starts: BIOS "
                           "(default) or UEFI (OVMF)")),
    "vcpus": Field(VCPUS),
    "memory": Field(MEMORY),
    "disk": Field(DISK),
    "user": Field(USER),
    "sudo": Field(Bool("true (default): the lab user may use sudo and the docker group; "
                       "false: a plain account (an exam)")),
    "runtime": Field(RUNTIME),
    "flavor": Field(Str("on an OpenStack cloud, the flavor to use instead of the smallest that "
                        "fits memory, vcpus and disk (ignored on libvirt hosts)", max_len=255)),
}

VM = Obj("a VM", {
    "name": Field(_name(40, "VM name (also its hostname)"), required=True),
    **VM_FIELDS,
    "count": Field(Int(1, MAX_COUNT, "replicas, named NAME-1..NAME-N",
                       hint="for one lab per student use copies, not count")),
    "networks": Field(ListOf(ATTACHMENT, max_items=8)),
    "packages": Field(ListOf(_parsed(values.pattern(values.PACKAGE_RE, "a Debian package name"),
                                     "a package name", ""))),
    "runcmd": Field(ListOf(Either("a command", {str: Str(), list: STR_LIST}))),
    "write_files": Field(ListOf(WRITE_FILE, max_items=100)),
    "containers": Field(ListOf(CONTAINER, max_items=100)),
})

NETWORK = Obj("a network", {
    "name": Field(_name(40, "network name"), required=True),
    "mode": Field(Enum("nat", "isolated", "user",
                       doc="nat: outbound access; isolated: VMs only; "
                           "user: qemu user-mode, SSH forwarded to 127.0.0.1")),
    "subnet": Field(_parsed(values.subnet, "a subnet",
                            "IPv4 CIDR; chosen automatically if absent")),
    "internet": Field(Bool("false: sealed, its VMs reach nothing outside the lab "
                           "(default: the lab's internet)")),
})

BENCH = Obj("the bench section", {
    "repeat": Field(Int(1, 100, "measured repetitions")),
    "warmup": Field(Int(0, 10, "discarded warm-up runs")),
    "compare": Field(ListOf(Enum(*BENCH_COMPARISONS), "what to measure")),
    "runtimes": Field(ListOf(RUNTIME, "container runtimes to measure")),
    "image": Field(CONTAINER_IMAGE.by_kind[str]),
    "vm_image": Field(IMAGE_NAME),
})

VARIABLE_NAME = _parsed(values.pattern(values.VARIABLE_NAME_RE, "a variable name",
                                       "letters, digits and '_', not starting with a digit"),
                        "a variable name", "a name usable as {{ NAME }} in the lab file")
PER_COPY_VALUE = Obj("a per-copy value", {
    "secret": Field(Int(4, 64, "a secret of N lowercase letters and digits")),
    "number": Field(ListOf(Int(0, 1 << 31, "a whole number"), "[LOW, HIGH]: a number in "
                           "that range (inclusive), e.g. a port", max_items=2)),
    "choice": Field(ListOf(Str(scalars=True), "one of these values", max_items=1000)),
    "name": Field(Bool("true: a name such as amber-otter")),
}, doc="exactly one of secret, number, choice, name")

LAB = Obj("the lab", {
    "version": Field(Int(1, 1, "lab file format version")),
    "name": Field(_name(30, "lab name: prefixes every libvirt object of the lab"), required=True),
    "description": Field(Str()),
    "variables": Field(MapOf(AnyValue(), doc="jinja2 variables, overridable with --var")),
    "per_copy": Field(MapOf(PER_COPY_VALUE, key=VARIABLE_NAME,
                            doc="values generated for each copy of a class (the same on every "
                                "up and reset, different between copies), used as variables")),
    "defaults": Field(Obj("defaults", VM_FIELDS, doc="defaults for every VM")),
    "internet": Field(Bool("true (default): VMs reach the internet through their networks; "
                           "false: a sealed lab (exams, untrusted code)")),
    "networks": Field(ListOf(NETWORK, max_items=16)),
    "vms": Field(ListOf(VM, max_items=100), required=True),
    "bench": Field(BENCH),
    "copies": Field(Int(1, MAX_COPIES, "isolated copies of the lab (one per student), named "
                        "LAB-1..LAB-N")),
    "students": Field(ListOf(_name(30, "a student: one isolated copy named LAB-STUDENT"),
                             max_items=MAX_COPIES)),
    "mirrors": Field(Obj("mirrors", {
        "registry": Field(_parsed(values.mirror_address, "a registry address",
                                  "host:port (or http://host:port) of a registry mirror for "
                                  "Docker Hub names, e.g. a class cache")),
        "apt": Field(_parsed(values.image_url, "a URL",
                             "a Debian mirror's base URL, instead of deb.debian.org/debian")),
        "apt_key": Field(Str("the OpenPGP public key (ASCII-armored file, relative to the lab "
                             "file) the apt mirror signs with, when it is not Debian's")),
    }, doc="where the lab's VMs fetch from instead of the internet")),
    "checks": Field(ListOf(CHECK, max_items=200)),
    "hosts": Field(ListOf(_parsed(values.host_uri, "a libvirt URI or openstack:CLOUD",
                                  "where copies run: a libvirt host, e.g. "
                                  "qemu+ssh://user@host/system, or an OpenStack cloud, "
                                  "openstack:CLOUD"),
                          max_items=32)),
}, doc="a labctl lab file")


def json_schema() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "labctl lab file", **LAB.json_schema()}
