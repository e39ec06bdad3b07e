"""Run experiments of the catalog and judge their checks: the library entry point.

>>> from simulator import simulate
>>> result = simulate(p=0.5, experiments=["inverted-dropout"], samples=100_000)
>>> [c["verdict"] for c in result.checks][:2]
['confirmed', 'confirmed']
"""
import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from ..core.engine import set_threads
from ..core.errors import ParameterError, SimulationError, shown
from ..core.params import (
    DEFAULT_ALPHA,
    DEFAULT_SEED,
    P_MEANING,
    check_alpha,
    check_p,
    check_samples,
    check_seed,
    versions,
)
from ..experiments import CATALOG
from ..experiments.catalog import Context, suggest
from ..theory.claims import CLAIMS, summarize_all
from ..theory.verdict import Check, acceptable, judge, z_threshold
from .warmup import ready


@dataclass(frozen=True)
class Result:
    """What a run produced: ``meta`` (the run), ``checks`` (one dict per check) and ``claims``.

    The layout is the JSON contract of ``cli.py simulate --format json``. ``claims`` holds one
    entry per (sub-)claim with its outcome (:func:`simulator.theory.claims.summarize`); a sweep has none.
    """

    meta: dict
    checks: list
    claims: list = field(default_factory=list)

    def to_frame(self):
        """The checks as a tidy pandas DataFrame: one row per check, the columns of the JSON."""
        return frame(self.checks)

    def claims_frame(self):
        """The claim-level outcomes as a pandas DataFrame: one row per (sub-)claim."""
        import pandas as pd

        return pd.DataFrame(self.claims)

    def _repr_html_(self):
        return self.to_frame()._repr_html_()


def frame(rows):
    """Check rows as a pandas DataFrame, ``params`` spread into columns ``param.NAME`` (scalars only)."""
    import pandas as pd

    flat = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("params", "point")}
        row.update({f"param.{k}": v for k, v in r["params"].items() if not isinstance(v, (list, dict))})
        row.update({f"point.{k}": v for k, v in r.get("point", {}).items()})
        flat.append(row)
    return pd.DataFrame(flat)


def select(experiments=None):
    """The experiments named (all when None), in catalog order of request."""
    if not experiments:
        return list(CATALOG.values())
    chosen = []
    for name in experiments:
        if name not in CATALOG:
            raise ParameterError(f"unknown experiment {shown(name)}{suggest(name, CATALOG)}; "
                                 f"valid: {', '.join(CATALOG)}")
        if CATALOG[name] not in chosen:
            chosen.append(CATALOG[name])
    return chosen


def resolve(chosen, settings=None):
    """Parameters of each chosen experiment, with ``settings`` applied where the name exists."""
    settings = dict(settings or {})
    known = {q.name for e in chosen for q in e.params}
    for name in settings:
        if name not in known:
            raise ParameterError(f"unknown parameter {shown(name)}{suggest(name, known)}; "
                                 f"valid: {', '.join(sorted(known))}")
    return [e.resolve({k: v for k, v in settings.items() if k in {q.name for q in e.params}}) for e in chosen]


def _number(x):
    """JSON-safe float: None for NaN or infinity."""
    return float(x) if x is not None and math.isfinite(x) else None


