import numpy as np
import pytest

from simulator import rng as R
from simulator.engine import NBATCH, Plan
from simulator.stats import ACC_WIDTH, Sample, _finish, _merge, _push, merge_all
from tests.reference import Xoshiro, central_moments


def test_xoshiro_matches_python_reference():
    key = R.stream_key(7, "a", "b")
    for block in (0, 1, 12345):
        s = R._block_state(key, block)
        ref = Xoshiro(key, block)
        assert [int(R._next(s)) for _ in range(50)] == [ref.next() for _ in range(50)]


def test_streams_differ_by_name_and_block():
    a, b = R.stream_key(1, "x"), R.stream_key(1, "y")
    assert not np.array_equal(a, b)
    assert not np.array_equal(R._block_state(a, 0), R._block_state(a, 1))
    assert np.array_equal(R.stream_key(1, "x"), a)


def test_keep_threshold_limits():
    assert R.keep_threshold(1.0) == 2 ** 53
    s = R._block_state(R.stream_key(0, "t"), 0)
    assert all(R._keep(s, R.keep_threshold(1.0)) == 1.0 for _ in range(1000))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate(p):
    s = R._block_state(R.stream_key(0, "rate"), 0)
    n = 200_000
    k = sum(R._keep(s, R.keep_threshold(p)) for _ in range(n))
    assert abs(k / n - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_normals_moments():
    s = R._block_state(R.stream_key(0, "normal"), 0)
    x = np.empty(200_001)
    R._fill_normal(s, x, 1.0, 2.0)
    assert abs(x.mean() - 1.0) < 5 * 2.0 / np.sqrt(x.size)
    assert abs(x.var() - 4.0) < 5 * 4.0 * np.sqrt(2 / x.size)
    kurt = np.mean((x - x.mean()) ** 4) / x.var() ** 2
    assert abs(kurt - 3.0) < 5 * np.sqrt(96 / x.size)


def _moments(x):
    acc = np.zeros((x.shape[1], ACC_WIDTH))
    for row in x:
        for k, v in enumerate(row):
            _push(acc, k, v)
    out = np.empty((x.shape[1], 5))
    _finish(acc, out)
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
    _merge(b, np.zeros_like(a))
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
