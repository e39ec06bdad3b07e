"""The trainer's public functions: :func:`train_runs` (R paired runs of every placement) and :func:`trace`
(the first steps of one run, for an oracle to replay), with their results :class:`TrainResult` and
:class:`Trace`.
"""
from dataclasses import dataclass, field

import numba
import numpy as np

from ...core.errors import ParameterError
from ...core.rng import keep_threshold
from .config import M_HIDDEN, M_UOUT, MODE_VARIANT, TEST_FRACTION_DIVISOR, Outputs, Recorder, Spec, TaskArrays, check
from .data import prepare_run
from .layout import layer_table, unpack
from .loop import run_task, train_chunk


@dataclass(frozen=True)
class TrainResult:
    """Test metrics and BN statistics of R runs × P placements (L = depth, K = checkpoints).

    Attributes
    ----------
    placements : ndarray of shape (P,), str
    checkpoints : ndarray of shape (K,), int
    mse : ndarray of shape (R, P)
        Test MSE on the standardised target scale (NaN for classification).
    accuracy, ce : ndarray of shape (R, P)
        Test accuracy and mean cross-entropy (NaN for regression).
    curve : ndarray of shape (R, P, K)
        The primary test metric (MSE or accuracy) after each checkpoint epoch.
    bn_real : ndarray of shape (R, P, L)
        Σ_k of the variance (ddof = 1) over the test rows, eval mode, of BN input unit k.
    bn_running : ndarray of shape (R, P, L)
        Σ_k running_var_k.
    bn_predicted : ndarray of shape (R, P, L)
        Σ_k predicted Var_train(z_k) (see :func:`train_runs`).
    li_max : ndarray of shape (R, P, L)
        mean_k max(r, 1/r), r = (real_k + ε)/(running_k + ε).
    diverged : ndarray of shape (R, P), bool
        The training loss became non-finite; training stopped and metrics are NaN.
    n_train, n_test : int
        Rows of the training split (the validation rows included) and of the test split.
    best_epoch : ndarray of shape (R, P)
        The epoch whose parameters were tested: ``epochs``, or with early stopping the best one.
    val_loss : ndarray of shape (R, P, E)
        With early stopping, the validation loss after each epoch (NaN after the stop); else E = 0.
    n_val : int
        Training rows held out for validation (0 without early stopping).
    """

    placements: np.ndarray
    checkpoints: np.ndarray
    mse: np.ndarray
    accuracy: np.ndarray
    ce: np.ndarray
    curve: np.ndarray
    bn_real: np.ndarray
    bn_running: np.ndarray
    bn_predicted: np.ndarray
    li_max: np.ndarray
    diverged: np.ndarray
    n_train: int = 0
    n_test: int = 0
    best_epoch: np.ndarray = None
    val_loss: np.ndarray = None
    n_val: int = 0


