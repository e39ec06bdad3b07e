"""A verdict on every claim of the document: all checks over a grid of p and settings.

Every check of every experiment runs at each p of :data:`P_GRID` and at each
setting of the experiment's ``verify_points``; the family-wise error level
``alpha`` is controlled over all z-tests together (Bonferroni). The run passes
when every check reaches the verdict its kind expects: erratum checks refuted,
the others confirmed (measurements only reported).
"""
import time
from dataclasses import asdict, dataclass

from .checkpoint import Checkpoint, key
from .engine import MIN_SAMPLES, set_threads
from .experiments import CATALOG
from .simulate import (DEFAULT_ALPHA, DEFAULT_SEED, P_MEANING, check_alpha, check_samples, check_seed,
                       judge_all, measure, select, versions)
from .verdict import Check, acceptable
from .warmup import warm_up

P_GRID = (0.1, 0.3, 0.5, 0.8, 1.0)
HEADLINE_P = 0.5  # the keep probability at which a claim's headline measurements are quoted
QUICK_DIVISOR = 20

# What the document says, claim by claim (THEORY.md gives the precise statements).
DOCUMENT = {
    "C1": "the expected dropout gradient is the weight-scaled network's gradient plus w_i p_i(1−p_i) I_i²: "
          "dropout acts as a regularizer",
    "C2": "inverted dropout keeps the mean and changes the variance, Var(h') = E(h²)/p − μ_h",
    "C3": "the variance change shifts the results after a ReLU",
    "C4": "BatchNorm normalizes each mini-batch with its mean and (biased) variance",
    "C5": "Dropout before BN gives a different variance on the validation set",
    "C6": "regression, judged by its loss, suffers from dropout; classification barely does",
}


@dataclass(frozen=True)
class Verification:
    """Result of :func:`verify`: ``meta``, ``checks`` (the JSON contract) and one summary per claim."""

    meta: dict
    checks: list
    claims: list

    @property
    def failed(self):
        """Checks whose verdict is not the one their kind expects."""
        return [r for r in self.checks if r["verdict"] not in acceptable(r["kind"])]

    @property
    def ok(self):
        return not self.failed


def _claim_summary(claim, rows, zstar):
    """One claim's verdict and evidence, in words."""
    failed = [r for r in rows if r["verdict"] not in acceptable(r["kind"])]
    tested = [r for r in rows if r["kind"] == "exact" and r["z"] is not None]
    inequalities = [r for r in rows if r["kind"] == "inequality"]
    errata = [r for r in rows if r["kind"] == "erratum"]
    approx = [r for r in rows if r["kind"] == "approximation"]
    measured = [r for r in rows if r["kind"] == "measurement"]
    enums = [r for r in rows if r["kind"] == "enumeration"]
    ps = sorted({r["params"].get("p") for r in rows if r["params"].get("p") is not None})
    if failed:
        verdict = "REFUTED"
    elif approx:
        used = max(((r["rel_error"] or 0.0) / r["tolerance"] for r in approx if r["tolerance"]), default=0.0)
        verdict = (f"holds approximately (no error significantly beyond its stated tolerance; the largest is "
                   f"{used:.0%} of its tolerance)")
    elif tested or enums or inequalities:
        verdict = "confirmed"
    else:
        verdict = "measured"
    headline = [r for r in measured if r["check"] in CATALOG[r["experiment"]].headline
                and r["params"].get("p") == HEADLINE_P and r == _first(measured, r)]
    if headline:
        verdict += (" where exact; measured, not a theorem: " +
                    ", ".join(f"{r['check']} = {r['estimate']:.3g} ± {r['mcse']:.1g}" for r in headline)
                    + f" at p = {HEADLINE_P:g}")
    if errata and not failed:
        verdict += "; the document's formula as written is REFUTED (erratum)"
    evidence = [f"{len(rows)} checks at p ∈ {{{', '.join(f'{p:g}' for p in ps)}}}"]
    if tested:
        evidence.append(f"largest |z| of exact checks {max(abs(r['z']) for r in tested):.2f} (z* = {zstar:.2f})")
    if enums:
        evidence.append(f"{len(enums)} exact enumerations, largest relative error "
                        f"{max(r['rel_error'] or 0.0 for r in enums):.1e}")
    if inequalities:
        zs = [r["z"] for r in inequalities if r["z"] is not None]
        evidence.append(f"{len(inequalities)} inequalities hold" +
                        (f", the closest at z = {min(zs):+.2f}" if zs else ""))
    if errata:
        refuted = [abs(r["z"]) for r in errata if r["verdict"] == "refuted" and r["z"] is not None]
        if refuted:
            evidence.append(f"erratum refuted {len(refuted)} of {len(errata)} times, "
                            f"by at least {min(refuted):.0f} MCSE")
        unresolved = [r for r in errata if r["verdict"] == "inconclusive"]
        if unresolved:
            evidence.append(f"INCONCLUSIVE {len(unresolved)} times (formula as written within the resolution "
                            f"of the truth, e.g. p={unresolved[0]['params'].get('p')}: more samples needed)")
    if measured:
        evidence.append(f"{len(measured)} quantities measured without a claim (see the table)")
    if failed:
        evidence.append("failed: " + ", ".join(f"{r['experiment']}/{r['check']} at p={r['params'].get('p')}"
                                               for r in failed[:8]) + (" …" if len(failed) > 8 else ""))
    return {"claim": claim, "document": DOCUMENT.get(claim, ""), "verdict": verdict,
            "evidence": "; ".join(evidence), "ok": not failed}


