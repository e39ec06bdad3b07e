"""``run_bench``: every workload, its reference, its peers and its ceiling, measured in one run."""
import math
import os

import numba
import numpy as np

from ..core.engine import set_threads
from ..core.errors import ParameterError
from .ceiling import SEED, blas_info, draws_per_normal, generation_rate, moments_rate, raw_generator_speed
from .measure import gemm_ceiling
from .sampling import (
    DEFAULT_SAMPLES,
    GENERATION,
    MOMENT_VARS,
    REFERENCE_DIVISOR,
    REFERENCE_WORKLOADS,
    W3_M,
    ZMAX,
    agreement,
    engine_call,
    run_engine,
    run_reference_subprocess,
    specs,
    w3_products,
)
from .training import STUDIES, products_rate, run_study

WORKLOADS = REFERENCE_WORKLOADS + STUDIES
# Issue 21: the fraction of its own ceiling each workload must reach (generation for W1, W1F, W2; numpy's
# best dgemm on the same shapes and cores for W3, see measure.gemm_ceiling; for W4 its products alone against
# numpy's one-thread dgemm on the same shapes; W5 has none, its fractions are shown).
CEILING_TARGETS = {"W1": 0.5, "W1F": 0.5, "W2": 0.5, "W3": 0.9, "W4": 1.0}
# What a workload does besides drawing (W1, W1F, W2) or besides its products (W3, W4, W5).
REST = {"W1": "gating, the two outputs and the 34 values", "W1F": "gating, the two outputs and the 34 values",
        "W2": "scaling, gating and the two weighted sums",
        "W3": "drawing 256 normals and the gates per row, BN, ReLU and the statistics",
        "W4": "BN, ReLU, noise, loss, Adam and the transposes of each 32-row step",
        "W5": "BN, ReLU, noise, loss, Adam and the transposes of each 256-row step"}


def bound(name, fraction, moments=None, products=None):
    """One line on what bounds a workload at ``fraction`` of its ceiling.

    For W1, W1F, W2, ``fraction`` is the share of its time spent drawing and ``moments`` the share spent
    keeping its statistics (both from the alone-rates); their ratio is the fraction of the ceiling that
    keeping the statistics alone would reach. For W3, ``products`` is its products' own rate alone over
    numpy's one-thread dgemm (:func:`training.products_rate`).
    """
    if name in GENERATION:
        rest = max(0.0, 1 - fraction - moments)
        text = (f"of its time, drawing is {fraction:.0%}, keeping the moments of {MOMENT_VARS[name]} values per "
                f"sample {moments:.0%}, the rest {rest:.0%} ({REST[name]})")
        reach = fraction / moments if moments else math.inf
        if reach < CEILING_TARGETS.get(name, 0.0):
            text += (f"; keeping the moments alone runs at {reach:.0%} of generation, so no kernel that keeps "
                     f"them for every sample reaches {CEILING_TARGETS[name]:.0%}")
        return text
    lost = ("what its own products lose to dgemm (not measured apart)" if products is None else
            f"what its own products lose to dgemm (alone, on one thread, they run at {products:.0%} of it)")
    return (f"at numpy's dgemm rate its products would take {fraction:.0%} of its time; the other "
            f"{max(0.0, 1 - fraction):.0%} is the rest of its work ({REST[name]}) and {lost}")


def _check(samples, workloads, repeats):
    samples = int(samples)
    if samples < 1000:
        raise ParameterError(f"samples={samples}: need at least 1000")
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ParameterError(f"unknown workload {unknown[0]!r}; valid: {', '.join(WORKLOADS)}")
    if int(repeats) < 1:
        raise ParameterError(f"repeats={repeats}: must be at least 1")
    return samples


def _machine(used):
    """The machine as the benchmark sees it: cores, threads, versions, BLAS and the raw generator."""
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return {"cpu_count": os.cpu_count(), "threads": used, "numba_threads_max": numba.config.NUMBA_NUM_THREADS,
            "raw_draws_per_s_per_core": raw_generator_speed(), "draws_per_normal": draws_per_normal(),
            "numpy": np.__version__, "numba": numba.__version__, "blas": blas_info(), "blas_env": env}


def _ceiling(name, samples, rate, used, repeats, seed):
    """``(ceiling dict, fraction)`` of W1, W1F, W2 (generation) or W3 (dgemm on its shapes)."""
    if name in GENERATION:
        gen = generation_rate(*GENERATION[name], samples, repeats=repeats, seed=seed)
        mom = moments_rate(MOMENT_VARS[name], samples, repeats=repeats, seed=seed)
        return {"kind": "generation", "samples_per_s": gen, "moments_per_s": mom}, rate / gen
    shapes = w3_products()
    gflops = rate * sum(2.0 * m * k * n for m, k, n in shapes) / W3_M / 1e9
    gemm = gemm_ceiling(shapes, used)
    products = products_rate(shapes, seed, repeats=max(repeats, 3))
    return ({"kind": "dgemm", "gflops": gflops, "gemm": gemm, "products_gflops": products / 1e9,
             "products_fraction": products / gemm["1"]}, gflops * 1e9 / gemm["best"])


