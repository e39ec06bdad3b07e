"""Channel dropout: one inverted-dropout gate per sample and channel, shared by all its positions.

For an input of shape (N, C, L) (N samples, C channels or units, L positions or rows of a sample):
``h̃[n, c, l] = h[n, c, l] δ_nc / p``, ``δ_nc ~ Bernoulli(p)``: PyTorch's ``nn.Dropout1d(1 − p)``
(``Dropout2d``/``3d`` for more spatial axes), which the audit (:mod:`simulator.audit.trace`) treats as
one gate per sample and channel. With L = 1 it is :mod:`simulator.nn.noise.dropout`. ``E ξ = 1``,
``Var ξ = (1 − p)/p``; the gates of one channel's positions are the same draw, so they are fully
correlated within a sample. One raw draw per (n, c), row-major (:mod:`simulator.core.rng`).
"""
import numpy as np

from ...core.jit import kernel
from ...core.rng import draw_raw
from .kind import NoiseKind

NAME = "channel-dropout"
CODE = 4


def variance(p):
    """``Var(δ/p) = (1 − p)/p``, per gate."""
    return (1.0 - p) / p


def torch_module(p):
    """``torch.nn.Dropout1d(1 − p)``: one gate per (sample, channel) of an (N, C, L) input."""
    from torch import nn

    return nn.Dropout1d(1.0 - p)


@kernel
def channel_dropout(s, x, threshold, inv_p, out):
    """``out[n, c, :] = x[n, c, :] δ_nc / p``: one gate per sample n and channel c.

    Parameters
    ----------
    s : ndarray of shape (4,), dtype uint64
        Generator state, advanced in place (one raw draw per (n, c), row-major).
    x, out : ndarray of shape (N, C, L)
        ``out`` may be ``x`` itself.
    threshold : uint64
        ``rng.keep_threshold(p)``.
    inv_p : float
        ``1 / p``.
    """
    n, c, length = x.shape
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(n):
        for k in range(c):
            u, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
            gate = inv_p if (u >> np.uint64(11)) < threshold else 0.0
            for t in range(length):
                out[i, k, t] = x[i, k, t] * gate
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


KIND = NoiseKind(NAME, CODE, "p", variance, torch_module, gate="channel")