def simulate(p=0.5, experiments=None, samples=None, seed=DEFAULT_SEED, threads=None, settings=None,
             alpha=DEFAULT_ALPHA, progress=None, stream=None):
    """Run experiments at keep probability ``p`` and judge every check.

    Parameters
    ----------
    p : float
        Keep probability in (0, 1] (PyTorch's ``nn.Dropout`` takes the drop probability ``1 − p``).
    experiments : list of str, optional
        Names from the catalog; all when None.
    samples : int or str, optional
        Monte Carlo samples per stream; each experiment's default when None.
    seed : int
        Determines every random number, whatever the thread count.
    threads : int, optional
        Numba threads; all cores when None.
    settings : dict, optional
        Parameter name → value (or text), applied to every chosen experiment that has it.
    alpha : float
        Family-wise error level of the simulator's self-tests: each of the E chosen experiments is its own
        Bonferroni family at level alpha / E (so a claim is decided as soon as its experiments are done;
        by the union bound the chance of any false refutation in the run stays below alpha). The findings
        about the document (effects, equivalences) are one family per sub-claim, each at alpha.
    progress : callable, optional
        ``progress(label, done, total)`` during long runs.
    stream : callable, optional
        ``stream(claims, head)`` with the claim entries (as in ``Result.claims``) as soon as the
        experiments that test them are done, the experiments that compile fastest first; every claim
        once. ``head`` has the run's ``p``, ``seed``, ``threads``, ``alpha`` and ``experiments`` (their
        count), and the ``z_threshold`` and ``checks_tested`` of the experiment just done.

    Returns
    -------
    Result
    """
    p, seed, alpha = check_p(p), check_seed(seed), check_alpha(alpha)  # E below: experiments with self-tests
    samples = None if samples is None else check_samples(samples)
    chosen = select(experiments)
    values = dict(zip((e.name for e in chosen), resolve(chosen, settings)))
    threads = set_threads(threads)
    start = time.perf_counter()
    rows_of, zstars, tested = _judge_each(_Run(p, seed, samples, threads, alpha, chosen, values, progress, stream))
    rows = [r for e in chosen for r in rows_of[e.name]]
    claims = summarize_all(rows, zstars, p, quotes(rows, p), acceptable)
    meta = {"p": p, "p_meaning": P_MEANING, "seed": seed,
            "samples": samples, "threads": threads, "alpha": alpha,
            "z_threshold": max((zstars[e.name] for e in chosen if e.self_tests), default=max(zstars.values())),
            "checks_tested": tested, "elapsed_s": round(time.perf_counter() - start, 3),
            "versions": versions()}
    if _families(chosen) > 1:
        meta["z_thresholds"] = {e.name: zstars[e.name] for e in chosen if e.self_tests}
    meta["findings"] = findings(rows)
    return Result(meta, rows, claims)


class _Run(NamedTuple):
    """What one :func:`simulate` call runs: its checked arguments, the experiments and their parameters."""

    p: float
    seed: int
    samples: int | None
    threads: int
    alpha: float
    chosen: list
    values: dict  # experiment name → its resolved parameters
    progress: object
    stream: object


def _families(chosen):
    """E, the experiments that share the self-tests' α (those with self-tests; at least 1)."""
    return max(1, sum(e.self_tests for e in chosen))


def _judge_each(run):
    """Measure and judge each experiment of ``run``, the fastest to compile first, each its own family of
    self-tests at alpha / E (the run's family-wise level stays alpha); hand ``run.stream`` the claims as
    they are decided. Returns ``(rows by experiment, z* by experiment, z-tests in all)``."""
    share = run.alpha / _families(run.chosen)
    rows_of, zstars, tested, sent = {}, {}, 0, set()
    with contextlib.closing(ready(run.chosen, run.progress)) as compiled:  # the compile workers stop with the run
        for exp in compiled:
            measured = measure(run.p, [exp], [run.values[exp.name]], run.seed, run.samples, run.progress)
            rows, zstars[exp.name], count = judge_all(measured, share, run.alpha)
            rows_of[exp.name], tested = rows, tested + count
            if run.stream is not None:
                head = {"p": run.p, "seed": run.seed, "threads": run.threads, "alpha": run.alpha,
                        "experiments": _families(run.chosen), "z_threshold": zstars[exp.name], "checks_tested": count,
                        "findings": findings(rows)}
                _stream_claims(lambda claims: run.stream(claims, head), run.chosen, rows_of, zstars, run.p, sent)
    return rows_of, zstars, tested


def findings(rows):
    """The families of the findings among ``rows``: sub-claim → its ``family`` (tests, alpha, z*)."""
    found = {r["family"]["subclaim"]: r["family"] for r in rows if r.get("family")}
    return {k: found[k] for k in sorted(found, key=lambda k: list(CLAIMS).index(k) if k in CLAIMS else len(CLAIMS))}


def _stream_claims(stream, chosen, rows_of, zstars, p, sent):
    """Hand ``stream`` the claims that the experiments done so far decide and that are not in ``sent``."""
    done = set(rows_of)
    final = {k for e in chosen if e.name in done for k in e.tests()
             if all(o.name in done for o in chosen if k in o.tests())}
    new = [r for e in chosen if e.name in done for r in rows_of[e.name] if r["subclaim"] in final - sent]
    if new:
        claims = summarize_all(new, zstars, p, quotes(new, p), acceptable)
        sent.update(c["id"] for c in claims)
        stream(claims)


def quotes(rows, p):
    """Each sub-claim's headline measurements at p: the checks its experiment names in ``headline``."""
    out = {}
    for r in rows:
        exp = CATALOG.get(r["experiment"])
        if r["kind"] == "measurement" and r["params"].get("p") == p and exp is not None and r["check"] in exp.headline:
            if all(q["check"] != r["check"] for q in out.get(r["subclaim"], [])):
                out.setdefault(r["subclaim"], []).append(r)
    return out


