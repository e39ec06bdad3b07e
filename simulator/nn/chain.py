"""The Linear → BN → ReLU chain shared by ``network-shift`` (C5) and ``task-impact`` (C6).

A chain of ``depth`` blocks of width d. Block l computes
``z = h̃ W_l`` (Linear, no bias: BN removes it), ``ŷ = BN(z)`` (PyTorch
``BatchNorm1d`` with γ = 1, β = 0, its initial affine parameters) and
``h = ReLU(ŷ)``. Where the noise goes is the *placement* (:mod:`simulator.nn.placements`):

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
from the *input* stream (d standard normals by ``rng.fill_normal``, then, when
ρ > 0, a normal pair whose first member is g₀); the noise draws one raw 64-bit
number per row and unit (row-major), layer by layer, from the *mask* stream,
whether or not the unit is zero: a gate ``rng.next_keep`` or a uniform ``rng.next_uniform``.
"""
from typing import NamedTuple

import numpy as np

from ..core.arrays import copy_into
from ..core.jit import kernel
from ..core.rng import fill_normal, keep_threshold, next_normal_pair, stream_key
from . import placements
from .batchnorm import bn_train, momentum_code, update_running
from .noise import dropout, uout
from .noise.dropout import dropout_inplace
from .noise.uout import uout_inplace

# Placement codes of the kernels: the chain's names (simulator.nn.placements) in their order, none = 0.
NONE, BEFORE, AFTER, RECAL, UOUT = range(len(placements.CHAIN_NAMES))
PLACEMENTS = placements.CHAIN_NOISY
CODES = {name: code for code, name in enumerate(placements.CHAIN_NAMES)}
_DROPOUT, _UOUT = dropout.CODE, uout.CODE


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


@kernel
def draw_inputs(s, x, c, a, b):
    """Fill the rows of ``x`` (shape (r, d)) with inputs of mean c, variance a² + b², correlation b²/(a² + b²)."""
    r, d = x.shape
    for i in range(r):
        row = x[i]
        fill_normal(s, row, 0.0, 1.0)
        g0 = next_normal_pair(s)[0] if b != 0.0 else 0.0
        for j in range(d):
            row[j] = c + a * row[j] + b * g0


@kernel
def apply_noise(s, h, kind, threshold, inv_p, beta):
    """In place: inverted dropout ``h δ / p`` (kind 1, :func:`noise.dropout.dropout_inplace`) or Uout
    ``h + h r``, ``r ~ U(−β, β)`` (kind 2, :func:`noise.uout.uout_inplace`).

    One raw draw per entry, row-major, as ``rng.next_keep`` / ``rng.next_uniform`` make
    them; the generator state stays in local variables (registers) meanwhile.
    """
    if kind == _DROPOUT:
        dropout_inplace(s, h, threshold, inv_p)
    elif kind == _UOUT:
        uout_inplace(s, h, beta)
    else:  # never another kind's branch: a code the chain does not run is an error
        raise ValueError("the chain runs noise codes 1 (dropout) and 2 (uout) only")


DENSE = 0.4  # fraction of nonzero inputs from which linear_rows multiplies the zeros too (it is faster)


@kernel
def linear_rows(h, W, z):
    """``z = h W`` for rows of h: every ``z[i, k] = Σ_j h[i, j] W[j, k]`` added in the order j = 0, 1, ..

    Whichever loop runs, each sum sees the same terms in the same order, up to
    terms ``0 · W`` = ±0, which do not change a sum that starts at +0.0: the
    result does not depend on the path. Mostly-zero h (ReLU zeros and dropped
    units) skips its zeros row by row (:func:`_sparse_row`); denser h goes four
    rows at a time through every input (:func:`_dense_rows`).
    """
    r, d_in = h.shape
    nonzero = 0
    for i in range(r):
        for j in range(d_in):
            nonzero += 1 if h[i, j] != 0.0 else 0
    first = 0
    if nonzero >= DENSE * r * d_in:
        first = r - r % 4
        for i in range(0, first, 4):
            _dense_rows(h, W, z, i)
    if first < r:
        idx = np.empty(d_in, dtype=np.int64)
        for i in range(first, r):
            _sparse_row(h, W, z, i, idx)


