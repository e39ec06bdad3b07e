"""Inverted dropout with KEEP probability p: ``h̃ = h δ / p``, ``δ ~ Bernoulli(p)`` per entry.

PyTorch: ``nn.Dropout(1 − p)``. ``E ξ = 1``, ``Var ξ = (1 − p)/p`` (docs/theory.md, C2). A gate
compares a 53-bit integer with ``rng.keep_threshold(p)`` (:mod:`simulator.core.rng`); the kernels
differ in how they draw it:

- :func:`dropout`: one raw draw per entry, row-major, through an array state (the audit's layer);
- :func:`dropout_inplace`: the same draws, the state in registers, ``h`` scaled in place (the chain);
- :func:`dropout_multipliers`: the multipliers ``δ/p`` of m rows, 64 gates per ``rng.draw_mask``
  word (bit k of word q gates unit 64q + k), for the trainer.
"""
import numpy as np

from ...core.jit import inline, kernel
from ...core.rng import draw_mask, draw_raw, next_keep
from .kind import NoiseKind

NAME = "dropout"
CODE = 1


def variance(p):
    """``Var(δ/p) = (1 − p)/p``."""
    return (1.0 - p) / p


def torch_module(p):
    """``torch.nn.Dropout(1 − p)``: PyTorch takes the DROP probability."""
    from torch import nn

    return nn.Dropout(1.0 - p)


@kernel
def dropout(s, x, threshold, inv_p, out):
    """Inverted dropout: ``out = x δ / p``, ``δ ~ Bernoulli(p)`` independent per entry.

    Parameters
    ----------
    s : ndarray of shape (4,), dtype uint64
        Generator state, advanced in place (one raw draw per entry, row-major).
    x : ndarray of shape (m, d)
    threshold : uint64
        ``rng.keep_threshold(p)``, p the KEEP probability.
    inv_p : float
        ``1 / p``.
    out : ndarray of shape (m, d)
        May be ``x`` itself.

    Notes
    -----
    ``E[out] = x``, ``Var(out | x) = x² (1 − p)/p`` (docs/theory.md, C2).
    """
    m, d = x.shape
    for i in range(m):
        for k in range(d):
            out[i, k] = x[i, k] * next_keep(s, threshold) * inv_p


@inline
def dropout_inplace(s, h, threshold, inv_p):
    """``h ← h δ / p`` in place: the draws of :func:`dropout`, the generator state in registers meanwhile."""
    r, d = h.shape
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(r):
        for j in range(d):
            u, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
            keep = 1.0 if (u >> np.uint64(11)) < threshold else 0.0
            h[i, j] = h[i, j] * keep * inv_p
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@inline
def dropout_multipliers(s, nm, m, threshold, inv_p):
    """``nm[i, k] = δ_ik / p`` for rows 0..m−1: per row, ⌈d/64⌉ mask words, bit k − 64q of word q gating unit k."""
    d = nm.shape[1]
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(m):
        for q in range(0, d, 64):
            word, s0, s1, s2, s3 = draw_mask(s0, s1, s2, s3, threshold)
            for k in range(q, min(q + 64, d)):
                nm[i, k] = inv_p if (word >> np.uint64(k - q)) & np.uint64(1) else 0.0
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


KIND = NoiseKind(NAME, CODE, "p", variance, torch_module)
