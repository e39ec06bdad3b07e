"""C4 — batch normalization with PyTorch semantics (document §2; Ioffe & Szegedy 2015).

One Monte Carlo sample is one whole training run of ``BatchNorm1d`` on one
feature: ``steps`` batches of m i.i.d. inputs ``x ~ N(c, v)``, each normalized in
training mode and folded into the running statistics, then an eval batch of
fresh inputs normalized with the running statistics. Every training batch is
checked against the per-batch identities (largest violation kept); the batch
variance, the running statistics and the eval-mode output are averaged.
"""
import math

import numpy as np
from scipy.integrate import quad

from ..core.engine import run as run_engine
from ..core.errors import ParameterError
from ..core.jit import inline, threaded
from ..core.rng import block_state, fill_normal
from ..core.stats import ACC_WIDTH, finish_moments, mean_of, push_value
from ..nn import batchnorm as bn
from ..theory import closed_forms as cf
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, Param

EVAL_BATCH = 64
# Safety factor on the leading-order deviation of the eval variance from its limit
# (covers the higher-order terms that the second-order expansion drops).
TOLERANCE_FACTOR = 2.0


@inline
def _violations(x, xhat, mean, var, eps, bound):
    """Normalise one batch into ``xhat`` and return how far it is from Σx̂ = 0, Σx̂² = mσ_B²/(σ_B²+ε) and
    |x̂| ≤ √(m−1) (``bound``), each relative to the size of what the computation cancels."""
    m = x.size
    inv = 1.0 / np.sqrt(var + eps)
    for i in range(m):
        xhat[i] = (x[i] - mean) * inv
    # Violations are relative to the size of what the computation cancels
    # (Σ|x_i|/√(σ_B²+ε) and kin), so float rounding stays ~1e-15 even when
    # |c| ≫ σ or a batch is nearly constant; a wrong identity is off by O(1/m).
    root = np.sqrt(var + eps)
    total, square, largest, size, size2, xmax = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for i in range(m):
        h = xhat[i]
        scaled = abs(x[i]) / root
        total += h
        square += h * h
        largest = max(largest, abs(h))
        size += scaled
        size2 += h * h + abs(h) * abs(x[i]) / root
        xmax = max(xmax, scaled)
    target = m * var / (var + eps)
    return abs(total) / size, abs(square - target) / size2, (largest - bound) / (bound + xmax)


@inline
def _eval_moments(s, xe, ye, rm, rv, c, sd, eps, gamma):
    """Mean of y and of y² over one eval batch ``xe`` ~ N(c, sd²), BN in eval mode with (rm, rv), scaled by γ."""
    neval = xe.shape[0]
    fill_normal(s, xe[:, 0], c, sd)
    bn.bn_eval(xe, rm, rv, eps, ye)
    y1, y2 = 0.0, 0.0
    for i in range(neval):
        y = gamma * ye[i, 0]
        y1 += y
        y2 += y * y
    return y1 / neval, y2 / neval


@threaded
def batchnorm_blocks(key, first, count, base, rem, c, sd, m, steps, momentum, eps, gamma, neval,
                      out, maxima):
    """Per run: [running_mean, running_var, σ_B² (every batch), mean y_eval, mean y_eval²].

    Maxima, with ``r = √(σ_B² + ε)``: [max |Σx̂| / Σ|x_i|/r,
    max |Σx̂² − mσ_B²/(σ_B²+ε)| / Σ(x̂_i² + |x̂_i x_i|/r), max (max|x̂| − √(m−1)) / (√(m−1) + max|x_i|/r)].
    """
    bound = np.sqrt(m - 1.0)
    for j in range(count):
        b = first + j
        s = block_state(key, b)
        acc = np.zeros((5, ACC_WIDTH))
        x = np.empty(m)
        xhat = np.empty(m)
        xe = np.empty((neval, 1))
        ye = np.empty((neval, 1))
        mean = np.empty(1)
        var = np.empty(1)
        rm = np.empty(1)
        rv = np.empty(1)
        worst_sum, worst_sq, worst_bound = -np.inf, -np.inf, -np.inf
        for _ in range(base + (1 if b < rem else 0)):
            rm[0] = 0.0
            rv[0] = 1.0
            for step in range(1, steps + 1):
                fill_normal(s, x, c, sd)
                # bn.bn_train of one unit, written out: the same numbers, without its per-unit arrays.
                mean[0], var[0] = bn.unit_moments(x)
                v_sum, v_sq, v_bound = _violations(x, xhat, mean[0], var[0], eps, bound)
                worst_sum = max(worst_sum, v_sum)
                worst_sq = max(worst_sq, v_sq)
                worst_bound = max(worst_bound, v_bound)
                push_value(acc, 2, var[0])
                bn.update_running(rm, rv, mean, var, m, momentum, step)
            push_value(acc, 0, rm[0])
            push_value(acc, 1, rv[0])
            y1, y2 = _eval_moments(s, xe, ye, rm, rv, c, sd, eps, gamma)
            push_value(acc, 3, y1)
            push_value(acc, 4, y2)
        finish_moments(acc, out[j])
        maxima[j, 0] = worst_sum
        maxima[j, 1] = worst_sq
        maxima[j, 2] = worst_bound


