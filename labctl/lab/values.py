"""Parsers for the lab file's compact string values: sizes, ports, volumes,
names, subnets. Each returns a normalised value or raises schema.Invalid."""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from labctl.lab.model import Port, Volume
from labctl.lab.schema import Invalid
from labctl.names import NAME_HINT, NAME_RE, name_problem  # noqa: F401 (re-exported)

VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Registry references: host[:port]/path:tag@digest, nothing a shell would act on.
IMAGE_REF_RE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$", re.IGNORECASE)
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,127}$")
OWNER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?$")
ABS_PATH_RE = re.compile(r"^/[^\0]{0,4095}$")
MODE_RE = re.compile(r"^0?[0-7]{3}$")
SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT])(?:i?B)?$", re.IGNORECASE)
PORT_RE = re.compile(r"^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):(\d+)(?:/([a-z]+))?$")

_UNIT_BYTES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def name(max_len: int) -> Any:
    def parse(value: str) -> str:
        problem = name_problem(value, max_len)
        if problem:
            raise Invalid(*problem)
        return value

    return parse


def container_name(max_len: int) -> Any:
    """A name, and two characters at least: docker refuses a one-letter
    container name ('Invalid container name (d)') where podman takes it."""
    def parse(value: str) -> str:
        value = name(max_len)(value)
        if len(value) < 2:
            raise Invalid(f"'{value}' is too short for a container name",
                          "docker needs two characters at least")
        return value

    return parse


# A lab file is someone else's code: its hosts are the transports labctl
# drives and nothing more. libvirt runs a program for some URI options
# (`command=`, `netcat=`, `proxy=`, the ext transport), so only these pass.
URI_SCHEMES = ("qemu", "qemu+ssh")
URI_OPTIONS = ("keyfile", "no_verify", "no_tty", "known_hosts", "labctl_jump")
URI_RE = re.compile(r"^[a-z][a-z0-9+]*://[^\s'\"`$;|<>]*$")


def libvirt_uri(value: str) -> str:
    hint = "e.g. qemu:///system or qemu+ssh://user@host/system"
    if not URI_RE.fullmatch(value) or len(value) > 255:
        raise Invalid(f"'{value}' is not a libvirt URI", hint)
    parts = urlsplit(value)
    if parts.scheme not in URI_SCHEMES:
        raise Invalid(f"'{value}': labctl drives only {' and '.join(URI_SCHEMES)} hosts", hint)
    if parts.path not in ("/system", "/session") or parts.fragment \
            or bool(parts.netloc) != (parts.scheme == "qemu+ssh"):
        raise Invalid(f"'{value}' is not a libvirt URI", hint)
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key not in URI_OPTIONS:
            raise Invalid(f"'{value}': the URI option '{key}' is not allowed in a lab file",
                          f"allowed: {', '.join(URI_OPTIONS)}")
    return value


CLOUD_RE = re.compile(r"openstack:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
                      r"(\?[A-Za-z]+=[A-Za-z0-9_.:/-]*(&[A-Za-z]+=[A-Za-z0-9_.:/-]*)*)?")
CLOUD_OPTIONS = ("from", "external")


def host_uri(value: str) -> str:
    """A libvirt URI, or an OpenStack cloud: openstack:CLOUD (an entry of
    clouds.yaml) with the options from=CIDR and external=NETWORK."""
    if not value.startswith("openstack:"):
        return libvirt_uri(value)
    hint = "openstack:CLOUD, CLOUD an entry of clouds.yaml (e.g. openstack:uni)"
    if not CLOUD_RE.fullmatch(value):
        raise Invalid(f"'{value}' is not an OpenStack cloud", hint)
    for key, _ in parse_qsl(urlsplit(value).query, keep_blank_values=True):
        if key not in CLOUD_OPTIONS:
            raise Invalid(f"'{value}': the cloud option '{key}' is unknown",
                          f"allowed: {', '.join(CLOUD_OPTIONS)}")
    return value


