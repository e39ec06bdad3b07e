"""relu-shift (C3): no shift straight into a ReLU, a shift ≥ 0 after a weighted sum, its Gaussian size."""
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from simulator import ParameterError, simulate
from simulator.core.engine import Plan, run, set_threads
from simulator.core.rng import keep_threshold, stream_key
from simulator.experiments import relu_shift as rs
from simulator.theory import closed_forms as cf
from simulator.theory.verdict import expected, judge
from tests.conftest import assert_matches
from tests.reference import (
    central_moments,
    dropout_sum_distribution,
    relu_elementwise_numpy,
    relu_fixed_values,
    relu_inputs_numpy,
)

P_GRID = [0.1, 0.3, 0.5, 0.8, 1.0]


def by_name(result):
    return {c["check"]: c for c in result.checks}


@pytest.mark.parametrize("mu", [-3.0, -0.7, 0.0, 0.4, 2.5])
@pytest.mark.parametrize("s", [0.3, 1.0, 2.0])
def test_gaussian_shift_formula(mu, s):
    # Against the library's E[ReLU(z)] and against numerical integration of E[ReLU(z)] − ReLU(μ).
    got = rs.relu_gaussian_shift(mu, s)
    assert got == pytest.approx(cf.relu_gaussian_mean(mu, s) - max(mu, 0.0), rel=1e-12, abs=1e-15)
    direct = quad(lambda z: max(z, 0.0) * norm.pdf(z, mu, s), mu - 12 * s, mu + 12 * s, points=[0.0],
                  epsabs=1e-13)[0] - max(mu, 0.0)
    assert got == pytest.approx(direct, rel=1e-8, abs=1e-12)


def test_gaussian_shift_edge_cases():
    assert rs.relu_gaussian_shift(1.3, 0.0) == 0.0
    assert rs.relu_gaussian_shift(0.0, 2.0) == pytest.approx(2.0 / np.sqrt(2 * np.pi))
    # Far tail: positive and no cancellation to 0 or below.
    assert 0.0 < rs.relu_gaussian_shift(-8.0, 1.0) < 1e-16
    assert rs.relu_gaussian_shift(8.0, 1.0) == rs.relu_gaussian_shift(-8.0, 1.0)