def _first(rows, row):
    """The first row with the same experiment, check and p (verify points repeat checks)."""
    return next(r for r in rows if (r["experiment"], r["check"], r["params"].get("p")) ==
                (row["experiment"], row["check"], row["params"].get("p")))


def plan(experiments=None, quick=False, samples=None):
    """The grid: a list of ``(experiment, values, p, samples)`` to run."""
    chosen = select(experiments)
    runs = []
    for exp in chosen:
        n = samples or (max(MIN_SAMPLES, exp.samples // QUICK_DIVISOR) if quick else exp.samples)
        for point in exp.verify_points:
            values = exp.resolve(point)
            runs += [(exp, values, p, n) for p in P_GRID]
    return runs


def verify(quick=False, samples=None, seed=DEFAULT_SEED, threads=None, alpha=DEFAULT_ALPHA, experiments=None,
           progress=None, checkpoint=None):
    """Run every check over the grid and judge each claim of the document.

    Parameters
    ----------
    quick : bool
        Use 1/20 of each experiment's default samples (seconds instead of a minute).
    samples : int or str, optional
        Samples per stream for every experiment (overrides ``quick``).
    seed, threads, alpha, progress
        As for :func:`simulator.simulate`.
    experiments : list of str, optional
        Restrict to these experiments.
    checkpoint : str or Checkpoint, optional
        Finished runs of the grid (a JSON-lines file); a rerun resumes from them.

    Returns
    -------
    Verification
    """
    seed, alpha = check_seed(seed), check_alpha(alpha)
    samples = None if samples is None else check_samples(samples)
    runs = plan(experiments, quick, samples)
    threads = set_threads(threads)
    start = time.perf_counter()
    warm_up([exp for exp, _, _, _ in runs], progress)
    done = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    measured = []
    for exp, values, p, n in runs:
        k = key(stage="verify", experiment=exp.name, values=values, p=p, samples=n, seed=seed)
        if k not in done:
            done.save(k, [asdict(c) for _, _, c in measure(p, [exp], [values], seed, n, progress)])
        measured += [(exp, n, Check(**c)) for c in done[k]]
    rows, zstar, tested = judge_all(measured, alpha)
    claims = [_claim_summary(c, [r for r in rows if r["claim"] == c], zstar)
              for c in dict.fromkeys(r["claim"] for r in rows)]
    meta = {"p_grid": list(P_GRID), "p_meaning": P_MEANING, "seed": seed, "samples": samples, "quick": quick,
            "threads": threads, "alpha": alpha, "z_threshold": zstar, "checks_tested": tested,
            "elapsed_s": round(time.perf_counter() - start, 3), "versions": versions()}
    return Verification(meta, rows, claims)
