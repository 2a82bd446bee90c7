"""vagrant/Vagrantfile cannot boot here (no nested VT-x), but it must parse and
its provider settings must be valid: vagrant validate, for both providers'
config blocks (libvirt checked with its plugin; VirtualBox's ignored)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed "
                    "(scripts/setup installs it)")
@pytest.mark.parametrize("env", [{"VAGRANT_DEFAULT_PROVIDER": "libvirt",
                                  "LIBVIRT_DEFAULT_URI": "test:///default"}, {}],
                         ids=["libvirt", "any-provider"])
def test_vagrantfile_validates(env, tmp_path):
    args = ["vagrant", "validate"] + ([] if env else ["--ignore-provider"])
    result = subprocess.run(args, cwd=VAGRANT_DIR, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "VAGRANT_HOME": str(tmp_path), **env})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully" in result.stdout
