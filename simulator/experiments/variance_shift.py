"""C5 — dropout before BN shifts the variance BN sees at test time (Li et al., CVPR 2019).

The unit before BN is ``X = Σ_i w_i x_i f_i`` over d correlated inputs
``x_i = c + √v (√ρ z₀ + √(1−ρ) z_i)`` and mean-1 multiplicative noise ``f_i``:
Bernoulli inverted dropout ``a_i/p``, Uout ``1 + U(−β, β)`` or Gaussian dropout
``1 + N(0, (1−p)/p)``; ``d = 1`` is the single unit ``X = a x / p``. Three parts:

1. the moments of X with noise on (train) and off (test), paired on the same
   inputs, and their ratio Δ = Var_test / Var_train; for Bernoulli noise and small
   d also the exact sum over all 2^d masks;
2. the mechanism: BatchNorm1d (PyTorch semantics) trained for ``steps`` batches with
   the noise on, then evaluated with it off, next to the same BN trained with the
   noise off on the same inputs;
3. the width rule: Δ at d = 64 with and without input correlation and weight alignment.
"""
import math

import numpy as np

from ..core.arrays import copy_column, set_column
from ..core.engine import MIN_SAMPLES
from ..core.engine import run as run_engine
from ..core.errors import ParameterError, SimulationError
from ..core.jit import inline, kernel, threaded
from ..core.rng import (
    block_state,
    draw_fill_normal,
    draw_keep,
    draw_mask,
    draw_normal,
    draw_uniform,
    keep_threshold,
    stream_key,
)
from ..core.stats import (
    ACC_WIDTH,
    HALF,
    LANES,
    Estimate,
    accumulate_lanes,
    finish_lanes,
    finish_moments,
    mean_of,
    push_value,
    var_of,
)
from ..nn import batchnorm as bn
from ..theory import closed_forms as cf
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, Param

NOISES = ("bernoulli", "uout", "gaussian")
_CODE = {"bernoulli": 0, "uout": 1, "gaussian": 2}
_NONE = 3  # noise off: the test-time unit
ENUM_MAX_D = 16
EVAL_BATCH = 64
TOLERANCE_FACTOR = 2.0  # safety factor on leading-order deviations (covers the dropped higher orders)
RUN_DIVISOR = 250  # one training run costs about steps·m draws: runs = samples / RUN_DIVISOR
WIDTH_DIVISOR = 16  # a d = 64 draw costs ~30 single-unit draws: width streams use samples / WIDTH_DIVISOR
WIDTH_DEMO = 64
RHO_DEMO = 0.5


@inline
def _draw_sum(s0, s1, s2, s3, noise, threshold, p, spread, c, sv, sr, sq, w, z):
    """One weighted sum on fresh inputs: returns ``(X with noise, X without noise, s0, s1, s2, s3)``.

    The generator state goes in and out as four scalars (it stays in registers
    across a batch: about 1.6 times faster at d = 1 than a state array). ``z`` is
    scratch for all the normals of one draw, in this order: d input normals, then
    the common factor when ρ > 0 (``sr > 0``), then d noise normals for Gaussian
    noise (see :func:`_buffer_size`); Bernoulli gates and Uout uniforms follow,
    one per input.
    """
    d = w.size
    s0, s1, s2, s3 = draw_fill_normal(s0, s1, s2, s3, z, 0.0, 1.0)
    common = sr * z[d] if sr > 0.0 else 0.0
    gauss = z.size - d
    noisy = 0.0
    clean = 0.0
    for i in range(d):
        wx = w[i] * (c + sv * (common + sq * z[i]))
        if noise == 0:
            g, s0, s1, s2, s3 = draw_keep(s0, s1, s2, s3, threshold)
            f = g / p
        elif noise == 1:
            u, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
            f = 1.0 + spread * (2.0 * u - 1.0)
        elif noise == 2:
            f = 1.0 + spread * z[gauss + i]
        else:
            f = 1.0
        # wx * 1.0 == wx: with no noise (p = 1) both sums are bitwise equal.
        noisy += wx * f
        clean += wx
    return noisy, clean, s0, s1, s2, s3


