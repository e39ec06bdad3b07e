import math

import numpy as np
import pytest
from scipy.special import gammaln

from simulator import ParameterError, simulate
from simulator.core.engine import run, set_threads
from simulator.core.rng import stream_key
from simulator.experiments import batchnorm as exp
from simulator.nn import batchnorm as bn
from simulator.theory import closed_forms as cf
from tests.conftest import assert_matches, require_torch
from tests.reference import BatchNorm1dNumpy


@pytest.mark.parametrize("momentum", [0.1, None, 1.0])
@pytest.mark.parametrize("m,eps", [(2, 1e-5), (5, 0.0), (16, 0.5)])
def test_primitives_match_numpy_reference_step_by_step(momentum, m, eps, rng):
    features = 3
    ref = BatchNorm1dNumpy(features, eps=eps, momentum=momentum)
    rm, rv = np.zeros(features), np.ones(features)
    out, mean, var = np.empty((m, features)), np.empty(features), np.empty(features)
    for step in range(1, 26):
        x = rng.normal(2.0, 3.0, (m, features))
        bn.bn_train(x, eps, out, mean, var)
        np.testing.assert_allclose(out, ref.train_step(x), rtol=1e-12, atol=1e-12)
        bn.update_running(rm, rv, mean, var, m, bn.momentum_code(momentum), step)
        np.testing.assert_allclose(rm, ref.running_mean, rtol=1e-13)
        np.testing.assert_allclose(rv, ref.running_var, rtol=1e-13)
    x = rng.normal(2.0, 3.0, (7, features))
    y = np.empty_like(x)
    bn.bn_eval(x, rm, rv, eps, y)
    np.testing.assert_allclose(y, ref.eval(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_primitives_match_torch_if_available(momentum, rng):
    torch = require_torch()
    m, features, eps = 6, 2, 1e-5
    layer = torch.nn.BatchNorm1d(features, eps=eps, momentum=momentum, affine=False).double()
    rm, rv = np.zeros(features), np.ones(features)
    out, mean, var = np.empty((m, features)), np.empty(features), np.empty(features)
    layer.train()
    for step in range(1, 11):
        x = rng.normal(1.0, 2.0, (m, features))
        want = layer(torch.from_numpy(x)).detach().numpy()
        bn.bn_train(x, eps, out, mean, var)
        bn.update_running(rm, rv, mean, var, m, bn.momentum_code(momentum), step)
        np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(rv, layer.running_var.numpy(), rtol=1e-12)
        np.testing.assert_allclose(rm, layer.running_mean.numpy(), rtol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, None])
def test_running_weights_unroll_the_update(momentum):
    steps = 9
    a0, a = bn.running_weights(momentum, steps)
    assert a0 + a.sum() == pytest.approx(1.0, abs=1e-15)
    # Feed unit statistics through the PyTorch update: batch k alone gives weight a_k.
    for k in range(steps):
        rm, rv = np.zeros(1), np.zeros(1)
        for step in range(1, steps + 1):
            stat = np.array([1.0 if step == k + 1 else 0.0])
            bn.update_running(rm, rv, stat, stat * 0, 2, bn.momentum_code(momentum), step)
        assert rm[0] == pytest.approx(a[k], rel=1e-14, abs=1e-300)
    if momentum is None:
        assert a0 == 0.0 and np.allclose(a, 1 / steps)


@pytest.mark.parametrize("m", [4, 9])
def test_inverse_moments_match_chi_square_closed_forms(m):
    # Cumulative average over one batch, ε = 0: running_var = v χ²_k / k, k = m − 1.
    k, v = m - 1, 2.5
    got1 = exp.inverse_moment(1.0, v, m, 0.0, None, 1)
    assert got1 == pytest.approx(k / (v * (k - 2)), rel=1e-9)
    half = math.sqrt(k / (2 * v)) * math.exp(gammaln((k - 1) / 2) - gammaln(k / 2))
    assert exp.inverse_moment(0.5, v, m, 0.0, None, 1) == pytest.approx(half, rel=1e-9)


def test_inverse_moment_matches_direct_sampling(rng):
    v, m, eps, momentum, steps = 3.0, 5, 0.2, 0.3, 12
    a0, a = bn.running_weights(momentum, steps)
    u = v * rng.chisquare(m - 1, (400_000, steps)) / (m - 1)
    y = a0 + u @ a + eps
    for power in (0.5, 1.0):
        vals = y ** -power
        assert_matches(vals.mean(), vals.std() / math.sqrt(vals.size),
                       exp.inverse_moment(power, v, m, eps, momentum, steps))


SETTINGS = [
    {},
    {"c": -2.0, "v": 0.5, "m": 2, "eps": 0.0, "steps": 20},
    {"m": 16, "eps": 0.5, "momentum": None, "steps": 15},
    {"c": 3.0, "momentum": 1.0, "m": 12, "steps": 5, "gamma": 2.0},
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("p", [0.3, 1.0])
def test_every_check_confirmed(settings, p):
    settings = {"steps": 30, **settings}
    r = simulate(p=p, experiments=["batchnorm"], samples=20_000, seed=7, settings=settings)
    for c in r.checks:
        assert c["verdict"] == "confirmed", c
    worst = {c["check"]: c["estimate"] for c in r.checks}
    assert worst["sum-xhat"] < 1e-13 and worst["sum-xhat²"] < 1e-13 and worst["samuelson"] > -1e-13


def test_kernel_agrees_with_numpy_training_runs():
    # Whole training runs in numpy (PCG64): one BatchNorm1d feature per run, all runs at once.
    c, v, m, steps, momentum, eps, runs = 1.5, 2.0, 4, 12, 0.2, 1e-3, 40_000
    ref = BatchNorm1dNumpy(runs, eps=eps, momentum=momentum)
    g = np.random.default_rng(3)
    for _ in range(steps):
        ref.train_step(g.normal(c, math.sqrt(v), (m, runs)))
    y = ref.eval(g.normal(c, math.sqrt(v), (exp.EVAL_BATCH, runs)))
    want = {"running-mean": ref.running_mean, "running-var": ref.running_var, "eval-mean": y.mean(0),
            "eval-second": (y ** 2).mean(0)}
    args = (c, math.sqrt(v), m, steps, momentum, eps, 1.0, exp.EVAL_BATCH)
    got = run(exp.batchnorm_blocks, args, 5, runs, stream_key(3, "bn-test"), nmax=3)
    for k, name in ((0, "running-mean"), (1, "running-var"), (3, "eval-mean"), (4, "eval-second")):
        est = got.mean(k)
        ref_se = want[name].std() / math.sqrt(runs)
        assert_matches(est.value, math.hypot(est.mcse, ref_se), want[name].mean())


def test_biased_running_variance_is_refuted(refuted):
    # PyTorch feeds the UNBIASED batch variance into running_var; the biased one is refuted.
    v, m, steps, momentum = 4.0, 4, 30, 0.1
    r = simulate(p=0.5, experiments=["batchnorm"], samples=20_000, seed=1,
                 settings={"v": v, "m": m, "steps": steps})
    row = next(c for c in r.checks if c["check"] == "running-var")
    assert row["verdict"] == "confirmed"
    wrong = cf.running_var_expectation((m - 1) / m * v, momentum, steps)
    assert refuted(wrong, row["estimate"], row["mcse"])


def test_wrong_identity_is_refuted(refuted, rng):
    # Σx̂² = m ignores ε: with ε comparable to σ_B² it is refuted as a noiseless identity.
    m, eps = 8, 0.5
    x = rng.normal(0.0, 1.0, (m, 1))
    out, mean, var = np.empty_like(x), np.empty(1), np.empty(1)
    bn.bn_train(x, eps, out, mean, var)
    square = float((out ** 2).sum())
    assert not refuted(cf.normalized_square_sum(m, var[0], eps), square, 0.0)
    assert refuted(float(m), square, 0.0)


def test_eval_variance_limit_is_an_approximation():
    # The exact finite-steps value differs from the limit by about the leading-order term.
    c, v, m, eps, momentum, steps = 1.0, 4.0, 8, 1e-5, 0.1, 100
    _, var = exp.eval_moments(c, v, m, eps, momentum, steps, 1.0)
    limit = cf.eval_output_limits(v, eps)[1]
    tol = exp.limit_tolerance(c, v, m, eps, momentum, steps)
    assert 0.25 * tol < var / limit - 1 < 0.75 * tol
    # The cumulative average over many steps converges to the limit.
    _, var = exp.eval_moments(c, v, m, eps, None, 2000, 1.0)
    assert var / limit - 1 == pytest.approx(0.0, abs=2e-3)


@pytest.mark.parametrize("settings", [{"m": 1}, {"momentum": 0}, {"momentum": 1.5}, {"eps": -1}, {"v": 0},
                                      {"steps": 0}, {"gamma": 0},
                                      {"eps": 0, "momentum": "none", "steps": 1, "m": 4}])
def test_invalid_parameters_raise_one_line_errors(settings):
    with pytest.raises(ParameterError) as e:
        exp.EXPERIMENT.resolve(settings)
    assert "\n" not in str(e.value)


def test_thread_count_does_not_change_a_bit():
    rows = []
    for threads in (1, 2):
        r = simulate(p=0.5, experiments=["batchnorm"], samples=3_000, seed=4, threads=threads,
                     settings={"steps": 10})
        rows.append([(c["estimate"], c["mcse"]) for c in r.checks])
    set_threads(None)
    assert rows[0] == rows[1]


def test_batch_variance_counts_every_batch():
    # The batch-variance variable gets every training batch of every run: runs × steps values.
    args = (0.0, 1.0, 3, 7, 0.1, 1e-5, 1.0, 4)
    got = run(exp.batchnorm_blocks, args, 5, 2_000, stream_key(0, "count"), nmax=3)
    assert got.total[2, 0] == 2_000 * 7 and got.total[0, 0] == 2_000
