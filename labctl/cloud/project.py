"""An OpenStack cloud as labctl's backend (`openstack:CLOUD`): images in
Glance found again by their digest, each lab's networks, router and security
group in Neutron, its VMs as Nova servers, every object found again by
labctl's tags. Nova places the VMs, not labctl; the project's quotas are the
room. Templates (restoring a saved memory state) are the libvirt backend's:
here a VM boots cold, and a snapshot is a server image (disk only)."""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from labctl.backend import BaseVolumes, Found, HostFacts, Snapshot
from labctl.cloud import records
from labctl.cloud.connection import cloud_errors, connect
from labctl.errors import BackendError
from labctl.plan.hosts import Accel, HostRoom
from labctl.ssh.transport import Endpoint

if TYPE_CHECKING:
    from labctl.events import Report
    from labctl.images.cache import Image
    from labctl.lab.model import Lab
    from labctl.labfiles import LabFiles

CONSOLE_POLL_SECONDS = 1.0
CLOUD_PROBE_SECONDS = 2.0
STATES = {"ACTIVE": "running", "SHUTOFF": "shutoff", "BUILD": "building",
          "ERROR": "error", "PAUSED": "paused", "SUSPENDED": "shutoff",
          "REBUILD": "building", "HARD_REBOOT": "building", "REBOOT": "building"}