@kernel
def _buffer_size(noise, d, sr):
    """Normals per draw: d inputs, a common factor when ρ > 0, d Gaussian noises."""
    return d + (1 if sr > 0.0 else 0) + (d if noise == 2 else 0)


@inline
def _draw_lane(s0, s1, s2, s3, l, noise, spread, sr, z, common, f):
    """Lane ``l``'s d input normals, its common factor (ρ > 0) and its d noise draws (Uout, Gaussian)."""
    d = z.shape[0]
    for i in range(d):
        z[i, l], s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
    if sr > 0.0:
        g, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
        common[l] = sr * g
    if noise == 1:
        for i in range(d):
            u, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
            f[i, l] = 1.0 + spread * (2.0 * u - 1.0)
    elif noise == 2:
        for i in range(d):
            g, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
            f[i, l] = 1.0 + spread * g
    return s0, s1, s2, s3


@inline
def _lane_sums(s0, s1, s2, s3, noise, threshold, ip, c, sv, sr, sq, w, z, common, f, V):
    """The noisy (V[0]) and clean (V[1]) weighted sums of every lane, terms added i = 0..d−1; Bernoulli draws
    one mask word per input here."""
    V[0, :] = 0.0
    V[1, :] = 0.0
    for i in range(w.size):
        wi = w[i]
        if noise == 0:
            word, s0, s1, s2, s3 = draw_mask(s0, s1, s2, s3, threshold)
            mask = np.int64(word)  # signed: Numba vectorizes int64 shifts and conversions, not uint64 ones
            for l in range(LANES):
                # With ρ = 0 (common 0, sq 1) this is c + sv z, bit for bit.
                wx = wi * (c + sv * z[i, l]) if sr == 0.0 else wi * (c + sv * (common[l] + sq * z[i, l]))
                # A gate is 1/p or 0; at p = 1, wx * 1.0 == wx: both sums are bitwise equal.
                V[0, l] += wx * (float((mask >> l) & 1) * ip)
                V[1, l] += wx
        else:
            for l in range(LANES):
                wx = wi * (c + sv * (common[l] + sq * z[i, l]))
                V[0, l] += wx * f[i, l]
                V[1, l] += wx
    return s0, s1, s2, s3


@kernel
def _shift_block(state, size, noise, threshold, p, spread, c, sv, sr, sq, w, mu, out):
    """Moments of one block of ``size`` samples; see :func:`shift_blocks`.

    Samples go in groups of LANES (as in ``dropout_gradient``). Per group the stream
    gives, lane by lane, the sample's d input normals, its common factor (ρ > 0),
    then its d noise draws (Gaussian normals or Uout uniforms); for Bernoulli noise
    then one mask word per input i, whose bit l is the gate of sample l
    (``rng.draw_mask``: 64 gates for a few raw draws instead of one each).
    Both sums add their d terms in the order i = 0..d−1, and a gate is ``1/p`` or
    0: at p = 1 the noisy sum is the clean one bit for bit.
    """
    d = w.size
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    z = np.zeros((d, LANES))  # input normals of every lane
    common = np.zeros(LANES)  # √ρ g₀ of every lane
    f = np.ones((d, LANES))  # noise factor of every lane (Uout, Gaussian)
    V = np.empty((5, LANES))
    S = np.zeros((4, 5, HALF))
    shift = np.zeros(5)
    ip = 1.0 / p
    done = 0
    while done < size:
        lanes = min(LANES, size - done)
        for l in range(lanes):
            s0, s1, s2, s3 = _draw_lane(s0, s1, s2, s3, l, noise, spread, sr, z, common, f)
        s0, s1, s2, s3 = _lane_sums(s0, s1, s2, s3, noise, threshold, ip, c, sv, sr, sq, w, z, common, f, V)
        for l in range(LANES):
            a = (V[1, l] - mu) ** 2
            b = (V[0, l] - mu) ** 2
            V[2, l] = a
            V[3, l] = b
            V[4, l] = a - b
        if done == 0:
            copy_column(V, 0, shift)
        for l in range(lanes, LANES):
            set_column(V, l, shift)  # lanes past the end add exactly zero
        accumulate_lanes(V, shift, S)
        done += lanes
    finish_lanes(S, shift, size, out)


