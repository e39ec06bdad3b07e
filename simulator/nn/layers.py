"""Elementary layers with PyTorch's semantics, as pure Numba kernels.

``nn.Linear(d_in, d_out)`` (weight of shape (d_out, d_in), bias), ``nn.ReLU()``,
inverted dropout with **keep** probability p (PyTorch: ``nn.Dropout(1 − p)``) and
Uout (Li et al. 2019). The noise layers draw from a xoshiro256** state ``s``
(:mod:`simulator.core.rng`), one raw draw per entry in row-major order, so a network
run depends on its seed alone. The kernels write into ``out`` and allocate nothing
but scalars; they may be called with ``out`` equal to ``x``.
"""

from ..core.jit import kernel
from ..core.rng import _keep, _uniform


@kernel
def _linear_bias(x, W, b, out):
    """``out = x Wᵀ + b``, as ``nn.Linear``: ``out[i, k] = b[k] + Σ_j x[i, j] W[k, j]``.

    Parameters
    ----------
    x : ndarray of shape (m, d_in)
    W : ndarray of shape (d_out, d_in)
    b : ndarray of shape (d_out,)
    out : ndarray of shape (m, d_out)
        Must not share memory with ``x``.

    Notes
    -----
    Each sum runs over j = 0, 1, .. in order, starting from the product of the
    first term, then the bias is added: the result does not depend on the layout.
    """
    m, d_in = x.shape
    d_out = W.shape[0]
    for i in range(m):
        for k in range(d_out):
            acc = 0.0
            for j in range(d_in):
                acc += x[i, j] * W[k, j]
            out[i, k] = acc + b[k]


@kernel
def _relu(x, out):
    """``out = max(x, 0)`` element-wise (``nn.ReLU``)."""
    m, d = x.shape
    for i in range(m):
        for k in range(d):
            out[i, k] = x[i, k] if x[i, k] > 0.0 else 0.0


@kernel
def _dropout(s, x, threshold, inv_p, out):
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

    Notes
    -----
    ``E[out] = x``, ``Var(out | x) = x² (1 − p)/p`` (docs/theory.md, C2).
    """
    m, d = x.shape
    for i in range(m):
        for k in range(d):
            out[i, k] = x[i, k] * _keep(s, threshold) * inv_p


@kernel
def _uout(s, x, beta, out):
    """Uout: ``out = x + x r``, ``r ~ U(−β, β)`` independent per entry (Li et al. 2019).

    Parameters
    ----------
    s : ndarray of shape (4,), dtype uint64
        Generator state, advanced in place (one raw draw per entry, row-major).
    x, out : ndarray of shape (m, d)
    beta : float

    Notes
    -----
    ``E[out] = x``, ``Var(out | x) = x² β²/3`` (docs/theory.md, C5).
    """
    m, d = x.shape
    for i in range(m):
        for k in range(d):
            out[i, k] = x[i, k] + x[i, k] * (beta * (2.0 * _uniform(s) - 1.0))
