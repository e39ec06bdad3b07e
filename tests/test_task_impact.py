import numpy as np
import pytest

from simulator import ParameterError, simulate
from simulator.core.engine import set_threads
from simulator.core.rng import block_state, keep_threshold, stream_key
from simulator.experiments import task_impact as ti
from simulator.nn import chain as net
from simulator.theory import closed_forms as cf
from tests.conftest import assert_matches
from tests.reference import ridge_identity_numpy, task_block_reference

PLACEMENTS = ["none", "before-bn", "after-bn", "recalibrated", "uout"]


def _inputs(s, m, d, c, a, b):
    x = np.empty((m, d))
    net.draw_inputs(s, x, c, a, b)
    return x


@pytest.mark.parametrize("momentum", [0.1, None])
def test_block_matches_numpy_reference(momentum):
    d, depth, m, steps, n_eval, p, beta, eps, classes = 4, 2, 6, 4, 11, 0.5, 0.2, 1e-5, 3
    c, (a, b) = 0.2, net.input_scales(1.0, 0.2)
    W = net.he_weights(5, d, depth)
    teacher = ti.teacher(5, W, classes, c, a, b, eps)
    key = stream_key(5, "task-reference")
    codes = np.array([net.CODES[x] for x in PLACEMENTS])
    out = np.empty((len(codes) * ti.NQ, 5))
    blk = 1
    states = [block_state(key, 3 * blk + i) for i in range(3)]
    ti.task_block(*states, n_eval, (W, codes, keep_threshold(p), 1.0 / p, beta, c, a, b, m, steps, eps,
                                     -1.0 if momentum is None else momentum), tuple(teacher), out)
    s_in = states[0].copy()
    train = [_inputs(s_in, m, d, c, a, b) for _ in range(steps)]
    eval_x = _inputs(states[2].copy(), n_eval, d, c, a, b)
    for i, pl in enumerate(PLACEMENTS):
        want = task_block_reference(W, pl, p, beta, eps, momentum, train, eval_x, key, blk, teacher)
        np.testing.assert_allclose(out[i * ti.NQ:(i + 1) * ti.NQ, 1], want, rtol=1e-8, atol=1e-12, err_msg=pl)


def test_teacher_targets_are_standardized():
    W = net.he_weights(2, 8, 3)
    a, b = net.input_scales(1.0, 0.0)
    rmT, rvT, A, mu, sd = ti.teacher(2, W, 3, 0.0, a, b, 1e-5)
    s = block_state(stream_key(2, "teacher-check"), 0)
    x = _inputs(s, 4096, 8, 0.0, a, b)
    T, labels = np.empty((4096, 3)), np.empty(4096, dtype=np.int64)
    scratch = np.empty((4096, 8))
    ti.teacher_batch(x, W, 1e-5, rmT, rvT, A, mu, sd, T, labels, scratch.copy(), scratch.copy(), scratch.copy(),
                      np.zeros((3, 8, 2)), np.zeros(3))
    assert np.all(np.abs(T.mean(axis=0)) < 0.1) and np.all(np.abs(T.std(axis=0) - 1) < 0.1)
    assert np.array_equal(labels, np.argmax(T, axis=1))
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), 1.0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("rows,cols", [(1, 1), (8, 4), (9, 7)])
def test_ridge_enumeration_equals_closed_forms(p, rows, cols):
    X, y, w = ti.ridge_setup(3, rows, cols)
    loss, G, hv = ti.ridge_enumerate(X, y, w, p)
    assert loss == pytest.approx(cf.dropout_regression_loss(X, y, w, p), rel=1e-12)
    np.testing.assert_allclose(np.linalg.solve(G, hv), cf.dropout_ridge_minimizer(X, y, p), rtol=1e-9, atol=1e-12)
    XtX = X.T @ X
    np.testing.assert_allclose(G, XtX + (1 - p) / p * np.diag(np.diag(XtX)), rtol=1e-12, atol=1e-12)


def _wrong_forms(X, y, w, p):
    """The identity with the diag dropped, and with p in place of (1 − p)/p."""
    r, G = y - X @ w, X.T @ X
    loss_no_diag = r @ r + (1 - p) / p * (w @ G @ w)
    loss_p = r @ r + p * np.sum(np.diag(G) * w * w)
    w_no_diag = np.linalg.solve(G + (1 - p) / p * G, X.T @ y)
    w_p = np.linalg.solve(G + p * np.diag(np.diag(G)), X.T @ y)
    return (loss_no_diag, loss_p), (w_no_diag, w_p)


