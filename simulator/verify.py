"""A verdict on every claim of the document: all checks over a grid of p and settings.

Every check of every experiment runs at each p of :data:`P_GRID` (or the
experiment's own ``p_grid``) and at each setting of its ``verify_points``, and
every step of the document's derivations is decided symbolically; the
family-wise error level ``alpha`` is controlled over all z-tests together
(Bonferroni). Each (sub-)claim gets an outcome by the rule of
:mod:`simulator.claims`. The run passes when no check fails as a self-test of
the simulator: erratum checks refuted (or inconclusive), identities confirmed;
effects, equivalences and derivations are findings about the document and never
fail the run.
"""
import time
from dataclasses import asdict, dataclass, replace

from .catalog import Experiment
from .checkpoint import Checkpoint, key
from .claims import HEADLINE_P, summarize_all
from .engine import MIN_SAMPLES, set_threads
from .simulate import (DEFAULT_ALPHA, DEFAULT_SEED, P_MEANING, check_alpha, check_samples, check_seed, frame,
                       judge_all, measure, quotes, select, versions)
from .verdict import Check, acceptable
from .warmup import warm_up

P_GRID = (0.1, 0.3, 0.5, 0.8, 1.0)
# The sub-claim a derivation of claim C tests, where it is not C itself (C6's derivation is the ridge identity).
SUBCLAIM = {"C6": "C6-ridge"}
# The derivations are not an experiment of the catalog (they have no p and no samples), but their rows
# are judged and counted with the others; each names its claim.
DERIVATIONS = Experiment(name="derivations", claim_id="C", claim="the document's derivations, line by line",
                         source="document; simulator.derive", params=(), checks=(), run=None,
                         subclaim=lambda c: c.params["claim"])
QUICK_DIVISOR = 20

@dataclass(frozen=True)
class Verification:
    """Result of :func:`verify`: ``meta``, ``checks`` (the JSON contract) and one outcome per (sub-)claim."""

    meta: dict
    checks: list
    claims: list

    @property
    def failed(self):
        """Checks whose verdict is not one their kind accepts (a failure of the simulator, not of the document)."""
        return [r for r in self.checks if r["verdict"] not in acceptable(r["kind"])]

    @property
    def ok(self):
        return not self.failed

    def to_frame(self):
        """The checks as a tidy pandas DataFrame: one row per check, the columns of the JSON."""
        return frame(self.checks)

    def claims_frame(self):
        """The claim-level outcomes as a pandas DataFrame: one row per (sub-)claim."""
        import pandas as pd

        return pd.DataFrame(self.claims)

    def _repr_html_(self):
        return self.claims_frame()._repr_html_()


def plan(experiments=None, quick=False, samples=None):
    """The grid: a list of ``(experiment, values, p, samples)`` to run."""
    chosen = select(experiments)
    runs = []
    for exp in chosen:
        n = samples or (max(MIN_SAMPLES, exp.samples // QUICK_DIVISOR) if quick else exp.samples)
        for point in exp.verify_points:
            values = exp.resolve(point)
            if quick and exp.quick is not None:
                values = exp.resolve({**point, **exp.quick(values)})
            runs += [(exp, values, p, n) for p in exp.p_grid or P_GRID]
    return runs


def derivation_rows():
    """The document's derivations, step by step (:mod:`simulator.derive`), as measured checks to judge."""
    from .derive import derivation_checks

    return [(DERIVATIONS, 0, replace(c, params={**c.params, "claim": SUBCLAIM.get(claim, claim)}))
            for claim, c in derivation_checks()]


def verify(quick=False, samples=None, seed=DEFAULT_SEED, threads=None, alpha=DEFAULT_ALPHA, experiments=None,
           progress=None, checkpoint=None, derivations=None):
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
    derivations : bool, optional
        Include the symbolic derivation checks (default: when no experiment is named).

    Returns
    -------
    Verification
    """
    seed, alpha = check_seed(seed), check_alpha(alpha)
    samples = None if samples is None else check_samples(samples)
    runs = plan(experiments, quick, samples)
    derivations = not experiments if derivations is None else derivations
    threads = set_threads(threads)
    start = time.perf_counter()
    warm_up([exp for exp, _, _, _ in runs], progress)
    done = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    measured = []
    for exp, values, p, n in runs:
        k = key(stage="verify", experiment=exp.name, values=values, p=p, samples=n, seed=seed)
        if k not in done:
            done.save(k, [asdict(c) for _, _, c in measure(p, [exp], [values], seed, n, progress)])
        count = values[exp.runs_param] if exp.runs_param else n  # training runs, or samples per stream
        measured += [(exp, count, Check(**c)) for c in done[k]]
    if derivations:
        measured += derivation_rows()
    rows, zstar, tested = judge_all(measured, alpha)
    claims = summarize_all(rows, zstar, HEADLINE_P, quotes(rows, HEADLINE_P), acceptable)
    meta = {"p_grid": list(P_GRID), "p_meaning": P_MEANING, "seed": seed, "samples": samples, "quick": quick,
            "threads": threads, "alpha": alpha, "z_threshold": zstar, "checks_tested": tested,
            "elapsed_s": round(time.perf_counter() - start, 3), "versions": versions()}
    return Verification(meta, rows, claims)
