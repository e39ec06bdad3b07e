import json

import numpy as np
import pytest

from simulator import simulate
from simulator.core.engine import Plan, run, set_threads
from simulator.core.rng import keep_threshold, stream_key
from simulator.experiments import dropout_gradient as dg
from simulator.experiments import inverted_dropout as inv
from simulator.experiments.catalog import Context
from simulator.theory import closed_forms as cf
from tests.conftest import assert_matches
from tests.reference import central_moments, gradient_values_lanes, inverted_dropout_numpy


def test_gradient_kernel_matches_reference_on_the_same_stream():
    n, t, samples = 3, 0.7, 1280
    w, I = dg.setup(1, n, 0.5, 1.0)
    p = np.array([0.3, 0.5, 1.0])
    key = stream_key(1, "test")
    thr = np.array([keep_threshold(x) for x in p], dtype=np.uint64)
    got = run(dg.gradient_blocks, (w, I, thr, p, t, False, 0.0, 1.0), 2 * n + 2, samples, key)
    ref = central_moments(gradient_values_lanes(key, Plan.of(samples), w, I, p, t))
    np.testing.assert_allclose(got.total, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("n", [1, 5])
def test_enumeration_equals_closed_form(p, n):
    w, I = dg.setup(3, n, 0.5, 2.0)
    pk = np.linspace(p, 1.0, n)
    m, M = cf.moments_fixed(I)
    got = dg.enumerate_masks(w, I, pk, 0.3)
    want = np.concatenate([cf.dropout_gradient(w, m, M, pk, 0.3), [cf.dropout_loss(w, m, M, pk, 0.3)],
                           cf.inverted_dropout_gradient(w, m, M, pk, 0.3),
                           [cf.inverted_dropout_loss(w, m, M, pk, 0.3)]])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_wrong_regularizer_is_refuted_by_enumeration(refuted):
    # The gradient regularizer with p² instead of p(1−p): enumeration and sampling both refute it.
    w, I = dg.setup(3, 4, 0.5, 1.0)
    p = np.full(4, 0.3)  # not 0.5, where p² = p(1−p)
    m, M = cf.moments_fixed(I)
    wrong = cf.ensemble_gradient(w, m, M, p, 1.0) + w * p ** 2 * np.diag(M)
    enum = dg.enumerate_masks(w, I, p, 1.0)[:4]
    assert any(refuted(a, b, 0.0, kind="enumeration") for a, b in zip(wrong, enum))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("inputs", ["fixed", "random"])
def test_gradient_closed_forms_confirmed(p, inputs):
    r = simulate(p=p, experiments=["dropout-gradient"], samples=200_000, seed=11,
                 settings={"inputs": inputs, "n": 3})
    for c in r.checks:
        assert c["verdict"] == "confirmed", c


def test_per_unit_keep_probabilities():
    r = simulate(p=0.5, experiments=["dropout-gradient"], samples=200_000, seed=5,
                 settings={"n": 3, "p_units": "0.2,0.6,1"})
    assert all(c["verdict"] == "confirmed" for c in r.checks)
    assert r.checks[0]["params"]["p_units"] == [0.2, 0.6, 1.0]


@pytest.mark.parametrize("dist", ["normal", "uniform"])
@pytest.mark.parametrize("c,v", [(2.0, 1.0), (-1.0, 3.0)])
def test_inverted_dropout_statistically_matches_numpy(dist, c, v):
    # Kernel and numpy reference (PCG64) must agree within their joint MCSE.
    p = 0.3
    r = simulate(p=p, experiments=["inverted-dropout"], samples=400_000, seed=2,
                 settings={"dist": dist, "c": c, "v": v})
    est = {x["check"].split(" ")[0]: x for x in r.checks}
    ref = inverted_dropout_numpy(np.random.default_rng(9), 400_000, c, v, p, dist)
    m = central_moments(ref[:, None])[0]
    for name, value, se in (("mean", ref.mean(), ref.std() / np.sqrt(ref.size)),
                            ("var", ref.var(ddof=1), np.sqrt((m[4] / m[0] - (m[2] / m[0]) ** 2) / m[0]))):
        joint = np.hypot(est[name]["mcse"], se)
        assert_matches(est[name]["estimate"], joint, value)


def test_relu_normal_parameters_give_requested_moments():
    mu, s = inv.relu_normal_parameters(2.0, 1.0)
    x = np.maximum(0.0, np.random.default_rng(0).normal(mu, s, 2_000_000))
    assert abs(x.mean() - 2.0) < 5 * x.std() / np.sqrt(x.size)
    d = x - x.mean()
    assert_matches(x.var(), np.sqrt((np.mean(d ** 4) - x.var() ** 2) / x.size), 1.0)


def test_erratum_example_from_theory():
    assert cf.inverted_variance(2.0, 1.0, 0.5) == 6.0
    assert cf.inverted_variance_as_written(2.0, 1.0, 0.5) == 8.0
    # They agree only when the mean is 0 or 1.
    for c in (0.0, 1.0):
        assert cf.inverted_variance(c, 1.0, 0.3) == pytest.approx(cf.inverted_variance_as_written(c, 1.0, 0.3))


def test_default_run_confirms_identities_and_refutes_erratum():
    r = simulate(p=0.5, samples=200_000)
    by_kind = {}
    for c in r.checks:
        by_kind.setdefault(c["kind"], set()).add(c["verdict"])
    assert by_kind["exact"] == {"confirmed"}
    assert by_kind["enumeration"] == {"confirmed"}
    assert by_kind["erratum"] == {"refuted"}


def test_p_equal_one_is_noiseless_for_masks():
    r = simulate(p=1.0, experiments=["dropout-gradient", "inverted-dropout"], samples=10_000)
    mask_var = [c for c in r.checks if c["check"].startswith("mask-var")]
    assert all(c["estimate"] == 0.0 and c["mcse"] == 0.0 and c["verdict"] == "confirmed" for c in mask_var)
    grads = [c for c in r.checks if c["check"].startswith("grad[")]
    assert all(c["mcse"] == 0.0 and c["verdict"] == "confirmed" for c in grads)


def test_thread_count_does_not_change_a_bit():
    runs = []
    for threads in (1, 2):
        r = simulate(p=0.3, samples=50_000, threads=threads)
        runs.append([(c["estimate"], c["mcse"]) for c in r.checks])
    set_threads(None)
    assert runs[0] == runs[1]


def test_json_contract():
    r = simulate(p=0.5, experiments=["inverted-dropout"], samples=5_000)
    for k in ("p", "seed", "samples", "threads", "elapsed_s", "versions"):
        assert k in r.meta
    for c in r.checks:
        for k in ("experiment", "check", "claim", "source", "kind", "params", "closed_form", "estimate",
                  "mcse", "z", "resolution", "verdict"):
            assert k in c
        assert c["verdict"] in ("confirmed", "refuted")
    json.dumps(r.meta), json.dumps(r.checks)


def test_context_key_depends_on_point():
    a = Context("e", 1, 1000, point={"p": 0.5}).key("s")
    b = Context("e", 1, 1000, point={"p": 0.6}).key("s")
    assert not np.array_equal(a, b)


def test_no_warm_up_once_every_kernel_is_compiled():
    # The first-run warm-up must not start processes on every run.
    from simulator.experiments import CATALOG
    from simulator.runs.warmup import cold
    simulate(p=0.5, samples=1000)
    assert [e.name for e in CATALOG.values() if cold(e)] == []