def test_wrong_ridge_variants_are_refuted(refuted):
    p = 0.3
    r = simulate(p=p, experiments=["task-impact"], samples=65_536, seed=8, settings={"steps": 2, "depth": 1, "d": 2,
                                                                                     "placement": "uout"})
    checks = {c["check"]: c for c in r.checks}
    X, y, w = ti.ridge_setup(8, 8, 4)
    (loss_no_diag, loss_p), (w_no_diag, w_p) = _wrong_forms(X, y, w, p)
    mc, enum = checks["ridge loss"], checks["enum ridge loss"]
    assert mc["verdict"] == enum["verdict"] == "confirmed"
    for wrong in (loss_no_diag, loss_p):
        assert refuted(wrong, mc["estimate"], mc["mcse"])
        assert refuted(wrong, enum["estimate"], 0.0, kind="enumeration")
    for wrong in (w_no_diag, w_p):
        assert any(refuted(wrong[i], checks[f"ridge w*[{i + 1}]"]["estimate"], checks[f"ridge w*[{i + 1}]"]["mcse"])
                   for i in range(4))
        assert any(refuted(wrong[i], checks[f"enum ridge w*[{i + 1}]"]["estimate"], 0.0, kind="enumeration")
                   for i in range(4))


@pytest.mark.parametrize("p", [0.2, 0.7, 1.0])
def test_ridge_checks_confirmed(p):
    r = simulate(p=p, experiments=["task-impact"], samples=20_000, seed=1,
                 settings={"steps": 2, "depth": 1, "d": 2, "placement": "uout", "rows": 6, "cols": 3})
    ridge = [c for c in r.checks if "ridge" in c["check"]]
    assert len(ridge) == 8 and all(c["verdict"] == "confirmed" for c in ridge)
    if p == 1.0:
        assert all(c["mcse"] < 1e-13 * max(1.0, abs(c["estimate"])) for c in ridge)  # noiseless


def test_ridge_kernel_statistically_matches_numpy():
    p = 0.4
    r = simulate(p=p, experiments=["task-impact"], samples=100_000, seed=6,
                 settings={"steps": 2, "depth": 1, "d": 2, "placement": "uout"})
    mc = next(c for c in r.checks if c["check"] == "ridge loss")
    X, y, w = ti.ridge_setup(6, 8, 4)
    ref = ridge_identity_numpy(np.random.default_rng(3), X, y, w, p, 100_000)
    se = ref.std(ddof=1) / np.sqrt(ref.size)
    assert_matches(mc["estimate"], np.hypot(mc["mcse"], se), ref.mean())


def _impact(p, **settings):
    r = simulate(p=p, experiments=["task-impact"], samples=8_192, seed=2,
                 settings={"depth": 2, "d": 8, "steps": 30, **settings})
    return {c["check"]: c for c in r.checks}


def test_p_one_ratios_are_exactly_one():
    checks = _impact(1.0, placement="before-bn,after-bn,recalibrated")
    for name, c in checks.items():
        if "/none" in name:
            assert c["estimate"] == 1.0 and c["mcse"] == 0.0, name


def test_dropout_costs_regression_more_than_uout():
    checks = _impact(0.5)
    for pl in ("before-bn", "after-bn", "recalibrated"):
        assert checks[f"MSE/none ({pl})"]["estimate"] > 2.0
        assert checks[f"slope ({pl})"]["estimate"] < checks["slope (none)"]["estimate"]
    assert checks["MSE/none (uout)"]["estimate"] < 1.5
    assert checks["accuracy/none (uout)"]["estimate"] > 0.95


def test_thread_count_does_not_change_a_bit():
    runs = []
    for threads in (1, 2):
        r = simulate(p=0.4, experiments=["task-impact"], samples=2_000, threads=threads,
                     settings={"depth": 2, "d": 4, "steps": 5})
        runs.append([(c["estimate"], c["mcse"]) for c in r.checks])
    set_threads(None)
    assert runs[0] == runs[1]


def test_task_selects_rows():
    reg = _impact(0.5, task="regression", placement="after-bn")
    cls = _impact(0.5, task="classification", placement="after-bn")
    assert all(not k.startswith(("accuracy", "argmax")) for k in reg if "ridge" not in k)
    assert all(not k.startswith(("MSE", "slope")) for k in cls if "ridge" not in k)


@pytest.mark.parametrize("settings", [{"steps": 1, "m": 4, "d": 8}, {"cols": 17}, {"classes": 1},
                                      {"task": "ranking"}, {"rows": 0}, {"rows": 3, "cols": 4}])
def test_bad_parameters_are_rejected(settings):
    with pytest.raises(ParameterError):
        simulate(p=0.5, experiments=["task-impact"], samples=1_000, settings=settings)
