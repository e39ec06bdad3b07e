import numpy as np
import pytest

from simulator.core import rng as R
from simulator.core.engine import NBATCH, Plan
from simulator.core.stats import ACC_WIDTH, Sample, finish_moments, merge_all, merge_moments, push_value
from tests.reference import Xoshiro, central_moments


def test_xoshiro_matches_python_reference():
    key = R.stream_key(7, "a", "b")
    for block in (0, 1, 12345):
        s = R.block_state(key, block)
        ref = Xoshiro(key, block)
        assert [int(R.next_raw(s)) for _ in range(50)] == [ref.next() for _ in range(50)]


def test_streams_differ_by_name_and_block():
    a, b = R.stream_key(1, "x"), R.stream_key(1, "y")
    assert not np.array_equal(a, b)
    assert not np.array_equal(R.block_state(a, 0), R.block_state(a, 1))
    assert np.array_equal(R.stream_key(1, "x"), a)


def test_keep_threshold_limits():
    assert R.keep_threshold(1.0) == 2 ** 53
    s = R.block_state(R.stream_key(0, "t"), 0)
    assert all(R.next_keep(s, R.keep_threshold(1.0)) == 1.0 for _ in range(1000))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate(p):
    s = R.block_state(R.stream_key(0, "rate"), 0)
    n = 200_000
    k = sum(R.next_keep(s, R.keep_threshold(p)) for _ in range(n))
    assert abs(k / n - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_normals_moments():
    s = R.block_state(R.stream_key(0, "normal"), 0)
    x = np.empty(200_001)
    R.fill_normal(s, x, 1.0, 2.0)
    assert abs(x.mean() - 1.0) < 5 * 2.0 / np.sqrt(x.size)
    assert abs(x.var() - 4.0) < 5 * 4.0 * np.sqrt(2 / x.size)
    kurt = np.mean((x - x.mean()) ** 4) / x.var() ** 2
    assert abs(kurt - 3.0) < 5 * np.sqrt(96 / x.size)


def _moments(x):
    acc = np.zeros((x.shape[1], ACC_WIDTH))
    for row in x:
        for k, v in enumerate(row):
            push_value(acc, k, v)
    out = np.empty((x.shape[1], 5))
    finish_moments(acc, out)
    return out


def test_shifted_sums_and_merge_match_two_pass(rng):
    # A large mean relative to the spread: plain sums of squares would lose the variance.
    x = 1e6 + rng.standard_exponential((3000, 2))
    parts = [_moments(x[i:i + 700]) for i in range(0, 3000, 700)]
    merged = merge_all(parts)
    ref = central_moments(x)
    np.testing.assert_allclose(merged[:, :3], ref[:, :3], rtol=1e-10)
    # Third and fourth sums of x ≈ 1e6 carry only ~1e-9 relative precision in either method.
    np.testing.assert_allclose(merged[:, 3:], ref[:, 3:], rtol=1e-7)


def test_merge_with_empty_is_identity(rng):
    a = _moments(rng.normal(size=(100, 1)))
    b = a.copy()
    merge_moments(b, np.zeros_like(a))
    np.testing.assert_array_equal(a, b)


def test_plan_cuts_samples_exactly():
    for n in (1000, 1_000_001, 10 ** 9 + 7):
        plan = Plan.of(n)
        assert plan.nblocks % NBATCH == 0
        assert sum(plan.block_size(b) for b in (0, plan.nblocks - 1)) in (2 * plan.base, 2 * plan.base + 1)
        assert plan.base * plan.nblocks + plan.rem == n


def test_variance_mcse_is_kurtosis_aware(rng):
    # Bernoulli-masked values: heavy tails make sqrt(2/N) too small; the estimate must track the spread.
    reps = []
    for i in range(200):
        x = (rng.random(2000) < 0.1) * rng.normal(size=2000) / 0.1
        reps.append(x)
    mom = [central_moments(x[:, None]) for x in reps]
    samples = [Sample(m, np.stack([m, m]), np.array([])) for m in mom]
    spread = np.std([s.var(0).value for s in samples])
    typical = np.median([s.var(0).mcse for s in samples])
    assert 0.8 < typical / spread < 1.25


# --- ziggurat normals and mask words (issue 6) --------------------------------------

def _layers():
    """x_i, f(x_i) of the ziggurat tables (x_0 = 0 on top, x_255 = r at the bottom)."""
    x = R.ZIG_W * 2.0 ** 52
    x[0] = 0.0  # w[0] is the base layer's pseudo-width; layer 1's top is x_0 = 0
    return x, R.ZIG_F


def test_ziggurat_layers_have_equal_area():
    from math import erfc, exp, pi, sqrt
    r = R.ZIG_R
    v = r * exp(-r * r / 2) + sqrt(pi / 2) * erfc(r / sqrt(2))
    x, f = _layers()
    assert R.ZIG_W[0] * 2.0 ** 52 * f[255] == pytest.approx(v, rel=1e-13)  # base: rectangle + tail
    areas = x[1:] * (f[:-1] - f[1:])  # layer i: width x_i, strip [f(x_i), f(x_{i-1})]
    np.testing.assert_allclose(areas, v, rtol=1e-11)
    np.testing.assert_allclose(f, np.exp(-x ** 2 / 2), rtol=1e-14)
    # Inner rectangles: k_i = 2**52 x_{i-1}/x_i.
    np.testing.assert_allclose(R.ZIG_K[2:] / 2.0 ** 52, x[1:-1] / x[2:], rtol=1e-15)
    assert R.ZIG_K[1] == 0


def test_ziggurat_matches_python_reference_draw_for_draw():
    from tests.reference import zig_normal
    key = R.stream_key(3, "zig")
    s, g = R.block_state(key, 9), Xoshiro(key, 9)
    ours = [R.next_normal(s) for _ in range(30_000)]
    assert ours == [zig_normal(g) for _ in range(30_000)]
    assert int(R.next_raw(s)) == g.next()  # and both consumed the same draws


def test_normal_forms_share_one_stream():
    key = R.stream_key(3, "forms")
    a, b, c = (R.block_state(key, 0) for _ in range(3))
    single = [R.next_normal(a) for _ in range(10)]
    pairs = [x for _ in range(5) for x in R.next_normal_pair(b)]
    filled = np.empty(10)
    R.fill_normal(c, filled, 2.0, 3.0)
    assert single == pairs
    np.testing.assert_array_equal(filled, 2.0 + 3.0 * np.array(single))
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.fixture(scope="module")
def normals():
    x = np.empty(4_000_000)
    R.fill_normal(R.block_state(R.stream_key(11, "normal-dist"), 0), x, 0.0, 1.0)
    return x


def test_normal_distribution_ks_and_moments(normals):
    from scipy import stats
    x = normals[:400_000]
    assert stats.kstest(x, "norm").pvalue > 1e-3
    n = normals.size
    m = [np.mean(normals ** k) for k in (1, 2, 3, 4)]
    for value, want, var in ((m[0], 0.0, 1.0), (m[1], 1.0, 2.0), (m[2], 0.0, 15.0), (m[3], 3.0, 96.0)):
        assert abs(value - want) < 5 * np.sqrt(var / n)


@pytest.mark.parametrize("t", [1.0, 2.0, 3.0, 3.6541528853610088, 4.0, 4.5])
def test_normal_tails(normals, t):
    from scipy import stats
    q = 2 * stats.norm.sf(t)
    k = np.count_nonzero(np.abs(normals) > t)
    assert abs(k - q * normals.size) < 5 * np.sqrt(q * (1 - q) * normals.size)


def test_normal_beyond_the_base_layer_is_the_normal_tail(normals):
    # Draws beyond r come from Marsaglia's tail method: their law must be N(0,1) conditioned on |x| > r.
    from scipy import stats
    r = R.ZIG_R
    tail = np.abs(normals[np.abs(normals) > r])
    assert stats.kstest(tail, lambda y: 1 - stats.norm.sf(y) / stats.norm.sf(r)).pvalue > 1e-3
    assert (np.sign(normals[np.abs(normals) > r]) > 0).mean() == pytest.approx(0.5, abs=5 * 0.5 / np.sqrt(tail.size))


@pytest.mark.parametrize("p", [0.5, 0.3, 0.8, 0.75, 1.0, 1e-6, 0.999])
def test_mask_word_matches_python_reference(p):
    from tests.reference import mask_word
    key = R.stream_key(4, "mask")
    s, g = R.block_state(key, 2), Xoshiro(key, 2)
    t = R.keep_threshold(p)
    assert [int(R.next_mask_word(s, t)) for _ in range(40)] == [mask_word(g, t) for _ in range(40)]
    assert int(R.next_raw(s)) == g.next()


def _draws_taken(s, step):
    """Raw draws that ``step(s)`` consumes (found by replaying the stream)."""
    before = s.copy()
    step(s)
    probe = before.copy()
    for k in range(64):
        if np.array_equal(probe, s):
            return k
        R.next_raw(probe)
    raise AssertionError("more than 63 draws")


@pytest.mark.parametrize("p,most", [(0.5, 1), (0.75, 2), (0.625, 3), (1.0, 0)])
def test_mask_word_draws_at_most_m_words_for_dyadic_p(p, most):
    s = R.block_state(R.stream_key(4, "dyadic"), 0)
    t = R.keep_threshold(p)
    taken = [_draws_taken(s, lambda st: R.next_mask_word(st, t)) for _ in range(200)]
    assert max(taken) == most


def test_mask_word_draws_about_eight_words_for_other_p():
    # Each word decides half of the undecided lanes: E[draws] ≈ log2(64) + 1.3 for a non-dyadic p.
    s = R.block_state(R.stream_key(4, "other"), 0)
    t = R.keep_threshold(0.8)
    taken = [_draws_taken(s, lambda st: R.next_mask_word(st, t)) for _ in range(2000)]
    assert 6.5 < np.mean(taken) < 9.5


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_word_keep_rate_and_lane_independence(p):
    s = R.block_state(R.stream_key(0, "mask-rate"), 0)
    words = np.array([R.next_mask_word(s, R.keep_threshold(p)) for _ in range(20_000)], dtype=np.uint64)
    bits = ((words[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(float)
    n = bits.size
    assert abs(bits.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    # Every lane keeps at rate p, and neighbouring lanes are uncorrelated.
    lane = bits.mean(axis=0)
    assert np.all(np.abs(lane - p) < 5 * np.sqrt(p * (1 - p) / len(words)))
    corr = np.corrcoef(bits[:, :-1].ravel(), bits[:, 1:].ravel())[0, 1]
    assert abs(corr) < 5 / np.sqrt(bits[:, 1:].size)
