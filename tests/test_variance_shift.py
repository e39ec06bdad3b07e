import math

import numpy as np
import pytest

from simulator import ParameterError, simulate
from simulator.core.engine import run, set_threads
from simulator.core.rng import stream_key
from simulator.experiments import variance_shift as vs
from simulator.theory import closed_forms as cf
from simulator.theory.verdict import Check, judge
from tests.conftest import assert_matches
from tests.reference import central_moments, weighted_sum_numpy


def _rows(r):
    return {c["check"]: c for c in r.checks}


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("c,v", [(1.0, 1.0), (-2.0, 0.5)])
def test_every_check_confirmed_over_grid_of_p(p, c, v):
    r = simulate(p=p, experiments=["variance-shift"], samples=200_000, seed=3, settings={"c": c, "v": v})
    for row in r.checks:
        # An approximation whose point error lies beyond its tolerance, but not significantly, is inconclusive.
        assert row["verdict"] == "confirmed" or (row["kind"] == "approximation" and row["verdict"] == "inconclusive"
                                                 and row["z"] <= r.meta["z_threshold"]), row
    rows = _rows(r)
    if p == 1.0:
        # Bernoulli and Gaussian dropout vanish at p = 1: every shift is exactly zero, noiselessly.
        for noise in ("bernoulli", "gaussian"):
            for name in (f"shift ({noise})", f"eval-ratio ({noise})"):
                assert rows[name]["estimate"] == 1.0 and rows[name]["mcse"] == 0.0
        assert all(rows[k]["estimate"] == 1.0 and rows[k]["mcse"] == 0.0 for k in rows if k.startswith("shift["))
        # Uout's noise does not depend on p: its shift stays.
        assert rows["shift (uout)"]["closed_form"] < 1.0


@pytest.mark.parametrize("d,rho,cos2", [(4, 0.3, 0.5), (8, 0.0, None), (6, 0.7, 1.0)])
def test_width_settings_confirmed(d, rho, cos2):
    r = simulate(p=0.4, experiments=["variance-shift"], samples=100_000, seed=8,
                 settings={"d": d, "rho": rho, "cos2": cos2, "noise": "bernoulli,gaussian", "steps": 40})
    for row in r.checks:
        assert row["verdict"] == "confirmed", row


@pytest.mark.parametrize("noise", vs.NOISES)
def test_unit_kernel_agrees_with_numpy_reference(noise):
    # Same law, different generators: estimates agree within their joint MCSE.
    p, c, v, rho, n = 0.3, 0.7, 1.5, 0.4, 300_000
    w = vs.weights(5, 4, 0.6)
    args = vs.unit_args(noise, p, 0.3, c, v, rho, w) + (c * w.sum(),)
    got = run(vs.shift_blocks, args, 5, n, stream_key(5, noise))
    train, test = weighted_sum_numpy(np.random.default_rng(6), n, c, v, rho, w, noise, p, beta=0.3)
    ref = central_moments(np.stack([train, test], axis=1))
    for k in range(2):
        m2, m4 = ref[k, 2] / n, ref[k, 4] / n
        ref_var, ref_se = ref[k, 2] / (n - 1), math.sqrt((m4 - m2 * m2) / n)
        est = got.var(k)
        assert_matches(est.value, math.hypot(est.mcse, ref_se), ref_var)
    vtrain, vtest = cf.weighted_sum_variances(c, v, cf.noise_variance(noise, p, 0.3), rho, w)
    assert_matches(got.var(0).value, got.var(0).mcse, vtrain)
    assert_matches(got.var(1).value, got.var(1).mcse, vtest)


