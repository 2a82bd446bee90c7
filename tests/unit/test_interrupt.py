"""Ctrl-C during up/down: the first is deferred to a safe point, the second is not."""

from __future__ import annotations

import os
import signal

import pytest

from labctl import interrupt


def test_first_ctrl_c_sets_the_flag_second_raises():
    said = []
    # whatever the run started with: Python's handler, or SIG_IGN when the
    # suite runs as a background job (a shell without job control ignores
    # SIGINT for those)
    before = signal.getsignal(signal.SIGINT)
    with interrupt.deferred_sigint(lambda: said.append("stopping")):
        interrupt.checkpoint()  # nothing pressed yet
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested() and said == ["stopping"]
        with pytest.raises(interrupt.Interrupted):
            interrupt.checkpoint()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert not interrupt.requested()
    assert signal.getsignal(signal.SIGINT) is before  # put back as it was


def test_interrupted_exits_130_with_a_hint():
    exc = interrupt.Interrupted("interrupted: lab 'x' is partly up", "'labctl up' finishes it")
    assert exc.exit_code == 130
    assert exc.lines() == ["error: interrupted: lab 'x' is partly up",
                           "  hint: 'labctl up' finishes it"]
