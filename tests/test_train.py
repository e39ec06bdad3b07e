"""The MLP trainer against PyTorch (the oracle) and numpy/Python references of its streams."""
import numba
import numpy as np
import pytest

from simulator.core.errors import ParameterError
from simulator.core.rng import keep_threshold, stream_key
from simulator.data import tasks
from simulator.nn import train
from tests.conftest import require_torch
from tests.reference import Xoshiro, mask_word

KEY = stream_key(11, "test-train")
STEPS = 50


def uniform(g):
    return (g.next() >> 11) * 2.0 ** -53


def shuffle_reference(g, order):
    for i in range(len(order) - 1, 0, -1):
        j = int(uniform(g) * (i + 1))
        order[i], order[j] = order[j], order[i]
    return order


def prepare_reference(task, run):
    """Split, standardisation and labels of run ``run`` in numpy."""
    n = task.X.shape[0]
    perm = shuffle_reference(Xoshiro(KEY, 4 * run), list(range(n)))
    n_test = n // 5
    test, tr = perm[:n_test], perm[n_test:]
    mean, sd = task.X[tr].mean(0), task.X[tr].std(0)
    sd[sd == 0] = 1.0
    Xtr, Xte = (task.X[tr] - mean) / sd, (task.X[test] - mean) / sd
    ytr, yte = task.y[tr], task.y[test]
    if task.kind == "regression":
        m, s = ytr.mean(), ytr.std()
        ytr, yte = (ytr - m) / s, (yte - m) / s
    elif task.median_label:
        med = np.median(ytr)
        ytr, yte = (ytr > med).astype(float), (yte > med).astype(float)
    return Xtr, ytr, Xte, yte


def torch_replay(tr, config, task, placement):
    """Train the same network in PyTorch float64 on the traced batches and masks; return it."""
    torch = require_torch()
    import torch.nn.functional as F
    torch.set_default_dtype(torch.float64)
    depth = config.depth
    linears = [torch.nn.Linear(e["W"].shape[1], e["W"].shape[0]) for e in tr.init]
    bns = [torch.nn.BatchNorm1d(config.width, eps=1e-5, momentum=0.1) for _ in range(depth)] if config.bn else []
    params = []
    with torch.no_grad():
        for layer, e in enumerate(tr.init):
            linears[layer].weight.copy_(torch.from_numpy(e["W"]))
            linears[layer].bias.copy_(torch.from_numpy(e["b"]))
            params += [linears[layer].weight, linears[layer].bias]
            if config.bn and layer < depth:
                np.testing.assert_array_equal(e["gamma"], 1.0)
                np.testing.assert_array_equal(e["beta"], 0.0)
                params += [bns[layer].weight, bns[layer].bias]
    if config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.lr)
    else:
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)

    def forward(x, noise):
        a = x
        for layer in range(depth):
            z = linears[layer](a)
            if config.bn:
                z = bns[layer](z)
            a = F.relu(z) * torch.from_numpy(noise[layer])
        return linears[depth](a)

    for rows, noise in zip(tr.batches, tr.noise):
        out = forward(torch.from_numpy(tr.Xtr[rows]), noise)
        target = torch.from_numpy(tr.ytr[rows])
        if task.kind == "regression":
            loss = F.mse_loss(out[:, 0], target)
        else:
            loss = F.cross_entropy(out, target.long())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return linears, bns, forward


def close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12, err_msg=what)


def close_null_bias(actual, expected, initial, what):
    """The bias of a Linear followed by BN: its true gradient is 0 (BN subtracts the mean), the
    computed one is rounding noise (~1e-16) which Adam divides by about its ε = 1e-8: both
    sides drift by ~1e-9 in different directions. Require both drifts tiny and alike."""
    assert np.abs(actual - initial).max() < 1e-6 and np.abs(expected - initial).max() < 1e-6, what
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-7, err_msg=what)


