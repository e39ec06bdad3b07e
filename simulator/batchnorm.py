"""Batch normalization with the semantics PyTorch users run (``nn.BatchNorm1d``).

Training mode normalizes with the batch mean and the **biased** batch variance;
the running statistics are updated with the **unbiased** one:
``running ← (1 − momentum)·running + momentum·batch_stat``, running_mean from 0
and running_var from 1. ``momentum=None`` (passed to kernels as a negative
number) is the cumulative average: the factor at update k is 1/k. Eval mode
normalizes with the running statistics. Defaults: eps = 1e-5, momentum = 0.1.
"""
import numpy as np
from numba import njit

EPS = 1e-5
MOMENTUM = 0.1


def momentum_code(momentum):
    """Kernel form of ``momentum``: None (cumulative average) becomes −1."""
    return -1.0 if momentum is None else float(momentum)


@njit(cache=True)
def _bn_train(x, eps, out, mean, var):
    """Normalize the batch ``x`` (shape (m, d)) into ``out``; batch mean and biased variance into ``mean``, ``var``."""
    m, d = x.shape
    for k in range(d):
        mu = 0.0
        for i in range(m):
            mu += x[i, k]
        mu /= m
        ss = 0.0
        for i in range(m):
            ss += (x[i, k] - mu) ** 2
        mean[k] = mu
        var[k] = ss / m
        inv = 1.0 / np.sqrt(ss / m + eps)
        for i in range(m):
            out[i, k] = (x[i, k] - mu) * inv


@njit(cache=True)
def _update_running(running_mean, running_var, mean, var, m, momentum, step):
    """One PyTorch update with batch mean and biased variance ``var`` of a batch of m; ``step`` counts from 1."""
    f = 1.0 / step if momentum < 0.0 else momentum
    unbiased = m / (m - 1.0)
    for k in range(mean.size):
        running_mean[k] = (1.0 - f) * running_mean[k] + f * mean[k]
        running_var[k] = (1.0 - f) * running_var[k] + f * var[k] * unbiased


@njit(cache=True)
def _bn_eval(x, running_mean, running_var, eps, out):
    """Normalize ``x`` (shape (m, d)) with the running statistics into ``out``."""
    m, d = x.shape
    for k in range(d):
        inv = 1.0 / np.sqrt(running_var[k] + eps)
        for i in range(m):
            out[i, k] = (x[i, k] - running_mean[k]) * inv
