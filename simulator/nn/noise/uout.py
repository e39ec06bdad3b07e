"""Uout (Li et al. 2019): ``h̃ = h (1 + r)``, ``r ~ U(−β, β)`` per entry; it does not depend on p.

``E ξ = 1``, ``Var ξ = β²/3`` (docs/theory.md, C5). One ``rng.draw_uniform`` (53 bits) per entry,
row-major (:mod:`simulator.core.rng`); the kernels differ as those of :mod:`simulator.nn.noise.dropout`:
:func:`uout` (array state, the audit's layer), :func:`uout_inplace` (registers, the chain) and
:func:`uout_multipliers` (the multipliers ``1 + r`` of m rows, for the trainer).
"""
from ...core.jit import inline, kernel
from ...core.rng import draw_uniform, next_uniform
from .kind import NoiseKind

NAME = "uout"
CODE = 2


def variance(beta):
    """``Var(1 + r) = β²/3`` for r uniform on [−β, β]."""
    return beta * beta / 3.0


def torch_module(beta):
    """A ``torch.nn.Module`` that multiplies by ``1 + r``, ``r ~ U(−β, β)``, in training mode (PyTorch has none)."""
    from torch import nn

    class Uout(nn.Module):
        """Uout noise (Li et al. 2019): ``x (1 + r)``, r uniform on [−β, β], in training mode only."""

        def __init__(self, beta):
            super().__init__()
            self.beta = float(beta)

        def forward(self, x):
            if not self.training or self.beta == 0.0:
                return x
            return x + x * (self.beta * (2.0 * x.new_empty(x.shape).uniform_() - 1.0))

    return Uout(beta)


@kernel
def uout(s, x, beta, out):
    """Uout: ``out = x + x r``, ``r ~ U(−β, β)`` independent per entry (Li et al. 2019).

    Parameters
    ----------
    s : ndarray of shape (4,), dtype uint64
        Generator state, advanced in place (one raw draw per entry, row-major).
    x, out : ndarray of shape (m, d)
        ``out`` may be ``x`` itself.
    beta : float

    Notes
    -----
    ``E[out] = x``, ``Var(out | x) = x² β²/3`` (docs/theory.md, C5).
    """
    m, d = x.shape
    for i in range(m):
        for k in range(d):
            out[i, k] = x[i, k] + x[i, k] * (beta * (2.0 * next_uniform(s) - 1.0))


@inline
def uout_inplace(s, h, beta):
    """``h ← h + h r`` in place: the draws of :func:`uout`, the generator state in registers meanwhile."""
    r, d = h.shape
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(r):
        for j in range(d):
            u, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
            h[i, j] = h[i, j] + h[i, j] * (beta * (2.0 * u - 1.0))
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@inline
def uout_multipliers(s, nm, m, beta):
    """``nm[i, k] = 1 + β (2u − 1)`` for rows 0..m−1, one uniform per entry, row-major."""
    d = nm.shape[1]
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(m):
        for k in range(d):
            u, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
            nm[i, k] = 1.0 + beta * (2.0 * u - 1.0)
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


KIND = NoiseKind(NAME, CODE, "beta", variance, torch_module)