def _sampling_workload(name, samples, ref_samples, seed, repeats, used, raw, progress):
    """One of W1, W1F, W2, W3: engine, numpy reference, agreement and ceiling (see :func:`run_bench`)."""
    # W3's statistics depend on the eval rows per run: the reference runs the same rows.
    n_ref = samples if name == "W3" else ref_samples
    spec, rspec = specs(samples)[name], specs(n_ref)[name]
    bar = None
    if progress is not None:
        total = engine_call(name, samples, seed)[3]

        def bar(done):
            progress(f"bench {name} engine", done, total)
    moments, took, peak = run_engine(name, samples, seed, progress=bar, repeats=repeats)
    rate = spec.samples / took
    ceiling, fraction = _ceiling(name, spec.samples, rate, used, repeats, seed)  # right after: the same load
    if progress is not None:
        progress(f"bench {name} numpy", 0, 1)
    ref, ref_took, ref_peak = run_reference_subprocess(name, n_ref, seed, repeats)
    rows = agreement(name, moments, ref)
    ref_rate = rspec.samples / ref_took
    target = CEILING_TARGETS[name]
    w = {"name": name, "title": spec.title,
         "engine": {"samples": spec.samples, "seconds": took, "samples_per_s": rate,
                    "mask_elements_per_s": rate * spec.masks, "peak_mb": peak / 2 ** 20, "threads": used},
         "reference": {"samples": rspec.samples, "seconds": ref_took, "samples_per_s": ref_rate,
                       "mask_elements_per_s": ref_rate * rspec.masks, "peak_mb": ref_peak / 2 ** 20, "threads": 1},
         "ratio": rate / ref_rate, "draws_per_sample": spec.draws, "raw_fraction": rate * spec.draws / used / raw,
         "ceiling": ceiling, "ceiling_fraction": fraction, "ceiling_target": target,
         "bound": None if fraction >= target else bound(name, fraction, rate / ceiling.get("moments_per_s", 1.0),
                                                        ceiling.get("products_fraction")),
         "agreement": rows, "max_abs_z": max(abs(r["z"]) for r in rows),
         "agree": all(abs(r["z"]) < ZMAX for r in rows)}
    if name == "W3":  # the keys of before issue 21
        w["gflops"], w["gemm"] = ceiling["gflops"], ceiling["gemm"]
    if progress is not None:
        progress(f"bench {name} numpy", 1, 1)
    return w


def _study(name, used, seed, repeats, sizes, progress):
    """W4 or W5 (:func:`training.run_study`) with its ceiling fraction, target and bound."""
    if progress is not None:
        progress(f"bench {name}", 0, 1)
    w = run_study(name, threads=used, seed=seed, repeats=repeats, **(sizes or {}))
    target = CEILING_TARGETS.get(name)
    w["ceiling_target"] = target
    # The target is on its products (issue 21: "W4's products ≥ 100% of numpy dgemm on its shapes"), alone on
    # one thread; the whole step's rate over the ceiling (BN, Adam and the rest in its time) is information.
    w["bound"] = (bound(name, w["gemm_fraction"], products=w["products_fraction"])
                  if target is not None and w["products_fraction"] < target else None)
    if progress is not None:
        progress(f"bench {name}", 1, 1)
    return w


def run_bench(samples=DEFAULT_SAMPLES, threads=None, workloads=WORKLOADS, progress=None,
              reference_samples=None, seed=SEED, repeats=1, w4=None, w5=None):
    """Run every workload against its reference, its peers and its ceiling; a JSON-able dict.

    Parameters
    ----------
    samples : int
        Engine samples per workload W1–W3 (W3 derives its rows from it, see :mod:`.sampling`).
    threads : int, optional
        Numba threads for the engine (all cores when None); the numpy reference uses one.
    workloads : sequence of str
        Names from :data:`WORKLOADS`.
    progress : callable, optional
        ``progress(label, done, total)`` as the runs go.
    reference_samples : int, optional
        Samples of the numpy reference (default ``samples // REFERENCE_DIVISOR``).
    seed : int
    repeats : int
        Each side's time (and each generation ceiling's) is the fastest of this many runs.
    w4, w5 : dict, optional
        Sizes of W4 and W5 (keyword arguments of :func:`training.run_study`; its defaults when None).

    Returns
    -------
    dict
        ``machine`` (cores, threads, raw generator draws/s per core, draws per
        normal, versions, the BLAS), ``workloads``: one dict per W1–W3 with
        ``engine`` and ``reference`` (samples, seconds, samples_per_s,
        mask_elements_per_s, peak_mb, threads), ``ratio`` (engine/reference
        samples per second, information), ``ceiling`` (generation samples/s, or
        the products' GFLOP/s and dgemm's flop/s on their shapes),
        ``ceiling_fraction``, ``ceiling_target``, ``bound`` (what bounds it, when
        the target is missed, else None), ``raw_fraction``, ``agreement`` (every
        statistic, its z in joint MCSE units) with ``max_abs_z`` and ``agree``
        (all |z| < 5). ``w4``, ``w5``: :func:`training.run_study`'s dicts, with
        ``ceiling_target`` and ``bound``, when asked for.
    """
    samples = _check(samples, workloads, repeats)
    used = set_threads(threads)
    ref_samples = max(1000, int(reference_samples or samples // REFERENCE_DIVISOR))
    machine = _machine(used)
    out = {"machine": machine, "seed": seed, "samples": samples, "reference_samples": ref_samples,
           "repeats": int(repeats), "workloads": []}
    for name in workloads:
        if name in STUDIES:
            out[name.lower()] = _study(name, used, seed, int(repeats), w4 if name == "W4" else w5, progress)
        else:
            out["workloads"].append(_sampling_workload(name, samples, ref_samples, seed, int(repeats), used,
                                                       machine["raw_draws_per_s_per_core"], progress))
    return out