ORACLE_CASES = [
    ("diabetes", True, "adam", "hidden", 2, 16),
    ("diabetes", True, "adam", "none", 2, 16),
    ("diabetes", True, "sgd", "head", 2, 16),
    ("diabetes", True, "adam", "uout", 2, 16),
    ("diabetes", False, "adam", "hidden", 2, 16),
    ("diabetes", False, "sgd", "uout", 2, 16),
    ("teacher", False, "sgd", "head", 1, 8),
    ("wine", True, "adam", "hidden", 3, 70),
    ("diabetes-class", True, "sgd", "hidden", 2, 16),
    ("digits", True, "adam", "head", 2, 16),
]
# The oracle replays short final batches too (kept: wine's 143 training rows end in a batch of 15); one case
# trains under the default rule, which drops them.
RULES = {case: "keep" for case in ORACLE_CASES}
ORACLE_CASES.append(("diabetes", True, "sgd", "hidden", 2, 8))
RULES[ORACLE_CASES[-1]] = "drop"


@pytest.mark.parametrize("name, bn, optimizer, placement, depth, width", ORACLE_CASES)
def test_training_matches_torch(name, bn, optimizer, placement, depth, width):
    rule = RULES[(name, bn, optimizer, placement, depth, width)]
    config = train.TrainConfig(depth=depth, width=width, bn=bn, epochs=10, optimizer=optimizer,
                               lr=1e-2 if optimizer == "sgd" else 1e-3, p=0.7, final_batch=rule)
    _matches_torch(tasks.load(name, 0), config, placement)


@pytest.mark.parametrize("batch, placement", [(256, "hidden"), (128, "head")])
def test_training_with_large_batches_matches_torch(batch, placement):
    """The C6 map's large-N regime and bench W5: a diamonds sub-sample of 2,400 rows (1,920 training rows:
    7 batches of 256 and a short one, dropped; 15 of 128), width 64, BN, Adam."""
    config = train.TrainConfig(depth=2, width=64, bn=True, epochs=10, batch=batch, p=0.8)
    _matches_torch(tasks.load("diamonds", 0, rows=2400), config, placement, steps=30)


def _matches_torch(task, config, placement, steps=STEPS):
    torch = require_torch()
    depth, bn = config.depth, config.bn
    tr = train.trace(task, config, placement, 1, KEY, steps)
    assert len(tr.batches) == steps and all(len(b) == config.batch for b in tr.batches[:3])
    linears, bns, _ = torch_replay(tr, config, task, placement)
    for layer, e in enumerate(tr.final):
        close(e["W"], linears[layer].weight.detach().numpy(), f"W{layer}")
        if bn and layer < depth:
            close_null_bias(e["b"], linears[layer].bias.detach().numpy(), tr.init[layer]["b"], f"b{layer}")
        else:
            close(e["b"], linears[layer].bias.detach().numpy(), f"b{layer}")
        if bn and layer < depth:
            close(e["gamma"], bns[layer].weight.detach().numpy(), f"gamma{layer}")
            close(e["beta"], bns[layer].bias.detach().numpy(), f"beta{layer}")
            # running_mean averages z = x Wᵀ + b: it carries the bias's drift (close_null_bias).
            np.testing.assert_allclose(tr.running_mean[layer], bns[layer].running_mean.numpy(), rtol=1e-9,
                                       atol=1e-7, err_msg=f"running_mean{layer}")
            close(tr.running_var[layer], bns[layer].running_var.numpy(), f"running_var{layer}")
    assert torch.get_default_dtype() == torch.float64
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("rule", ["keep", "drop"])
@pytest.mark.parametrize("placement", ["recalibrated", "recalibrated-dropout-on"])
def test_recalibration_matches_torch_cumulative_average(placement, rule):
    torch = require_torch()
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=2, width=16, epochs=10, p=0.6, final_batch=rule)
    tr = train.trace(task, config, placement, 0, KEY, STEPS)
    _, bns, forward = torch_replay(tr, config, task, placement)
    torch.set_default_dtype(torch.float32)
    for layer in bns:
        layer.reset_running_stats()
        layer.momentum = None
    on = placement == "recalibrated-dropout-on"
    n, batch = tr.Xtr.shape[0], config.batch
    starts = [s for s in range(0, n, batch) if min(batch, n - s) > 1 and (rule == "keep" or n - s >= batch)]
    assert len(starts) == (12 if rule == "keep" else 11)  # 354 rows: 11 batches of 32 and one of 2
    assert len(starts) == len(tr.recal_noise)
    with torch.no_grad():
        for b, start in enumerate(starts):
            x = torch.from_numpy(tr.Xtr[start:start + batch])
            noise = tr.recal_noise[b] if on else np.ones((config.depth, len(x), config.width))
            if on:
                assert set(np.unique(noise)) <= {0.0, 1 / 0.6}
            forward(x, noise)
    which = 1 if on else 0
    for layer in range(config.depth):
        np.testing.assert_allclose(tr.recal_mean[which, layer], bns[layer].running_mean.numpy(), rtol=1e-9,
                                   atol=1e-7, err_msg="recal mean (carries the bias drift)")
        close(tr.recal_var[which, layer], bns[layer].running_var.numpy(), "recal var")


