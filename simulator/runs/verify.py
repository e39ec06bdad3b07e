"""A verdict on every claim of the document: all checks over a grid of p and settings.

Every check of every experiment runs at each p of :data:`P_GRID` (or the
experiment's own ``p_grid``) and at each setting of its ``verify_points``, and
every step of the document's derivations is decided symbolically; the
family-wise error level ``alpha`` is controlled over all z-tests together
(Bonferroni). Each (sub-)claim gets an outcome by the rule of
:mod:`simulator.theory.claims`. The run passes when no check fails as a self-test of
the simulator: erratum checks refuted (or inconclusive), identities confirmed;
effects, equivalences and derivations are findings about the document and never
fail the run.
"""
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace

from ..core.engine import MIN_SAMPLES, set_threads
from ..core.params import DEFAULT_ALPHA, DEFAULT_SEED, P_MEANING, check_alpha, check_samples, check_seed, versions
from ..experiments.catalog import Experiment
from ..theory.claims import HEADLINE_P, summarize_all
from ..theory.verdict import Check, acceptable
from .checkpoint import Checkpoint, key
from .simulate import findings, frame, judge_all, measure, quotes, select
from .warmup import warm_up

P_GRID = (0.1, 0.3, 0.5, 0.8, 1.0)
# The sub-claim a derivation of claim C tests, where it is not C itself (C6's derivation is the ridge identity).
SUBCLAIM = {"C6": "C6-ridge"}
# The derivations are not an experiment of the catalog (they have no p and no samples), but their rows
# are judged and counted with the others; each names its claim.
DERIVATIONS = Experiment(name="derivations", claim_id="C", claim="the document's derivations, line by line",
                         source="document; simulator.theory.derive", params=(), checks=(), run=None,
                         subclaim=lambda c: c.params["claim"])
QUICK_DIVISOR = 20  # a quick run: this fraction of each default budget, never below MIN_SAMPLES
RUNS_AT_ONCE = 2  # with 2 or more threads: runs of the grid measured at the same time (see measure_runs)

@dataclass(frozen=True)
class Verification:
    """Result of :func:`verify`: ``meta``, ``checks`` (the JSON contract) and one outcome per (sub-)claim."""

    meta: dict
    checks: list
    claims: list

    @property
    def failed(self):
        """Checks whose verdict is not one their kind accepts (a failure of the simulator, not of the document)."""
        return [r for r in self.checks if r["verdict"] not in acceptable(r)]

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


