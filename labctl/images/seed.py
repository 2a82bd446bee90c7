"""The NoCloud seed of one VM: an ISO 9660 volume labelled `cidata` holding
meta-data, user-data, network-config (for cloud-init) and labctl-firstboot.sh
and labctl-extras.sh (for images labctl built). pycdlib writes it in pure Python: no genisoimage."""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib

from labctl.plan.records import SeedSpec
from labctl.render import render

SEED_FILES = ("meta-data", "user-data", "network-config", "labctl-firstboot.sh",
              "labctl-extras.sh")


def render_seed(spec: SeedSpec, templates: Path | None = None) -> dict[str, str]:
    """Every seed file; labctl-extras.sh only with something to run (without
    one the guest neither copies nor runs it, and a restored VM's identity
    step skips the readiness unit's second run)."""
    return {name: render(f"cloud-init/{name}.j2", templates, s=spec) for name in SEED_FILES
            if name != "labctl-extras.sh" or has_extras(spec)}


def has_extras(spec: SeedSpec) -> bool:
    return bool(spec.mirror_setup or spec.packages or spec.runcmd)


def seed_iso(files: dict[str, str]) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, text in files.items():
        data = text.encode()
        iso_name = "/" + name.upper().replace("-", "_").replace(".", "_")[:30] + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()
