"""Each workload's ceiling on this machine: the engine's generators alone, and numpy's dgemm.

- The raw generator: xoshiro256** draws per second on one core.
- Generation (W1, W1F, W2): an engine kernel that draws exactly the random
  numbers one sample of the workload consumes (its normals and its mask words,
  in the same order, from the same generators, on the same threads and blocks)
  and does nothing else with them. A workload's fraction of it is the share of
  its time spent drawing; the rest is its own arithmetic.
- Moments alone (W1, W1F, W2): an engine kernel that only keeps the streaming
  moments of the workload's values per sample (``stats.accumulate_lanes``).
  With generation, it splits a workload's time: drawing, keeping statistics,
  and the rest (its own arithmetic).
- dgemm (W3, W4, W5): :func:`measure.gemm_rate` on the workload's product shapes.
"""
import math
import time

from ..core.engine import run
from ..core.rng import block_state, keep_threshold, stream_key
from .kernels import (
    generate_blocks,
    masks_then_state,
    moments_blocks,
    normals_then_state,
    raw_draws,
    steps_between,
)

SEED = 6

def draws_per_normal(count=200_000):
    """Raw draws one ziggurat normal consumes on average (measured by replaying the stream)."""
    start = block_state(stream_key(SEED, "bench", "draws"), 0)
    end = normals_then_state(start, count)
    return steps_between(start, end, 2 * count) / count


def draws_per_mask_word(p, count=20_000):
    """Raw draws one 64-gate mask word consumes at keep probability p (measured)."""
    start = block_state(stream_key(SEED, "bench", "draws"), 1)
    end = masks_then_state(start, count, keep_threshold(p))
    return steps_between(start, end, 60 * count) / count


def raw_generator_speed(draws=200_000_000):
    """Raw xoshiro256** draws per second on one core (the ceiling of every kernel)."""
    state = block_state(stream_key(SEED, "bench", "raw"), 0)
    raw_draws(state, 1000)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        raw_draws(state, draws)
        best = min(best, time.perf_counter() - start)
    return draws / best



def generation_rate(normals, words, p, samples, repeats=1, seed=SEED):
    """Samples per second of generation alone: ``normals`` normals per sample and ``words`` mask
    words per 64 samples at keep probability ``p``, through the engine on its current threads.

    Parameters
    ----------
    normals, words : int
        What one sample (normals) and one group of 64 samples (mask words) consume.
    p : float
        Keep probability of the gates (the mask words' draws depend on it).
    samples : int
    repeats : int
        The fastest of this many runs.
    seed : int

    Returns
    -------
    float
        Samples per second: the ceiling of a kernel that draws these numbers.
    """
    key = stream_key(seed, "bench", "generation", normals, words, p)
    args = (int(normals), int(words), keep_threshold(p))
    run(generate_blocks, args, 1, 1000, key)  # compile (or load from the cache) outside the timing
    best = math.inf
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        run(generate_blocks, args, 1, samples, key)
        best = min(best, time.perf_counter() - start)
    return samples / best


def moments_rate(nvars, samples, repeats=1, seed=SEED):
    """Samples per second of keeping the moments of ``nvars`` values per sample alone (the engine's
    streaming statistics, through the engine on its current threads; the fastest of ``repeats``)."""
    key = stream_key(seed, "bench", "moments", nvars)
    run(moments_blocks, (int(nvars),), int(nvars), 1000, key)
    best = math.inf
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        run(moments_blocks, (int(nvars),), int(nvars), samples, key)
        best = min(best, time.perf_counter() - start)
    return samples / best


def blas_info():
    """The BLAS numpy runs (``threadpoolctl``): ``{"library", "version", "kernel", "threads"}``, or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {"library": pool.get("internal_api"), "version": pool.get("version"),
                    "kernel": pool.get("architecture"), "threads": pool.get("num_threads")}
    return None
