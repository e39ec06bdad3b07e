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

from .engine import MIN_SAMPLES, needs_compiling


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

    from .catalog import Context
    from .experiments import CATALOG

    numba.set_num_threads(1)
    exp = CATALOG[name]
    exp.run(0.5, exp.resolve(exp.warm), Context(name, 0, MIN_SAMPLES))
    return name


def warm_up(chosen, progress=None):
    """Compile the cold experiments among ``chosen`` in parallel processes (at their defaults)."""
    todo = [e for e in {e.name: e for e in chosen}.values() if cold(e)]
    # Longest compilations first (source size as their measure), so that none starts last on its own.
    todo.sort(key=lambda e: max(os.path.getsize(sys.modules[m].__file__) for m in
                                [e.run.__module__] + [k.py_func.__module__ for k in e.kernels]), reverse=True)
    workers = min(len(todo), os.cpu_count() or 1)
    if workers < 2:
        return
    if progress is not None:
        progress("compiling kernels (first run only)", 0, len(todo))
    context = multiprocessing.get_context("spawn")  # no fork of a process that has Numba threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = [pool.submit(_compile, e.name) for e in todo]
        for i, job in enumerate(jobs):
            job.result()
            if progress is not None:
                progress("compiling kernels (first run only)", i + 1, len(todo))