def inverse_moment(power, v, m, eps, momentum, steps):
    """``E[(running_var + ε)^(−power)]`` after ``steps`` updates on N(c, v) batches of m.

    Parameters
    ----------
    power : float
        ½ or 1.
    v : float
        Input variance.
    m, steps : int
    eps : float
    momentum : float or None

    Returns
    -------
    float

    Notes
    -----
    ``running_var = a₀ + Σ_k a_k u_k`` (weights from :func:`simulator.nn.batchnorm.running_weights`),
    with unbiased batch variances ``u_k ~ v χ²_{m−1}/(m−1)`` independent. From
    ``Y^(−s) = Γ(s)⁻¹ ∫₀^∞ t^(s−1) e^(−tY) dt`` and the chi-square Laplace transform,
    ``E[(running_var + ε)^(−s)] = Γ(s)⁻¹ ∫₀^∞ t^(s−1) e^(−t(a₀+ε)) Π_k (1 + 2 t a_k v/(m−1))^(−(m−1)/2) dt``,
    a one-dimensional integral done by quadrature (exact up to ~1e-10 relative).
    """
    a0, a = bn.running_weights(momentum, steps)
    a = a[a > 0]
    half = (m - 1) / 2.0
    scale = 2.0 * v / (m - 1)
    r = a0 + eps + v * a.sum()  # E[running_var + ε]: the integrand falls off on the scale 1/r

    def g(t):
        return math.exp(-t * (a0 + eps) - half * np.sum(np.log1p(t * scale * a)))

    if power == 1.0:
        value = quad(lambda tau: g(tau / r), 0.0, np.inf, epsabs=0.0, epsrel=1e-12, limit=200)[0] / r
    elif power == 0.5:
        # t = u²/r removes the t^(−½) singularity: ∫ t^(−½) g dt = 2 r^(−½) ∫ g(u²/r) du.
        value = 2.0 / math.sqrt(math.pi * r) * quad(lambda u: g(u * u / r), 0.0, np.inf, epsabs=0.0,
                                                     epsrel=1e-12, limit=200)[0]
    else:
        raise ValueError(f"power={power}: only 1/2 and 1 are implemented")
    return value


def eval_moments(c, v, m, eps, momentum, steps, gamma):
    """Exact mean and variance of the eval-mode output, over training runs and eval inputs.

    Returns
    -------
    mean, var : float

    Notes
    -----
    For normal inputs the batch mean and variance are independent, hence so are
    running_mean and running_var. With eval input x ~ N(c, v) independent of the run,
    ``E[y] = γ (c − E[rm]) E[(rv + ε)^(−½)]`` and
    ``E[y²] = γ² (v + Var(rm) + (c − E[rm])²) E[(rv + ε)^(−1)]``, where
    ``E[rm] = (1 − a₀) c`` and ``Var(rm) = Σ a_k² v/m``. Both tend to the limits
    of :func:`simulator.theory.closed_forms.eval_output_limits` as steps → ∞ and momentum → 0.
    """
    a0, a = bn.running_weights(momentum, steps)
    bias = a0 * c
    mean = gamma * bias * inverse_moment(0.5, v, m, eps, momentum, steps)
    second = gamma ** 2 * (v + np.sum(a * a) * v / m + bias * bias) * inverse_moment(1.0, v, m, eps, momentum, steps)
    return mean, second - mean * mean


