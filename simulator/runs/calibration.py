"""Is the verifier right about its own error rate? z-scores of true formulas over many seeds.

For a true closed form, the z-scores of independent runs should be N(0, 1), and
the rate of false refutations at threshold z* should be the nominal
``2 (1 − Φ(z*))``. :func:`calibrate` runs the exact checks of some experiments
over many seeds and summarizes the z-scores of each check.
"""
import numpy as np
from scipy.stats import kstest, norm

from .simulate import simulate


def calibrate(experiments, seeds=200, samples=5000, p=0.5, settings=None, zstar=None, first_seed=1):
    """z-scores of the exact checks over ``seeds`` independent seeds.

    Parameters
    ----------
    experiments : list of str
    seeds : int
        Number of independent runs.
    samples : int
        Samples per stream in each run.
    p : float
        Keep probability.
    settings : dict, optional
    zstar : float, optional
        Threshold for the false-refutation rate (default: the per-check 1% level, 2.576).

    Returns
    -------
    dict
        check name → ``{"n", "mean", "var", "ks_pvalue", "false_refutations", "nominal_rate", "z"}``.
    """
    zstar = float(norm.isf(0.005)) if zstar is None else zstar
    zs = {}
    for seed in range(first_seed, first_seed + seeds):
        r = simulate(p=p, experiments=experiments, samples=samples, seed=seed, settings=settings)
        for c in r.checks:
            if c["kind"] == "exact" and c["z"] is not None and c["mcse"]:
                zs.setdefault(f"{c['experiment']}/{c['check']}", []).append(c["z"])
    summary = {}
    for name, z in zs.items():
        z = np.asarray(z)
        summary[name] = {"n": int(z.size), "mean": float(z.mean()), "var": float(z.var(ddof=1)),
                         "ks_pvalue": float(kstest(z, "norm").pvalue),
                         "false_refutations": float(np.mean(np.abs(z) > zstar)),
                         "nominal_rate": float(2 * norm.sf(zstar)), "z": z.tolist()}
    return summary
