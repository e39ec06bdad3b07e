import signal

import numpy as np
import pytest

import cli
from simulator.theory.verdict import Check, judge


def assert_matches(estimate, mcse, closed_form, zmax=5.0):
    """The one helper for "estimate matches closed form": |z| < zmax in units of the MCSE."""
    assert mcse > 0, "a Monte Carlo check needs a positive MCSE"
    z = (estimate - closed_form) / mcse
    assert abs(z) < zmax, f"estimate {estimate} vs closed form {closed_form}: z = {z:.2f}"


@pytest.fixture
def refuted():
    """Judge an estimate against a (wrong) formula and return whether it is refuted at z* = 5."""
    def _refuted(closed_form, estimate, mcse, kind="exact"):
        return judge(Check("wrong", kind, closed_form, estimate, mcse), 5.0).verdict == "refuted"
    return _refuted


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def require_torch():
    """``import torch``, skipping the test when it is missing, except in CI (CI="true"), where that fails.

    PyTorch is the oracle of the layer tests and always installed in CI: an
    oracle test that skips there is a test that does not exist.
    """
    import os
    if os.environ.get("CI", "").lower() == "true":
        import torch  # noqa: F401  (an ImportError fails the test)
        return torch
    return pytest.importorskip("torch")


def run_cli(capsys, *args):
    """Run ``cli.py ARGS`` in this process: ``(exit status, stdout, stderr)``."""
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_run(capsys):
    """``cli_run(*args)`` → ``(exit status, stdout, stderr)`` of ``cli.py ARGS`` run in this process."""
    return lambda *args: run_cli(capsys, *args)


@pytest.fixture
def torch_one_thread():
    """Small batches run fastest on one torch thread (and the machine is shared); restored afterwards."""
    torch = require_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def interruptible():
    """Popen's ``preexec_fn`` for a child that a test interrupts: SIGINT as a terminal's Ctrl-C finds it.

    A shell starts a background job (``.ci/run &``, a CI runner's) with SIGINT ignored, children inherit it,
    and Python then never raises KeyboardInterrupt: the tests of Ctrl-C would test nothing there.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
