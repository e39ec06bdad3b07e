"""First run: compile the kernels of several experiments at once, one process per core.

Numba compiles one function at a time in a process, and a cold cache costs about a minute of compiler
time when every experiment runs. When more than one chosen experiment has a kernel in neither this
process nor the on-disk cache, they are split into lanes, one per core (:func:`plan`), and each lane
runs its experiments once on a tiny sample, fastest first, in a process of its own; that fills the
cache, and this process measures each experiment as soon as its lane reports it compiled. Results do
not change: the warm-up's numbers are thrown away.
"""
import multiprocessing
import os
import sys
from multiprocessing.connection import wait

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


def _compile_lane(names, report):
    """Compile the experiments ``names`` in turn in this process; send each name down ``report`` once it
    is done (one that fails is sent too: the run then compiles it in its own process)."""
    for name in names:
        try:
            _compile(name)
        except Exception:  # noqa: BLE001 - whatever failed here fails again, with its message, in the run
            pass
        report.send(name)
    report.close()


COMPILING = "compiling kernels (first run only), experiments done"

# Per experiment, measured on the 2-vCPU AMD EPYC of 2026-12-02: the seconds of compiler CPU it adds to a
# process that has compiled the ones before it in this table (the first five apart from the last three: the
# kernels of nn, the chain, BN and the trainer, are shared by the last three, those of core by all), and
# the seconds of its default run once compiled. regime-map reads the committed map and has no kernels.
SECONDS = {"regime-map": (0.0, 0.0), "batchnorm": (2.5, 0.5), "relu-shift": (1.8, 1.5),
           "dropout-gradient": (3.9, 0.2), "inverted-dropout": (3.9, 0.4), "variance-shift": (4.4, 0.8),
           "network-shift": (14.7, 0.6), "task-impact": (16.6, 0.9), "training": (24.6, 1.8)}


def compile_seconds(experiment):
    """Compiler seconds of ``experiment`` (:data:`SECONDS`; one not measured counts as the slowest)."""
    return SECONDS.get(experiment.name, max(SECONDS.values()))[0]


def in_stream_order(chosen):
    """``chosen`` (each once) in the order its results can come first: by the soonest one of its claims
    can be decided, when every chosen experiment that tests it is compiled and has run (:data:`SECONDS`)."""
    chosen = list({e.name: e for e in chosen}.values())

    def own(e):
        return sum(SECONDS.get(e.name, max(SECONDS.values())))

    def soon(e):
        first = min((max(own(o) for o in chosen if claim in o.tests()) for claim in e.tests()), default=own(e))
        return (first, own(e), e.name)

    return sorted(chosen, key=soon)


def plan(todo, lanes):
    """Split the experiments ``todo`` into ``lanes`` lists that take about as long each to compile.

    The longest first, each to the lane with the least so far (Graham's LPT rule, within 4/3 of the
    best split); each lane then keeps the order of ``todo`` (the stream's), so that the first results
    come early. On two cores this puts the chain's two users (network-shift, task-impact) in one lane
    and the trainer in the other: 36 s for all eight experiments, where a shared queue took 46.
    """
    load = [0.0] * max(1, int(lanes))
    split = [[] for _ in load]
    for e in sorted(todo, key=lambda e: (-compile_seconds(e), e.name)):
        k = load.index(min(load))
        split[k].append(e)
        load[k] += compile_seconds(e)
    return [sorted(lane, key=todo.index) for lane in split if lane]


def ready(chosen, progress=None):
    """Yield the experiments of ``chosen`` in :func:`in_stream_order`, each once its kernels are compiled.

    Where two or more are cold, they compile in parallel processes, one per core (:func:`plan`), so that
    the first results come while the rest compiles. The order of what is yielded does not depend on
    which compilation ends first.
    """
    order = in_stream_order(chosen)
    todo = [e for e in order if cold(e)]
    lanes = plan(todo, min(len(todo), os.cpu_count() or 1))
    if len(lanes) < 2:
        yield from order
        return
    spawn = multiprocessing.get_context("spawn")  # no fork under threads
    workers, reports = [], []
    try:
        # The workers never see Ctrl-C (the terminal sends it to the whole group): they start while it is
        # ignored here, for the few milliseconds the starts take, and only then does the progress show.
        with sigint_ignored():
            for lane in lanes:
                receive, send = spawn.Pipe(duplex=False)
                worker = spawn.Process(target=_compile_lane, args=([e.name for e in lane], send), daemon=True)
                worker.start()
                send.close()
                workers.append(worker)
                reports.append(receive)
        if progress is not None:
            progress(COMPILING, 0, len(todo))
        done, waiting, finished = set(), {e.name for e in todo}, 0
        for e in order:
            if e.name in waiting:
                while e.name not in done and reports:
                    for report in wait(reports):
                        try:
                            done.add(report.recv())
                        except EOFError:  # the lane has ended (or died): what it did not report compiles here
                            reports.remove(report)
                finished += 1
                if progress is not None:
                    progress(COMPILING, finished, len(todo))
            yield e
    finally:
        for worker in workers:  # an interrupted run does not wait
            if worker.is_alive():
                worker.terminate()
            worker.join()
        for report in reports:
            report.close()


def warm_up(chosen, progress=None):
    """Compile the cold experiments among ``chosen`` in parallel processes (at their defaults)."""
    for _ in ready(chosen, progress):
        pass
