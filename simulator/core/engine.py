"""The block engine: cuts samples into blocks, runs a kernel over them, merges in order.

A *kernel* is a ``@threaded`` function (:mod:`simulator.core.jit`) with the signature::

    kernel(key, first, count, base, rem, *args, out, maxima)

It simulates blocks ``first .. first+count-1`` of the stream ``key`` (block
``b`` has ``base + (b < rem)`` samples and the generator state
``rng.block_state(key, b)``), writes the central moments of each block into
``out[j]`` (shape ``(K, 5)``) and the largest value of each monitored quantity
into ``maxima[j]``. The engine calls it on chunks of blocks, each chunk cut into
one contiguous run of blocks per thread (Python threads: the kernel releases the
GIL), merges the chunks in block order into ``NBATCH`` batches, checks every
value is finite and reports progress; KeyboardInterrupt is honoured between
chunks. The result depends on the seed and the sample count only: not on
threads, chunking or timing.

The kernels are serial on purpose: a ``parallel=True`` (``prange``) kernel costs
Numba's parfor passes and a second optimisation of everything it calls, a third
or more of an experiment's first-run compilation, for no speed at block level.
"""
import contextlib
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from .errors import ParameterError, SimulationError
from .stats import MOM_WIDTH, Sample, merge_all, merge_blocks

BLOCK_MAX = 16384
NBATCH = 64
MIN_SAMPLES = 1000
_CHUNK_SECONDS = 0.25
_CHUNK_MAX = 512  # blocks per kernel call: bounds the memory of per-block results


@dataclass(frozen=True)
class Plan:
    """How ``samples`` are cut: ``nblocks`` blocks (a multiple of NBATCH) of ``base`` or ``base+1``."""

    samples: int
    nblocks: int
    base: int
    rem: int

    @classmethod
    def of(cls, samples):
        samples = int(samples)
        if samples < MIN_SAMPLES:
            raise ParameterError(
                f"samples={samples}: need at least {MIN_SAMPLES} for a Monte Carlo error estimate")
        nblocks = NBATCH * math.ceil(samples / (NBATCH * BLOCK_MAX))
        base, rem = divmod(samples, nblocks)
        return cls(samples, nblocks, base, rem)

    def block_size(self, b):
        return self.base + (1 if b < self.rem else 0)


def set_threads(threads):
    """Use ``threads`` Numba threads (None: all cores); returns the count in use."""
    limit = numba.config.NUMBA_NUM_THREADS
    threads = limit if threads is None else int(threads)
    if not 1 <= threads <= limit:
        raise ParameterError(f"threads={threads}: must be between 1 and {limit}")
    numba.set_num_threads(threads)
    return threads


_POOLS = {}


def thread_pool(threads):
    """A thread pool of ``threads`` workers for the calling thread, kept for its next call (the engine's and
    the trainer's); two runs measured at once (``verify``) do not share one."""
    k = (threads, threading.get_ident())
    if k not in _POOLS:
        _POOLS[k] = ThreadPoolExecutor(threads, thread_name_prefix="simulator-engine")
    return _POOLS[k]


@contextlib.contextmanager
def pool_of(threads):
    """The calling thread's pool of ``threads`` workers (:func:`thread_pool`) for one parallel call.

    A Ctrl-C can land between a lock's acquire and the ``with`` that would release it, inside the pool's
    own bookkeeping (a known limit of Python: bpo-29988), and leave a worker waiting for that lock for
    ever. A call interrupted so drops its pool: the next call gets a new one (``cli.py`` then also ends
    the process without waiting for such a worker).
    """
    try:
        yield thread_pool(threads)
    except KeyboardInterrupt:
        _POOLS.pop((threads, threading.get_ident()), None)
        raise


def call_blocks(kernel, key, first, count, base, rem, args, out, maxima, threads=None):
    """``kernel(key, first, count, base, rem, *args, out, maxima)`` on ``threads`` threads.

    The ``count`` blocks are cut into one contiguous run per thread; each thread
    writes only its own rows of ``out`` and ``maxima``, so the result is the
    same for any thread count.
    """
    threads = min(numba.get_num_threads() if threads is None else int(threads), count)
    if threads <= 1:
        kernel(key, first, count, base, rem, *args, out, maxima)
        return
    cuts = [count * t // threads for t in range(threads + 1)]
    with pool_of(threads) as pool:
        jobs = [pool.submit(kernel, key, first + a, b - a, base, rem, *args, out[a:b], maxima[a:b])
                for a, b in zip(cuts, cuts[1:])]
        for job in jobs:
            job.result()


def needs_compiling(kernel):
    """True when ``kernel`` is compiled neither in this process nor in Numba's on-disk cache."""
    if kernel.signatures:
        return False
    try:
        return not os.path.exists(kernel._cache._cache_file._index_path)
    except AttributeError:  # a Numba without this cache layout: say nothing
        return False


def run(kernel, args, nvars, samples, key, *, nmax=0, where="", progress=None):
    """Run ``kernel`` over all blocks of ``samples`` and return the merged :class:`Sample`.

    Parameters
    ----------
    kernel : numba dispatcher
        See the module docstring for its signature.
    args : tuple
        Extra arguments between ``rem`` and ``out``.
    nvars : int
        Number of variables K whose moments the kernel writes.
    samples : int
        Total number of samples.
    key : ndarray of shape (2,), dtype uint64
        The stream key (``rng.stream_key``).
    nmax : int
        Number of monitored maxima L.
    where : str
        Names the experiment and parameters in error messages.
    progress : callable or None
        Called as ``progress(samples_done)`` after each chunk, and as
        ``progress(0, compiling=True)`` before a kernel is compiled.
    """
    plan = Plan.of(samples)
    if progress is not None and needs_compiling(kernel):
        progress(0, compiling=True)
    per_batch = plan.nblocks // NBATCH
    batches = np.zeros((NBATCH, nvars, MOM_WIDTH))
    maxima = np.full(nmax, -np.inf)
    chunk = numba.get_num_threads()
    first = 0
    while first < plan.nblocks:
        count = min(chunk, plan.nblocks - first)
        out = np.empty((count, nvars, MOM_WIDTH))
        ext = np.full((count, nmax), -np.inf)
        start = time.perf_counter()
        call_blocks(kernel, key, first, count, plan.base, plan.rem, args, out, ext)
        took = time.perf_counter() - start
        if not (np.isfinite(out).all() and not np.isnan(ext).any()):
            raise SimulationError(f"non-finite value in {where or 'a kernel'}: "
                                  "the parameters overflow float64")
        merge_blocks(batches, out, first, per_batch)
        if nmax:
            maxima = np.maximum(maxima, ext.max(axis=0))
        first += count
        if progress is not None:
            progress(min(first * plan.base + min(first, plan.rem), samples))
        if took < _CHUNK_SECONDS / 2 and chunk < _CHUNK_MAX:
            chunk *= 2
    return Sample(merge_all(batches), batches, maxima)