@threaded
def shift_blocks(key, first, count, base, rem, noise, threshold, p, spread, c, sv, sr, sq, w, mu, out, maxima):
    """Moments of [X_train, X_test, A, B, A − B] per block, paired on the same inputs.

    ``A = (X_test − mu)²`` and ``B = (X_train − mu)²`` with ``mu = E[X]`` give the
    delta-method error of Var_test/Var_train (see :func:`shift_estimate`). Noise
    codes 0–2 (Bernoulli, Uout, Gaussian); see :func:`_shift_block` for the draws.
    """
    for j in range(count):
        b = first + j
        _shift_block(block_state(key, b), base + (1 if b < rem else 0), noise, threshold, p, spread, c, sv, sr,
                     sq, w, mu, out[j])


def shift_estimate(sample):
    """Δ = Var_test/Var_train from the moments of :func:`shift_blocks`, MCSE by the delta method.

    Notes
    -----
    With ``A = (X_test − μ)²``, ``B = (X_train − μ)²``, ``Δ̂ − Δ ≈ mean(A − ΔB)/E[B]``, so
    ``MCSE = sd(A − ΔB)/(√N E[B])`` with ``Var(A − ΔB) = (1 − Δ) Var A + Δ Var(A − B) + (Δ² − Δ) Var B``.
    Paired samples make it exactly 0 when the noise is off (A = B); unlike batch means it
    needs no per-batch ratio, which fails when a small batch has every unit dropped.
    """
    t = sample.total
    n = t[0, 0]
    delta = var_of(t, 1) / var_of(t, 0)
    va, vb, vd = t[2, 2] / n, t[3, 2] / n, t[4, 2] / n
    lin = max((1.0 - delta) * va + delta * vd + (delta * delta - delta) * vb, 0.0)
    return Estimate(float(delta), float(math.sqrt(lin / n) / mean_of(t, 3)))


@threaded
def _mechanism_blocks(key, first, count, base, rem, noise, threshold, p, spread, c, sv, sr, sq, w,
                      m, steps, momentum, eps, gamma, neval, out, maxima):
    """Per training run: [rv, rm, mean y, mean y²] of the BN trained with noise, then the same of
    the BN trained without noise on the same inputs; both evaluated on one noise-free eval batch."""
    d = w.size
    for j in range(count):
        b = first + j
        s = block_state(key, b)
        s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
        acc = np.zeros((8, ACC_WIDTH))
        z = np.empty(_buffer_size(noise, d, sr))
        ze = np.empty(_buffer_size(_NONE, d, sr))
        xn = np.empty(m)
        xc = np.empty(m)
        xe = np.empty((neval, 1))
        ye = np.empty((neval, 1))
        mean = np.empty(1)
        var = np.empty(1)
        rms = np.empty((2, 1))
        rvs = np.empty((2, 1))
        for _ in range(base + (1 if b < rem else 0)):
            rms[:, 0] = 0.0
            rvs[:, 0] = 1.0
            for step in range(1, steps + 1):
                for i in range(m):
                    xn[i], xc[i], s0, s1, s2, s3 = _draw_sum(s0, s1, s2, s3, noise, threshold, p, spread, c, sv,
                                                             sr, sq, w, z)
                mean[0], var[0] = bn.unit_moments(xn)
                bn.update_running(rms[0], rvs[0], mean, var, m, momentum, step)
                mean[0], var[0] = bn.unit_moments(xc)
                bn.update_running(rms[1], rvs[1], mean, var, m, momentum, step)
            for i in range(neval):
                _, xe[i, 0], s0, s1, s2, s3 = _draw_sum(s0, s1, s2, s3, _NONE, threshold, p, spread, c, sv, sr, sq,
                                                        w, ze)
            for k in range(2):
                bn.bn_eval(xe, rms[k], rvs[k], eps, ye)
                y1, y2 = 0.0, 0.0
                for i in range(neval):
                    y = gamma * ye[i, 0]
                    y1 += y
                    y2 += y * y
                push_value(acc, 4 * k, rvs[k, 0])
                push_value(acc, 4 * k + 1, rms[k, 0])
                push_value(acc, 4 * k + 2, y1 / neval)
                push_value(acc, 4 * k + 3, y2 / neval)
        finish_moments(acc, out[j])


