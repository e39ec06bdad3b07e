"""C1 — the dropout gradient equals a regularized gradient (document §1; Baldi & Sadowski 2013).

One linear unit ``O = Σ δ_i w_i I_i`` with squared error against a target t.
Samples gates (and inputs, with ``inputs=random``) and averages the gradient
``∂E_D/∂w_i = −(t − O) δ_i I_i`` and the loss ``E_D = ½ (t − O)²``, for plain
and for inverted dropout (``O = Σ δ_i w_i I_i / p_i``). With a fixed input the
expectation is a finite sum over the 2ⁿ masks, which is also computed exactly.

The sampling kernel works on groups of 64 samples: one mask word per input
(``rng.draw_mask``) gives the gates of the whole group, the outputs and the
2n + 2 values are vectors over the group, and the shifted power sums go into 32
partial sums per variable, so the loops vectorize without reordering any sum
in a way that depends on threads or timing.
"""
import numpy as np

from ..core.arrays import copy_column, set_column
from ..core.engine import run as run_engine
from ..core.errors import ParameterError
from ..core.jit import kernel, threaded
from ..core.rng import block_state, draw_mask, draw_normal, keep_threshold, stream_key
from ..core.stats import HALF, LANES, accumulate_lanes, finish_lanes
from ..theory import closed_forms as cf
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, Param

ENUM_MAX_N = 20


@kernel
def _gradient_block(state, size, w, I, thresholds, p, t, random_inputs, c, sd, out):
    """Moments of one block of ``size`` samples; see :func:`gradient_blocks`.

    Per group of LANES samples the stream gives, in this order: the inputs of every
    sample (``random_inputs``: n normals per sample), then one mask word per input i,
    whose bit l is the gate δ_i of sample l. A block's first sample is the shift of
    its power sums; lanes past the end of a short last group are set to the shift,
    so they add exactly zero.
    """
    n = w.size
    K = 2 * n + 2
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    x = np.empty((n, LANES))
    for i in range(n):
        x[i, :] = I[i]
    g = np.empty((n, LANES))
    o = np.empty(LANES)
    oi = np.empty(LANES)
    V = np.empty((K, LANES))
    S = np.zeros((4, K, HALF))
    shift = np.zeros(K)
    wp = w / p
    ip = 1.0 / p
    done = 0
    while done < size:
        lanes = min(LANES, size - done)
        if random_inputs:
            for l in range(lanes):
                for i in range(n):
                    z, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
                    x[i, l] = c + sd * z
        o[:] = 0.0
        oi[:] = 0.0
        for i in range(n):
            word, s0, s1, s2, s3 = draw_mask(s0, s1, s2, s3, thresholds[i])
            mask = np.int64(word)  # signed: Numba vectorizes int64 shifts and conversions, not uint64 ones
            wi, wpi = w[i], wp[i]
            for l in range(LANES):
                gl = float((mask >> l) & 1) * x[i, l]  # δ_i I_i without a branch
                g[i, l] = gl
                o[l] += wi * gl
                oi[l] += wpi * gl
        for i in range(n):
            ipi = ip[i]
            for l in range(LANES):
                V[i, l] = -(t - o[l]) * g[i, l]
                V[n + 1 + i, l] = -(t - oi[l]) * (g[i, l] * ipi)
        for l in range(LANES):
            V[n, l] = 0.5 * (t - o[l]) ** 2
            V[2 * n + 1, l] = 0.5 * (t - oi[l]) ** 2
        if done == 0:
            copy_column(V, 0, shift)
        for l in range(lanes, LANES):
            set_column(V, l, shift)
        accumulate_lanes(V, shift, S)
        done += lanes
    finish_lanes(S, shift, size, out)


@threaded
def gradient_blocks(key, first, count, base, rem, w, I, thresholds, p, t, random_inputs, c, sd,
                     out, maxima):
    """Moments of [grad_1..grad_n, loss, inv_grad_1..inv_grad_n, inv_loss] per block.

    Plain dropout: ``O = Σ δ_i w_i I_i``, ``grad_i = −(t − O) δ_i I_i``, ``loss = ½ (t − O)²``;
    inverted: ``O' = Σ δ_i w_i I_i / p_i``, ``inv_grad_i = −(t − O') δ_i I_i / p_i``.
    """
    for j in range(count):
        b = first + j
        _gradient_block(block_state(key, b), base + (1 if b < rem else 0), w, I, thresholds, p, t,
                        random_inputs, c, sd, out[j])


