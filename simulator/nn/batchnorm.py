"""Batch normalization with the semantics PyTorch users run (``nn.BatchNorm1d``).

Training mode normalizes with the batch mean and the **biased** batch variance;
the running statistics are updated with the **unbiased** one:
``running ← (1 − momentum)·running + momentum·batch_stat``, running_mean from 0
and running_var from 1. ``momentum=None`` (passed to kernels as a negative
number) is the cumulative average: the factor at update k is 1/k. Eval mode
normalizes with the running statistics. Defaults: eps = 1e-5, momentum = 0.1.
"""
import numpy as np

from ..core.jit import kernel

EPS = 1e-5
MOMENTUM = 0.1


def momentum_code(momentum):
    """Kernel form of ``momentum``: None (cumulative average) becomes −1."""
    return -1.0 if momentum is None else float(momentum)


@kernel
def bn_train(x, eps, out, mean, var):
    """Normalize the batch ``x`` (shape (m, d)) into ``out``; batch mean and biased variance into ``mean``, ``var``.

    Row by row (the loops over units are contiguous and vectorize); each unit's sums
    still run over i = 0..m−1 in order, so the results do not depend on the layout.
    """
    m, d = x.shape
    inv = np.empty(d)
    for k in range(d):
        mean[k] = 0.0
        var[k] = 0.0
    for i in range(m):
        for k in range(d):
            mean[k] += x[i, k]
    for k in range(d):
        mean[k] /= m
    for i in range(m):
        for k in range(d):
            var[k] += (x[i, k] - mean[k]) ** 2
    for k in range(d):
        var[k] /= m
        inv[k] = 1.0 / np.sqrt(var[k] + eps)
    for i in range(m):
        for k in range(d):
            out[i, k] = (x[i, k] - mean[k]) * inv[k]


@kernel
def unit_moments(x):
    """``(mean, biased variance)`` of one unit's batch ``x`` (shape (m,)), summed as :func:`bn_train` sums.

    For kernels that need only the statistics of a single unit: the same numbers
    bit for bit, without the normalized output or the per-unit arrays.
    """
    m = x.size
    total = 0.0
    for i in range(m):
        total += x[i]
    mean = total / m
    total = 0.0
    for i in range(m):
        total += (x[i] - mean) ** 2
    return mean, total / m


@kernel
def update_running(running_mean, running_var, mean, var, m, momentum, step):
    """One PyTorch update with batch mean and biased variance ``var`` of a batch of m; ``step`` counts from 1."""
    f = 1.0 / step if momentum < 0.0 else momentum
    unbiased = m / (m - 1.0)
    for k in range(mean.size):
        running_mean[k] = (1.0 - f) * running_mean[k] + f * mean[k]
        running_var[k] = (1.0 - f) * running_var[k] + f * var[k] * unbiased


@kernel
def bn_eval(x, running_mean, running_var, eps, out):
    """Normalize ``x`` (shape (m, d)) with the running statistics into ``out``."""
    m, d = x.shape
    inv = np.empty(d)
    for k in range(d):
        inv[k] = 1.0 / np.sqrt(running_var[k] + eps)
    for i in range(m):
        for k in range(d):
            out[i, k] = (x[i, k] - running_mean[k]) * inv[k]


def running_weights(momentum, steps):
    """Weights of the initial value and of each batch statistic in a running statistic.

    Parameters
    ----------
    momentum : float or None
        PyTorch momentum; None is the cumulative average.
    steps : int
        Number of updates.

    Returns
    -------
    a0 : float
        Weight of the initial value (running_mean 0, running_var 1).
    a : ndarray of shape (steps,)
        Weight of the statistic of batch k (k = 1..steps) after the last update.

    Notes
    -----
    Unrolling ``running ← (1 − f_k) running + f_k stat_k`` gives
    ``a0 = Π_k (1 − f_k)`` and ``a_k = f_k Π_{j>k} (1 − f_j)`` with ``f_k = momentum``,
    or ``f_k = 1/k`` for the cumulative average (then ``a0 = 0`` and ``a_k = 1/steps``).
    """
    k = np.arange(1, steps + 1, dtype=float)
    f = 1.0 / k if momentum is None else np.full(steps, float(momentum))
    # Product over j > k of (1 − f_j), computed from the end.
    later = np.append(np.cumprod((1.0 - f)[::-1])[::-1][1:], 1.0)
    return float(np.prod(1.0 - f)), f * later


def eval_variance_deviation(var_eval, var_train, var_rm, bias_rm, var_rv, mean_rv, eps):
    """Leading-order relative deviation of the eval-mode BN output variance from its limit.

    Parameters
    ----------
    var_eval : float
        Variance of the data BN sees in eval mode.
    var_train : float
        Variance of the data BN was trained on (what running_var estimates).
    var_rm, bias_rm : float
        Variance of running_mean and its bias ``E[running_mean] − E[eval data]``.
    var_rv, mean_rv : float
        Variance and mean of running_var.
    eps : float

    Returns
    -------
    float
        ``E[y²] / limit − 1`` to second order in the running statistics' noise, with
        ``limit = var_eval / (var_train + eps)`` (γ = 1).

    Notes
    -----
    For eval data independent of the training run,
    ``E[y²] = E[(var_eval + (E x − running_mean)²) / (running_var + ε)]``; expanding
    ``1/(R + δ)`` to second order in δ = running_var − R and neglecting the
    correlation of running_mean with running_var gives
    ``E[y²] ≈ (var_eval + var_rm + bias_rm²) (1 + var_rv/(R + ε)²) / (R + ε)``.
    Finite momentum keeps var_rm and var_rv of order momentum/(2 − momentum)
    divided by the batch size: the eval variance reaches its limit only in the
    limit of many steps, small momentum or large batches.
    """
    r = mean_rv + eps
    approx = (var_eval + var_rm + bias_rm ** 2) * (1.0 + var_rv / r ** 2) / r
    return approx / (var_eval / (var_train + eps)) - 1.0


@kernel
def bn_backward(dy, xhat, gamma, var, eps, dz, dgamma, dbeta):
    """Backward of training-mode ``y = γ x̂ + β``, ``x̂ = (z − mean) / √(var + ε)`` over a batch.

    Parameters
    ----------
    dy, xhat : ndarray of shape (m, d)
        Gradient of the loss with respect to y, and the normalized batch.
    gamma, var : ndarray of shape (d,)
        Scale γ and the biased batch variance used by the forward pass.
    eps : float
    dz : ndarray of shape (m, d)
        Out: gradient with respect to the BN input z.
    dgamma, dbeta : ndarray of shape (d,)
        Out: gradients with respect to γ and β.

    Notes
    -----
    With the batch statistics differentiated too (PyTorch's training mode),
    ``∂β = Σ_i dy_i``, ``∂γ = Σ_i dy_i x̂_i`` and
    ``dz_i = γ / (m √(var + ε)) · (m dy_i − ∂β − x̂_i ∂γ)``.
    Sums run over the rows i = 0..m−1 in order, row by row (contiguous units).
    """
    m, d = dy.shape
    for k in range(d):
        dgamma[k] = 0.0
        dbeta[k] = 0.0
    for i in range(m):
        for k in range(d):
            dbeta[k] += dy[i, k]
            dgamma[k] += dy[i, k] * xhat[i, k]
    scale = np.empty(d)
    for k in range(d):
        scale[k] = gamma[k] / (m * np.sqrt(var[k] + eps))
    for i in range(m):
        for k in range(d):
            dz[i, k] = scale[k] * (m * dy[i, k] - dbeta[k] - xhat[i, k] * dgamma[k])