def translated(method):
    """An SDK exception leaving a public method is CloudFailed."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with cloud_errors(f"cloud '{self.cloud_name}'", self.cloud_name):
            return method(self, *args, **kwargs)
    return call


class Cloud:
    """The Backend protocol (backend.py) on one OpenStack project."""

    def __init__(self, uri: str):
        self.uri = uri
        self.where = records.parse_uri(uri)
        self.cloud_name = self.where.cloud
        self.conn = connect(self.cloud_name)
        self.lock = threading.RLock()  # the lab's shared objects are made once
        self.uploading = threading.Lock()

    def translate(self, what: str):
        """SDK exceptions inside leave as one line saying `what` failed."""
        return cloud_errors(what, self.cloud_name)

    def ssh_from(self) -> str:
        """Who may reach the VMs' SSH and published ports: ?from=CIDR, else the
        address this machine uses towards the cloud."""
        if self.where.ssh_from:
            return self.where.ssh_from
        return f"{self.own_address()}/32"

    def own_address(self) -> str:
        """The address this machine uses towards the cloud (its API's host)."""
        auth_url = self.conn.config.get_auth_args().get("auth_url", "")
        host = urlparse(auth_url).hostname or ""
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as probe:
            probe.connect((socket.gethostbyname(host), 9))
            return probe.getsockname()[0]

    # -- what it can do and hold --------------------------------------------------
    @property
    def is_local(self) -> bool:
        return False

    @property
    def template_home(self) -> None:
        return None  # Nova keeps no running state to restore: servers boot from images

    def templates_refused(self) -> str:
        return "an OpenStack cloud boots each server from an image (no saved state to restore)"

    @property
    def accel(self) -> Accel:
        # paced as KVM (the cloud's API is the limit, not this machine's CPU);
        # whether its hypervisors run KVM or TCG is not a project's to see
        return Accel("kvm", f"OpenStack cloud '{self.cloud_name}': Nova places the VMs on "
                            "its hypervisors", seen=False)

    @property
    def probe_seconds(self) -> float:
        # a server's state or address is two Nova calls and two Neutron calls
        # (its security groups): a real cloud's API, often rate-limited, is
        # not asked that 20 times a second per VM
        return CLOUD_PROBE_SECONDS

    @property
    def cpus(self) -> int:
        return 2  # VMs asked for at once per "core": the API, not this machine, is the limit

    @translated
    def room(self) -> HostRoom:
        limits = self.conn.compute.get_limits().absolute
        memory = limits.total_ram - limits.total_ram_used if limits.total_ram >= 0 else 10**9
        cores = limits.total_cores - limits.total_cores_used if limits.total_cores >= 0 else 10**6
        # cpus: VMs are asked for a few at a time (the API is the bound, not
        # cores); a project out of cores is refused by admit with the numbers
        return HostRoom(memory_mib=max(memory, 0), disk_mib=10**9,
                        cpus=self.cpus if cores > 0 else 0)

    @translated
    def admit(self, lab: Lab, copies: int) -> None:
        """Refuse, with the numbers, a class the project's quotas cannot hold."""
        if copies <= 0:
            return
        limits = self.conn.compute.get_limits().absolute
        left = {"instances": _left(limits.instances, limits.instances_used),
                "cores": _left(limits.total_cores, limits.total_cores_used),
                "RAM (MiB)": _left(limits.total_ram, limits.total_ram_used)}
        project = self.conn.current_project_id
        quota = self.conn.network.get_quota(project, details=True)
        for what, field in (("floating IPs", "floating_ips"), ("networks", "networks"),
                            ("subnets", "subnets"), ("routers", "routers"),
                            ("security groups", "security_groups"), ("ports", "ports")):
            usage = getattr(quota, field) or {}
            left[what] = _left(usage.get("limit", -1), usage.get("used", 0)
                               + usage.get("reserved", 0))
        offered = [records.Flavor(f.name, f.ram, f.vcpus, f.disk)
                   for f in self.conn.compute.flavors(details=True)]
        needs = records.per_copy(lab, {vm.name: records.flavor_for(offered, vm)
                                       for vm in lab.vms})
        records.refuse_over_quota([records.Quota(what, needs[what], left[what])
                                   for what in needs], copies, self.cloud_name)

    @translated
    def facts(self) -> HostFacts:
        version = self.conn.compute.get_endpoint_data().max_microversion or "2.1"
        return HostFacts(libvirt=f"OpenStack compute API {version}",
                         hypervisor=f"Nova (cloud '{self.cloud_name}')", cpus=self.room().cpus)

    def daemon_in_root_netns(self) -> bool:
        return False  # the cloud's own networks: never this machine's uplink

    def domain_capabilities(self, machine: str) -> str:
        return ""

    # -- images -------------------------------------------------------------------
    @translated
    def ensure_base(self, image: Image) -> BaseVolumes:
        """The image in Glance, uploaded once and found again by its digest."""
        from labctl.cloud.images import ensure_image

        with self.uploading:  # a class's copies ask at once: one upload, the rest find it
            return ensure_image(self.conn, image, self.cloud_name)

    @property
    def storage(self):
        from labctl.cloud.images import SnapshotImages

        return SnapshotImages(self)

    # -- networks and VMs, found by labctl's tags ----------------------------------
    def provisioner(self, files: LabFiles, report: Report, templates: Path | None = None,
                    group: str = "", copy: str = ""):
        from labctl.cloud.provision import CloudProvisioner

        return CloudProvisioner(self, files, report, templates, group, copy)

    def _servers(self, lab: str | None = None) -> list:
        # one lab's servers are asked of Nova by name (LAB.VM), not the whole project:
        # readiness asks this on every probe of a VM behind a jump
        query = {"name": f"^{re.escape(lab)}\\."} if lab else {}
        servers = []
        for server in self.conn.compute.servers(details=True, **query):
            meta = records.meta_from_server(server.metadata)
            if meta is not None and (lab is None or meta.lab == lab):
                servers.append((server, meta))
        return servers

    @translated
    def domains(self, lab: str | None = None) -> list[Found]:
        return [Found(meta, server.name, server.status == "ACTIVE")
                for server, meta in self._servers(lab)]

    @translated
    def networks(self, lab: str | None = None) -> list[Found]:
        found = []
        for net in self.conn.network.networks(tags=records.TAG):
            meta = records.meta_from_text(net.description or "")
            if meta is not None and meta.kind == "network" and (lab is None or meta.lab == lab):
                found.append(Found(meta, net.name, True))
        return found

    def domain(self, lab: str, vm: str) -> Found | None:
        return next((f for f in self.domains(lab) if f.meta.name == vm), None)

    @translated
    def lab_names(self) -> set[str]:
        names = {meta.lab for _server, meta in self._servers()}
        for kind in ("networks", "routers", "security_groups", "ips"):
            for obj in getattr(self.conn.network, kind)(tags=records.TAG):
                if records.lab_of(obj.tags):
                    names.add(records.lab_of(obj.tags))
        return names

    def server(self, name: str):
        return self.conn.compute.find_server(name, ignore_missing=True)

    @translated
    def state(self, name: str) -> str:
        server = self.server(name)
        if server is None:
            return "missing"
        return STATES.get(server.status, server.status.lower())

    def is_running(self, name: str) -> bool:
        return self.state(name) == "running"

    @translated
    def stop_domain(self, name: str) -> None:
        server = self.server(name)
        if server is not None and server.status == "ACTIVE":
            self.conn.compute.stop_server(server)
            self.conn.compute.wait_for_server(server, status="SHUTOFF", wait=300, interval=1)

    @translated
    def remove_domain(self, name: str) -> bool:
        server = self.server(name)
        if server is None:
            return False
        self.conn.compute.delete_server(server)
        self.conn.compute.wait_for_delete(server, wait=300, interval=1)
        return True

    def domain_files(self, name: str) -> set[str]:
        return set()

    def lab_gateway(self, lab: str) -> str:
        """Where the lab registry listens: labctl's machine, at its address
        towards the cloud, which the lab's VMs reach through their router
        (VMs on sealed networks only have no way to it)."""
        return self.own_address()

    # -- where a VM is reached ----------------------------------------------------
    @translated
    def endpoint(self, name: str) -> Endpoint | None:
        from labctl.cloud.access import endpoint

        return endpoint(self, name)

    def forwarded(self, port: int) -> Endpoint:
        raise BackendError("an OpenStack VM's ports are reached at its own address")

    def reach(self, address: str, port: int) -> Endpoint:
        return Endpoint(address, port)

    def run(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A script on labctl's side of the cloud: this machine."""
        try:
            return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"a command did not finish within {timeout:.0f} s") from None

    # -- snapshots: server images -------------------------------------------------
    @translated
    def take_snapshot(self, name: str, snapshot: str, description: str = "") -> None:
        from labctl.cloud.images import take_snapshot

        if snapshot.startswith("labctl-"):  # a reset point: a cloud keeps no memory state,
            raise BackendError("on OpenStack a reset recreates the VM from its image "  # and
                               "(same address, same keys)")  # a disk image is no faster
        take_snapshot(self, name, snapshot, description)

    @translated
    def revert_snapshot(self, name: str, snapshot: str) -> None:
        from labctl.cloud.images import revert_snapshot

        revert_snapshot(self, name, snapshot)

    @translated
    def delete_snapshot(self, name: str, snapshot: str, metadata_only: bool = False) -> None:
        from labctl.cloud.images import delete_snapshot

        delete_snapshot(self, name, snapshot)

    @translated
    def snapshots(self, name: str) -> list[Snapshot]:
        from labctl.cloud.images import snapshots

        return snapshots(self, name)

    def map_memory(self, name: str, ram: str, memory_mib: int) -> bool:
        return False

    def save_template(self, name: str, snapshot: str, description: str) -> None:
        raise BackendError("templates are the libvirt backend's")

    def restore_into(self, name: str, snapshot: str, ram: str = "") -> None:
        raise BackendError("templates (a saved memory state) are the libvirt backend's: "
                           "on OpenStack a VM boots cold")

    def replug_nics(self, name: str) -> None:
        raise BackendError("templates are the libvirt backend's")

    def guest_agent(self, name: str) -> None:
        return None  # Nova's servers are reached over SSH only

    def resident_mib(self, name: str) -> None:
        return None  # a hypervisor's business

    # -- the console ----------------------------------------------------------------
    @translated
    def serial_tail(self, name: str, lines: int) -> str:
        server = self.server(name)
        return "" if server is None else self._console(server, lines)

    def _console(self, server, lines: int) -> str:
        from openstack.exceptions import NotFoundException

        try:
            out = self.conn.compute.get_server_console_output(server, length=lines)
        except NotFoundException:  # still BUILD: no instance on a hypervisor, no console yet
            return ""
        return (out or {}).get("output", "")

    def serial_reader(self, name: str) -> Callable[[], bytes]:
        """What the console printed since the last call, asked of Nova at most
        once a CONSOLE_POLL_SECONDS (a caller may poll far more often; each ask
        is work for nova-api and nova-compute while the VM it watches boots).
        The server is looked up by name once."""
        seen, asked, server = 0, 0.0, None

        def read() -> bytes:
            nonlocal seen, asked, server
            if time.monotonic() - asked < CONSOLE_POLL_SECONDS:
                return b""
            asked = time.monotonic()
            with cloud_errors(f"cloud '{self.cloud_name}'", self.cloud_name):
                server = server or self.server(name)
                text = (self._console(server, 10**6) if server else "").encode()
            new, seen = text[seen:] if len(text) >= seen else text, len(text)
            return new
        return read

    # -- everything else of a lab ---------------------------------------------------
    @translated
    def remove_leftovers(self, lab: str) -> list[str]:
        from labctl.cloud.provision import remove_lab_objects

        return remove_lab_objects(self, lab)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _left(limit: int | None, used: int | None) -> int:
    return -1 if limit is None or limit < 0 else max(limit - (used or 0), 0)