def image_url(value: str) -> str:
    if not re.fullmatch(r"^(https?|file)://[^\s'\"`]+$", value) or len(value) > 2048:
        raise Invalid(f"'{value}' is not an http(s) or file URL",
                      "e.g. https://cloud.debian.org/images/cloud/bookworm/latest/"
                      "debian-12-genericcloud-amd64.qcow2")
    return value


def mirror_address(value: str) -> str:
    if not re.fullmatch(r"^(https?://)?[A-Za-z0-9.-]+(:\d{1,5})?/?$", value):
        raise Invalid(f"'{value}' is not a registry address",
                      "host:port or http://host:port, e.g. 10.213.1.1:5000")
    return value.rstrip("/")


def sha256_hex(value: str) -> str:
    digest = value.lower().removeprefix("sha256:")
    if not re.fullmatch(r"^[0-9a-f]{64}$", digest):
        raise Invalid(f"'{value}' is not a sha256 checksum", "64 hex digits (sha256sum FILE)")
    return digest


def image_name(value: str) -> str:
    if not IMAGE_NAME_RE.fullmatch(value):
        raise Invalid(f"'{value}' is not a valid image name",
                      "image names use lowercase letters, digits, '.', '_' and '-'")
    return value


def image_ref(value: str) -> str:
    if not IMAGE_REF_RE.fullmatch(value):
        raise Invalid(f"'{value}' is not a valid container image reference",
                      "write it as in 'docker pull', e.g. 'busybox' or 'registry:5000/web:1.0'")
    return value


