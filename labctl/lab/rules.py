"""Checks that span several values of a schema-valid lab document: unique
names, references to networks, address plans, port clashes, files that must
exist next to the lab file. Each failure is a SchemaError at the offending path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl.lab.model import ARMORED_KEY, CHECK_KINDS, DEFAULT_RUNTIME, replica_names
from labctl.lab.percopy import KINDS as PER_COPY_KINDS
from labctl.lab.schema import SchemaError, suggest

SSH_PORT = 22
MAX_DOMAIN_NAME = 63  # libvirt names are LAB.VM; keep them short enough to read and type


def check_lab(doc: dict[str, Any], lab_dir: Path) -> None:
    if not doc["vms"]:
        raise SchemaError(("vms",), "the lab has no VMs", "add at least one entry under 'vms:'")
    networks = _check_networks(doc.get("networks", []))
    _check_vm_names(doc)
    _check_class(doc)
    _check_apt_key(doc.get("mirrors", {}), lab_dir)
    _check_checks(doc)
    _check_per_copy(doc)
    defaults = doc.get("defaults", {})
    for i, vm in enumerate(doc["vms"]):
        path = ("vms", i)
        _check_attachments(vm, path, networks)
        runtime = vm.get("runtime", defaults.get("runtime", DEFAULT_RUNTIME))
        _check_containers(vm.get("containers", []), (*path, "containers"), runtime, lab_dir)


def _check_checks(doc: dict[str, Any]) -> None:
    vms = [name for vm in doc["vms"] for name in replica_names(vm["name"], vm.get("count", 1))]
    seen: set[str] = set()
    for i, check in enumerate(doc.get("checks", [])):
        where = ("checks", i)
        if check["name"] in seen:
            raise SchemaError((*where, "name"), f"duplicate check name '{check['name']}'",
                              "give each check its own name")
        seen.add(check["name"])
        kinds = [k for k in CHECK_KINDS if k in check]
        if len(kinds) != 1:
            said = " and ".join(kinds) if kinds else "none"
            raise SchemaError(where, f"check '{check['name']}' needs exactly one kind ({said} "
                              "given)", f"use one of: {', '.join(CHECK_KINDS)}")
        if check["vm"] not in vms:
            raise SchemaError((*where, "vm"), f"check '{check['name']}': no VM '{check['vm']}'",
                              suggest(check["vm"], vms) or f"the lab's VMs: {', '.join(vms)}")
        source = check[kinds[0]].get("from", "host")
        if source != "host" and source not in vms:
            raise SchemaError((*where, kinds[0], "from"),
                              f"check '{check['name']}': from '{source}' is neither 'host' "
                              "nor a VM of the lab", f"the lab's VMs: {', '.join(vms)}")


def _check_per_copy(doc: dict[str, Any]) -> None:
    for name, spec in doc.get("per_copy", {}).items():
        where = ("per_copy", name)
        kinds = [k for k in PER_COPY_KINDS if k in spec]
        if len(kinds) != 1:
            said = " and ".join(kinds) if kinds else "none"
            raise SchemaError(where, f"per_copy '{name}' needs exactly one kind ({said} given)",
                              "e.g. {secret: 12}, {number: [20000, 20999]}, {choice: [a, b]} "
                              "or {name: true}")
        if name in doc.get("variables", {}):
            raise SchemaError(where, f"per_copy '{name}' is also a variable", "rename one of them",
                              at_key=True)
        if "number" in spec and (len(spec["number"]) != 2
                                 or spec["number"][0] > spec["number"][1]):
            raise SchemaError((*where, "number"), f"per_copy '{name}': number takes [LOW, HIGH] "
                              "with LOW <= HIGH", "e.g. number: [20000, 20999]")
        if "choice" in spec and not spec["choice"]:
            raise SchemaError((*where, "choice"), f"per_copy '{name}': an empty choice",
                              "list the values to choose from")
        if "choice" in spec and len(set(spec["choice"])) != len(spec["choice"]):
            raise SchemaError((*where, "choice"), f"per_copy '{name}': a choice is listed twice",
                              "list each value once")
        if spec.get("name") is False:
            raise SchemaError((*where, "name"), f"per_copy '{name}': name: false generates "
                              "nothing", "write name: true, or remove the value")


def _check_apt_key(mirrors: dict[str, Any], lab_dir: Path) -> None:
    if "apt_key" not in mirrors:
        return
    where = ("mirrors", "apt_key")
    key = lab_dir / mirrors["apt_key"]
    if not key.is_file():
        raise SchemaError(where, f"no key file '{mirrors['apt_key']}'",
                          "give the mirror's public key file, relative to the lab file")
    if ARMORED_KEY not in key.read_text(errors="replace")[:4096]:
        raise SchemaError(where, f"'{mirrors['apt_key']}' is not an ASCII-armored public key",
                          "export it with: gpg --armor --export KEYID > FILE")
    if "apt" not in mirrors:
        raise SchemaError(where, "apt_key without an apt mirror",
                          "add mirrors.apt: the URL of the mirror this key signs")


def _check_networks(networks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for i, net in enumerate(networks):
        if net["name"] in by_name:
            raise SchemaError(("networks", i, "name"), f"duplicate network name '{net['name']}'",
                              "give each network its own name")
        by_name[net["name"]] = net
    subnets = [(i, n["subnet"]) for i, n in enumerate(networks) if "subnet" in n]
    for a, (i, first) in enumerate(subnets):
        for j, second in subnets[a + 1:]:
            if first.overlaps(second):
                raise SchemaError(("networks", j, "subnet"),
                                  f"subnet {second} overlaps {first} of network "
                                  f"'{networks[i]['name']}'", "give each network its own range")
    return by_name


def _check_vm_names(doc: dict[str, Any]) -> None:
    seen: dict[str, str] = {}  # instance name -> group it came from
    for i, vm in enumerate(doc["vms"]):
        for instance in replica_names(vm["name"], vm.get("count", 1)):
            if instance in seen:
                why = "" if seen[instance] == instance else f" (a replica of '{seen[instance]}')"
                raise SchemaError(("vms", i, "name"), f"duplicate VM name '{instance}'{why}",
                                  "give each VM its own name")
            seen[instance] = vm["name"]
            domain = f"{doc['name']}.{instance}"
            if len(domain) > MAX_DOMAIN_NAME:
                raise SchemaError(("vms", i, "name"),
                                  f"VM name '{domain}' (lab.vm) is longer than {MAX_DOMAIN_NAME}",
                                  "shorten the lab or VM name")


def _check_attachments(vm: dict[str, Any], path: tuple, networks: dict[str, Any]) -> None:
    attached: set[str] = set()
    for j, entry in enumerate(vm.get("networks", [])):
        att = {"network": entry} if isinstance(entry, str) else entry
        where = (*path, "networks", j)
        name = att["network"]
        if name not in networks:
            known = ", ".join(networks) or "none are declared"
            raise SchemaError(where, f"VM '{vm['name']}' uses undefined network '{name}'",
                              suggest(name, networks) or f"declare it under 'networks:' ({known})")
        if name in attached:
            raise SchemaError(where, f"VM '{vm['name']}' is attached to network '{name}' twice")
        attached.add(name)
        if "ip" in att:
            _check_fixed_ip(vm, att["ip"], networks[name], (*where, "ip"))


def _check_fixed_ip(vm: dict[str, Any], ip: Any, net: dict[str, Any], where: tuple) -> None:
    if vm.get("count", 1) > 1:
        raise SchemaError(where, f"VM '{vm['name']}' has count > 1 and a fixed address",
                          "replicas cannot share one address; drop 'ip'")
    subnet = net.get("subnet")
    if subnet is None:
        raise SchemaError(where, f"fixed address {ip} on network '{net['name']}' needs its subnet",
                          "add 'subnet:' to the network")
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
        raise SchemaError(where, f"address {ip} is not a host address of {subnet}")
    if ip == subnet.network_address + 1:
        raise SchemaError(where, f"address {ip} is the gateway of network '{net['name']}'",
                          f"use {subnet.network_address + 2} or above")


def _check_class(doc: dict[str, Any]) -> None:
    students = doc.get("students", [])
    if students and "copies" in doc:
        raise SchemaError(("copies",), "set 'copies' or 'students', not both",
                          "a students list makes one copy per name", at_key=True)
    seen: set[str] = set()
    for k, student in enumerate(students):
        if student in seen:
            raise SchemaError(("students", k), f"student '{student}' is listed twice",
                              "each student gets one copy: names must be unique")
        seen.add(student)
    longest = max([len(s) for s in students] or [len(str(doc.get("copies", 1)))])
    if len(doc["name"]) + 1 + longest > 63:
        raise SchemaError(("name",), f"lab name '{doc['name']}' plus a copy id is longer than "
                          "63 characters", "use a shorter lab name or shorter student names")


def _check_containers(containers: list[dict[str, Any]], path: tuple, vm_runtime: str,
                      lab_dir: Path) -> None:
    names: set[str] = set()
    published: dict[tuple[int, str], str] = {}
    volume_runtime: dict[str, tuple[str, str]] = {}
    for k, c in enumerate(containers):
        where = (*path, k)
        if c["name"] in names:
            raise SchemaError((*where, "name"), f"duplicate container name '{c['name']}'",
                              "container names must be unique within a VM")
        names.add(c["name"])
        _check_image_source(c, where, lab_dir)
        for p, port in enumerate(c.get("ports", [])):
            _check_port(port, (*where, "ports", p), c["name"], published)
        runtime = c.get("runtime", vm_runtime)
        for v, vol in enumerate(c.get("volumes", [])):
            vwhere = (*where, "volumes", v)
            if vol.kind == "bind":
                if not (lab_dir / vol.source).exists():
                    raise SchemaError(vwhere, f"bind mount source './{vol.source}' does not "
                                      "exist", "create it next to the lab file")
                _inside(lab_dir, vol.source, vwhere)
            if vol.kind == "named":
                first = volume_runtime.setdefault(vol.source, (runtime, c["name"]))
                if first[0] != runtime:
                    raise SchemaError(vwhere, f"volume '{vol.source}' is shared by {first[0]} "
                                      f"container '{first[1]}' and {runtime} container "
                                      f"'{c['name']}'", "docker and podman keep separate "
                                      "volumes: use one runtime for containers sharing a volume")


def _check_image_source(c: dict[str, Any], where: tuple, lab_dir: Path) -> None:
    if "image" in c and "build" in c:
        raise SchemaError((*where, "build"), f"container '{c['name']}' sets both image and build",
                          "keep one: 'image:' to use an image, 'build:' to build one")
    if "image" not in c and "build" not in c:
        raise SchemaError(where, f"container '{c['name']}' needs 'image' or 'build'",
                          "e.g. 'image: busybox' or 'build: ./web'")
    image = c.get("image")
    if isinstance(image, dict):
        if not (lab_dir / image["archive"]).is_file():
            raise SchemaError((*where, "image", "archive"),
                              f"image archive './{image['archive']}' does not exist",
                              "put it next to the lab file")
        _inside(lab_dir, image["archive"], (*where, "image", "archive"))
    build = c.get("build")
    if build is not None:
        build = {"context": build} if isinstance(build, str) else build
        context = lab_dir / build["context"]
        if not context.is_dir():
            raise SchemaError((*where, "build"), f"build context './{build['context']}' is not a "
                              "directory", "create it next to the lab file")
        dockerfile = build.get("dockerfile", "Dockerfile")
        _inside(lab_dir, build["context"], (*where, "build"))
        _inside(lab_dir, f"{build['context']}/{dockerfile}", (*where, "build"))
        if not (context / dockerfile).is_file():
            raise SchemaError((*where, "build"), f"no {dockerfile} in build context "
                              f"'./{build['context']}'", "add one, or set 'dockerfile:'")


def _inside(lab_dir: Path, relative: str, where: tuple) -> None:
    """values.relative_path checks the words; symlinks and a dockerfile's own
    '..' only show once resolved."""
    if not (lab_dir / relative).resolve().is_relative_to(lab_dir.resolve()):
        raise SchemaError(where, f"'./{relative}' leads outside the lab file's directory",
                          "keep what the lab uses next to the lab file (copy, do not symlink)")


def _check_port(port: Any, where: tuple, container: str, published: dict) -> None:
    if port.host == SSH_PORT:
        raise SchemaError(where, f"host port {SSH_PORT} is the VM's SSH port",
                          "publish the container on another port, e.g. '2222:22'")
    # Any two bindings of one host port clash: 0.0.0.0 covers every address.
    key = (port.host, port.proto)
    if key in published:
        raise SchemaError(where, f"host port {port.host}/{port.proto} is already published by "
                          f"container '{published[key]}' on this VM", "pick another host port")
    published[key] = container