@kernel
def enumerate_masks(w, p, mu, M):
    """``(E[X], E[X²])`` of ``X = Σ w_i a_i x_i / p`` summed over all 2^d masks.

    The inputs enter only through ``mu = E[x]`` and ``M = E[x xᵀ]`` (for fixed inputs
    ``M = x xᵀ``): ``E[X | mask] = u·mu``, ``E[X² | mask] = uᵀ M u`` with ``u = w∘a/p``.
    Sums in two levels (1024 masks at a time) to keep rounding error small.
    """
    d = w.size
    u = np.empty(d)
    total = np.zeros(2)
    part = np.zeros(2)
    for mask in range(1 << d):
        prob = 1.0
        for i in range(d):
            if (mask >> i) & 1:
                prob *= p
                u[i] = w[i] / p
            else:
                prob *= 1.0 - p
                u[i] = 0.0
        first = 0.0
        second = 0.0
        for i in range(d):
            first += u[i] * mu[i]
            for k in range(d):
                second += u[i] * M[i, k] * u[k]
        part[0] += prob * first
        part[1] += prob * second
        if (mask & 1023) == 1023 or mask == (1 << d) - 1:
            total += part
            part[:] = 0.0
    return total


def input_moments(d, c, v, rho):
    """``(E[x], E[x xᵀ])`` of d inputs of mean c, variance v and pairwise correlation ρ."""
    cov = v * ((1 - rho) * np.eye(d) + rho * np.ones((d, d)))
    mu = np.full(d, float(c))
    return mu, cov + np.outer(mu, mu)


def enumerated_variances(w, p, c, v, rho):
    """``(Var_train, Var_test)`` of Bernoulli dropout by summing over all 2^d masks (exact)."""
    mu, M = input_moments(w.size, c, v, rho)
    first, second = enumerate_masks(w, float(p), mu, M)
    mean = float(w @ mu)
    return second - first * first, float(w @ M @ w) - mean * mean


def weights(seed, d, cos2):
    """Unit-norm weights with squared cosine ``cos2`` to the all-ones vector (None: random N(0, 1)).

    Notes
    -----
    ``w = √cos2 · 1/√d + √(1 − cos2) · u`` with u a unit vector orthogonal to the
    all-ones vector, drawn from the seed (not from p): ``(Σw)²/(d‖w‖²) = cos2`` exactly.
    Random weights have ``E[cos²θ] = 1/d``.
    """
    rng = np.random.default_rng(stream_key(seed, "variance-shift", "weights", d, cos2))
    ones = np.full(d, 1.0 / math.sqrt(d))
    if cos2 is None:
        w = rng.normal(0.0, 1.0, d)
    elif d == 1 or cos2 == 1.0:
        w = ones
    else:
        u = rng.normal(0.0, 1.0, d)
        u -= u.mean()
        w = math.sqrt(cos2) * ones + math.sqrt(1.0 - cos2) * u / np.linalg.norm(u)
    return w / np.linalg.norm(w)


def squared_cosine(w):
    """``cos²θ = (Σw)² / (d ‖w‖²)``."""
    return float(w.sum() ** 2 / (w.size * (w @ w)))


