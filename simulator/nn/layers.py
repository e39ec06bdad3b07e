"""Elementary layers with PyTorch's semantics, as pure Numba kernels.

``nn.Linear(d_in, d_out)`` (weight of shape (d_out, d_in), bias) and ``nn.ReLU()``; the noise
layers (inverted dropout with **keep** probability p, Uout, …) live in :mod:`simulator.nn.noise`,
one module per kind. The kernels write into ``out`` and allocate nothing but scalars; ``relu`` may
be called with ``out`` equal to ``x`` (not ``linear_bias``).
"""

from ..core.jit import kernel


@kernel
def linear_bias(x, W, b, out):
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
def relu(x, out):
    """``out = max(x, 0)`` element-wise (``nn.ReLU``)."""
    m, d = x.shape
    for i in range(m):
        for k in range(d):
            out[i, k] = x[i, k] if x[i, k] > 0.0 else 0.0
