"""C2 — inverted dropout keeps the mean and inflates the variance (document §1).

Samples ``h`` from a distribution with mean c and variance v, a gate
``d ~ Bernoulli(p)``, and ``h' = d h / p``. Compares the mean and variance of h'
with the closed forms, and with the document's variance formula as written
(an erratum: ``μ_h`` where ``μ_h²`` belongs).
"""
import numpy as np

from ..core.engine import run as run_engine
from ..core.errors import ParameterError
from ..core.jit import kernel, threaded
from ..core.rng import block_state, keep_threshold, next_keep, next_normal, next_uniform
from ..core.stats import ACC_WIDTH, finish_moments, push_value
from ..theory import closed_forms as cf
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, Param

DISTS = ("normal", "uniform", "relu-normal")


@kernel
def _draw(s, dist, a, b):
    """One input: normal N(a, b²), uniform on [a − b, a + b], or max(0, N(a, b²))."""
    if dist == 0:
        return a + b * next_normal(s)
    if dist == 1:
        return a + b * (2.0 * next_uniform(s) - 1.0)
    return max(0.0, a + b * next_normal(s))


@threaded
def _inverted_blocks(key, first, count, base, rem, dist, a, b, threshold, p, out, maxima):
    """Moments of [h', (h' − h)²] per block."""
    for j in range(count):
        blk = first + j
        s = block_state(key, blk)
        acc = np.zeros((2, ACC_WIDTH))
        for _ in range(base + (1 if blk < rem else 0)):
            h = _draw(s, dist, a, b)
            hp = next_keep(s, threshold) * h / p
            push_value(acc, 0, hp)
            push_value(acc, 1, (hp - h) ** 2)
        finish_moments(acc, out[j])


def relu_normal_parameters(c, v):
    """``(μ, s)`` such that ``max(0, N(μ, s²))`` has mean c and variance v.

    Notes
    -----
    With ``a = μ/s`` the rectified normal has mean ``s (a Φ(a) + φ(a))`` and
    second moment ``s² ((a² + 1) Φ(a) + a φ(a))``; ``v/c²`` fixes a (it falls
    monotonically in a), then c fixes s.
    """
    if c <= 0 or v <= 0:
        raise ParameterError(f"dist=relu-normal needs c > 0 and v > 0 (got c={c:g}, v={v:g})")
    ratio = v / c / c
    if not 0 < ratio < float("inf"):
        raise ParameterError(f"dist=relu-normal cannot have v/c² = {ratio:g}")

    def g1(a):
        return a * cf.normal_cdf(a) + cf.normal_pdf(a)

    def excess(a):
        g2 = (a * a + 1) * cf.normal_cdf(a) + a * cf.normal_pdf(a)
        return np.log(g2 / g1(a) ** 2 - 1) - np.log(ratio)

    lo, hi = -25.0, 1e4
    if not excess(lo) > 0 > excess(hi):
        raise ParameterError(f"dist=relu-normal cannot have v/c² = {ratio:g}")
    from scipy.optimize import brentq  # here: importing scipy.optimize costs a second at start-up
    a = brentq(excess, lo, hi, xtol=1e-14)
    s = c / g1(a)
    return a * s, s


def _dist_parameters(dist, c, v):
    if dist == "normal":
        return 0, c, np.sqrt(v)
    if dist == "uniform":
        return 1, c, np.sqrt(3.0 * v)
    return (2, *relu_normal_parameters(c, v))


def _validate(values):
    if "relu-normal" in values["dist"]:
        relu_normal_parameters(values["c"], values["v"])


def run(p, q, ctx):
    """Measure C2: mean and variance of inverted dropout ``h' = δ h / p`` for each input distribution,
    against ``μ_h`` and ``σ²/p + ((1−p)/p) μ²`` (and the document's erratum ``− μ_h``).

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    ``mean``, ``var``, ``mask-var`` and the erratum ``var-as-written`` for each distribution of ``dist``.
    """
    c, v = q["c"], q["v"]
    checks = []
    for dist in q["dist"]:
        code, a, b = _dist_parameters(dist, c, v)
        sample = run_engine(_inverted_blocks, (code, float(a), float(b), keep_threshold(p), float(p)), 2,
                            ctx.samples, ctx.key("gates", dist=dist), where=ctx.where(dist=dist),
                            progress=ctx.bar(dist))
        params = {"p": p, "c": c, "v": v, "dist": dist}
        mean, var, mask = sample.mean(0), sample.var(0), sample.mean(1)
        checks += [
            Check(f"mean ({dist})", "exact", cf.inverted_mean(c, v, p), mean.value, mean.mcse, params,
                  formula="E[h'] = μ_h", facts=Facts(quantity="mean", setting=dist)),
            Check(f"var ({dist})", "exact", cf.inverted_variance(c, v, p), var.value, var.mcse, params,
                  formula="Var(h') = σ²/p + ((1−p)/p) μ²", facts=Facts(quantity="var", setting=dist)),
            Check(f"var-as-written ({dist})", "erratum", cf.inverted_variance_as_written(c, v, p),
                  var.value, var.mcse, params, formula="document: Var(h') = E(h²)/p − μ_h",
                  truth=cf.inverted_variance(c, v, p), facts=Facts(quantity="var-as-written", setting=dist)),
            Check(f"mask-var ({dist})", "exact", cf.inverted_mask_variance(c, v, p), mask.value, mask.mcse,
                  params, formula="E[(h'−h)²] = E[h²](1−p)/p", facts=Facts(quantity="mask-var", setting=dist)),
        ]
    return checks


EXPERIMENT = Experiment(
    name="inverted-dropout",
    claim_id="C2",
    claim="Inverted dropout h' = d h / p keeps the mean and changes the variance: "
          "Var(h') = E(h²)/p − μ_h² (the document's last line writes − μ_h: an erratum).",
    source="document §1",
    params=(
        Param("c", "float", 2.0, "input mean μ_h"),
        Param("v", "float", 1.0, "input variance σ_h²", low=0.0),
        Param("dist", "choices", DISTS, "input distributions, each with mean c and variance v", choices=DISTS),
    ),
    checks=(
        CheckSpec("mean (dist)", "exact", "E[h'] vs μ_h", ("mean",), ("setting",)),
        CheckSpec("var (dist)", "exact", "Var(h') vs σ²/p + ((1−p)/p) μ²", ("var",), ("setting",)),
        CheckSpec("var-as-written (dist)", "erratum", "Var(h') vs the document's E(h²)/p − μ_h", ("var-as-written",),
                  ("setting",)),
        CheckSpec("mask-var (dist)", "exact", "E[(h'−h)²] vs E[h²](1−p)/p (mask noise alone)", ("mask-var",),
                  ("setting",)),
    ),
    run=run,
    samples=1_000_000,
    notes="The erratum agrees with the truth only when c ∈ {0, 1}; the default c = 2 separates them.",
    validate=_validate,
)