@pytest.mark.parametrize("p", [0.1, 0.37, 0.5, 1.0])
@pytest.mark.parametrize("d,rho,cos2", [(1, 0.0, 1.0), (3, 0.5, 0.2), (7, 0.9, None), (10, 0.0, 0.0)])
def test_enumeration_equals_closed_form(p, d, rho, cos2):
    c, v = 1.3, 0.8
    w = vs.weights(2, d, cos2)
    etrain, etest = vs.enumerated_variances(w, p, c, v, rho)
    vtrain, vtest = cf.weighted_sum_variances(c, v, cf.noise_variance("bernoulli", p), rho, w)
    assert etrain == pytest.approx(vtrain, rel=1e-11)
    assert etest == pytest.approx(vtest, rel=1e-11)
    if d == 1:
        assert vtrain == pytest.approx(cf.dropout_train_variance(c, v, p), rel=1e-13)
        assert etest / etrain == pytest.approx(cf.variance_shift(c, v, p), rel=1e-11)


def test_enumeration_with_fixed_inputs_gives_the_mask_variance():
    # M = x xᵀ: the sum over masks is the mask-only variance ((1−p)/p) Σ w_i² x_i² (docs/theory.md, C3).
    p, x = 0.3, np.array([0.5, -1.2, 2.0, 0.1])
    w = vs.weights(1, 4, 0.4)
    first, second = vs.enumerate_masks(w, p, x, np.outer(x, x))
    mean, sd = cf.dropout_sum_moments(w, x, p)
    assert first == pytest.approx(mean, rel=1e-13)
    assert second - first ** 2 == pytest.approx(sd ** 2, rel=1e-11)


def test_weights_have_the_requested_cosine():
    for d in (2, 5, 64):
        for cos2 in (0.0, 0.3, 1.0):
            w = vs.weights(9, d, cos2)
            assert np.linalg.norm(w) == pytest.approx(1.0) and vs.squared_cosine(w) == pytest.approx(cos2, abs=1e-12)
    # Random zero-mean weights: d cos²θ is about 1 on average, so width does not help.
    assert np.mean([64 * vs.squared_cosine(vs.weights(s, 64, None)) for s in range(400)]) == pytest.approx(1.0, abs=0.2)


def test_width_helps_only_with_correlation_and_alignment():
    c, v, p = 1.0, 1.0, 0.5
    single = cf.variance_shift(c, v, p)

    def delta(d, rho, cos2):
        tr, te = cf.weighted_sum_variances(c, v, cf.noise_variance("bernoulli", p), rho, vs.weights(0, d, cos2))
        return te / tr

    for d in (2, 16, 256):
        assert delta(d, 0.0, 1.0) == pytest.approx(single, rel=1e-12)  # ρ = 0: width does nothing
        assert delta(d, 0.5, 0.0) < single  # weights orthogonal to 1: width hurts
    aligned = [delta(d, 0.5, 1.0) for d in (1, 4, 16, 64, 256)]
    assert all(a < b for a, b in zip(aligned, aligned[1:])) and aligned[-1] > 0.98
    r = simulate(p=p, experiments=["variance-shift"], samples=200_000, seed=2, settings={"noise": "bernoulli"})
    rows = _rows(r)
    assert rows["shift[d=64,ρ=0]"]["estimate"] == pytest.approx(single, abs=5 * rows["shift[d=64,ρ=0]"]["mcse"])
    assert rows["shift[d=64,ρ=0.5,cos²=1]"]["estimate"] > 0.9


def test_noise_variants_gaussian_keeps_uout_shrinks():
    c, v, p = 1.0, 1.0, 0.5
    s_bern, s_gauss = cf.noise_variance("bernoulli", p), cf.noise_variance("gaussian", p)
    assert cf.multiplicative_train_variance(c, v, s_gauss) == cf.multiplicative_train_variance(c, v, s_bern)
    uout = v / cf.multiplicative_train_variance(c, v, cf.noise_variance("uout", p, 0.1))
    assert uout > 0.99 > cf.variance_shift(c, v, p)
    # docs/theory.md, C5 (Uout): β = 0.1 at c = 0 gives Δ ≈ 0.9967.
    assert v / cf.multiplicative_train_variance(0.0, v, cf.noise_variance("uout", p, 0.1)) == pytest.approx(
        0.9967, abs=1e-4)


