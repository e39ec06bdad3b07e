"""The trainer's configuration: :class:`TrainConfig` (what a user sets), its validation, and the
frozen records the compiled code takes instead of long argument lists.

The records are NamedTuples, which Numba passes as typed tuples: :class:`Spec` (the scalars of a
run), :class:`TaskArrays` (data, layer table, checkpoints), :class:`Outputs` (the result arrays
every run writes its row of) and :class:`Recorder` (what :func:`simulator.nn.train.trace` records;
empty arrays otherwise).
"""
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ...core.errors import ParameterError, shown
from .. import placements as pl
from ..noise import dropout, uout

PLACEMENTS = pl.TRAINER_NAMES
OPTIMIZERS = ("adam", "sgd")
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
TEST_FRACTION_DIVISOR = 5  # n_test = ⌊n / 5⌋
VALIDATION_DIVISOR = 5  # with early stopping, n_val = ⌊n_train / 5⌋ of the training rows
FINAL_BATCH = ("keep", "drop")

# Training modes (what noise the network trains with) and evaluation variants.
M_NONE, M_HIDDEN, M_HEAD, M_UOUT = 0, 1, 2, 3
V_PLAIN, V_RECAL_OFF, V_RECAL_ON = 0, 1, 2
# Noise kind at one position (the codes of simulator.nn.noise; 0: none).
K_NONE, K_DROPOUT, K_UOUT = 0, dropout.CODE, uout.CODE


def _mode_variant(p):
    """``(training mode, evaluation variant)`` of trainer placement ``p`` (a ``placements.Placement``)."""
    if not p.noise:
        mode = M_NONE
    elif p.noise == uout.NAME:
        mode = M_UOUT
    else:
        mode = M_HIDDEN if p.position == pl.HIDDEN else M_HEAD
    variant = {"": V_PLAIN, pl.OFF: V_RECAL_OFF, pl.ON: V_RECAL_ON}[p.recalibration]
    return mode, variant


MODE_VARIANT = {name: _mode_variant(pl.get(name, pl.TRAINER)) for name in PLACEMENTS}


@dataclass(frozen=True)
class TrainConfig:
    """How a network is built and trained (defaults: the diabetes study).

    Attributes
    ----------
    depth, width : int
        Hidden blocks and units per block.
    bn : bool
        BatchNorm1d after every hidden Linear.
    epochs : int
    batch : int
        Batch size.
    final_batch : str
        What an epoch does with a final batch shorter than ``batch``: ``"drop"`` (the default) skips it
        (``DataLoader(drop_last=True)``, what BN users do: BN on a batch of 2 rows is strong noise);
        ``"keep"`` trains on it unless it is a single row (BN cannot train on one row; PyTorch's
        ``DataLoader(drop_last=False)`` would fail there).
    optimizer : str
        "adam" (``torch.optim.Adam(lr)``) or "sgd" (``torch.optim.SGD(lr, momentum)``).
    lr, momentum : float
    p : float
        Keep probability of dropout (PyTorch's ``nn.Dropout(1 − p)``).
    beta : float
        Half-width of the Uout noise.
    checkpoints : tuple of int
        Epochs after which the test metric is recorded; the last epoch is always added.
    patience : int
        0: train ``epochs`` epochs. Otherwise early stopping: the last ⌊n_train/5⌋ training rows (in split
        order) are held out as a validation split; after every epoch the validation loss (MSE, or
        cross-entropy for a classifier) is measured in eval mode; training stops ``patience`` epochs after
        the best one (or after ``epochs``) and the parameters and BN statistics of the best epoch are
        restored before the test. No checkpoints then.
    holdout : bool
        Hold the validation split out without early stopping (train ``epochs`` epochs on the other rows):
        the same network as early stopping would have at that epoch, for a reference.
    """

    depth: int = 2
    width: int = 64
    bn: bool = True
    epochs: int = 100
    batch: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    p: float = 0.5
    beta: float = 0.1
    checkpoints: tuple = ()
    final_batch: str = "drop"
    patience: int = 0
    holdout: bool = False

    def validation_rows(self, n_train):
        """Rows of a training split of ``n_train`` held out for validation (0 without early stopping)."""
        return n_train // VALIDATION_DIVISOR if self.patience > 0 or self.holdout else 0

    def epochs_checked(self):
        """The checkpoint epochs, sorted, with the last epoch included."""
        return tuple(sorted(set(int(e) for e in self.checkpoints) | {int(self.epochs)}))


class Spec(NamedTuple):
    """The scalars of a run, as the kernels take them (from a :class:`TrainConfig` and a task).

    ``target``: 0 regression (y standardised), 1 class labels as given, 2 ``1[y > median]``;
    ``classes``: outputs (1 for a regression); ``adam``: Adam, else SGD with momentum ``mu``;
    ``threshold``, ``inv_p``: ``rng.keep_threshold(p)`` and 1/p; ``beta``: Uout's half-width.
    """

    target: int
    classes: int
    n_test: int
    nparams: int
    bn: bool
    epochs: int
    batch: int
    adam: bool
    lr: float
    mu: float
    threshold: np.uint64
    inv_p: float
    beta: float
    drop_last: bool
    patience: int
    n_val: int


class TaskArrays(NamedTuple):
    """The task's rows ``X`` (n, f) and targets ``y`` (n,), the layer table ``lay`` and the checkpoint epochs."""

    X: np.ndarray
    y: np.ndarray
    lay: np.ndarray
    checkpoints: np.ndarray