def test_recalibrated_trains_exactly_as_hidden():
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=2, width=16, epochs=3)
    a = train.trace(task, config, "hidden", 2, KEY, 20)
    b = train.trace(task, config, "recalibrated", 2, KEY, 20)
    for x, y in zip(a.final, b.final):
        for name in x:
            np.testing.assert_array_equal(x[name], y[name])
    np.testing.assert_array_equal(a.recal_var, b.recal_var)


@pytest.mark.parametrize("name", ["diabetes", "diabetes-class", "wine"])
def test_split_standardisation_and_labels_match_numpy(name):
    task = tasks.load(name, 0)
    config = train.TrainConfig(depth=1, width=8, epochs=1)
    tr = train.trace(task, config, "none", 3, KEY, 1)
    Xtr, ytr, Xte, yte = prepare_reference(task, 3)
    np.testing.assert_allclose(tr.Xtr, Xtr, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tr.Xte, Xte, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tr.ytr, ytr, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tr.yte, yte, rtol=1e-12, atol=1e-13)
    assert len(tr.Xte) == task.X.shape[0] // 5
    if task.median_label:
        assert abs(tr.ytr.mean() - 0.5) < 0.01


def test_init_batches_and_masks_replay_the_streams():
    """Blocks 4r+1 (init), 4r+2 (batch order) and 4r+3 (masks) replayed in Python."""
    task = tasks.load("wine", 0)
    run, p, width, depth, batch = 1, 0.7, 70, 2, 71
    config = train.TrainConfig(depth=depth, width=width, epochs=3, batch=batch, p=p)
    tr = train.trace(task, config, "hidden", run, KEY, 6)
    g = Xoshiro(KEY, 4 * run + 1)
    for e in tr.init:
        bound = 1 / np.sqrt(e["W"].shape[1])
        for value in list(e["W"].ravel()) + list(e["b"]):
            assert value == (2 * uniform(g) - 1) * bound
    # 143 training rows in batches of 71: 71, 71 and a final single row that is dropped.
    g = Xoshiro(KEY, 4 * run + 2)
    expected = []
    for _ in range(3):
        order = shuffle_reference(g, list(range(143)))
        expected += [order[0:71], order[71:142]]
    assert [list(b) for b in tr.batches] == expected
    g = Xoshiro(KEY, 4 * run + 3)
    threshold = keep_threshold(p)
    for step in range(2):
        for layer in range(depth):
            for i in range(batch):
                words = [mask_word(g, threshold) for _ in range(2)]
                gates = [(words[k // 64] >> (k % 64)) & 1 for k in range(width)]
                np.testing.assert_array_equal(tr.noise[step][layer, i], np.array(gates) / p)


def test_noise_positions_by_placement():
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=3, width=16, epochs=1, p=0.5, beta=0.2)
    for placement in ("none", "head", "uout", "hidden"):
        noise = train.trace(task, config, placement, 0, KEY, 2).noise[0]
        if placement == "none":
            np.testing.assert_array_equal(noise, 1.0)
        elif placement == "head":
            np.testing.assert_array_equal(noise[:2], 1.0)
            assert set(np.unique(noise[2])) == {0.0, 2.0}
        elif placement == "uout":
            assert (np.abs(noise - 1) < 0.2).all() and abs(noise.mean() - 1) < 0.02
        else:
            assert set(np.unique(noise)) == {0.0, 2.0}


SMALL = train.TrainConfig(depth=2, width=16, epochs=4, checkpoints=(1, 2))


def test_keep_probability_one_is_no_noise_exactly():
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=2, width=16, epochs=4, p=1.0, checkpoints=(2,))
    r = train.train_runs(task, config, ("none", "hidden", "head"), 2, KEY)
    for field in ("mse", "curve", "bn_real", "bn_running", "bn_predicted", "li_max"):
        values = getattr(r, field)
        np.testing.assert_array_equal(values[:, 0], values[:, 1], err_msg=field)
        np.testing.assert_array_equal(values[:, 0], values[:, 2], err_msg=field)


def test_result_shapes_and_prediction_without_noise_is_the_measurement():
    task = tasks.load("diabetes", 0)
    r = train.train_runs(task, SMALL, train.PLACEMENTS, 2, KEY)
    R, P, L, K = 2, len(train.PLACEMENTS), 2, 3
    assert r.mse.shape == (R, P) and r.curve.shape == (R, P, K) and r.bn_real.shape == (R, P, L)
    assert list(r.checkpoints) == [1, 2, 4] and list(r.placements) == list(train.PLACEMENTS)
    assert np.isnan(r.accuracy).all() and np.isnan(r.ce).all() and not r.diverged.any()
    np.testing.assert_array_equal(r.curve[:, :, -1], r.mse)
    col = {name: j for j, name in enumerate(train.PLACEMENTS)}
    for name in ("none", "head", "recalibrated"):
        np.testing.assert_array_equal(r.bn_predicted[:, col[name]], r.bn_real[:, col[name]])
    # Layer 1's input never sees noise: predicted = real there for every placement.
    np.testing.assert_array_equal(r.bn_predicted[:, :, 0], r.bn_real[:, :, 0])
    # Dropout before BN: the predicted training variance exceeds the eval one.
    assert (r.bn_predicted[:, col["hidden"], 1] > r.bn_real[:, col["hidden"], 1]).all()
    assert (r.li_max >= 1.0).all()


def test_classification_metrics():
    task = tasks.load("wine", 0)
    r = train.train_runs(task, SMALL, ("none", "hidden"), 2, KEY)
    assert np.isnan(r.mse).all()
    assert ((r.accuracy >= 0) & (r.accuracy <= 1)).all() and (r.ce > 0).all()
    np.testing.assert_array_equal(r.curve[:, :, -1], r.accuracy)


def test_without_bn_the_statistics_are_zero():
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=2, width=16, bn=False, epochs=2)
    r = train.train_runs(task, config, ("none", "uout"), 1, KEY)
    assert (r.bn_real == 0).all() and (r.bn_predicted == 0).all() and r.bn_real.shape == (1, 2, 2)