def test_fixed_kernel_matches_reference_on_the_same_stream():
    w, x = rs.setup(4, 5, 0.5, 1.0)
    key, samples, p = stream_key(4, "test-relu"), 1280, 0.3
    got = run(rs.fixed_blocks, (w * x, keep_threshold(p), p), 2, samples, key)
    ref = central_moments(relu_fixed_values(key, Plan.of(samples), w * x, p))
    np.testing.assert_allclose(got.total, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_inputs_kernel_statistically_matches_numpy(p):
    # Different generators (xoshiro/ziggurat vs PCG64) and an independent formula (scipy): agree within MCSE.
    c, v, n = 0.5, 1.0, 200_000
    w, _ = rs.setup(2, 16, c, v)
    got = run(rs.inputs_blocks, (w, c, 1.0, keep_threshold(p), p, (1 - p) / p), 4, n, stream_key(2, "t"))
    ref = relu_inputs_numpy(np.random.default_rng(7), n, w, c, v, p)
    for k_kernel, k_ref in ((0, 0), (1, 1), (3, 2)):
        est = got.mean(k_kernel)
        se = ref[:, k_ref].std(ddof=1) / np.sqrt(n)
        assert_matches(est.value, np.hypot(est.mcse, se), ref[:, k_ref].mean())


def test_elementwise_kernel_statistically_matches_numpy():
    c, v, p, n = 0.5, 2.0, 0.3, 400_000
    got = run(rs.elementwise_blocks, (c, np.sqrt(v), keep_threshold(p), p), 3, n, stream_key(3, "t"), nmax=2)
    ref = relu_elementwise_numpy(np.random.default_rng(8), n, c, v, p)
    for k in (0, 1):
        est = got.mean(k)
        assert_matches(est.value, np.hypot(est.mcse, ref[:, k].std(ddof=1) / np.sqrt(n)), ref[:, k].mean())
    # The pointwise identity ReLU(δh/p) = δ ReLU(h)/p holds to the last bit.
    assert got.maxima[0] == 0.0


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("d", [1, 3, 10])
def test_enumeration_equals_closed_forms_and_itertools(p, d):
    w, x = rs.setup(5, d, 0.5, 1.0)
    m1, m2 = rs.enumerate_sum(w * x, p)
    mu, s = cf.dropout_sum_moments(w, x, p)
    values, probs = dropout_sum_distribution(w * x, p)
    scale = np.sum(np.abs(w * x))
    assert m1 == pytest.approx(mu, rel=1e-12, abs=1e-12 * scale)
    assert m2 == pytest.approx(s * s, rel=1e-12, abs=1e-12 * scale ** 2)
    assert probs @ values == pytest.approx(mu, rel=1e-12, abs=1e-12 * scale)
    # Jensen, exactly: the mean over all masks of ReLU(z') is at least ReLU(μ).
    assert probs @ np.maximum(values, 0) >= max(mu, 0.0) - 1e-12 * scale


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_error_scale_bounds_skewness_and_kurtosis(p):
    # ε of gauss_error_bound is at least γ² and |κ| of z' (computed here from the exact distribution).
    w, x = rs.setup(6, 8, 0.5, 1.0)
    u = w * x
    values, probs = dropout_sum_distribution(u, p)
    mean = probs @ values
    m2, m3, m4 = (probs @ (values - mean) ** k for k in (2, 3, 4))
    gamma2, kappa = m3 ** 2 / m2 ** 3, m4 / m2 ** 2 - 3
    eps = np.sum(u ** 4) / (np.sum(u ** 2) ** 2 * p * (1 - p))
    assert gamma2 <= eps * (1 + 1e-9) and abs(kappa) <= eps * (1 + 1e-9)
    s = np.sqrt(m2)
    assert rs.gauss_error_bound(np.sum(u ** 2), np.sum(u ** 4), p) == pytest.approx(0.1 * eps * s, rel=1e-12)
    assert rs.gauss_error_bound(np.sum(u ** 2), np.sum(u ** 4), 1.0) == 0.0


@pytest.mark.parametrize("p", P_GRID)
def test_every_check_confirmed_over_p(p):
    r = simulate(p=p, experiments=["relu-shift"], samples=60_000, seed=13)
    assert len(r.checks) == 18
    for c in r.checks:
        # A Gaussian error bound as large as the shift itself makes the row a measurement, not a claim.
        assert c["verdict"] == expected(c["kind"]), c


@pytest.mark.parametrize("settings", [{"c": 0.0, "v": 1.0, "d": 4}, {"c": -1.0, "v": 0.25, "d": 1},
                                      {"c": 3.0, "v": 0.1, "d": 20, "widths": "2,32"}])
def test_other_settings_confirmed(settings):
    r = simulate(p=0.3, experiments=["relu-shift"], samples=40_000, seed=2, settings=settings)
    assert all(c["verdict"] == expected(c["kind"]) for c in r.checks), \
        [c for c in r.checks if c["verdict"] != expected(c["kind"])]


def test_p_equal_one_every_shift_exactly_zero():
    r = simulate(p=1.0, experiments=["relu-shift"], samples=5_000)
    for c in r.checks:
        assert c["verdict"] == "confirmed" and c["mcse"] == 0.0, c
        if c["kind"] != "enumeration":
            assert c["estimate"] == 0.0 and c["closed_form"] == pytest.approx(0.0, abs=0.0), c


def test_shift_appears_only_after_a_weighted_sum(refuted):
    # "No shift" is right straight into a ReLU and wrong after a weighted sum of width 16.
    r = by_name(simulate(p=0.5, experiments=["relu-shift"], samples=100_000, seed=3))
    flat = r["mean shift (elementwise)"]
    assert not refuted(0.0, flat["estimate"], flat["mcse"])
    for case in ("fixed", "inputs"):
        row = r[f"shift >= 0 ({case}, d=16)"]
        assert refuted(0.0, row["estimate"], row["mcse"])  # as an exact claim of 0
        assert row["estimate"] > 0
    lin = r["linear mean (inputs, d=16)"]
    assert not refuted(0.0, lin["estimate"], lin["mcse"])
    # The variance does grow straight into a ReLU: "unchanged variance" is refuted.
    grow = r["var growth (elementwise)"]
    assert refuted(0.0, grow["estimate"], grow["mcse"])


def test_width_one_is_elementwise_no_shift():
    # One input: ReLU(w δ x/p) = δ ReLU(w x)/p, so the true shift is 0 and the formula is off by 100%.
    r = by_name(simulate(p=0.5, experiments=["relu-shift"], samples=100_000, seed=3,
                         settings={"c": 1.0, "d": 1, "widths": "1"}))
    for case in ("fixed", "inputs"):
        row = r[f"gauss shift ({case}, d=1)"]
        assert abs(row["estimate"]) <= 5 * row["mcse"]
        assert row["rel_error"] == pytest.approx(1.0, abs=5 * row["mcse"] / row["closed_form"])


def test_relative_error_and_tolerance_shrink_with_width():
    r = simulate(p=0.5, experiments=["relu-shift"], samples=100_000, seed=3)
    rows = [c for c in r.checks if c["check"].startswith("gauss shift (inputs")]
    assert [c["params"]["d"] for c in rows] == [1, 4, 16, 64, 256]
    # At d = 1 the error bound exceeds the shift: a measurement, no claim (and indeed 100% off).
    assert rows[0]["kind"] == "measurement" and rows[0]["rel_error"] > 0.9
    claimed = [c for c in rows if c["kind"] == "approximation"]
    tol = [c["tolerance"] for c in claimed]
    assert len(claimed) >= 2 and all(a > b for a, b in zip(tol, tol[1:]))
    assert claimed[-1]["rel_error"] < 0.05 and tol[-1] < 0.15


def _wrong_variance_checks(ratio_of, width=256, p=0.5, samples=100_000):
    """Gaussian-shift checks (fixed and inputs) with s² = ratio_of(p) Σ (w x)² fed through the kernel."""
    c, v = 0.5, 1.0
    w, x = rs.setup(7, width, c, v)
    ratio = ratio_of(p)
    sample = run(rs.inputs_blocks, (w, c, 1.0, keep_threshold(p), p, ratio), 4, samples, stream_key(9, "wrong"))
    m2 = (c * c + v) * float(w @ w)
    m4 = (c ** 4 + 6 * c * c * v + 3 * v * v) * float(np.sum(w ** 4))
    inputs = rs.gauss_check("inputs", sample.mean(1).value, sample.mean(0).value, sample.mean(2).mcse,
                            rs.gauss_error_bound(m2, m4, p), {}, "")
    u = w * x
    fixed_sample = run(rs.fixed_blocks, (u, keep_threshold(p), p), 2, samples, stream_key(9, "wrong-fixed"))
    form = rs.relu_gaussian_shift(float(np.sum(u)), np.sqrt(ratio * float(u @ u)))
    est = fixed_sample.mean(0)
    fixed = rs.gauss_check("fixed", form, est.value, est.mcse,
                           rs.gauss_error_bound(float(u @ u), float(np.sum(u ** 4)), p), {}, "")
    return [judge(ch, 5.0).verdict for ch in (fixed, inputs)]


def test_right_variance_confirmed_at_large_width():
    assert _wrong_variance_checks(lambda p: (1 - p) / p) == ["confirmed", "confirmed"]


@pytest.mark.parametrize("name,ratio_of", [
    ("variance term dropped", lambda p: 0.0),
    ("Var δ instead of Var δ/p", lambda p: p * (1 - p)),
    ("1/p instead of (1-p)/p", lambda p: 1 / p),
])
def test_wrong_variance_refuted_at_large_width(name, ratio_of):
    assert _wrong_variance_checks(ratio_of) == ["refuted", "refuted"], name


def test_thread_count_does_not_change_a_bit():
    runs = []
    for threads in (1, 2):
        r = simulate(p=0.3, experiments=["relu-shift"], samples=20_000, threads=threads)
        runs.append([(c["estimate"], c["mcse"]) for c in r.checks])
    set_threads(None)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("widths", ["2.5", "0", "5000", "1,x"])
def test_bad_widths_rejected(widths):
    with pytest.raises(ParameterError, match="widths"):
        simulate(p=0.5, experiments=["relu-shift"], samples=5_000, settings={"widths": widths})


def test_d_beyond_enumeration_skips_enumeration():
    r = by_name(simulate(p=0.5, experiments=["relu-shift"], samples=5_000, settings={"d": 32, "widths": "32"}))
    assert not any(k.startswith("enum") for k in r) and "shift >= 0 (fixed, d=32)" in r
