"""`labctl inventory` read back by real Ansible (ansible-inventory, no SSH):
a class's copies on libvirt's test:/// driver come out in groups per class,
per copy and per VM name, each host with its address, port, user, the lab's
key and its pinned known_hosts; YAML and INI agree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labctl.lab.loader import load_lab
from labctl.usecases import classes
from labctl.usecases import inventory as inv

from .fakes import session_on

ANSIBLE_INVENTORY = Path(sys.executable).with_name("ansible-inventory")

LAB = """name: web-class
copies: 2
vms:
  - name: web
  - name: db
"""


def ansible_view(path: Path) -> dict:
    if not ANSIBLE_INVENTORY.exists() and not shutil.which("ansible-inventory"):
        pytest.fail("ansible-core is a test dependency: scripts/setup installs it")
    done = subprocess.run([str(ANSIBLE_INVENTORY if ANSIBLE_INVENTORY.exists()
                               else "ansible-inventory"), "-i", str(path), "--list"],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def klass(tmp_path: Path):
    (tmp_path / "web-class.yaml").write_text(LAB)
    session = session_on(tmp_path)
    classes.up_any(session, load_lab(tmp_path / "web-class.yaml"), lambda *_: None)
    return session


@pytest.mark.parametrize("form", ["yaml", "ini"])
def test_ansible_reads_groups_and_login_facts(klass, tmp_path, form):
    found = inv.hosts(klass, "web-class", all_copies=True)
    text = (inv.as_ini("web-class", found) if form == "ini"
            else yaml.safe_dump(inv.as_yaml_dict("web-class", found)))
    path = tmp_path / f"inventory.{form}"
    path.write_text(text)
    view = ansible_view(path)
    assert sorted(view["web_class"]["children"]) == ["web_class_1", "web_class_2"]
    assert sorted(view["web_class_1"]["hosts"]) == ["web-class-1.db", "web-class-1.web"]
    assert sorted(view["web"]["hosts"]) == ["web-class-1.web", "web-class-2.web"]
    facts = view["_meta"]["hostvars"]["web-class-2.db"]
    files = klass.files("web-class-2")
    assert facts["ansible_user"] == "lab" and isinstance(facts["ansible_port"], int)
    assert facts["ansible_ssh_private_key_file"] == str(files.login_key_path)
    assert f"UserKnownHostsFile={files.known_hosts_path}" in facts["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in facts["ansible_ssh_common_args"]
    assert "HostKeyAlias=web-class-2.db" in facts["ansible_ssh_common_args"]


def test_one_copy_by_name_and_a_lab_with_nothing_running(klass):
    found = inv.hosts(klass, "web-class-1")
    assert {h.name for h in found} == {"web-class-1.web", "web-class-1.db"}
    for dom in ("web-class-1.web", "web-class-1.db"):
        klass.host().conn.lookupByName(dom).destroy()
    from labctl.errors import LabctlError
    with pytest.raises(LabctlError, match="no running VMs"):
        inv.hosts(klass, "web-class-1")


@pytest.mark.parametrize("form", ["yaml", "ini"])
def test_a_vm_behind_a_jump_keeps_its_proxy_command_whole(tmp_path, form):
    """A ProxyCommand is shell-quoted inside the SSH options: the INI form
    must quote around it so Ansible reads the options back unchanged (an INI
    line with nested single quotes did not parse at all)."""
    proxy = ("ssh -o BatchMode=yes -i /data/labs/x/labctl_ed25519 -W 10.0.3.36:22 "
             "-- labctl@198.51.100.197")
    options = ("-o HostKeyAlias=x.db -o StrictHostKeyChecking=yes -o "
               "'ProxyCommand=" + proxy + "'")
    found = [inv.InventoryHost("x.db", "db", "x", "", {
        "ansible_host": "10.0.3.36", "ansible_port": 22, "ansible_user": "lab",
        "ansible_ssh_common_args": options})]
    text = inv.as_ini("x", found) if form == "ini" else yaml.safe_dump(inv.as_yaml_dict("x",
                                                                                        found))
    path = tmp_path / f"inventory.{form}"
    path.write_text(text)
    facts = ansible_view(path)["_meta"]["hostvars"]["x.db"]
    assert facts["ansible_ssh_common_args"] == options
