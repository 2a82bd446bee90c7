"""doctor's KSM line, from a fake /sys/kernel/mm/ksm."""

from __future__ import annotations

import os

from labctl.usecases.doctor import ksm_check


def test_ksm_off_on_and_missing(tmp_path):
    assert ksm_check(tmp_path / "nope").status == "warn"
    (tmp_path / "run").write_text("0\n")
    off = ksm_check(tmp_path)
    assert off.status == "ok" and "is off" in off.detail and "docs/templates.md" in off.detail
    (tmp_path / "run").write_text("1\n")
    (tmp_path / "pages_sharing").write_text(str((64 << 20) // os.sysconf("SC_PAGE_SIZE")))
    on = ksm_check(tmp_path)
    assert on.status == "ok" and "is on: 64 MiB saved" in on.detail