def measure(p, chosen, values, seed, samples, progress=None):
    """Run each experiment of ``chosen`` with its parameters ``values`` at keep probability p.

    Returns a list of ``(experiment, samples, Check)``, not yet judged.
    """
    measured = []
    for exp, q in zip(chosen, values):
        ctx = Context(exp.name, seed, samples or exp.samples, progress, {"p": p, **exp.keyed(q)})
        n = q[exp.runs_param] if exp.runs_param else ctx.samples
        why = too_few_gates(exp, p, ctx.samples)
        try:
            checks = exp.run(p, q, ctx)
        except (SimulationError, ArithmeticError, ValueError):  # LinAlgError is a ValueError
            if why is None:
                raise
            # Nothing could be estimated (e.g. every unit dropped): each declared check is inconclusive.
            checks = [Check(spec.name, spec.kind, math.nan, math.nan, math.nan, params={"p": p, **q})
                      for spec in exp.checks]
        if why is not None:
            checks = [replace(c, degenerate=why) for c in checks]
        measured += [(exp, n, c) for c in checks]
    return measured


MIN_GATE_EVENTS = 10


def too_few_gates(exp, p, samples):
    """Why the sampled checks of ``exp`` have no estimable MCSE at keep probability p with ``samples``
    samples, or None.

    Each gate position sees about ``samples·p`` kept and ``samples·(1 − p)`` dropped gates; with fewer
    than :data:`MIN_GATE_EVENTS` of either (p < 1) the moments that carry the MCSE are not estimable (at
    p = 1e-9 and 1,000 samples no gate is ever kept, and the sampled variance and its MCSE are both 0).
    """
    if not exp.gated or p >= 1:
        return None
    kept, dropped = samples * p, samples * (1 - p)
    if min(kept, dropped) >= MIN_GATE_EVENTS:
        return None
    return (f"about {kept:.3g} kept and {dropped:.3g} dropped gates expected in {samples:,} samples at p = {p:g}: "
            f"too few to estimate an MCSE (at least {MIN_GATE_EVENTS} of each needed; add samples)")


def judge_all(measured, alpha, findings_alpha=None):
    """Judge measured checks: the self-tests as one Bonferroni family at ``alpha``, the findings about the
    document (effects and equivalences) as one family per sub-claim at ``findings_alpha`` (default alpha).

    Returns
    -------
    rows : list of dict
        One row per check (the JSON contract); a finding's row names its ``family``.
    zstar : float
        The z threshold of the self-tests.
    tested : int
        How many checks are z-tests (self-tests and findings).
    """
    findings_alpha = alpha if findings_alpha is None else findings_alpha
    subclaims = [exp.subclaim(c) if exp.subclaim is not None else exp.claim_id for exp, _, c in measured]
    tested = sum(c.kind not in ("enumeration", "measurement", "derivation") for _, _, c in measured)
    sizes = {}
    for (_, _, c), sub in zip(measured, subclaims):
        if c.kind in ("effect", "equivalence"):
            sizes[sub] = sizes.get(sub, 0) + 1
    zstar = z_threshold(alpha, tested - sum(sizes.values()))
    families = {sub: {"subclaim": sub, "tests": m, "alpha": findings_alpha, "z_star": z_threshold(findings_alpha, m),
                      "z_alone": z_threshold(findings_alpha, 1)} for sub, m in sizes.items()}
    rows = []
    for (exp, n, c), sub in zip(measured, subclaims):
        family = families.get(sub) if c.kind in ("effect", "equivalence") else None
        j = judge(c, family["z_star"], family["z_alone"]) if family else judge(c, zstar)
        reference = c.closed_form if c.kind != "measurement" or c.reference else None
        rows.append({
            "experiment": exp.name, "check": c.check, "claim": CLAIMS[sub].claim if sub in CLAIMS else exp.claim_id,
            "subclaim": sub, "source": exp.source,
            "kind": c.kind, "params": c.params, "formula": c.formula,
            "closed_form": _number(reference), "estimate": _number(c.estimate), "mcse": _number(c.mcse),
            "z": _number(j.z), "rel_error": _number(j.rel_error), "tolerance": c.tolerance,
            "resolution": _number(j.resolution),
            "resolution_rel": _number(j.resolution / abs(c.closed_form)) if c.closed_form and reference is not None
            else None,
            "verdict": j.verdict, "samples": n if c.samples is None else c.samples,
            "unit": "training runs" if exp.runs_param or c.samples is not None else "samples",
        })
        if c.facts.row():
            rows[-1]["facts"] = c.facts.row()
        if c.degenerate:
            rows[-1]["reason"] = c.degenerate
        if family:
            rows[-1]["family"] = dict(family)
    return rows, zstar, tested
