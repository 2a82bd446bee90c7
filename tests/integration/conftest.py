"""The real stack: libvirtd (in the test namespace), qemu, the built guest
image. scripts/test starts the daemons, builds or reuses the image in a data
dir outside the checkout, and sets LABCTL_IT=1; without it these tests skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.orchestrate import Settings
from labctl.virt.connection import DEFAULT_URI, connect
from labctl.virt.storage import POOL

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "tests" / "data" / "labs" / "integration"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("LABCTL_IT") == "1":
        return
    skip = pytest.mark.skip(reason="needs the real stack: run ./scripts/test")
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(skip)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(uri=DEFAULT_URI, data_dir=Path(os.environ["LABCTL_DATA_DIR"]))


def labctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (inside the test namespace, like this process)."""
    result = subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True,
                            text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def leftovers(lab: str, settings: Settings) -> dict[str, list[str]]:
    """Every kind of thing a lab can leave behind, by its 'LAB.' prefix."""
    conn = connect(settings.uri)
    try:
        pool = conn.storagePoolLookupByName(POOL)
        pool.refresh(0)
        volumes = [v for v in pool.listVolumes() if v.startswith(f"{lab}.")]
    except Exception:  # no pool yet: nothing in it
        volumes = []
    found = {
        "domains": [d.name() for d in conn.listAllDomains(0) if d.name().startswith(f"{lab}.")],
        "networks": [n.name() for n in conn.listAllNetworks(0)
                     if n.name().startswith(f"{lab}.")],
        "volumes": volumes,
        "files": [str(p) for p in (settings.data_dir / "labs" / lab).glob("**/*")],
    }
    conn.close()
    return {k: v for k, v in found.items() if v}
