"""Bad input, faults, extreme settings, and the verifier's calibration and power."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import interruptible
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from simulator import ParameterError, SimulationError, simulate
from simulator.experiments import CATALOG
from simulator.runs.calibration import calibrate
from simulator.theory import closed_forms as cf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = [q for e in CATALOG.values() for q in e.params]


@settings(max_examples=300, deadline=None)
@given(q=st.sampled_from(PARAMS), text=st.one_of(
    st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-10 ** 30, 10 ** 30).map(str)))
def test_parameter_parser_accepts_or_says_why(q, text):
    """Any string: either a valid typed value, or a ParameterError naming the parameter. Nothing else."""
    try:
        value = q.parse(text)
    except ParameterError as e:
        assert str(e).startswith(q.name) and "\n" not in str(e)
        return
    if value is None:
        return
    for x in value if isinstance(value, tuple) else (value,):
        if isinstance(x, float):
            assert np.isfinite(x)
            assert q.low is None or x >= q.low
            assert q.high is None or x <= q.high


@settings(max_examples=100, deadline=None)
@given(p=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)))
def test_p_is_validated(p):
    try:
        simulate(p=p, experiments=["inverted-dropout"], samples=1000, settings={"dist": "normal"})
    except ParameterError as e:
        assert "p=" in str(e)
    else:
        assert 0 < float(p) <= 1


def test_overflow_is_an_error_naming_the_experiment():
    with pytest.raises(SimulationError, match=r"inverted-dropout .*c=1e\+200"):
        simulate(p=0.5, experiments=["inverted-dropout"], samples=1000, settings={"dist": "normal", "c": 1e200})


def test_ctrl_c_exits_130_and_writes_nothing(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "cli.py", "simulate", "--experiment", "inverted-dropout", "--samples",
                             "1e11", "--format", "json", "--out", str(out), "--progress"], cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=interruptible)
    seen = ""
    while "inverted-dropout" not in seen:  # wait for the first progress report: the kernel is running
        ch = proc.stderr.read(1)
        assert ch, f"process ended early: {seen}"
        seen += ch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# A Ctrl-C that lands inside the thread pool's own bookkeeping, between a lock's acquire and the `with` that
# would release it (bpo-29988; seen once in 600 runs of the test above), leaves a worker waiting for that lock:
# here the lock is taken on purpose, a worker finishes a job and blocks on it, and the interrupt follows.
_LEAKED_LOCK = """
import threading
import cli
from simulator.core import engine

cli.WIND_DOWN_SECONDS = 0.5

def interrupted_in_the_pool(*args, **kwargs):
    with engine.pool_of(2) as pool:
        go = threading.Event()
        pool.submit(go.wait)  # a worker, busy until `go`
        pool._idle_semaphore._cond.acquire()  # the lock an interrupted `with` can leave held
        go.set()  # the worker finishes its job, then waits for that lock
        raise KeyboardInterrupt