def unit_args(noise, p, beta, c, v, rho, w):
    """The argument tuple :func:`shift_blocks` takes for one unit: noise code, keep threshold, p, the
    noise's spread (β for Uout, √((1−p)/p) for dropout), c, √v, √ρ, √(1−ρ) and the weights ``w``."""
    spread = beta if noise == "uout" else math.sqrt((1 - p) / p)
    return (_CODE[noise], keep_threshold(p), float(p), float(spread), float(c), math.sqrt(v),
            math.sqrt(rho), math.sqrt(1 - rho), np.ascontiguousarray(w, dtype=float))


def _progress(ctx, label, total):
    if ctx.progress is None:
        return None
    return lambda done, compiling=False: ctx.progress(
        "compiling kernels (first run only)" if compiling else f"{ctx.experiment} {label}", done, total)


def _unit_shift(ctx, p, q, noise, w, rho, samples, tag):
    """Sampled moments of the unit (noise on and off, paired), its Δ, and the closed-form variances."""
    c, v = q["c"], q["v"]
    s2 = cf.noise_variance(noise, p, q["beta"])
    vtrain, vtest = cf.weighted_sum_variances(c, v, s2, rho, w)
    args = unit_args(noise, p, q["beta"], c, v, rho, w) + (c * float(np.sum(w)),)
    sample = run_engine(shift_blocks, args, 5, samples,
                        ctx.key("unit", noise=noise, tag=tag, rho=rho), where=ctx.where(noise=noise, tag=tag),
                        progress=_progress(ctx, f"{noise} {tag}", samples))
    if sample.total[0, 2] == 0.0:
        raise SimulationError(f"{ctx.where(noise=noise, tag=tag)}: every sampled unit was dropped, so Var_train "
                              "cannot be estimated; use more samples or a larger p")
    return sample, shift_estimate(sample), vtrain, vtest


