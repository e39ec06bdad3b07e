"""The Linear → BN → ReLU chain shared by ``network-shift`` (C5) and ``task-impact`` (C6).

A chain of ``depth`` blocks of width d. Block l computes
``z = h̃ W_l`` (Linear, no bias: BN removes it), ``ŷ = BN(z)`` (PyTorch
``BatchNorm1d`` with γ = 1, β = 0, its initial affine parameters) and
``h = ReLU(ŷ)``. Where the noise goes is the *placement*:

- ``none``: no noise anywhere (the reference network);
- ``before-bn``: inverted dropout ``h̃ = h δ / p`` on the input of every Linear,
  so every BN sees dropout noise (the harmful order);
- ``after-bn``: dropout only on the last block's output, before the head;
- ``recalibrated``: as ``before-bn``, then the running statistics are reset and
  re-estimated in training mode with dropout off, on the same training batches;
- ``uout``: as ``before-bn`` with Uout noise ``h̃ = h + h r``, ``r ~ U(−β, β)``
  (Li et al. 2019), which does not depend on p.

Weights are fixed per (seed, d): ``W_l ~ N(0, 2/d)`` i.i.d. (He / Kaiming normal,
fan-in, ReLU gain), each layer from its own stream, so a chain of depth k is the
first k blocks of any deeper one. Inputs are ``x = c + √(v(1−ρ)) g + √(vρ) g₀``
(g ~ N(0, I_d), g₀ ~ N(0, 1) shared by a row): mean c, variance v, pairwise
correlation ρ.

Draw order (what the numpy reference replays): a batch draws its rows one by one
from the *input* stream (d standard normals by ``rng._fill_normal``, then, when
ρ > 0, a normal pair whose first member is g₀); the noise draws one raw 64-bit
number per row and unit (row-major), layer by layer, from the *mask* stream,
whether or not the unit is zero: a gate ``rng._keep`` or a uniform ``rng._uniform``.
"""
import numpy as np
from numba import njit

from .batchnorm import _bn_eval, _bn_train, _update_running
from .rng import _fill_normal, _keep, _normal_pair, _uniform, stream_key

NONE, BEFORE, AFTER, RECAL, UOUT = 0, 1, 2, 3, 4
PLACEMENTS = ("before-bn", "after-bn", "recalibrated", "uout")
CODES = {"none": NONE, "before-bn": BEFORE, "after-bn": AFTER, "recalibrated": RECAL, "uout": UOUT}
_DROPOUT, _UOUT = 1, 2


def he_weights(seed, d, depth):
    """The chain's weights, input-major: ``z_k = Σ_j h_j W[l, j, k]``.

    Parameters
    ----------
    seed : int
    d, depth : int

    Returns
    -------
    ndarray of shape (depth, d, d)
        ``W[l] ~ N(0, 2/d)`` i.i.d. (He et al. 2015, fan-in); layer l from the
        stream (seed, "chain-weights", d, l), so it does not depend on p or depth.
    """
    W = np.empty((depth, d, d))
    for layer in range(depth):
        rng = np.random.default_rng(stream_key(seed, "chain-weights", d, layer))
        W[layer] = rng.normal(0.0, np.sqrt(2.0 / d), (d, d))
    return W


def input_scales(v, rho):
    """``(a, b)`` with ``x = c + a g + b g₀``: ``a = √(v(1 − ρ))``, ``b = √(v ρ)``."""
    return float(np.sqrt(v * (1.0 - rho))), float(np.sqrt(v * rho))


@njit(cache=True)
def _draw_inputs(s, x, c, a, b):
    """Fill the rows of ``x`` (shape (r, d)) with inputs of mean c, variance a² + b², correlation b²/(a² + b²)."""
    r, d = x.shape
    for i in range(r):
        row = x[i]
        _fill_normal(s, row, 0.0, 1.0)
        g0 = _normal_pair(s)[0] if b != 0.0 else 0.0
        for j in range(d):
            row[j] = c + a * row[j] + b * g0


@njit(cache=True)
def _apply_noise(s, h, kind, threshold, inv_p, beta):
    """In place: inverted dropout ``h δ / p`` (kind 1) or Uout ``h + h r``, ``r ~ U(−β, β)`` (kind 2)."""
    r, d = h.shape
    for i in range(r):
        for j in range(d):
            if kind == _DROPOUT:
                h[i, j] = h[i, j] * _keep(s, threshold) * inv_p
            else:
                h[i, j] = h[i, j] + h[i, j] * (beta * (2.0 * _uniform(s) - 1.0))


@njit(cache=True)
def _linear(h, W, z):
    """``z = h W`` for rows of h, as axpy over the inputs (vectorizes without reordering any sum)."""
    r, d_in = h.shape
    d_out = W.shape[1]
    for i in range(r):
        zi = z[i]
        for k in range(d_out):
            zi[k] = 0.0
        for j in range(d_in):
            a = h[i, j]
            if a != 0.0:  # ReLU zeros and dropped units: most of the inputs
                wj = W[j]
                for k in range(d_out):
                    zi[k] += a * wj[k]