@kernel
def _dense_rows(h, W, z, i):
    """Rows i..i+3 of ``z = h W``, four inputs per pass: each loaded row of W serves four rows of z."""
    d_in, d_out = W.shape
    z0, z1, z2, z3 = z[i], z[i + 1], z[i + 2], z[i + 3]
    for k in range(d_out):
        z0[k] = 0.0
        z1[k] = 0.0
        z2[k] = 0.0
        z3[k] = 0.0
    top = d_in - d_in % 4
    for j in range(0, top, 4):
        w0, w1, w2, w3 = W[j], W[j + 1], W[j + 2], W[j + 3]
        a0, a1, a2, a3 = h[i, j], h[i, j + 1], h[i, j + 2], h[i, j + 3]
        b0, b1, b2, b3 = h[i + 1, j], h[i + 1, j + 1], h[i + 1, j + 2], h[i + 1, j + 3]
        c0, c1, c2, c3 = h[i + 2, j], h[i + 2, j + 1], h[i + 2, j + 2], h[i + 2, j + 3]
        e0, e1, e2, e3 = h[i + 3, j], h[i + 3, j + 1], h[i + 3, j + 2], h[i + 3, j + 3]
        for k in range(d_out):
            x0, x1, x2, x3 = w0[k], w1[k], w2[k], w3[k]
            z0[k] = (((z0[k] + a0 * x0) + a1 * x1) + a2 * x2) + a3 * x3
            z1[k] = (((z1[k] + b0 * x0) + b1 * x1) + b2 * x2) + b3 * x3
            z2[k] = (((z2[k] + c0 * x0) + c1 * x1) + c2 * x2) + c3 * x3
            z3[k] = (((z3[k] + e0 * x0) + e1 * x1) + e2 * x2) + e3 * x3
    for j in range(top, d_in):
        wj = W[j]
        a0, b0, c0, e0 = h[i, j], h[i + 1, j], h[i + 2, j], h[i + 3, j]
        for k in range(d_out):
            z0[k] += a0 * wj[k]
            z1[k] += b0 * wj[k]
            z2[k] += c0 * wj[k]
            z3[k] += e0 * wj[k]


@kernel
def _sparse_row(h, W, z, i, idx):
    """Row i of ``z = h W`` over the nonzero inputs only, four per pass through ``z[i]``.

    The indices are compacted into ``idx`` without branches (a branch on random
    zeros is mispredicted half the time).
    """
    d_in, d_out = W.shape
    n = 0
    for j in range(d_in):
        idx[n] = j
        n += 1 if h[i, j] != 0.0 else 0
    zi = z[i]
    for k in range(d_out):
        zi[k] = 0.0
    t = 0
    while t + 4 <= n:
        j0, j1, j2, j3 = idx[t], idx[t + 1], idx[t + 2], idx[t + 3]
        a0, a1, a2, a3 = h[i, j0], h[i, j1], h[i, j2], h[i, j3]
        w0, w1, w2, w3 = W[j0], W[j1], W[j2], W[j3]
        for k in range(d_out):
            zi[k] = (((zi[k] + a0 * w0[k]) + a1 * w1[k]) + a2 * w2[k]) + a3 * w3[k]
        t += 4
    for t in range(t, n):
        j = idx[t]
        a = h[i, j]
        wj = W[j]
        for k in range(d_out):
            zi[k] += a * wj[k]


@kernel
def _layer_noise(code):
    """Noise kind on the input of every Linear for a placement code (0: none)."""
    if code == BEFORE or code == RECAL:
        return _DROPOUT
    if code == UOUT:
        return _UOUT
    return 0