def _mechanism_checks(ctx, p, q, noise, w, vtrain, vtest, params):
    """BN trained with the noise on, evaluated with it off: running_var, eval variance, ratio, mean.

    Tolerances are twice the leading-order deviation (see
    :func:`simulator.nn.batchnorm.eval_variance_deviation`) computed from the closed-form
    Var(running_mean) and the measured Var(running_var).
    """
    c, m, steps, momentum, eps, gamma = (q[k] for k in ("c", "m", "steps", "momentum", "eps", "gamma"))
    runs = max(MIN_SAMPLES, ctx.samples // RUN_DIVISOR)
    args = unit_args(noise, p, q["beta"], c, q["v"], q["rho"], w) + (
        int(m), int(steps), bn.momentum_code(momentum), float(eps), float(gamma), EVAL_BATCH)
    sample = run_engine(_mechanism_blocks, args, 8, runs, ctx.key("mechanism", noise=noise),
                        where=ctx.where(noise=noise), progress=_progress(ctx, f"{noise} BN runs", runs))
    params = {**params, "runs": runs}
    a0, a = bn.running_weights(momentum, steps)
    s2 = float(np.sum(a * a))
    mean_x = c * float(w.sum())
    rv_noisy = a0 + (1 - a0) * vtrain
    dev_noisy = bn.eval_variance_deviation(vtest, vtrain, s2 * vtrain / m, a0 * mean_x, sample.var(0).value,
                                           rv_noisy, eps)
    dev_clean = bn.eval_variance_deviation(vtest, vtest, s2 * vtest / m, a0 * mean_x, sample.var(4).value,
                                           a0 + (1 - a0) * vtest, eps)
    tol_var = TOLERANCE_FACTOR * abs(dev_noisy)
    tol_ratio = TOLERANCE_FACTOR * (abs(dev_noisy) + abs(dev_clean))
    # |E[y]| ≲ γ (|bias rm| + |Cov(rm, rv)|/(2R)) / √R with |Cov| ≤ sd(rm) sd(rv) (leading order).
    r = rv_noisy + eps
    sd_rm, sd_rv = math.sqrt(s2 * vtrain / m), math.sqrt(sample.var(0).value)
    bound = TOLERANCE_FACTOR * gamma * (abs(a0 * mean_x) + sd_rm * sd_rv / (2 * r)) / math.sqrt(r)
    rv = sample.mean(0)
    ey = sample.mean(2)
    eval_var = sample.derived(lambda t: mean_of(t, 3) - mean_of(t, 2) ** 2)
    ratio = sample.derived(lambda t: (mean_of(t, 3) - mean_of(t, 2) ** 2) / (mean_of(t, 7) - mean_of(t, 6) ** 2))
    n = f" ({noise})"
    return [
        Check("running-var" + n, "exact", rv_noisy, rv.value, rv.mcse, params,
              formula="E[running_var] = (1−momentum)^steps + (1 − (1−momentum)^steps) Var_train",
              facts=Facts("C5-eval", "running-var", setting=noise)),
        Check("eval-var" + n, "approximation", gamma ** 2 * vtest / (vtrain + eps), eval_var.value, eval_var.mcse,
              params, tolerance=tol_var,
              formula=f"eval Var(y) ≈ Δγ² (× Var_train/(Var_train+ε)); tolerance {tol_var:.2g} = "
                      "2 × leading-order running-stat noise", facts=Facts("C5-eval", "eval-var", setting=noise)),
        Check("eval-ratio" + n, "approximation", (vtest + eps) / (vtrain + eps), ratio.value, ratio.mcse, params,
              tolerance=tol_ratio,
              formula=f"eval Var(y) trained with noise / trained without ≈ Δ; tolerance {tol_ratio:.2g}",
              facts=Facts("C5-eval", "eval-ratio", setting=noise)),
        Check("eval-mean" + n, "inequality", 0.0, bound - abs(ey.value), ey.mcse, params,
              formula=f"{bound:.2g} − |E[y]| ≥ 0: no mean shift beyond 2 × leading-order running-stat noise",
              facts=Facts("C5-eval", "eval-mean", setting=noise)),
    ]


def _validate(values):
    if values["d"] == 1 and values["cos2"] not in (None, 1.0):
        raise ParameterError(f"cos2={values['cos2']:g} with d=1: one weight is always parallel to the "
                             "all-ones vector, so cos2 must be 1 (or none)")


def run(p, q, ctx):
    """Measure C5 for one unit: the variance a BN sees after dropout (or Uout) in training against eval
    mode, the ratio Li et al. predict, and its growth with the width d.

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    ``running-var``, ``eval-var``, ``eval-ratio`` and ``eval-mean`` of the BN; per width, ``var-train``,
    ``var-test``, ``shift`` and, for small d, their ``enum-*`` sums over all masks; ``shift[d=…]``.
    """
    c, v, d, rho = q["c"], q["v"], q["d"], q["rho"]
    w = weights(ctx.seed, d, q["cos2"])
    params = {"p": p, **{k: x for k, x in q.items() if k != "noise"}, "cos2_actual": round(squared_cosine(w), 6)}
    if d > 1:
        params["w"] = w.round(6).tolist()
    checks = []
    for noise in q["noise"]:
        pn = {**params, "noise": noise}
        sample, shift, vtrain, vtest = _unit_shift(ctx, p, q, noise, w, rho, ctx.samples, f"d={d}")
        train, test = sample.var(0), sample.var(1)
        n = f" ({noise})"
        checks += [
            Check("var-train" + n, "exact", vtrain, train.value, train.mcse, pn,
                  formula="((1+s²)(c²+v) − c²)‖w‖² + ρv‖w‖²(d cos²θ − 1), s² = noise variance",
                  facts=Facts("C5", "var-train", setting=noise)),
            Check("var-test" + n, "exact", vtest, test.value, test.mcse, pn,
                  formula="v‖w‖² + ρv‖w‖²(d cos²θ − 1)", facts=Facts("C5", "var-test", setting=noise)),
            Check("shift" + n, "exact", vtest / vtrain, shift.value, shift.mcse, pn,
                  formula="Δ = Var_test / Var_train" + (" = v/((1/p)(c²+v) − c²)" if d == 1 else ""),
                  facts=Facts("C5", "shift", setting=noise)),
        ]
        if noise == "bernoulli" and d <= ENUM_MAX_D:
            etrain, etest = enumerated_variances(w, p, c, v, rho)
            checks += [
                Check("enum-var-train" + n, "enumeration", vtrain, etrain, 0.0, pn,
                      formula=f"Var_train summed over all 2^{d} masks (Gaussian input moments exact)",
                      facts=Facts("C5", "enum-var-train", setting=noise)),
                Check("enum-shift" + n, "enumeration", vtest / vtrain, etest / etrain, 0.0, pn,
                      formula=f"Δ summed over all 2^{d} masks", facts=Facts("C5", "enum-shift", setting=noise)),
            ]
        checks += _mechanism_checks(ctx, p, q, noise, w, vtrain, vtest, pn)
    checks += _width_checks(ctx, p, q, params)
    return checks


def _width_checks(ctx, p, q, params):
    """Δ at d = 64: width helps only with correlated inputs (ρ > 0) and weights aligned with 1."""
    noise = q["noise"][0]
    samples = max(MIN_SAMPLES, ctx.samples // WIDTH_DIVISOR)
    checks = []
    for rho, cos2, label in ((0.0, 1.0, "ρ=0"), (RHO_DEMO, 1.0, f"ρ={RHO_DEMO:g},cos²=1"),
                             (RHO_DEMO, None, f"ρ={RHO_DEMO:g},rand w")):
        w = weights(ctx.seed, WIDTH_DEMO, cos2)
        pw = {**params, "noise": noise, "d": WIDTH_DEMO, "rho": rho, "cos2": cos2,
              "cos2_actual": round(squared_cosine(w), 6), "samples": samples}
        pw.pop("w", None)
        _, shift, vtrain, vtest = _unit_shift(ctx, p, q, noise, w, rho, samples, f"width {label}")
        checks.append(Check(f"shift[d={WIDTH_DEMO},{label}]", "exact", vtest / vtrain, shift.value, shift.mcse, pw,
                            formula=f"Δ(p, d) = [v + ρv(d cos²θ − 1)]/[Var_train,1 + ρv(d cos²θ − 1)], "
                                    f"d cos²θ = {WIDTH_DEMO * squared_cosine(w):.3g} ({noise})",
                            facts=Facts("C5", "shift", width=WIDTH_DEMO, setting=noise)))
    return checks


_NOISE = ("setting",)  # the noise: bernoulli, uout or gaussian

EXPERIMENT = Experiment(
    name="variance-shift",
    claim_id="C5",
    claim="Dropout before BN: Var_train = (1/p)(c²+v) − c² but Var_test = v, so BN's running variance "
          "learns Var_train and its eval-mode output has variance Δγ², Δ = Var_test/Var_train ≤ 1, with no "
          "mean shift. Gaussian dropout keeps the shift, Uout (small β) shrinks it, width shrinks it only "
          "with correlated inputs and weights aligned with the all-ones vector.",
    source="document's conclusion; Li et al., CVPR 2019",
    params=(
        Param("c", "float", 1.0, "input mean"),
        Param("v", "float", 1.0, "input variance", low=0.0, low_open=True),
        Param("d", "int", 1, "width of the weighted sum before BN (1: the single unit)", low=1, high=1024),
        Param("rho", "float", 0.5, "pairwise correlation of the inputs", low=0.0, high=1.0),
        Param("cos2", "float", 1.0, "squared cosine of the weights with the all-ones vector; "
              "none = random N(0, 1) weights", low=0.0, high=1.0, none=True),
        Param("m", "int", 32, "BN batch size", low=2, high=4096),
        Param("steps", "int", 100, "BN training batches per run", low=1, high=100_000),
        Param("momentum", "float", bn.MOMENTUM, "PyTorch momentum; none = cumulative average",
              low=0.0, high=1.0, low_open=True, none=True),
        Param("eps", "float", bn.EPS, "BN ε", low=0.0, low_open=True),
        Param("gamma", "float", 1.0, "scale γ of the BN output", low=0.0, low_open=True),
        Param("beta", "float", 0.1, "Uout half-width β (noise 1 + U(−β, β); does not depend on p)",
              low=0.0, high=10.0),
        Param("noise", "choices", NOISES, "noise variants: bernoulli (inverted dropout a/p), "
              "uout (1 + U(−β, β)), gaussian (1 + N(0, (1−p)/p))", choices=NOISES),
    ),
    checks=(
        CheckSpec("var-train (noise)", "exact", "Var(X) with noise vs ((1+s²)(c²+v) − c²)‖w‖² + ρv‖w‖²(d cos²θ − 1)",
                  ("var-train",), _NOISE, subclaim="C5"),
        CheckSpec("var-test (noise)", "exact", "Var(X) without noise vs v‖w‖² + ρv‖w‖²(d cos²θ − 1)", ("var-test",),
                  _NOISE, subclaim="C5"),
        CheckSpec("shift (noise)", "exact", "Var_test/Var_train (paired inputs) vs Δ", ("shift",), _NOISE,
                  subclaim="C5"),
        CheckSpec("enum-var-train, enum-shift", "enumeration", "Bernoulli, d ≤ 16: the same over all 2^d masks",
                  ("enum-var-train", "enum-shift"), _NOISE, subclaim="C5",
                  only=f"noise bernoulli and d ≤ {ENUM_MAX_D}"),
        CheckSpec("running-var (noise)", "exact", "E[running_var] after steps vs its expectation → Var_train",
                  ("running-var",), _NOISE, subclaim="C5-eval"),
        CheckSpec("eval-var (noise)", "approximation", "eval-mode BN output variance vs Δγ²", ("eval-var",), _NOISE,
                  subclaim="C5-eval"),
        CheckSpec("eval-ratio (noise)", "approximation", "eval variance, BN trained with/without noise, vs Δ",
                  ("eval-ratio",), _NOISE, subclaim="C5-eval"),
        CheckSpec("eval-mean (noise)", "inequality", "|eval-mode BN output mean| within running-stat noise",
                  ("eval-mean",), _NOISE, subclaim="C5-eval"),
        CheckSpec("shift[d=64,…]", "exact", "Δ at width 64: ρ = 0; ρ = 0.5 aligned weights; ρ = 0.5 random weights",
                  ("shift",), (*_NOISE, "width"), subclaim="C5"),
    ),
    run=run,
    subclaims=("C5", "C5-eval"),
    samples=1_000_000,
    notes=f"samples counts unit draws; the BN mechanism uses samples/{RUN_DIVISOR} training runs (each steps·m "
          f"draws + an eval batch of {EVAL_BATCH}) and the width rows samples/{WIDTH_DIVISOR} draws of d = "
          f"{WIDTH_DEMO}. Uout's noise does not depend on p, so its shift stays at p = 1; Bernoulli and Gaussian "
          "shifts are exactly 1 there. Weights have unit norm and are drawn from the seed.",
    validate=_validate,
    # d = 8 only changes the law of X; fewer steps keep those points cheap (and test the finite-steps bias).
    verify_points=({}, {"c": 0.0}, {"c": 3.0, "v": 0.5}, {"d": 8, "rho": 0.0, "steps": 30},
                   {"d": 8, "rho": 0.5, "cos2": 0.2, "steps": 30}, {"d": 8, "rho": 0.5, "cos2": None, "steps": 30},
                   {"momentum": None, "steps": 50, "m": 4}),
)