@njit(cache=True)
def _layer_noise(code):
    """Noise kind on the input of every Linear for a placement code (0: none)."""
    if code == BEFORE or code == RECAL:
        return _DROPOUT
    if code == UOUT:
        return _UOUT
    return 0


@njit(cache=True)
def _train_batch(x, W, code, s_mask, threshold, inv_p, beta, eps, momentum, step, rm, rv,
                 h, z, y, bmean, bvar, relu_sum):
    """One training-mode batch through the chain; running statistics updated in place.

    Parameters
    ----------
    x : ndarray of shape (m, d)
        The input batch (left unchanged).
    code : int
        Placement code (NONE, BEFORE, AFTER, RECAL, UOUT).
    step : int
        Number of this update, from 1 (used by ``momentum < 0``, the cumulative average).
    rm, rv : ndarray of shape (depth, d)
        Running mean and variance of each BN layer.
    h, z, y : ndarray of shape (m, d)
        Work arrays; on return h holds the features fed to the head (after the
        head's dropout for ``after-bn``).
    bmean, bvar : ndarray of shape (d,)
        Work arrays (batch mean and biased variance).
    relu_sum : ndarray of shape (depth,)
        Σ of every post-ReLU value of each layer is added here.
    """
    m = x.shape[0]
    h[:, :] = x
    noise = _layer_noise(code)
    for layer in range(W.shape[0]):
        if noise != 0:
            _apply_noise(s_mask, h, noise, threshold, inv_p, beta)
        _linear(h, W[layer], z)
        _bn_train(z, eps, y, bmean, bvar)
        _update_running(rm[layer], rv[layer], bmean, bvar, m, momentum, step)
        total = 0.0
        for i in range(m):
            for k in range(y.shape[1]):
                val = y[i, k] if y[i, k] > 0.0 else 0.0
                h[i, k] = val
                total += val
        relu_sum[layer] += total
    if code == AFTER:
        _apply_noise(s_mask, h, _DROPOUT, threshold, inv_p, beta)


@njit(cache=True)
def _train_chain(s_in, s_mask, W, code, threshold, inv_p, beta, c, a, b, eps, momentum, steps, step0,
                 rm, rv, x, h, z, y, bmean, bvar, relu_sum):
    """``steps`` training batches drawn from ``s_in``; updates numbered ``step0 + 1 ..``.

    The running statistics ``rm``, ``rv`` and both streams advance in place, so
    calling it twice with ``steps = 1`` equals one call with ``steps = 2``.
    """
    for t in range(steps):
        _draw_inputs(s_in, x, c, a, b)
        _train_batch(x, W, code, s_mask, threshold, inv_p, beta, eps, momentum, step0 + t + 1, rm, rv,
                     h, z, y, bmean, bvar, relu_sum)


@njit(cache=True)
def _recalibrate(s_in, s_in0, s_mask, W, c, a, b, eps, momentum, steps, rm, rv, x, h, z, y, bmean, bvar,
                 scratch):
    """Reset the running statistics (mean 0, variance 1) and re-estimate them with dropout off.

    Replays the training batches (``s_in`` restarts from ``s_in0``): the usual
    recipe of one more pass over the training data in training mode.
    """
    rm[:, :] = 0.0
    rv[:, :] = 1.0
    s_in[:] = s_in0
    _train_chain(s_in, s_mask, W, NONE, np.uint64(0), 1.0, 0.0, c, a, b, eps, momentum, steps, 0,
                 rm, rv, x, h, z, y, bmean, bvar, scratch)


@njit(cache=True)
def _eval_rows(x, W, eps, rm, rv, h, z, y, zstats, relu_sum):
    """Eval mode (no noise, BN with running statistics) for the rows of ``x``.

    Parameters
    ----------
    x, h, z, y : ndarray of shape (r, d)
        Inputs and work arrays; h ends holding the features fed to the head.
    zstats : ndarray of shape (depth, d, 2)
        Per BN input unit, ``Σ (z − rm)`` and ``Σ (z − rm)²`` are added here
        (shifted by the running mean, which is close to the mean: no cancellation).
    relu_sum : ndarray of shape (depth,)
        Σ of every post-ReLU value of each layer is added here.
    """
    r = x.shape[0]
    h[:, :] = x
    for layer in range(W.shape[0]):
        _linear(h, W[layer], z)
        mu = rm[layer]
        for i in range(r):
            for k in range(z.shape[1]):
                e = z[i, k] - mu[k]
                zstats[layer, k, 0] += e
                zstats[layer, k, 1] += e * e
        _bn_eval(z, rm[layer], rv[layer], eps, y)
        total = 0.0
        for i in range(r):
            for k in range(y.shape[1]):
                val = y[i, k] if y[i, k] > 0.0 else 0.0
                h[i, k] = val
                total += val
        relu_sum[layer] += total
