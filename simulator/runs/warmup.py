"""First run: compile the kernels of several experiments at once, one process per core.

Numba compiles one function at a time in a process, and a cold cache costs tens
of seconds when every experiment runs. When more than one chosen experiment has
a kernel in neither this process nor the on-disk cache, each of them runs once
on a tiny sample in a separate process, which fills the cache; the real run then
loads from it. Results do not change: the warm-up's numbers are thrown away.
"""
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from numba.core.registry import CPUDispatcher

from ..core.engine import MIN_SAMPLES, needs_compiling
from ..core.interrupts import sigint_ignored


def cold(experiment):
    """Whether a kernel of ``experiment`` needs compiling: its declared ``kernels``, or else the block
    kernels (the ``nogil`` ones) of its module."""
    if experiment.kernels:
        return any(needs_compiling(f) for f in experiment.kernels)
    module = sys.modules[experiment.run.__module__]
    return any(isinstance(f, CPUDispatcher) and f.py_func.__module__ == module.__name__
               and f.targetoptions.get("nogil") and needs_compiling(f) for f in vars(module).values())


def _compile(name):
    """Run experiment ``name`` once on a tiny budget (``Experiment.warm`` settings) in this process."""
    import numba

    from ..experiments import CATALOG
    from ..experiments.catalog import Context

    numba.set_num_threads(1)
    exp = CATALOG[name]
    exp.run(0.5, exp.resolve(exp.warm), Context(name, 0, MIN_SAMPLES))
    return name


COMPILING = "compiling kernels (first run only), experiments done"


def compile_cost(experiment):
    """How long ``experiment``'s kernels take to compile, measured by their modules' source size."""
    return max(os.path.getsize(sys.modules[m].__file__)
               for m in [experiment.run.__module__] + [k.py_func.__module__ for k in experiment.kernels])


# The experiments by their first-run compile time on a 2-core machine (2026-11: about 5, 7, 8, 8, 14, 22-25,
# 33-37 and 38-50 s of compiler CPU). Source size ranks any other; only the order of the output rests on it.
COMPILE_ORDER = ("inverted-dropout", "dropout-gradient", "batchnorm", "relu-shift", "variance-shift",
                 "network-shift", "training", "task-impact")


def in_stream_order(chosen):
    """``chosen`` (each once) in the order its results can come first: the fastest to compile first."""
    def rank(e):
        return (COMPILE_ORDER.index(e.name), 0) if e.name in COMPILE_ORDER else (len(COMPILE_ORDER), compile_cost(e))

    return sorted({e.name: e for e in chosen}.values(), key=rank)


def ready(chosen, progress=None):
    """Yield the experiments of ``chosen`` in :func:`in_stream_order`, each once its kernels are compiled.

    Where two or more are cold, they compile in parallel processes (one per core), the slowest first on
    one of them and the others fastest first, so that the first results come while the rest compiles.
    The order of what is yielded does not depend on which compilation ends first.
    """
    order = in_stream_order(chosen)
    todo = [e for e in order if cold(e)]
    workers = min(len(todo), os.cpu_count() or 1)
    if workers < 2:
        yield from order
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))  # no fork under threads
    try:
        # The workers never see Ctrl-C (the terminal sends it to the whole group): they are forked while it
        # is ignored here, for the few milliseconds the submits take, and only then does the progress show.
        with sigint_ignored():
            jobs = {e.name: pool.submit(_compile, e.name) for e in todo[-1:] + todo[:-1]}
        if progress is not None:
            progress(COMPILING, 0, len(todo))
        finished = 0
        for e in order:
            if e.name in jobs:
                try:
                    jobs[e.name].result()
                except Exception:  # noqa: BLE001 - a worker that failed (or was killed): this process compiles it
                    pass
                finished += 1
                if progress is not None:
                    progress(COMPILING, finished, len(todo))
            yield e
    finally:
        for process in list(getattr(pool, "_processes", {}).values()):  # an interrupted run does not wait
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def warm_up(chosen, progress=None):
    """Compile the cold experiments among ``chosen`` in parallel processes (at their defaults)."""
    for _ in ready(chosen, progress):
        pass
