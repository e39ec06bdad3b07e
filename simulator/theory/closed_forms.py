"""Closed forms of the claims, one function each, formula and source in the docstring.

``p`` is always the **keep** probability (a gate is 1 with probability p).
Inputs are described by their first two moments: ``m = E[I]`` (shape (n,)) and
``M = E[I Iᵀ]`` (shape (n, n)); for a fixed input ``m = I`` and ``M = I Iᵀ``.
"""
import numpy as np
from scipy.special import ndtr


def normal_cdf(a):
    """Φ(a), the standard normal CDF (what ``scipy.stats.norm.cdf`` computes, without its import time)."""
    return ndtr(a)


def normal_pdf(a):
    """φ(a), the standard normal density, written as ``scipy.stats.norm.pdf`` writes it."""
    return np.exp(-a ** 2 / 2.0) / np.sqrt(2 * np.pi)


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
    docs/theory.md, C1 (companion): the penalty is this ½Σ term; the document's
    "regularizer" ``w_i p_i(1−p_i) I_i²`` is its gradient. Exact.
    """
    return ensemble_loss(w, m, M, p, t) + 0.5 * np.sum(w * w * np.diag(M) * p * (1 - p))


def inverted_dropout_gradient(w, m, M, p, t):
    """Expected inverted-dropout gradient, ``O = Σ δ_i w_i I_i / p_i``.

    Notes
    -----
    ``E[∂E_D/∂w_i] = ∂E/∂w_i|no dropout + w_i I_i² (1 − p_i)/p_i`` with
    ``∂E/∂w_i|no dropout = −t I_i + Σ_j w_j I_i I_j`` (docs/theory.md, C1). Exact.
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
    """``Var(h') = (1/p) E[h²] − μ_h² = σ_h²/p + ((1 − p)/p) μ_h²`` (corrected; exact).

    Notes
    -----
    Evaluated in the second form, which has no cancellation when |μ_h| ≫ σ_h.
    """
    return v / p + (1 - p) / p * c * c


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


# --- C3: the shift after ReLU (document §1; Wang & Manning 2013) ----------------