def budget(default, quick=False, samples=None):
    """The samples per stream of one run: ``samples`` when given, else ``default`` (an experiment's or a
    figure's own; None: the experiment's), in a quick run 1/:data:`QUICK_DIVISOR` of it but at least
    :data:`~simulator.core.engine.MIN_SAMPLES`. The rule of ``verify --quick``, and of the quick report."""
    if samples:
        return samples
    return max(MIN_SAMPLES, default // QUICK_DIVISOR) if quick and default else default


def plan(experiments=None, quick=False, samples=None):
    """The grid: a list of ``(experiment, values, p, samples)`` to run."""
    chosen = select(experiments)
    runs = []
    for exp in chosen:
        n = budget(exp.samples, quick, samples)
        for point in exp.verify_points:
            values = exp.resolve(point)
            if quick and exp.quick is not None:
                values = exp.resolve({**point, **exp.quick(values)})
            runs += [(exp, values, p, n) for p in exp.p_grid or P_GRID]
    return runs


def _longest_first(todo):
    """The runs of ``todo`` in a good order for running several at once: the trained networks first (the
    longest runs; those with more tasks first), then the others as planned."""
    def cost(item):
        _, exp, values, _, _ = item
        return len(values.get("task", ())) + 1 if exp.runs_param else 0
    return sorted(todo, key=cost, reverse=True)


def measure_runs(todo, seed, threads, progress, save):
    """Measure the runs ``todo`` (tuples ``(key, experiment, values, p, samples)``) and call
    ``save(key, measured)`` (what :func:`measure` returns), in this thread, as each ends.

    With one thread they run in order. With more, :data:`RUNS_AT_ONCE` runs go
    at once, each on its share of the threads (on 2 cores: one each), so that no
    core waits while a run merges its last blocks or computes its closed forms
    in Python (verify: 8% less time on 2 cores). More runs at once would leave
    the longest run (a trained-network study) on too few threads. A run's
    numbers depend on its seed and budget only, so the result is the same
    either way; only the order in which runs end changes. KeyboardInterrupt
    stops the runs under way at their next chunk of blocks.
    """
    if threads <= 1 or len(todo) <= 1:
        for k, exp, values, p, n in todo:
            save(k, measure(p, [exp], [values], seed, n, progress))
        return
    stop = threading.Event()

    def checked(*_):  # the engine reports each chunk: the moment to stop when asked
        if stop.is_set():
            raise KeyboardInterrupt

    def work(item):
        k, exp, values, p, n = item
        set_threads(-(-threads // RUNS_AT_ONCE))
        return k, measure(p, [exp], [values], seed, n, checked)

    label = f"verify ({RUNS_AT_ONCE} runs at a time)"
    if progress is not None:
        progress(label, 0, len(todo))
    pool = ThreadPoolExecutor(RUNS_AT_ONCE, thread_name_prefix="simulator-verify")
    jobs = [pool.submit(work, item) for item in _longest_first(todo)]
    try:
        for i, job in enumerate(as_completed(jobs)):
            save(*job.result())
            if progress is not None:
                progress(label, i + 1, len(todo))
    finally:
        stop.set()  # a no-op after the last run; after an error or ^C it stops the others
        pool.shutdown(wait=True, cancel_futures=True)


def derivation_rows():
    """The document's derivations, step by step (:mod:`simulator.theory.derive`), as measured checks to judge."""
    from ..theory.derive import derivation_checks

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
        As for :func:`simulator.runs.simulate`.
    experiments : list of str, optional
        Restrict to these experiments.
    checkpoint : str or Checkpoint, optional
        Finished runs of the grid (a checkpoint file, :mod:`simulator.runs.checkpoint`); a rerun resumes from
        them. One of another run is discarded, a file that is not a checkpoint refused.
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
    done = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(
        checkpoint, {"command": "verify", "seed": seed, "quick": quick, "samples": samples})
    threads = set_threads(threads)
    start = time.perf_counter()
    warm_up([exp for exp, _, _, _ in runs], progress)
    keys = [key(stage="verify", experiment=exp.name, values=values, p=p, samples=n, seed=seed)
            for exp, values, p, n in runs]
    todo = [(k, *run) for k, run in zip(keys, runs) if k not in done]
    with ThreadPoolExecutor(1, thread_name_prefix="simulator-derive") as side:
        # SymPy holds the GIL but the kernels do not: with threads to spare, the derivations run meanwhile.
        derived = side.submit(derivation_rows) if derivations and threads > 1 else None
        measure_runs(todo, seed, threads, progress,
                     lambda k, measured: done.save(k, [asdict(c) for _, _, c in measured]))
        measured = []
        for k, (exp, values, p, n) in zip(keys, runs):
            count = values[exp.runs_param] if exp.runs_param else n  # training runs, or samples per stream
            measured += [(exp, count, Check(**c)) for c in done[k]]
        if derivations:
            measured += derived.result() if derived is not None else derivation_rows()
    rows, zstar, tested = judge_all(measured, alpha)
    claims = summarize_all(rows, zstar, HEADLINE_P, quotes(rows, HEADLINE_P), acceptable)
    meta = {"p_grid": list(P_GRID), "p_meaning": P_MEANING, "seed": seed, "samples": samples, "quick": quick,
            "threads": threads, "alpha": alpha, "z_threshold": zstar, "checks_tested": tested,
            "elapsed_s": round(time.perf_counter() - start, 3), "versions": versions(), "findings": findings(rows)}
    return Verification(meta, rows, claims)
