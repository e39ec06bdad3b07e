import numpy as np
import pytest

from simulator import ParameterError, simulate
from simulator.core.engine import run, set_threads
from simulator.core.rng import block_state, keep_threshold, stream_key
from simulator.experiments import network_shift as ns
from simulator.nn import chain as net
from simulator.theory import closed_forms as cf
from tests.conftest import assert_matches
from tests.reference import ChainNumpy, Xoshiro, shift_block_reference


def _buffers(m, d, depth):
    return dict(x=np.empty((m, d)), h=np.empty((m, d)), z=np.empty((m, d)), y=np.empty((m, d)),
                bmean=np.empty(d), bvar=np.empty(d), rm=np.zeros((depth, d)), rv=np.ones((depth, d)),
                relu=np.zeros(depth))


def _inputs(s, m, d, c, a, b):
    """The next batch of the kernel's own input stream, without advancing ``s``."""
    x = np.empty((m, d))
    net.draw_inputs(s.copy(), x, c, a, b)
    return x


@pytest.mark.parametrize("placement", ["none", "before-bn", "after-bn", "uout"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_statistics_match_numpy_step_by_step(placement, momentum):
    d, depth, m, steps, p, beta, eps = 3, 3, 5, 6, 0.6, 0.3, 1e-5
    c, (a, b) = 0.4, net.input_scales(1.5, 0.3)
    W = net.he_weights(7, d, depth)
    key = stream_key(7, "chain-reference")
    s_in, s_mask = block_state(key, 0), block_state(key, 1)
    g = Xoshiro(key, 1)
    ref = ChainNumpy(W, placement, p, beta, eps, momentum)
    buf = _buffers(m, d, depth)
    mom = -1.0 if momentum is None else momentum
    for t in range(steps):
        x = _inputs(s_in, m, d, c, a, b)
        net.train_chain(s_in, s_mask, W, net.CODES[placement], keep_threshold(p), 1.0 / p, beta, c, a, b, eps,
                         mom, 1, t, buf["rm"], buf["rv"], buf["x"], buf["h"], buf["z"], buf["y"], buf["bmean"],
                         buf["bvar"], buf["relu"])
        h_ref, _ = ref.train_batch(x, g)
        np.testing.assert_allclose(buf["x"], x, rtol=0, atol=0)
        np.testing.assert_allclose(buf["rm"], ref.rm, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(buf["rv"], ref.rv, rtol=1e-12)
        np.testing.assert_allclose(buf["h"], h_ref, rtol=1e-12, atol=1e-12)
    # Eval mode on fresh rows: features, BN inputs and post-ReLU sums.
    x = _inputs(block_state(key, 2), 7, d, c, a, b)
    zstats, relu = np.zeros((depth, d, 2)), np.zeros(depth)
    h, z, y = np.empty((7, d)), np.empty((7, d)), np.empty((7, d))
    net.eval_rows(x, W, eps, buf["rm"], buf["rv"], h, z, y, zstats, relu)
    h_ref, zs, sums = ref.eval(x)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(relu, sums, rtol=1e-12)
    np.testing.assert_allclose(zstats[:, :, 0], [(z - ref.rm[i]).sum(0) for i, z in enumerate(zs)], atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_block_matches_numpy_reference(momentum):
    # Every placement through one whole block of the engine kernel, against the numpy chain.
    d, depth, m, steps, n_eval, p, beta, eps = 4, 2, 6, 5, 9, 0.5, 0.2, 1e-5
    c, (a, b) = 0.0, net.input_scales(1.0, 0.0)
    W = net.he_weights(3, d, depth)
    key = stream_key(3, "block-reference")
    placements = ["none", "before-bn", "after-bn", "recalibrated", "uout"]
    codes = np.array([net.CODES[x] for x in placements])
    out = np.empty((len(codes) * depth * ns.NQ, 5))
    blk = 2
    states = [block_state(key, 3 * blk + i) for i in range(3)]
    ns.shift_block(*states, n_eval, W, codes, keep_threshold(p), 1.0 / p, beta, c, a, b, m, steps, eps,
                    -1.0 if momentum is None else momentum, out)
    s_in = states[0].copy()
    train = []
    for _ in range(steps):
        train.append(_inputs(s_in, m, d, c, a, b))
        net.draw_inputs(s_in, np.empty((m, d)), c, a, b)
    eval_x = _inputs(states[2], n_eval, d, c, a, b)
    for i, pl in enumerate(placements):
        want = shift_block_reference(W, pl, p, beta, eps, momentum, train, eval_x, key, blk)
        got = out[i * depth * ns.NQ:(i + 1) * depth * ns.NQ, 1].reshape(depth, ns.NQ)
        np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=pl)


def _checks(p, seed=4, samples=16_384, **settings):
    r = simulate(p=p, experiments=["network-shift"], samples=samples, seed=seed,
                 settings={"depth": 3, "d": 8, "steps": 40, **settings})
    return {c["check"]: c for c in r.checks}


@pytest.mark.parametrize("p", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("setting", [{}, {"c": 0.7, "rho": 0.4, "momentum": "none"}])
def test_first_layer_matches_C5(p, setting):
    checks = _checks(p, **setting)
    for pl in ("before-bn", "after-bn", "recalibrated", "uout"):
        for name in (f"L1 running_var ({pl})", f"L1 ratio ({pl})"):
            c = checks[name]
            assert_matches(c["estimate"], c["mcse"], c["closed_form"])
    c = checks["L1 real var"]
    assert_matches(c["estimate"], c["mcse"], c["closed_form"])


def test_first_layer_shift_is_p_at_c_zero():
    # c = 0: Δ = p for every unit; many steps make the initial running_var = 1 negligible.
    c = _checks(0.3, steps=200)["L1 ratio (before-bn)"]
    assert_matches(c["estimate"], c["mcse"], 0.3)
    assert abs(c["closed_form"] - 0.3) < 1e-6


def test_wrong_first_layer_forms_are_refuted(refuted):
    checks = _checks(0.3, c=0.7)
    W = net.he_weights(4, 8, 3)[0]
    norms = (W * W).sum(axis=0)
    est = checks["L1 running_var (before-bn)"]
    # No shift at all (running_var = Var_test), and Var_train = v/p (the mean's part forgotten).
    no_shift = np.mean([cf.running_var_expectation(n, 0.1, 40) for n in norms])
    wrong_p = np.mean([cf.running_var_expectation(n / 0.3, 0.1, 40) for n in norms])
    assert refuted(no_shift, est["estimate"], est["mcse"])
    assert refuted(wrong_p, est["estimate"], est["mcse"])
    assert not refuted(est["closed_form"], est["estimate"], est["mcse"])


def test_remedies_equal_the_noise_free_network_and_ratio_one():
    checks = _checks(0.3)
    for pl in ("after-bn", "recalibrated"):
        for layer in (1, 2, 3):
            c = checks[f"L{layer} ratio/none ({pl})"]
            assert c["estimate"] == 1.0 and c["mcse"] == 0.0 and c["verdict"] == "confirmed"
        c = checks[f"L1 ratio ({pl})"]
        assert_matches(c["estimate"], c["mcse"], 1.0)
    # The harmful order is far from 1 at every layer, and more so with depth.
    ratios = [checks[f"L{layer} ratio/none (before-bn)"]["estimate"] for layer in (1, 2, 3)]
    assert ratios[0] < 0.5 and ratios[2] < ratios[1] < ratios[0]


def test_p_one_shows_every_shift_exactly_zero():
    checks = _checks(1.0, placement="before-bn,after-bn,recalibrated")
    for name, c in checks.items():
        if "ratio/none" in name:
            assert c["estimate"] == 1.0 and c["mcse"] == 0.0, name
        if "ReLU shift" in name:
            assert c["estimate"] == 0.0 and c["mcse"] == 0.0, name


def test_uout_shift_is_small_and_independent_of_p():
    a, b = _checks(0.3, placement="uout"), _checks(0.9, placement="uout")
    c = a["L1 ratio (uout)"]
    assert_matches(c["estimate"], c["mcse"], c["closed_form"])
    assert a["L1 running_var (uout)"]["closed_form"] == b["L1 running_var (uout)"]["closed_form"]
    assert 0.95 < a["L3 ratio/none (uout)"]["estimate"] < 1.0


def test_thread_count_does_not_change_a_bit():
    runs = []
    for threads in (1, 2):
        r = simulate(p=0.4, experiments=["network-shift"], samples=2_000, threads=threads,
                     settings={"depth": 2, "d": 4, "steps": 5})
        runs.append([(c["estimate"], c["mcse"]) for c in r.checks])
    set_threads(None)
    assert runs[0] == runs[1]


def test_benchmark_size_is_callable_directly():
    # d = 256, depth 4, batches of 64, dropout before BN: the size a benchmark will use.
    d, depth, m = 256, 4, 64
    W = net.he_weights(1, d, depth)
    codes = np.array([net.BEFORE])
    a, b = net.input_scales(1.0, 0.0)
    sample = run(ns.shift_blocks, (W, codes, keep_threshold(0.5), 2.0, 0.1, 0.0, a, b, m, 2, 1e-5, 0.1),
                 depth * ns.NQ, 1_000, stream_key(1, "bench"))
    assert sample.n == 64 and np.isfinite(sample.total).all()
    real, moving = ns.layer_one_forms(W[0], "before-bn", 0.5, 0.1, 0.0, 1.0, 0.0, 0.1, 2)
    for k, form in ((ns.REAL, real), (ns.MOVING, moving)):
        assert_matches(sample.mean(k).value, sample.mean(k).mcse, form)


@pytest.mark.parametrize("settings", [{"d": 0}, {"m": 1}, {"momentum": 0}, {"eps": 0}, {"rho": 1},
                                      {"placement": "before"}, {"beta": 2}, {"d": 4096, "depth": 8}])
def test_bad_parameters_are_rejected(settings):
    with pytest.raises(ParameterError):
        simulate(p=0.5, experiments=["network-shift"], samples=1_000, settings=settings)