def test_wrong_train_variance_is_refuted(refuted):
    # Var_train without its c² term(s): refuted by the same estimates that confirm the right one.
    c, v, p = 1.0, 1.0, 0.5
    r = simulate(p=p, experiments=["variance-shift"], samples=200_000, seed=4, settings={"noise": "bernoulli"})
    rows = _rows(r)
    train, shift = rows["var-train (bernoulli)"], rows["shift (bernoulli)"]
    assert not refuted(cf.dropout_train_variance(c, v, p), train["estimate"], train["mcse"])
    assert refuted((c * c + v) / p, train["estimate"], train["mcse"])  # − c² dropped
    assert refuted(v / p, train["estimate"], train["mcse"])  # c² dropped from E[x²]
    assert refuted(v / (v / p), shift["estimate"], shift["mcse"])  # Δ = p holds only at c = 0
    assert refuted(v / (v / p), shift["closed_form"], 0.0, kind="enumeration")


def test_no_shift_is_refuted_in_eval_mode():
    # If BN's eval output kept variance γ² (no shift), the eval-var row would say so: it does not.
    r = simulate(p=0.5, experiments=["variance-shift"], samples=200_000, seed=4, settings={"noise": "bernoulli"})
    row = _rows(r)["eval-var (bernoulli)"]
    assert row["verdict"] == "confirmed"
    wrong = Check("no shift", "approximation", 1.0, row["estimate"], row["mcse"], tolerance=row["tolerance"])
    assert judge(wrong, 5.0).verdict == "refuted"


@pytest.mark.parametrize("settings", [{"d": 1, "cos2": 0.5}, {"rho": 1.5}, {"rho": -0.1}, {"m": 1},
                                      {"noise": "dropconnect"}, {"eps": 0}, {"v": 0}, {"beta": -1},
                                      {"momentum": 0}, {"d": 0}, {"steps": 0}, {"gamma": 0}])
def test_invalid_parameters_raise_one_line_errors(settings):
    with pytest.raises(ParameterError) as e:
        vs.EXPERIMENT.resolve(settings)
    assert "\n" not in str(e.value)


def test_thread_count_does_not_change_a_bit():
    rows = []
    for threads in (1, 2):
        r = simulate(p=0.3, experiments=["variance-shift"], samples=20_000, seed=4, threads=threads,
                     settings={"steps": 10, "d": 3})
        rows.append([(c["estimate"], c["mcse"]) for c in r.checks])
    set_threads(None)
    assert rows[0] == rows[1]


@pytest.mark.parametrize("noise,p", [("bernoulli", 0.2), ("gaussian", 0.5), ("uout", 0.5)])
def test_delta_method_error_agrees_with_batch_means(noise, p):
    w = vs.weights(1, 3, 0.7)
    args = vs.unit_args(noise, p, 0.1, 1.0, 1.0, 0.3, w) + (w.sum(),)
    sample = run(vs.shift_blocks, args, 5, 400_000, stream_key(2, noise))
    delta = vs.shift_estimate(sample)
    batch = sample.derived(lambda t: t[1, 2] / t[0, 2])
    assert delta.value == pytest.approx(batch.value, rel=1e-12)
    # Batch means over 64 batches estimate the same error to within ~±30% (χ² with 63 df).
    assert 0.6 < delta.mcse / batch.mcse < 1.5


def test_small_samples_at_small_p_give_finite_errors():
    # 1000 samples cut into 64 batches: whole batches of dropped units are likely at p = 0.1.
    with np.errstate(all="raise"):
        r = simulate(p=0.1, experiments=["variance-shift"], samples=1000, seed=1, settings={"steps": 5})
    assert all(math.isfinite(row["mcse"]) for row in r.checks)