@kernel
def train_batch(x, W, code, s_mask, threshold, inv_p, beta, eps, momentum, step, rm, rv,
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
    copy_into(x, h)
    noise = _layer_noise(code)
    for layer in range(W.shape[0]):
        if noise != 0:
            apply_noise(s_mask, h, noise, threshold, inv_p, beta)
        linear_rows(h, W[layer], z)
        bn_train(z, eps, y, bmean, bvar)
        update_running(rm[layer], rv[layer], bmean, bvar, m, momentum, step)
        relu_sum[layer] += _relu(y, h)
    if code == AFTER:
        apply_noise(s_mask, h, _DROPOUT, threshold, inv_p, beta)


@kernel
def train_chain(s_in, s_mask, W, code, threshold, inv_p, beta, c, a, b, eps, momentum, steps, step0,
                 rm, rv, x, h, z, y, bmean, bvar, relu_sum):
    """``steps`` training batches drawn from ``s_in``; updates numbered ``step0 + 1 ..``.

    The running statistics ``rm``, ``rv`` and both streams advance in place, so
    calling it twice with ``steps = 1`` equals one call with ``steps = 2``.
    """
    for t in range(steps):
        draw_inputs(s_in, x, c, a, b)
        train_batch(x, W, code, s_mask, threshold, inv_p, beta, eps, momentum, step0 + t + 1, rm, rv,
                     h, z, y, bmean, bvar, relu_sum)


@kernel
def recalibrate_chain(s_in, s_in0, s_mask, W, c, a, b, eps, momentum, steps, rm, rv, x, h, z, y, bmean, bvar,
                 scratch):
    """Reset the running statistics (mean 0, variance 1) and re-estimate them with dropout off.

    Replays the training batches (``s_in`` restarts from ``s_in0``): the usual
    recipe of one more pass over the training data in training mode.
    """
    rm[:, :] = 0.0
    rv[:, :] = 1.0
    copy_into(s_in0, s_in)
    train_chain(s_in, s_mask, W, np.int64(NONE), np.uint64(0), 1.0, 0.0, c, a, b, eps, momentum, steps, 0,
                 rm, rv, x, h, z, y, bmean, bvar, scratch)


@kernel
def eval_rows(x, W, eps, rm, rv, h, z, y, zstats, relu_sum):
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
    r, d = x.shape
    copy_into(x, h)
    inv = np.empty(d)
    s1, s2 = np.empty(d), np.empty(d)
    part = np.empty(d)
    for layer in range(W.shape[0]):
        linear_rows(h, W[layer], z)
        # One pass over z does the statistics, BN (as bn_eval) and the ReLU; the
        # sums go on from zstats in the same order (copied to contiguous arrays).
        mu = rm[layer]
        for k in range(d):
            inv[k] = 1.0 / np.sqrt(rv[layer, k] + eps)
            s1[k] = zstats[layer, k, 0]
            s2[k] = zstats[layer, k, 1]
            part[k] = 0.0
        for i in range(r):
            for k in range(d):
                e = z[i, k] - mu[k]
                s1[k] += e
                s2[k] += e * e
                val = e * inv[k]
                val = val if val > 0.0 else 0.0
                h[i, k] = val
                part[k] += val
        total = 0.0
        for k in range(d):
            zstats[layer, k, 0] = s1[k]
            zstats[layer, k, 1] = s2[k]
            total += part[k]
        relu_sum[layer] += total


@kernel
def _relu(y, h):
    """``h = max(y, 0)``; returns Σ h, summed per unit over the rows, then over the units.

    (Per-unit partial sums vectorize; one running sum over all entries would be a
    chain of dependent additions. The order is fixed: no thread count changes it.)
    """
    r, d = y.shape
    part = np.zeros(d)
    for i in range(r):
        for k in range(d):
            val = y[i, k] if y[i, k] > 0.0 else 0.0
            h[i, k] = val
            part[k] += val
    total = 0.0
    for k in range(d):
        total += part[k]
    return total


class Chain(NamedTuple):
    """A chain ready to run: weights, placement codes (0 = no noise first), input scales, kernel arguments."""

    W: np.ndarray
    codes: np.ndarray
    a: float
    b: float
    args: tuple


def chain(seed, p, q):
    """The :class:`Chain` of parameters ``q`` (``simulator.experiments.network_shift.chain_params``) at keep
    probability p.

    ``args`` are the kernel's leading arguments: ``(W, codes, threshold, 1/p, beta, c, a, b, m, steps,
    eps, momentum code)``.
    """
    W = he_weights(seed, q["d"], q["depth"])
    codes = np.array([NONE] + [CODES[x] for x in q["placement"]], dtype=np.int64)
    a, b = input_scales(q["v"], q["rho"])
    args = (W, codes, keep_threshold(p), 1.0 / p, float(q["beta"]), float(q["c"]), a, b, int(q["m"]),
            int(q["steps"]), float(q["eps"]), momentum_code(q["momentum"]))
    return Chain(W, codes, a, b, args)