def relu_gaussian_mean(mu, s):
    """``E[ReLU(z)] = μ Φ(a) + s φ(a)``, ``a = μ/s``, for ``z ~ N(μ, s²)`` (exact for a Gaussian z).

    Notes
    -----
    Used as the Gaussian (CLT) approximation of a weighted sum after dropout
    (Wang & Manning 2013, fast dropout). ``s = 0`` gives ``max(μ, 0)``.
    """
    mu, s = np.asarray(mu, dtype=float), np.asarray(s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(s > 0, mu / np.where(s > 0, s, 1.0), 0.0)
        out = np.where(s > 0, mu * normal_cdf(a) + s * normal_pdf(a), np.maximum(mu, 0.0))
    return out[()] if out.ndim == 0 else out


def relu_gaussian_second_moment(mu, s):
    """``E[ReLU(z)²] = (μ² + s²) Φ(a) + μ s φ(a)``, ``a = μ/s``, for ``z ~ N(μ, s²)``."""
    if s == 0:
        return max(mu, 0.0) ** 2
    a = mu / s
    return (mu * mu + s * s) * normal_cdf(a) + mu * s * normal_pdf(a)


def dropout_sum_moments(w, x, p):
    """Mean and sd over masks of ``z = Σ w_i d_i x_i / p`` for a fixed input x.

    Notes
    -----
    ``μ = Σ w_i x_i`` (unchanged by inverted dropout) and
    ``s² = ((1 − p)/p) Σ w_i² x_i²`` (docs/theory.md, C3). Exact; only the Gaussian
    shape of z is an approximation.
    """
    w, x = np.asarray(w, dtype=float), np.asarray(x, dtype=float)
    return float(w @ x), float(np.sqrt((1 - p) / p * np.sum(w * w * x * x)))


# --- C4: batch normalization (document §2; Ioffe & Szegedy 2015; PyTorch) ------

def batch_variance_mean(v, m):
    """``E[σ_B²] = ((m − 1)/m) σ²``: the biased batch variance of m i.i.d. inputs (exact)."""
    return (m - 1) / m * v


def normalized_square_sum(m, batch_var, eps):
    """``Σ x̂_i² = m σ_B² / (σ_B² + ε)`` for every non-constant batch (exact identity)."""
    return m * batch_var / (batch_var + eps)


def running_mean_expectation(c, momentum, steps):
    """``E[running_mean]`` after ``steps`` updates from 0 with i.i.d. batches of mean c (PyTorch semantics).

    Notes
    -----
    ``running ← (1 − momentum)·running + momentum·μ_B``, starting at 0, gives
    ``(1 − (1 − momentum)^steps) c``. ``momentum=None`` (cumulative average) gives c. Exact.
    """
    if momentum is None:
        return float(c)
    return (1 - (1 - momentum) ** steps) * c


def running_var_expectation(v, momentum, steps):
    """``E[running_var]`` after ``steps`` updates from 1 with the **unbiased** batch variance (PyTorch).

    Notes
    -----
    ``(1 − momentum)^steps · 1 + (1 − (1 − momentum)^steps) v``, since the unbiased
    batch variance has expectation v; ``momentum=None`` gives v. Exact.
    """
    if momentum is None:
        return float(v)
    keep = (1 - momentum) ** steps
    return keep + (1 - keep) * v


def eval_output_limits(v, eps, gamma=1.0, beta=0.0):
    """Limits of the eval-mode BN output on training-distribution data: mean β, variance γ² σ²/(σ² + ε)."""
    return beta, gamma * gamma * v / (v + eps)


# --- C5: dropout before BN, the variance shift (Li et al., CVPR 2019) ----------

def multiplicative_train_variance(c, v, s2):
    """``Var_train = (1 + s²)(c² + v) − c² = v + s² (c² + v)`` for ``X = x (1 + r)``, r of mean 0, variance s².

    Notes
    -----
    Exact; evaluated in the second form, which has no cancellation when |c| ≫ √v.
    """
    return v + s2 * (c * c + v)


def noise_variance(noise, p, beta=0.1):
    """Variance s² of the mean-1 multiplicative noise of each variant.

    Notes
    -----
    Bernoulli inverted dropout ``a/p``: ``(1 − p)/p``; Gaussian dropout ``N(1, (1 − p)/p)``:
    the same; Uout ``1 + U(−β, β)``: ``β²/3`` (Li et al. 2019). Any other name is a ValueError, never
    another kind's variance.
    """
    if noise == "uout":
        return beta * beta / 3.0
    if noise in ("bernoulli", "dropout", "gaussian"):
        return (1 - p) / p
    raise ValueError(f"noise_variance: unknown noise {noise!r}; valid: bernoulli (dropout), gaussian, uout")


def dropout_train_variance(c, v, p):
    """``Var_train(X) = (1/p)(c² + v) − c² = v/p + ((1 − p)/p) c²`` for ``X = a x / p`` (Li et al. 2019; exact).

    Notes
    -----
    Evaluated in the second form, which has no cancellation when |c| ≫ √v.
    """
    return v / p + (1 - p) / p * c * c


def variance_shift(c, v, p):
    """``Δ(p) = Var_test / Var_train = v / ((1/p)(c² + v) − c²) ≤ 1`` (= p when c = 0; exact)."""
    return v / dropout_train_variance(c, v, p)


def weighted_sum_variances(c, v, s2, rho, w):
    """``(Var_train, Var_test)`` of ``X = Σ_i w_i x_i (1 + r_i)`` before BN.

    Notes
    -----
    d inputs of mean c, variance v, pairwise correlation ρ; independent noise of
    variance s² (s² = (1 − p)/p for dropout). With ``d cos²θ = (Σ w)²/‖w‖²``:
    ``Var_train = ((1 + s²)(c² + v) − c²) ‖w‖² + ρ v ‖w‖² (d cos²θ − 1)``,
    ``Var_test = v ‖w‖² + ρ v ‖w‖² (d cos²θ − 1)`` (docs/theory.md, C5). Exact.
    """
    w = np.asarray(w, dtype=float)
    nw2 = float(w @ w)
    cross = rho * v * (float(w.sum()) ** 2 - nw2)
    return multiplicative_train_variance(c, v, s2) * nw2 + cross, v * nw2 + cross


# --- C6: dropout in regression (Wager et al. 2013; Srivastava et al. 2014 §9.1) --

def dropout_regression_loss(X, y, w, p):
    """``E‖y − X̃w‖² = ‖y − Xw‖² + ((1 − p)/p) wᵀ diag(XᵀX) w`` (inverted dropout on inputs; exact)."""
    r = y - X @ w
    return float(r @ r + (1 - p) / p * np.sum(np.diag(X.T @ X) * w * w))


def dropout_ridge_minimizer(X, y, p):
    """``w* = (XᵀX + ((1 − p)/p) diag(XᵀX))⁻¹ Xᵀy``, the minimizer of the expected dropout loss (exact)."""
    G = X.T @ X
    return np.linalg.solve(G + (1 - p) / p * np.diag(np.diag(G)), X.T @ y)