def test_results_do_not_depend_on_the_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    task = tasks.load("diabetes", 0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = train.train_runs(task, SMALL, train.PLACEMENTS, 3, KEY)
        numba.set_num_threads(2)
        b = train.train_runs(task, SMALL, train.PLACEMENTS, 3, KEY)
    finally:
        numba.set_num_threads(before)
    for field in ("mse", "curve", "bn_real", "bn_running", "bn_predicted", "li_max"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_divergence_is_flagged_and_leaves_nan():
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=2, width=16, bn=False, epochs=3, optimizer="sgd", lr=1e3)
    r = train.train_runs(task, config, ("none",), 1, KEY)
    assert r.diverged.all() and np.isnan(r.mse).all()


def test_progress_is_reported():
    calls = []
    train.train_runs(tasks.load("diabetes", 0), train.TrainConfig(depth=1, width=8, epochs=1), ("none",), 3, KEY,
                     progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (3, 3) and all(total == 3 for _, total in calls)


@pytest.mark.parametrize("change, placements", [
    (dict(bn=False), ("recalibrated",)),
    (dict(bn=False), ("recalibrated-dropout-on",)),
    ({}, ("dropout",)),
    ({}, ()),
    ({}, ("none", "none")),
    (dict(p=0.0), ("hidden",)),
    (dict(p=1.5), ("hidden",)),
    (dict(optimizer="rmsprop"), ("none",)),
    (dict(batch=1), ("none",)),
    (dict(depth=0), ("none",)),
    (dict(checkpoints=(0,)), ("none",)),
    (dict(lr=-1.0), ("none",)),
])
def test_bad_input_raises_parameter_error(change, placements):
    config = train.TrainConfig(**{**dict(depth=1, width=4, epochs=2), **change})
    with pytest.raises(ParameterError) as info:
        train.train_runs(tasks.load("diabetes", 0), config, placements, 1, KEY)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- protocol: batches and stopping


def mlp_eval_reference(layers, running_mean, running_var, x, bn, eps=1e-5):
    """Eval-mode forward of the trained MLP in plain numpy: Linear → (BN with running statistics) → ReLU."""
    a = np.asarray(x, dtype=float)
    for layer, e in enumerate(layers):
        z = a @ e["W"].T + e["b"]
        if layer == len(layers) - 1:
            return z
        if bn:
            z = (z - running_mean[layer]) / np.sqrt(running_var[layer] + eps) * e["gamma"] + e["beta"]
        a = np.maximum(z, 0.0)


@pytest.mark.parametrize("rule, count", [("keep", 12), ("drop", 11)])
def test_a_short_final_batch_is_kept_or_dropped_by_the_stated_rule(rule, count):
    """diabetes: 354 training rows in batches of 32 are 11 full batches and one of 2 rows."""
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=1, width=8, epochs=2, final_batch=rule)
    tr = train.trace(task, config, "none", 0, KEY, 2 * count)
    g = Xoshiro(KEY, 2)
    expected = []
    for _ in range(2):
        order = shuffle_reference(g, list(range(354)))
        expected += [order[s:s + 32] for s in range(0, 354, 32) if rule == "keep" or s + 32 <= 354]
    assert [list(b) for b in tr.batches] == expected
    assert len(expected) == 2 * count


def test_early_stopping_is_the_held_out_training_at_its_best_epoch():
    """The naive reference: the same run with the validation rows held out, trained for the best epoch's
    number of epochs, is the tested network, bit for bit; the best epoch is the first minimum of the
    validation losses, and training stops ``patience`` epochs after it."""
    task = tasks.load("diabetes", 0)
    placements = ("none", "hidden", "recalibrated")
    config = train.TrainConfig(depth=2, width=16, epochs=40, patience=5)
    early = train.train_runs(task, config, placements, 3, KEY)
    assert early.n_val == 354 // 5
    for run in range(3):
        for col, name in enumerate(placements):
            losses = early.val_loss[run, col]
            seen = losses[np.isfinite(losses)]
            best = int(early.best_epoch[run, col])
            assert best == int(np.argmin(seen)) + 1
            assert seen.size == min(best + config.patience, config.epochs)
            again = train.train_runs(task, train.TrainConfig(depth=2, width=16, epochs=best, holdout=True),
                                     (name,) if name != "recalibrated" else ("hidden", name), 3, KEY)
            j = list(again.placements).index(name)
            assert again.mse[run, j] == early.mse[run, col]
            assert np.array_equal(again.bn_running[run, j], early.bn_running[run, col])


def test_the_validation_loss_is_the_eval_loss_of_the_held_out_rows():
    """A naive numpy forward of the traced network on the held-out rows gives the recorded loss."""
    task = tasks.load("diabetes", 0)
    config = train.TrainConfig(depth=2, width=16, epochs=3, patience=3)
    early = train.train_runs(task, config, ("none",), 1, KEY)
    n_fit = 354 - early.n_val
    steps_per_epoch = n_fit // 32  # the default rule drops a short final batch
    for epoch in (1, 2):
        tr = train.trace(task, train.TrainConfig(depth=2, width=16, epochs=3, holdout=True), "none", 0, KEY,
                         epoch * steps_per_epoch)
        assert len(tr.batches) == epoch * steps_per_epoch and max(max(b) for b in tr.batches) < n_fit
        out = mlp_eval_reference(tr.final, tr.running_mean, tr.running_var, tr.Xtr[n_fit:], True)
        mse = float(np.mean((out[:, 0] - tr.ytr[n_fit:]) ** 2))
        assert mse == pytest.approx(early.val_loss[0, 0, epoch - 1], rel=1e-12)


def test_early_stopping_settings_are_checked():
    task = tasks.load("diabetes", 0)
    for change, word in (({"patience": -1}, "patience"), ({"patience": 200}, "patience"),
                         ({"patience": 3, "checkpoints": (1,)}, "checkpoints"),
                         ({"final_batch": "odd"}, "final_batch")):
        with pytest.raises(ParameterError, match=word):
            train.train_runs(task, train.TrainConfig(epochs=100, **change), ("none",), 1, KEY)
    tiny = tasks.load("teacher", 0, rows=10)
    with pytest.raises(ParameterError, match="validation split"):
        train.train_runs(tiny, train.TrainConfig(epochs=5, patience=2), ("none",), 1, KEY)