class Outputs(NamedTuple):
    """Result arrays (R runs, P placements, K checkpoints, L BN layers); a run writes its own row.

    ``mse``, ``acc``, ``ce``, ``diverged``: (R, P); ``curve``: (R, P, K); ``bn_real``, ``bn_running``,
    ``bn_predicted``, ``li_max``: (R, P, L), as in :class:`simulator.nn.train.api.TrainResult`;
    ``best_epoch`` (R, P): the epoch whose parameters were tested; ``val_loss`` (R, P, E): the validation
    loss after each epoch (E = ``epochs`` with early stopping, else 0; NaN after the stop).
    """

    mse: np.ndarray
    acc: np.ndarray
    ce: np.ndarray
    curve: np.ndarray
    bn_real: np.ndarray
    bn_running: np.ndarray
    bn_predicted: np.ndarray
    li_max: np.ndarray
    diverged: np.ndarray
    best_epoch: np.ndarray
    val_loss: np.ndarray


class Recorder(NamedTuple):
    """What :func:`simulator.nn.train.trace` records (all empty, first axis 0, in :func:`train_runs`).

    ``order`` (S, batch): limits training to S steps and receives each step's training rows (−1: none);
    ``noise`` (S, L, batch, width): the noise multipliers; ``theta`` (2, nparams): the initial and final
    parameters; ``stats`` (3, 2, L, width): running mean and variance of the plain, recalibrated-off and
    recalibrated-on networks; ``recal_noise`` (batches, L, batch, width): the dropout-on pass's noise.
    """

    order: np.ndarray
    noise: np.ndarray
    theta: np.ndarray
    stats: np.ndarray
    recal_noise: np.ndarray


def empty_recorder(depth, width, batch, nparams):
    """A :class:`Recorder` that records nothing (what :func:`train_runs` passes)."""
    return Recorder(np.empty((0, batch), dtype=np.int64), np.empty((0, depth, batch, width)),
                    np.empty((0, nparams)), np.empty((0, 2, depth, width)), np.empty((0, depth, batch, width)))


def _check_config(c):
    """ParameterError unless every field of TrainConfig ``c`` is valid."""
    if not isinstance(c, TrainConfig):
        raise ParameterError("config must be a TrainConfig")
    for name in ("depth", "width", "epochs", "batch"):
        value = getattr(c, name)
        if int(value) != value or value < (2 if name == "batch" else 1):
            raise ParameterError(f"{name}={shown(value)}: must be an integer ≥ {2 if name == 'batch' else 1}")
    if c.optimizer not in OPTIMIZERS:
        raise ParameterError(f"optimizer={shown(c.optimizer)}: valid: {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise ParameterError(f"lr={shown(c.lr)}: must be a positive number")
    if not 0.0 <= c.momentum < 1.0:
        raise ParameterError(f"momentum={shown(c.momentum)}: must be in [0, 1)")
    if not 1e-9 <= c.p <= 1.0:
        raise ParameterError(f"p={shown(c.p)}: the keep probability must be in [1e-9, 1]")
    if not 0.0 <= c.beta < 1.0:
        raise ParameterError(f"beta={shown(c.beta)}: must be in [0, 1)")
    bad = [e for e in c.checkpoints if int(e) != e or not 1 <= e <= c.epochs]
    if bad:
        raise ParameterError(f"checkpoints: {shown(bad[0])} is not an epoch in 1..{c.epochs}")
    if c.final_batch not in FINAL_BATCH:
        raise ParameterError(f"final_batch={shown(c.final_batch)}: valid: {', '.join(FINAL_BATCH)}")
    if int(c.patience) != c.patience or not 0 <= c.patience <= c.epochs:
        raise ParameterError(f"patience={shown(c.patience)}: must be an integer in 0..epochs ({c.epochs})")
    if c.patience > 0 and c.checkpoints:
        raise ParameterError("checkpoints: early stopping (patience > 0) tests only the restored best epoch")


def _check_placements(placements, bn):
    """The placement tuple; ParameterError for none, an unknown or repeated one, or recalibration without BN."""
    placements = (placements,) if isinstance(placements, str) else tuple(placements)
    if not placements:
        raise ParameterError(f"no placement given; valid: {', '.join(PLACEMENTS)}")
    for name in placements:
        if name not in PLACEMENTS:
            raise ParameterError(f"unknown placement {shown(name)}; valid: {', '.join(PLACEMENTS)}")
    if len(set(placements)) != len(placements):
        raise ParameterError("placements: each may appear once")
    if not bn and any(pl.get(name, pl.TRAINER).recalibration for name in placements):
        raise ParameterError("recalibrated placements re-estimate BN statistics: they need bn=True")
    return placements


def check(task, config, placements):
    """Validate the task, the config and the placements; return the placement tuple."""
    _check_config(config)
    placements = _check_placements(placements, config.bn)
    if task.kind not in ("regression", "classification"):
        raise ParameterError(f"task kind {shown(task.kind)}: valid: regression, classification")
    n = task.X.shape[0]
    if n // TEST_FRACTION_DIVISOR < 2 or n - n // TEST_FRACTION_DIVISOR < 2:
        raise ParameterError(f"task {task.name}: {n} rows are too few for an 80/20 split")
    n_train = n - n // TEST_FRACTION_DIVISOR
    n_val = config.validation_rows(n_train)
    if (config.patience > 0 or config.holdout) and (n_val < 2 or n_train - n_val < 2):
        raise ParameterError(f"task {task.name}: {n} rows are too few to hold out a validation split")
    return placements
