"""Closed forms of the claims, one function each, formula and source in the docstring.

``p`` is always the **keep** probability (a gate is 1 with probability p).
Inputs are described by their first two moments: ``m = E[I]`` (shape (n,)) and
``M = E[I Iᵀ]`` (shape (n, n)); for a fixed input ``m = I`` and ``M = I Iᵀ``.
"""
import numpy as np


def moments_fixed(I):
    """``(m, M)`` of a fixed input vector ``I``."""
    I = np.asarray(I, dtype=float)
    return I, np.outer(I, I)


def moments_iid(n, c, v):
    """``(m, M)`` of n i.i.d. inputs with mean c and variance v."""
    m = np.full(n, float(c))
    return m, np.full((n, n), c * c) + v * np.eye(n)


# --- C1: dropout gradient (document §1; Baldi & Sadowski 2013) -----------------

def ensemble_gradient(w, m, M, p, t):
    """Gradient of the weight-scaled network's loss, ``∂E_N/∂w_i``.

    Notes
    -----
    ``E_N = ½ (t − Σ p_i w_i I_i)²`` and
    ``∂E_N/∂w_i = −t p_i I_i + w_i p_i² I_i² + Σ_{j≠i} w_j p_i p_j I_i I_j``,
    averaged over the inputs when they are random (document §1).
    """
    pw = p * w
    return -t * p * m + p * (M @ pw)


def dropout_gradient(w, m, M, p, t):
    """Expected dropout gradient ``E[∂E_D/∂w_i] = ∂E_N/∂w_i + w_i p_i (1 − p_i) I_i²``.

    Notes
    -----
    Document §1, from ``E[δ²] = p = p² + p(1−p)`` and ``E[δ_i δ_j] = p_i p_j``;
    Baldi & Sadowski (2013). Exact.
    """
    return ensemble_gradient(w, m, M, p, t) + w * p * (1 - p) * np.diag(M)


def ensemble_loss(w, m, M, p, t):
    """``E_N = ½ (t − Σ p_i w_i I_i)²`` (averaged over random inputs)."""
    pw = p * w
    return 0.5 * (t * t - 2 * t * (pw @ m) + pw @ M @ pw)


def dropout_loss(w, m, M, p, t):
    """Expected dropout loss ``E[E_D] = E_N + ½ Σ_i w_i² I_i² p_i (1 − p_i)``.

    Notes
    -----
    THEORY.md C1 companion: the penalty is this ½Σ term; the document's
    "regularizer" ``w_i p_i(1−p_i) I_i²`` is its gradient. Exact.
    """
    return ensemble_loss(w, m, M, p, t) + 0.5 * np.sum(w * w * np.diag(M) * p * (1 - p))


def inverted_dropout_gradient(w, m, M, p, t):
    """Expected inverted-dropout gradient, ``O = Σ δ_i w_i I_i / p_i``.

    Notes
    -----
    ``E[∂E_D/∂w_i] = ∂E/∂w_i|no dropout + w_i I_i² (1 − p_i)/p_i`` with
    ``∂E/∂w_i|no dropout = −t I_i + Σ_j w_j I_i I_j`` (THEORY.md C1). Exact.
    """
    return -t * m + M @ w + w * np.diag(M) * (1 - p) / p


def inverted_dropout_loss(w, m, M, p, t):
    """Expected inverted-dropout loss ``½(t − w·I)² + ½ Σ w_i² I_i² (1 − p_i)/p_i`` (exact)."""
    return 0.5 * (t * t - 2 * t * (w @ m) + w @ M @ w) + 0.5 * np.sum(w * w * np.diag(M) * (1 - p) / p)


# --- C2: inverted-dropout moments (document §1) --------------------------------

def inverted_mean(c, v, p):
    """``E[h'] = μ_h`` for ``h' = d h / p`` (document §1; exact)."""
    return c


def inverted_variance(c, v, p):
    """``Var(h') = (1/p) E[h²] − μ_h² = σ_h²/p + ((1 − p)/p) μ_h²`` (corrected; exact)."""
    return (v + c * c) / p - c * c


def inverted_variance_as_written(c, v, p):
    """The document's final line, ``Var(h') = (1/p) E(h²) − μ_h`` — an **erratum**.

    Notes
    -----
    Document §1 writes μ_h where μ_h² belongs; it agrees with
    :func:`inverted_variance` only when μ_h ∈ {0, 1}. Kept, under the name of
    what it is, so that the simulator can show it refuted.
    """
    return (v + c * c) / p - c


def inverted_mask_variance(c, v, p):
    """``E[Var(h' | h)] = E[h²] (1 − p)/p``: the part of Var(h') due to the mask alone (exact)."""
    return (v + c * c) * (1 - p) / p
