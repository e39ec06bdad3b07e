"""Trained networks: one Monte Carlo sample is one full training run of an MLP.

The network is ``in → depth × [Linear(width) → (BN) → ReLU → (noise)] → Linear(out)``,
forward and backward written out in Numba in float64 with PyTorch's semantics
and defaults: ``nn.Linear`` init (weight and bias ~ U(−1/√fan_in, 1/√fan_in)),
``nn.BatchNorm1d(width, eps=1e-5, momentum=0.1)`` (γ = 1, β = 0), ``F.mse_loss``
or ``F.cross_entropy`` (means over the batch), ``torch.optim.Adam`` or
``torch.optim.SGD(momentum=μ)``. The *placement* says where the noise goes:

- ``none``: no noise;
- ``hidden``: inverted dropout ``h δ / p`` after every hidden ReLU (with BN, the
  dropout before the next BN: the harmful order of Li et al. 2019);
- ``head``: one dropout after the last hidden block, before the output Linear;
- ``recalibrated``: trained as ``hidden``; then every BN's running statistics
  are reset and re-estimated in training mode with dropout OFF, one pass over
  the training rows in their order (cumulative average, PyTorch
  ``momentum=None``): the third remedy of Li et al.;
- ``recalibrated-dropout-on``: the same pass with dropout ON, which is what
  ``torch.optim.swa_utils.update_bn`` does (it does not remove the shift);
- ``uout``: Uout noise ``h (1 + r)``, r ~ U(−β, β), at the hidden positions.

Runs are paired: run r draws its 80/20 split, its initial weights, its batch
order and its noise from blocks ``4r + 0, 1, 2, 3`` of the stream key; every
placement uses the same split, weights and order and restarts its noise from
the same state (common random numbers). The recalibrated placements are
evaluations of the ``hidden`` training (the very same parameters); their
recalibration pass draws its dropout from a copy of the noise stream at that
point, so training itself is never disturbed.

Draw order (what the tests replay): the split is a Fisher–Yates shuffle
``for i = n−1 .. 1: swap(i, ⌊u (i+1)⌋)`` of ``0..n−1`` with 53-bit uniforms u; the
first ``⌊n/5⌋`` rows are the test rows, the rest the training rows in that
order. Init: layer by layer, the weight (row-major, (out, in)) then the bias,
``(2u − 1)/√fan_in``. Every epoch shuffles ``0..n_train−1`` afresh from the
identity, the same way. Noise: per batch, hidden layer by hidden layer, row by
row: dropout takes ⌈width/64⌉ words of ``rng.draw_mask`` (bit k of word q
gates unit 64q + k), Uout one ``rng.draw_uniform`` per unit.

The package: :mod:`simulator.nn.train.config` (the configuration, its validation, the records the
kernels take), :mod:`simulator.nn.train.layout` (the flat parameter vector), :mod:`simulator.nn.train.data`
(split, standardisation, shuffle), :mod:`simulator.nn.train.kernels` (the passes),
:mod:`simulator.nn.train.loop` (one run, in steps, and the threaded driver) and
:mod:`simulator.nn.train.api` (:func:`train_runs`, :func:`trace`).
"""
from .api import Trace, TrainResult, trace, train_runs
from .config import (
    ADAM_BETA1,
    ADAM_BETA2,
    ADAM_EPS,
    FINAL_BATCH,
    OPTIMIZERS,
    PLACEMENTS,
    TEST_FRACTION_DIVISOR,
    TrainConfig,
    check,
)
from .layout import layer_table, unpack

# The trainer's entry points and settings; its records and kernels are public in their own modules
# (config, layout, data, kernels, loop), imported from there.
__all__ = [
    "ADAM_BETA1", "ADAM_BETA2", "ADAM_EPS", "FINAL_BATCH", "OPTIMIZERS", "PLACEMENTS", "TEST_FRACTION_DIVISOR",
    "TrainConfig", "TrainResult", "Trace", "train_runs", "trace", "layer_table", "unpack", "check",
]