@kernel
def enumerate_masks(w, I, p, t):
    """Exact expectations over all 2ⁿ masks, same layout as :func:`gradient_blocks`.

    Sums in two levels (1024 masks at a time) to keep rounding error small.
    """
    n = w.size
    total = np.zeros(2 * n + 2)
    part = np.zeros(2 * n + 2)
    for mask in range(1 << n):
        prob = 1.0
        o = 0.0
        oi = 0.0
        for i in range(n):
            if (mask >> i) & 1:
                prob *= p[i]
                o += w[i] * I[i]
                oi += w[i] * I[i] / p[i]
            else:
                prob *= 1.0 - p[i]
        r = t - o
        ri = t - oi
        for i in range(n):
            if (mask >> i) & 1:
                part[i] += prob * (-r * I[i])
                part[n + 1 + i] += prob * (-ri * I[i] / p[i])
        part[n] += prob * 0.5 * r * r
        part[2 * n + 1] += prob * 0.5 * ri * ri
        if (mask & 1023) == 1023 or mask == (1 << n) - 1:
            total += part
            part[:] = 0.0
    return total


def setup(seed, n, c, v):
    """The weights and the fixed input of the unit, drawn from the seed (not from p)."""
    rng = np.random.default_rng(stream_key(seed, "dropout-gradient", "setup", n, c, v))
    w = rng.normal(0.0, 1.0, n)
    I = c + np.sqrt(v) * rng.normal(0.0, 1.0, n)
    return w, I


def _validate(values):
    if values["p_units"] is not None and len(values["p_units"]) != values["n"]:
        raise ParameterError(f"p_units has {len(values['p_units'])} values: need n={values['n']}")


def _regularizer_checks(w, m, M, p, t, sample, params):
    """The term the document calls the regularizer, by itself: ``E[∂E_D/∂w_i] − ∂E_N/∂w_i``.

    ``∂E_N/∂w_i`` is a constant (given the inputs' moments), so the difference has the
    MCSE of ``E[∂E_D/∂w_i]``; compared with ``w_i p_i(1−p_i) I_i²`` (``E[I_i²]`` for random
    inputs). Relative to the largest gradient, so that p = 1 (both 0) compares exactly.
    """
    base = cf.ensemble_gradient(w, m, M, p, t)
    term = w * p * (1 - p) * np.diag(M)
    scale = float(np.max(np.abs(cf.dropout_gradient(w, m, M, p, t))))
    checks = []
    for i in range(w.size):
        est = sample.mean(i)
        checks.append(Check(f"reg[{i + 1}]", "exact", float(term[i]), est.value - float(base[i]), est.mcse,
                            params, formula="E[∂E_D/∂w_i] − ∂E_N/∂w_i = w_i p_i(1−p_i) I_i²", scale=scale,
                            facts=Facts(quantity="reg", index=i + 1)))
    return checks


_VECTORS = ("grad", "inv-grad")  # one check per weight