class _Setup:
    """What :func:`train_runs` and :func:`trace` pass the kernels: task arrays, scalars, training modes."""

    def __init__(self, task, config, placements):
        c = config
        X = np.ascontiguousarray(task.X, dtype=np.float64)
        y = np.ascontiguousarray(task.y, dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ParameterError("task: X must be (n, f) and y (n,)")
        classes = 1 if task.kind == "regression" else int(task.classes)
        target = 0 if task.kind == "regression" else (2 if task.median_label else 1)
        lay, nparams = layer_table(X.shape[1], classes, int(c.depth), int(c.width), bool(c.bn))
        modes, variants = [], []
        for col, name in enumerate(placements):
            mode, variant = MODE_VARIANT[name]
            if mode not in modes:
                modes.append(mode)
                variants.append([-1, -1, -1])
            variants[modes.index(mode)][variant] = col
        s2 = [((1.0 - c.p) / c.p) if mode == M_HIDDEN else (c.beta ** 2 / 3.0 if mode == M_UOUT else 0.0)
              for mode in modes]
        self.n_test = X.shape[0] // TEST_FRACTION_DIVISOR
        self.task = TaskArrays(X, y, lay, np.array(c.epochs_checked(), dtype=np.int64))
        self.n_val = c.validation_rows(X.shape[0] - self.n_test)
        self.spec = Spec(target, classes, self.n_test, nparams, bool(c.bn), int(c.epochs), int(c.batch),
                         c.optimizer == "adam", float(c.lr), float(c.momentum), keep_threshold(c.p),
                         1.0 / float(c.p), float(c.beta), c.final_batch == "drop", int(c.patience), self.n_val)
        self.modes = np.array(modes, dtype=np.int64)
        self.variants = np.array(variants, dtype=np.int64)
        self.s2 = np.array(s2)


def _outputs(runs, P, K, L, E=0):
    """NaN metrics, zero BN statistics, no divergence: the :class:`config.Outputs` of R runs (E: epochs of
    validation losses kept, with early stopping)."""
    return Outputs(np.full((runs, P), np.nan), np.full((runs, P), np.nan), np.full((runs, P), np.nan),
                   np.full((runs, P, K), np.nan), np.zeros((runs, P, L)), np.zeros((runs, P, L)),
                   np.zeros((runs, P, L)), np.zeros((runs, P, L)), np.zeros((runs, P), dtype=np.bool_),
                   np.full((runs, P), np.nan), np.full((runs, P, E), np.nan))


def train_runs(task, config, placements, runs, key, progress=None):
    """Train ``runs`` paired runs of every placement and measure them on the test split.

    Parameters
    ----------
    task : simulator.data.tasks.Task
    config : TrainConfig
    placements : sequence of str
        Names from :data:`PLACEMENTS`.
    runs : int
    key : ndarray of shape (2,), dtype uint64
        The stream key (``rng.stream_key``); run r uses blocks 4r .. 4r+3.
    progress : callable or None
        Called as ``progress(runs_done, runs)`` between chunks of runs.

    Returns
    -------
    TrainResult

    Notes
    -----
    The split keeps ⌊n/5⌋ rows for the test. X is standardised with the training split's mean and
    standard deviation (ddof = 0), and so is y for a regression; the test MSE is on that scale.

    ``bn_predicted / bn_real`` is the closed-form Δ of C5 (Li et al. 2019)
    applied to each layer's own measured moments: for BN input
    ``z_k = Σ_j W_kj h̃_j + b_k`` with noise ``h̃_j = h_j ξ_j`` of independent
    masks (E ξ = 1, Var ξ = s²),
    ``Var_train(z_k) = Var_eval(z_k) + s² Σ_j W_kj² E[h_j²]``;
    s² = (1 − p)/p for dropout, β²/3 for Uout, and 0 where that BN saw no noise
    while its running statistics were last accumulated (layer 1 always; the
    placements none, head, recalibrated). The moments are measured on the test
    rows in eval mode. ``li_max`` near 1 says the running statistics fit the
    eval data; Li et al.'s variance shift makes it exceed 1.

    Each (run, training mode) is one task, run on ``numba.get_num_threads()`` threads; the recalibrated
    placements share the training of ``hidden``. The result depends on the key, the task and the config
    alone: not on the thread count.
    """
    placements = check(task, config, placements)
    runs = int(runs)
    if runs < 1:
        raise ParameterError(f"runs={runs}: must be at least 1")
    key = np.asarray(key, dtype=np.uint64)
    a = _Setup(task, config, placements)
    out = _outputs(runs, len(placements), a.task.checkpoints.size, int(config.depth),
                   int(config.epochs) if config.patience > 0 else 0)
    T = a.modes.size
    threads = max(1, numba.get_num_threads())
    done = 0
    while done < runs:
        count = min(threads, runs - done)
        train_chunk(done * T, count * T, threads, key, a.modes, a.variants, a.s2, a.task, a.spec, out)
        done += count
        if progress is not None:
            progress(done, runs)
    for arr in (out.bn_real, out.bn_running, out.bn_predicted, out.li_max):
        arr[out.diverged] = np.nan
    return TrainResult(np.array(placements), a.task.checkpoints, out.mse, out.acc, out.ce, out.curve, out.bn_real,
                       out.bn_running, out.bn_predicted, out.li_max, out.diverged, task.X.shape[0] - a.n_test,
                       a.n_test, out.best_epoch, out.val_loss, a.n_val)


@dataclass(frozen=True)
class Trace:
    """What one run did in its first steps, for an oracle to replay (see :func:`trace`).

    Attributes
    ----------
    Xtr, ytr, Xte, yte : ndarray
        Standardised training and test rows; targets (standardised) or labels.
    init, final : list of dict
        Per Linear: ``W`` (out, in), ``b`` and, with BN, ``gamma``, ``beta``
        (:func:`unpack`): before the first and after the last step.
    batches : list of ndarray
        Step t's rows of ``Xtr``.
    noise : list of ndarray
        Step t's noise multipliers, shape (depth, m, width) (1 where none).
    running_mean, running_var : ndarray of shape (depth, width)
        After the steps.
    recal_mean, recal_var : ndarray of shape (2, depth, width)
        Running statistics re-estimated with dropout off (0) and on (1).
    recal_noise : list of ndarray
        The dropout-on pass's multipliers per batch, shape (depth, m, width).
    """

    Xtr: np.ndarray
    ytr: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    init: list
    final: list
    batches: list
    noise: list
    running_mean: np.ndarray
    running_var: np.ndarray
    recal_mean: np.ndarray
    recal_var: np.ndarray
    recal_noise: list = field(default_factory=list)


def _recorder(steps, depth, batch, width, nparams, n_train, drop_last):
    """A :class:`config.Recorder` for ``steps`` steps, and the row counts of the recalibration's batches."""
    sizes = [m for m in (min(batch, n_train - s) for s in range(0, n_train, batch))
             if m > 1 and not (drop_last and m < batch)]
    return Recorder(np.full((steps, batch), -1, dtype=np.int64), np.zeros((steps, depth, batch, width)),
                    np.zeros((2, nparams)), np.zeros((3, 2, depth, width)),
                    np.zeros((len(sizes), depth, batch, width))), sizes


def trace(task, config, placement, run, key, steps):
    """Run ``steps`` optimizer steps of run ``run`` with the training kernel and record them.

    The same compiled code as :func:`train_runs`, stopped after ``steps``
    steps (or at the last epoch), then recalibrated both ways (with BN).

    Returns
    -------
    Trace
    """
    placements = check(task, config, (placement,))
    key = np.asarray(key, dtype=np.uint64)
    a = _Setup(task, config, placements)
    depth, width, batch = int(config.depth), int(config.width), int(config.batch)
    steps = int(steps)
    if steps < 1:
        raise ParameterError(f"steps={steps}: must be at least 1")
    n, f = a.task.X.shape
    n_test = a.n_test
    n_train = n - n_test
    rec, sizes = _recorder(steps, depth, batch, width, a.spec.nparams, n_train - a.n_val, a.spec.drop_last)
    run_task(key, int(run), a.modes[0], a.variants[0], a.s2[0], a.task, a.spec,
              _outputs(int(run) + 1, 1, 1, depth), rec)
    Xtr, ytr = np.empty((n_train, f)), np.empty(n_train)
    Xte, yte = np.empty((n_test, f)), np.empty(n_test)
    prepare_run(key, int(run), a.task.X, a.task.y, a.spec.target, n_test, Xtr, ytr, Xte, yte)
    done = int((rec.order[:, 0] >= 0).sum())
    batches = [rec.order[t][rec.order[t] >= 0] for t in range(done)]
    noise = [rec.noise[t][:, :len(batches[t])] for t in range(done)]
    recal_noise = [rec.recal_noise[b][:, :sizes[b]] for b in range(len(sizes))]
    return Trace(Xtr, ytr, Xte, yte, unpack(rec.theta[0], a.task.lay), unpack(rec.theta[1], a.task.lay), batches,
                 noise, rec.stats[0, 0], rec.stats[0, 1], rec.stats[1:, 0], rec.stats[1:, 1], recal_noise)
