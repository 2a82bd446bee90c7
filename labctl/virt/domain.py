"""Domain XML for a lab VM: DomainSpec (plan/records.py) holds every value
the template places; this module only renders it."""

from __future__ import annotations

from pathlib import Path

from labctl.plan.records import DomainSpec
from labctl.render import render


def domain_xml(spec: DomainSpec, templates: Path | None = None) -> str:
    return render("domain.xml.j2", templates, d=spec)