def run(p, q, ctx):
    """Measure C1: the expected dropout gradient and loss of one linear unit against the weight-scaled
    network plus the regularizer ``w_i p_i(1−p_i) I_i²``.

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    ``grad[i]``, ``reg[i]``, ``loss``, ``inv-grad[i]``, ``inv-loss`` (Monte Carlo over the masks, with
    MCSE) and, for n ≤ 20 with a fixed input, the same identities summed exactly over all 2ⁿ masks
    (``enum-*``).
    """
    n, t, c, v = q["n"], q["t"], q["c"], q["v"]
    fixed = q["inputs"] == "fixed"
    pk = np.full(n, float(p)) if q["p_units"] is None else np.array(q["p_units"], dtype=float)
    w, I = setup(ctx.seed, n, c, v)
    m, M = cf.moments_fixed(I) if fixed else cf.moments_iid(n, c, v)
    params = {"p": p, **q, "p_units": pk.tolist(), "w": w.round(6).tolist()}
    if fixed:
        params["I"] = I.round(6).tolist()
    thresholds = np.array([keep_threshold(x) for x in pk], dtype=np.uint64)
    sample = run_engine(gradient_blocks, (w, I, thresholds, pk, float(t), not fixed, float(c), float(np.sqrt(v))),
                        2 * n + 2, ctx.samples, ctx.key("masks"), where=ctx.where(), progress=ctx.bar("masks"))
    forms = [
        ("grad", cf.dropout_gradient(w, m, M, pk, t), "∂E_N/∂w_i + w_i p_i(1−p_i) I_i²", 0),
        ("loss", [cf.dropout_loss(w, m, M, pk, t)], "E_N + ½Σ w_i² I_i² p_i(1−p_i)", n),
        ("inv-grad", cf.inverted_dropout_gradient(w, m, M, pk, t), "∂E/∂w_i + w_i I_i² (1−p_i)/p_i", n + 1),
        ("inv-loss", [cf.inverted_dropout_loss(w, m, M, pk, t)], "½(t−w·I)² + ½Σ w_i² I_i² (1−p_i)/p_i", 2 * n + 1),
    ]
    exact = fixed and n <= ENUM_MAX_N
    enum = enumerate_masks(w, I, pk, float(t)) if exact else None
    checks = _regularizer_checks(w, m, M, pk, t, sample, params)
    for name, values, formula, offset in forms:
        scale = float(np.max(np.abs(values)))
        for i, value in enumerate(values):
            label = f"{name}[{i + 1}]" if len(values) > 1 else name
            index = i + 1 if name in _VECTORS else None  # weight 1 of n = 1 too, although its name has no [1]
            est = sample.mean(offset + i)
            checks.append(Check(label, "exact", float(value), est.value, est.mcse, params, formula=formula,
                                facts=Facts(quantity=name, index=index)))
        if exact:
            for i, value in enumerate(values):
                label = f"enum-{name}[{i + 1}]" if len(values) > 1 else f"enum-{name}"
                checks.append(Check(label, "enumeration", float(value), float(enum[offset + i]), 0.0, params,
                                    formula=formula, scale=scale,
                                    facts=Facts(quantity=f"enum-{name}", index=i + 1 if name in _VECTORS else None)))
    return checks


EXPERIMENT = Experiment(
    name="dropout-gradient",
    claim_id="C1",
    claim="The expected dropout gradient is the gradient of the weight-scaled network plus "
          "w_i p_i(1−p_i) I_i²: dropout acts as a regularizer.",
    source="document §1; Baldi & Sadowski 2013",
    params=(
        Param("n", "int", 4, "number of inputs of the unit", low=1, high=1024),
        Param("t", "float", 1.0, "regression target"),
        Param("c", "float", 0.5, "mean of the inputs"),
        Param("v", "float", 1.0, "variance of the inputs", low=0.0),
        Param("inputs", "choice", "fixed", "fixed: one input vector drawn once from the seed "
              "(the claim's condition; masks only random); random: I ~ N(c, v) i.i.d. per sample",
              choices=("fixed", "random")),
        Param("p_units", "floats", None, "per-input keep probabilities (n values); default: p for all",
              low=0.0, high=1.0, low_open=True, none=True),
    ),
    checks=(
        CheckSpec("grad[i]", "exact", "E[∂E_D/∂w_i] vs ∂E_N/∂w_i + w_i p_i(1−p_i) I_i²", ("grad",), facts=("index",)),
        CheckSpec("reg[i]", "exact", "the regularizer term alone: E[∂E_D/∂w_i] − ∂E_N/∂w_i vs "
                  "w_i p_i(1−p_i) I_i²", ("reg",), ("index",)),
        CheckSpec("loss", "exact", "E[E_D] vs E_N + ½Σ w_i² I_i² p_i(1−p_i)", ("loss",)),
        CheckSpec("inv-grad[i]", "exact", "inverted dropout: E[∂E_D/∂w_i] vs ∂E/∂w_i + w_i I_i²(1−p_i)/p_i",
                  ("inv-grad",), facts=("index",)),
        CheckSpec("inv-loss", "exact", "inverted dropout: E[E_D] vs ½(t−w·I)² + ½Σ w_i² I_i²(1−p_i)/p_i",
                  ("inv-loss",)),
        CheckSpec("enum-*", "enumeration", "the same four identities summed over all 2ⁿ masks (fixed input, n ≤ 20)",
                  ("enum-grad", "enum-loss", "enum-inv-grad", "enum-inv-loss"), maybe=("index",),
                  only=f"inputs=fixed and n ≤ {ENUM_MAX_N}"),
    ),
    run=run,
    samples=1_000_000,
    notes="Weights w ~ N(0, 1) and the fixed input I ~ N(c, v) are drawn once from the seed.",
    validate=_validate,
)
