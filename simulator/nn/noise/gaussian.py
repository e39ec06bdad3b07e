"""Gaussian dropout: ``h̃ = h (1 + σ g)``, ``g ~ N(0, 1)`` per entry, ``σ² = (1 − p)/p``.

Variance-matched to inverted dropout of KEEP probability p (Srivastava et al. 2014, §10):
``E ξ = 1``, ``Var ξ = (1 − p)/p``, the s² of dropout, so the variance shift of docs/theory.md
(C5) is the same. One ``rng.draw_normal`` (ziggurat, :mod:`simulator.core.rng`) per entry,
row-major. PyTorch has no module for it: :func:`torch_module` builds one.
"""
import math

from ...core.jit import kernel
from ...core.rng import draw_normal
from .kind import NoiseKind

NAME = "gaussian"
CODE = 3


def variance(p):
    """``Var(1 + σ g) = σ² = (1 − p)/p``."""
    return (1.0 - p) / p


def sigma(p):
    """The standard deviation ``σ = √((1 − p)/p)`` of the multiplier at keep probability p."""
    return math.sqrt((1.0 - p) / p)


def torch_module(p):
    """A ``torch.nn.Module`` multiplying by ``1 + σ g``, ``g ~ N(0, 1)``, in training mode."""
    from torch import nn

    class GaussianDropout(nn.Module):
        """Gaussian dropout, variance-matched to ``nn.Dropout(1 − p)``: ``x (1 + σ g)``, σ² = (1 − p)/p."""

        def __init__(self, p):
            super().__init__()
            self.sigma = sigma(p)

        def forward(self, x):
            if not self.training or self.sigma == 0.0:
                return x
            return x * (1.0 + self.sigma * x.new_empty(x.shape).normal_())

    return GaussianDropout(p)


@kernel
def gaussian(s, x, sd, out):
    """``out = x (1 + σ g)``, ``g ~ N(0, 1)`` independent per entry, row-major.

    Parameters
    ----------
    s : ndarray of shape (4,), dtype uint64
        Generator state, advanced in place (one ``rng.draw_normal`` per entry).
    x, out : ndarray of shape (m, d)
        ``out`` may be ``x`` itself.
    sd : float
        σ = :func:`sigma` (p).
    """
    m, d = x.shape
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(m):
        for k in range(d):
            g, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
            out[i, k] = x[i, k] * (1.0 + sd * g)
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@kernel
def gaussian_multipliers(s, nm, m, sd):
    """``nm[i, k] = 1 + σ g_ik`` for rows 0..m−1 (the draws of :func:`gaussian`)."""
    d = nm.shape[1]
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(m):
        for k in range(d):
            g, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
            nm[i, k] = 1.0 + sd * g
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


KIND = NoiseKind(NAME, CODE, "p", variance, torch_module)