def limit_tolerance(c, v, m, eps, momentum, steps):
    """Tolerance of the eval variance against its limit: the leading-order deviation, doubled.

    Notes
    -----
    Normal inputs: ``Var(rm) = Σa_k² v/m``, ``Var(rv) = Σa_k² 2v²/(m−1)``,
    ``E[rv] = a₀ + (1 − a₀) v``; see :func:`simulator.nn.batchnorm.eval_variance_deviation`.
    """
    a0, a = bn.running_weights(momentum, steps)
    s2 = float(np.sum(a * a))
    dev = bn.eval_variance_deviation(v, v, s2 * v / m, a0 * c, s2 * 2 * v * v / (m - 1), a0 + (1 - a0) * v, eps)
    return TOLERANCE_FACTOR * abs(dev)


def _validate(values):
    m, eps, momentum, steps = values["m"], values["eps"], values["momentum"], values["steps"]
    a0, a = bn.running_weights(momentum, steps)
    # E[y⁴] (needed for an error bar on the eval variance) is finite iff E[(rv+ε)^(−2)] is.
    if a0 + eps == 0.0 and (m - 1) / 2.0 * np.count_nonzero(a) <= 2.0:
        raise ParameterError(f"eps=0 with momentum={momentum} leaves running_var from only "
                             f"{np.count_nonzero(a)} batch(es) of m={m}: the eval output has no finite "
                             "variance of its variance; use eps > 0, more steps or a larger m")


def run(p, q, ctx):
    """Measure C4: a BatchNorm1d unit trained on batches of m: Σx̂ = 0, Σx̂² = m, the batch variance's
    bias, the running statistics and the eval-mode output against their closed forms.

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    ``sum-xhat``, ``sum-xhat²``, ``samuelson``, ``batch-var``, ``running-mean``, ``running-var``,
    ``eval-mean``, ``eval-var`` and ``eval-var-limit``.
    """
    c, v, m, steps, momentum, eps, gamma = (q[k] for k in ("c", "v", "m", "steps", "momentum", "eps", "gamma"))
    args = (float(c), math.sqrt(v), int(m), int(steps), bn.momentum_code(momentum), float(eps), float(gamma),
            EVAL_BATCH)
    sample = run_engine(batchnorm_blocks, args, 5, ctx.samples, ctx.key("runs"), nmax=3,
                        where=ctx.where(), progress=ctx.bar("runs"))
    params = {"p": p, **q}
    worst = sample.maxima
    mean_y, var_y = eval_moments(c, v, m, eps, momentum, steps, gamma)
    _, limit_var = cf.eval_output_limits(v, eps, gamma)
    tol = limit_tolerance(c, v, m, eps, momentum, steps)
    rm, rv, bvar, ey = sample.mean(0), sample.mean(1), sample.mean(2), sample.mean(3)
    eval_var = sample.derived(lambda t: mean_of(t, 4) - mean_of(t, 3) ** 2)
    return [
        Check("sum-xhat", "exact", 0.0, float(worst[0]), 0.0, params, scale=1.0,
              formula="largest |Σx̂_i| over every batch = 0 (relative to Σ|x_i|/√(σ_B²+ε))",
              facts=Facts("C4", "sum-xhat")),
        Check("sum-xhat²", "exact", 0.0, float(worst[1]), 0.0, params, scale=1.0,
              formula="largest |Σx̂_i² − mσ_B²/(σ_B²+ε)| over every batch = 0 (relative)",
              facts=Facts("C4", "sum-xhat²")),
        Check("samuelson", "inequality", 0.0, float(-worst[2]), 0.0, params, scale=1.0,
              formula="smallest slack √(m−1) − max|x̂_i| over every batch ≥ 0 (relative)",
              facts=Facts("C4", "samuelson")),
        Check("batch-var", "exact", cf.batch_variance_mean(v, m), bvar.value, bvar.mcse, params,
              formula="E[σ_B²] = (m−1)/m · σ² (biased batch variance)", facts=Facts("C4", "batch-var")),
        Check("running-mean", "exact", cf.running_mean_expectation(c, momentum, steps), rm.value, rm.mcse, params,
              formula="E[running_mean] = (1 − (1−momentum)^steps) c", facts=Facts("C4", "running-mean")),
        Check("running-var", "exact", cf.running_var_expectation(v, momentum, steps), rv.value, rv.mcse, params,
              formula="E[running_var] = (1−momentum)^steps + (1 − (1−momentum)^steps) σ² (unbiased updates)",
              facts=Facts("C4", "running-var")),
        Check("eval-mean", "exact", mean_y, ey.value, ey.mcse, params,
              formula="E[y] = γ c (1−momentum)^steps E[(rv+ε)^−½] → 0", facts=Facts("C4-eval", "eval-mean")),
        Check("eval-var", "exact", var_y, eval_var.value, eval_var.mcse, params,
              formula="Var(y) = γ²(σ² + Var rm + bias²) E[(rv+ε)^−1] − E[y]² (finite steps; quadrature)",
              facts=Facts("C4-eval", "eval-var")),
        Check("eval-var-limit", "approximation", limit_var, eval_var.value, eval_var.mcse, params, tolerance=tol,
              formula=f"Var(y) → γ²σ²/(σ²+ε); tolerance {tol:.2g} = 2 × leading-order running-stat noise",
              facts=Facts("C4-eval", "eval-var-limit")),
    ]


