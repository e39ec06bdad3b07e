"""Measuring helpers of the benchmark: peak memory, fresh-Python jobs and numpy's dgemm rate."""
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np


def fastest(measure, repeats):
    """The answer of ``measure()`` (a tuple whose first item is seconds) with the fewest seconds of
    ``repeats`` calls: a busy machine slows some runs, never speeds one up."""
    return min((measure() for _ in range(max(1, int(repeats)))), key=lambda answer: answer[0])


def _rss_bytes():
    """Resident set size now (Linux /proc), else the peak so far (``ru_maxrss``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager: the largest growth of the resident set while it is open, in bytes.

    A thread samples the RSS every ``interval`` seconds (kernels hold the GIL, so a
    sample may come late; memory that a kernel allocates and frees within one
    chunk can be missed, memory that stays or grows cannot).
    """

    def __init__(self, interval=0.005):
        self.interval = interval
        self.peak = 0

    def __enter__(self):
        self.base = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() - self.base)
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() - self.base)
        return False



ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}


def run_subprocess(job, env=None):
    """Run ``job`` in a fresh Python (``python -m simulator.bench``, :mod:`simulator.bench.__main__`); its JSON
    answer."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join([root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    done = subprocess.run([sys.executable, "-m", "simulator.bench"], input=json.dumps(job), cwd=root,
                          env={**os.environ, **(env or {}), "PYTHONPATH": path},
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench job {job} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])



def _gemm_reps(pairs, outs, reps):
    """``reps`` passes over the product sequence (numpy releases the GIL inside each product)."""
    for _ in range(reps):
        for (a, b), c in zip(pairs, outs):
            np.matmul(a, b, out=c)


def gemm_job(shapes, seconds, streams=1):
    """Float64 GEMM rate (flop/s) of the product sequence ``shapes`` in numpy, in this process.

    With ``streams`` > 1, that many Python threads each run the sequence on
    their own matrices at once (one product per thread, as the engine runs its
    models); the rate is their total. The fastest of 5 rounds.
    """
    rng = np.random.default_rng(0)
    work = []
    for _ in range(int(streams)):
        pairs = [(rng.standard_normal((m, k)), rng.standard_normal((k, n))) for m, k, n in shapes]
        work.append((pairs, [np.empty((m, n)) for m, _, n in shapes]))
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    start = time.perf_counter()
    reps = 1
    while time.perf_counter() - start < seconds / 20:  # calibrate: about seconds / 5 a round
        _gemm_reps(*work[0], reps)
        reps *= 2
    best = math.inf
    for _ in range(5):
        threads = [threading.Thread(target=_gemm_reps, args=(*w, reps)) for w in work]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = min(best, (time.perf_counter() - start) / reps)
    return flops * len(work) / best


def gemm_rate(shapes, threads, seconds=0.5, streams=1):
    """numpy's dgemm rate (flop/s) on the product sequence ``shapes`` with the BLAS on ``threads`` threads.

    Run in a fresh Python so that the BLAS thread count can be pinned; with
    ``streams`` > 1, that many sequences at once, each on its own thread (see :func:`gemm_job`).
    """
    env = {k: str(int(threads)) for k in ONE_THREAD}
    result = run_subprocess({"side": "gemm", "shapes": [list(map(int, s)) for s in shapes], "seconds": seconds,
                          "streams": int(streams)}, env=env)
    return result["flops_per_s"]


def gemm_ceiling(shapes, threads):
    """numpy's best dgemm rate on ``shapes`` with ``threads`` cores: ``{"1", "<threads>", "streams", "best"}``.

    "1": the BLAS on one thread; "<threads>": the BLAS on ``threads`` threads
    (one product at a time); "streams": ``threads`` one-thread sequences at once
    in one process (small products pay for the GIL between them); "best": the
    largest of these and ``threads`` × the one-thread rate, which ``threads``
    processes would reach on as many cores (flop/s each).
    """
    one = gemm_rate(shapes, 1)
    if int(threads) == 1:
        return {"1": one, "streams": one, "best": one}
    many = gemm_rate(shapes, threads)
    streams = gemm_rate(shapes, 1, streams=threads)
    return {"1": one, str(int(threads)): many, "streams": streams, "best": max(many, streams, int(threads) * one)}