engine.call_blocks = interrupted_in_the_pool
cli.main(["simulate", "--experiment", "inverted-dropout", "--samples", "1e5", "--threads", "2"])
"""


def test_ctrl_c_never_waits_for_a_worker_stuck_on_a_leaked_lock():
    proc = subprocess.run([sys.executable, "-c", _LEAKED_LOCK], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "interrupted: no output written" and "Traceback" not in proc.stderr


def test_an_interrupted_parallel_call_leaves_a_new_pool_for_the_next():
    from simulator.core import engine
    with pytest.raises(KeyboardInterrupt):
        with engine.pool_of(2) as pool:
            raise KeyboardInterrupt
    with engine.pool_of(2) as fresh:
        assert fresh is not pool and fresh.submit(int, "7").result() == 7
    with engine.pool_of(2) as again:  # a call that ends normally keeps its pool
        assert again is fresh


@pytest.mark.parametrize("c", [1e4, -3e5])
def test_large_mean_relative_to_spread(c):
    # Cancellation in variances: shifted sums and the cancellation-free closed form keep z honest.
    r = simulate(p=0.5, experiments=["inverted-dropout"], samples=200_000, seed=3,
                 settings={"dist": "normal,uniform", "c": c, "v": 1.0})
    assert all(x["verdict"] == ("refuted" if x["kind"] == "erratum" else "confirmed") for x in r.checks)


def test_p_small_heavy_tails_keep_z_honest():
    r = simulate(p=0.01, experiments=["inverted-dropout", "dropout-gradient"], samples=400_000, seed=4)
    assert all(x["verdict"] in ("confirmed", "refuted", "inconclusive") for x in r.checks)
    assert all(x["verdict"] == "confirmed" for x in r.checks if x["kind"] != "erratum")


def test_calibration_z_scores_are_standard_normal():
    """Reduced calibration: 200 seeds; z of exact checks ~ N(0, 1), false refutations near nominal."""
    result = {}
    result.update(calibrate(["inverted-dropout"], seeds=200, samples=4000, p=0.3, settings={"dist": "normal"}))
    result.update(calibrate(["dropout-gradient"], seeds=200, samples=4000, p=0.5, settings={"n": 2}))
    limit = binom.isf(1e-3 / len(result), 200, 0.01)  # one-sided binomial test, Bonferroni over checks
    for name, v in result.items():
        assert 0.8 <= v["var"] <= 1.25, (name, v["var"])
        assert v["ks_pvalue"] > 1e-3, (name, v["ks_pvalue"])
        assert v["false_refutations"] * v["n"] <= limit, (name, v["false_refutations"])


MUTATIONS = [
    # (name, closed form to replace, wrong formula, experiment, settings, checks that must be refuted)
    ("document's variance erratum", "inverted_variance", cf.inverted_variance_as_written,
     "inverted-dropout", {"dist": "normal"}, "var ("),
    ("keep and drop probability swapped", "inverted_variance", lambda c, v, p, f=cf.inverted_variance: f(c, v, 1 - p),
     "inverted-dropout", {"dist": "normal"}, "var ("),
    ("1/p scaling missing", "inverted_mean", lambda c, v, p: p * c, "inverted-dropout", {"dist": "normal"}, "mean ("),
    ("regularizer with p² instead of p(1−p)", "dropout_gradient",
     lambda w, m, M, p, t: cf.ensemble_gradient(w, m, M, p, t) + w * p * p * np.diag(M),
     "dropout-gradient", {}, "grad["),
    ("biased instead of unbiased running variance", "running_var_expectation",
     lambda v, momentum, steps, f=cf.running_var_expectation: f((8 - 1) / 8 * v, momentum, steps),
     "batchnorm", {"m": 8}, "running-var"),
    ("Var_train without its c² term", "multiplicative_train_variance", lambda c, v, s2: (1 + s2) * v,
     "variance-shift", {"noise": "bernoulli"}, "var-train ("),
]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_mutations_are_refuted_at_default_samples(monkeypatch, mutation):
    name, target, wrong, experiment, extra, prefix = mutation
    monkeypatch.setattr(cf, target, wrong)
    r = simulate(p=0.3, experiments=[experiment], settings=extra)
    hit = [x for x in r.checks if x["check"].startswith(prefix) and x["kind"] == "exact"]
    assert hit and any(x["verdict"] == "refuted" for x in hit), name


def test_the_interrupted_children_take_ctrl_c_when_the_tests_run_in_the_background():
    """A background job (``.ci/run &``) ignores SIGINT and its children inherit that: the Ctrl-C tests'
    children get it back, or they would exit 0 or never (seen in a backgrounded fresh-clone run)."""
    probe = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"]
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ignored = subprocess.run(probe, capture_output=True, text=True).stdout.strip()
        restored = subprocess.run(probe, capture_output=True, text=True, preexec_fn=interruptible).stdout.strip()
    finally:
        signal.signal(signal.SIGINT, before)
    assert (ignored, restored) == ("True", "False")