def size(unit: str, low: int, high: int) -> Any:
    """'512M', '2G', '1.5GiB' -> a whole number of `unit` (MiB or GiB)."""
    unit_bytes = _UNIT_BYTES[unit[0]]

    def parse(value: str | int) -> int:
        if isinstance(value, int):
            raise Invalid(f"{value} has no unit", f"write it with a unit, e.g. '{value}{unit[0]}'")
        m = SIZE_RE.fullmatch(value.strip())
        if not m:
            raise Invalid(f"'{value}' is not a size",
                          "write a number and a unit, e.g. '512M' or '2G'")
        amount = float(m.group(1)) * _UNIT_BYTES[m.group(2).upper()]
        if amount % unit_bytes:
            raise Invalid(f"'{value}' is not a whole number of {unit}", f"round it to whole {unit}")
        result = int(amount // unit_bytes)
        if not low <= result <= high:
            bounds = f"{_human(low, unit)} to {_human(high, unit)}"
            raise Invalid(f"'{value}' is out of range ({bounds})")
        return result

    return parse


def _human(amount: int, unit: str) -> str:
    """1048576 MiB -> '1T': the largest unit that divides evenly."""
    letters = "KMGT"
    index = letters.index(unit[0])
    while index + 1 < len(letters) and amount % 1024 == 0:
        amount, index = amount // 1024, index + 1
    return f"{amount}{letters[index]}"


def port(value: str | int) -> Port:
    if isinstance(value, int):
        raise Invalid(f"port {value} has no host side",
                      f"write 'HOST:CONTAINER', e.g. '{value}:{value}'")
    m = PORT_RE.fullmatch(value.strip())
    if not m:
        raise Invalid(f"'{value}' is not a port mapping",
                      "write 'HOST:CONTAINER[/tcp|udp]', e.g. '8080:80'")
    host_ip, host, container, proto = m.groups()
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise Invalid(f"unknown protocol '{proto}' in '{value}'", "use '/tcp' or '/udp'")
    for number in (int(host), int(container)):
        if not 1 <= number <= 65535:
            raise Invalid(f"port {number} in '{value}' is out of range (1 to 65535)")
    if host_ip is not None:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise Invalid(f"'{host_ip}' in '{value}' is not an IPv4 address") from None
    return Port(int(host), int(container), proto, host_ip)


def relative_path(value: str) -> str:
    """A path inside the lab directory, normalised ('./web/' -> 'web')."""
    if not value or value.startswith(("/", "~")):
        raise Invalid(f"'{value}' must be a path relative to the lab file's directory",
                      "write it like './web'")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise Invalid(f"'{value}' points outside the lab file's directory",
                      "keep build contexts, archives and bind sources next to the lab file")
    return normal


def volume(value: str) -> Volume:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise Invalid(f"'{value}' is not a volume", "write 'NAME:/path' or './dir:/path[:ro]'")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise Invalid(f"unknown volume mode '{mode}' in '{value}'", "use ':ro' or ':rw'")
    if not target.startswith("/"):
        raise Invalid(f"volume target '{target}' must be an absolute path in the container")
    if source.startswith((".", "/", "~")):
        return Volume(relative_path(source), target, "bind", mode == "ro")
    if not VOLUME_NAME_RE.fullmatch(source):
        raise Invalid(f"'{source}' is not a valid volume name",
                      "named volumes use letters, digits, '_', '.' and '-'; "
                      "bind mounts start with './'")
    return Volume(source, target, "named", mode == "ro")


def subnet(value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(value, strict=False)
            raise Invalid(f"'{value}' has host bits set", f"did you mean '{fixed}'?") from None
        raise Invalid(f"'{value}' is not an IPv4 subnet", "write it like '10.10.0.0/24'") from None
    if not 16 <= net.prefixlen <= 29:
        raise Invalid(f"subnet '{value}' must have a prefix from /16 to /29")
    if not net.is_private:
        raise Invalid(f"subnet '{value}' is not a private range",
                      "use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    return net


def ipv4(value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise Invalid(f"'{value}' is not an IPv4 address") from None


def command(value: str) -> tuple[str, ...]:
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise Invalid(f"cannot split command '{value}': {exc}",
                      "balance the quotes, or write the command as a list") from None
    if not words:
        raise Invalid("command is empty")
    return tuple(words)


def env_pair(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep:
        raise Invalid(f"'{value}' is not KEY=VALUE")
    return env_key(key), val


def env_key(value: str) -> str:
    if not ENV_KEY_RE.fullmatch(value):
        raise Invalid(f"'{value}' is not a valid environment variable name",
                      "use letters, digits and '_', not starting with a digit")
    return value


def pattern(regex: re.Pattern[str], what: str, hint: str | None = None) -> Any:
    def parse(value: str) -> str:
        if not regex.fullmatch(value):
            raise Invalid(f"'{value}' is not {what}", hint)
        return value

    return parse


RESERVED_USERS = ("root", "labctl")  # root, and labctl's own account (lab/model.ADMIN_USER)


def lab_user(value: str) -> str:
    if not USER_RE.fullmatch(value):
        raise Invalid(f"'{value}' is not a valid user name",
                      "use lowercase letters, digits, '_' and '-'")
    if value in RESERVED_USERS:
        raise Invalid(f"'{value}' cannot be the lab user",
                      "labctl keeps that account for itself; e.g. user: student")
    return value


def file_mode(value: str | int) -> str:
    if isinstance(value, int):
        raise Invalid(f"permissions must be a quoted string (YAML read the number {value})",
                      "write it quoted, like '0644'")
    if not MODE_RE.fullmatch(value):
        raise Invalid(f"'{value}' is not a file mode", "write an octal mode like '0644'")
    return value.rjust(4, "0")


URL_PATH_RE = re.compile(r"^/[^\s]{0,2047}$")


def regex(value: str) -> str:
    """A Python regular expression (checks search for it in a text)."""
    try:
        re.compile(value)
    except re.error as exc:
        raise Invalid(f"'{value}' is not a valid regular expression: {exc}",
                      "escape special characters with a backslash, e.g. 'port 80\\.'") from None
    return value