EXPERIMENT = Experiment(
    name="batchnorm",
    gated=False,
    claim_id="C4",
    claim="BatchNorm1d (PyTorch semantics): every training batch has Σx̂ = 0, Σx̂² = mσ_B²/(σ_B²+ε) and "
          "|x̂| ≤ √(m−1); E[σ_B²] = (m−1)σ²/m; the running statistics (unbiased running_var) converge so "
          "that the eval-mode output has mean → 0 and variance → γ²σ²/(σ²+ε).",
    source="document §2; Ioffe & Szegedy 2015; PyTorch BatchNorm1d",
    params=(
        Param("c", "float", 1.0, "input mean"),
        Param("v", "float", 4.0, "input variance σ²", low=0.0, low_open=True),
        Param("m", "int", 8, "batch size", low=2, high=4096),
        Param("steps", "int", 100, "training batches per run", low=1, high=100_000),
        Param("momentum", "float", bn.MOMENTUM, "PyTorch momentum; none = cumulative average",
              low=0.0, high=1.0, low_open=True, none=True),
        Param("eps", "float", bn.EPS, "ε added to the variance", low=0.0),
        Param("gamma", "float", 1.0, "scale γ of the BN output", low=0.0, low_open=True),
    ),
    checks=(
        CheckSpec("sum-xhat", "exact", "largest |Σx̂|/Σ|x̂| over every training batch vs 0 (noiseless)",
                  ("sum-xhat",), subclaim="C4"),
        CheckSpec("sum-xhat²", "exact", "largest relative error of Σx̂² = mσ_B²/(σ_B²+ε) vs 0 (noiseless)",
                  ("sum-xhat²",), subclaim="C4"),
        CheckSpec("samuelson", "inequality", "smallest slack of |x̂| ≤ √(m−1) over every batch ≥ 0 (noiseless)",
                  ("samuelson",), subclaim="C4"),
        CheckSpec("batch-var", "exact", "E[σ_B²] vs (m−1)σ²/m", ("batch-var",), subclaim="C4"),
        CheckSpec("running-mean", "exact", "E[running_mean] vs (1 − (1−momentum)^steps) c",
                  ("running-mean",), subclaim="C4"),
        CheckSpec("running-var", "exact", "E[running_var] vs (1−momentum)^steps + (1 − (1−momentum)^steps) σ²",
                  ("running-var",), subclaim="C4"),
        CheckSpec("eval-mean", "exact", "eval-mode output mean vs its exact finite-steps value (≈ 0)",
                  ("eval-mean",), subclaim="C4-eval"),
        CheckSpec("eval-var", "exact", "eval-mode output variance vs its exact finite-steps value (quadrature)",
                  ("eval-var",), subclaim="C4-eval"),
        CheckSpec("eval-var-limit", "approximation", "eval-mode output variance vs the limit γ²σ²/(σ²+ε)",
                  ("eval-var-limit",), subclaim="C4-eval"),
    ),
    run=run,
    subclaims=("C4", "C4-eval"),
    samples=50_000,
    notes="One sample is one training run (steps batches of m, inputs N(c, v)) plus an eval batch of "
          f"{EVAL_BATCH}. Does not depend on p. The eval variance differs from its limit by the noise of the "
          "running statistics (order momentum/((2−momentum) m)); eval-var checks the exact finite-steps value.",
    validate=_validate,
    verify_points=({}, {"eps": 0.0, "m": 2}, {"eps": 0.5, "m": 16}, {"momentum": None, "steps": 30},
                   {"momentum": 1.0, "m": 16}, {"c": -3.0, "v": 0.25, "steps": 10, "gamma": 2.0}),
)
