"""The benchmark's own Numba kernels: raw draws, draw counting, generation alone, moments alone, and the
trainer's matrix products alone.

They use the very generators of the engine (:mod:`simulator.core.rng`), so what they
measure is what a workload's kernel pays for its random numbers, and nothing
else. Kept in one module apart from the rest of the benchmark, which holds no
kernels: the kernel cache's digest (:mod:`simulator.core.cache`) covers only modules
with kernels, so edits elsewhere in the benchmark do not invalidate it.
"""
import numpy as np

from ..core.jit import kernel, threaded
from ..core.rng import block_state, draw_mask, draw_normal, draw_raw
from ..core.stats import HALF, LANES, accumulate_lanes, finish_lanes
from ..nn.chain import linear_rows


@kernel
def raw_draws(state, count):
    """``count`` raw draws on one core; returns their xor (so nothing is optimized away)."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    acc = np.uint64(0)
    for _ in range(count):
        r, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
        acc ^= r
    return acc


@kernel
def steps_between(a, b, limit):
    """Raw draws that take state a to state b (−1 beyond ``limit``)."""
    s0, s1, s2, s3 = a[0], a[1], a[2], a[3]
    for k in range(limit + 1):
        if s0 == b[0] and s1 == b[1] and s2 == b[2] and s3 == b[3]:
            return k
        _, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
    return -1


@kernel
def normals_then_state(state, count):
    """The state after ``count`` ziggurat normals."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for _ in range(count):
        _, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
    return np.array([s0, s1, s2, s3])


@kernel
def masks_then_state(state, count, threshold):
    """The state after ``count`` 64-gate mask words at ``threshold``."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for _ in range(count):
        _, s0, s1, s2, s3 = draw_mask(s0, s1, s2, s3, threshold)
    return np.array([s0, s1, s2, s3])


@kernel
def generate_block(state, size, normals, words, threshold, z):
    """The random numbers of one block of ``size`` samples, and nothing else; a checksum of them.

    Per group of LANES samples, as the workloads' kernels draw them: lane by
    lane ``normals`` ziggurat normals into ``z`` (shape (normals, LANES)), then
    ``words`` mask words (64 gates each) at ``threshold``.
    """
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    bits = np.uint64(0)
    done = 0
    while done < size:
        lanes = min(LANES, size - done)
        for l in range(lanes):
            for i in range(normals):
                z[i, l], s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
        for i in range(words):
            word, s0, s1, s2, s3 = draw_mask(s0, s1, s2, s3, threshold)
            bits ^= word
        done += lanes
    return z.sum() + float(np.int64(bits >> np.uint64(12)))


@threaded
def generate_blocks(key, first, count, base, rem, normals, words, threshold, out, maxima):
    """An engine kernel (see :mod:`simulator.core.engine`) that only generates: ``normals`` normals per
    sample and ``words`` mask words per LANES samples, per block of the stream ``key``.

    ``out[j, 0]`` gets ``(size, checksum, 0, 0, 0)``: no statistics, only a value
    that depends on every draw, so that none is optimized away.
    """
    z = np.zeros((max(normals, 1), LANES))
    for j in range(count):
        b = first + j
        size = base + (1 if b < rem else 0)
        out[j, 0, :] = 0.0
        out[j, 0, 0] = size
        out[j, 0, 1] = generate_block(block_state(key, b), size, normals, words, threshold, z)


@threaded
def moments_blocks(key, first, count, base, rem, nvars, out, maxima):
    """An engine kernel that only keeps statistics: the streaming moments (``stats.accumulate_lanes``)
    of ``nvars`` values per sample, per group of LANES samples, as the workloads' kernels keep them.

    The values are made once per block (cheap and deterministic, no random numbers) and kept again for
    every group, so that the time is the statistics' alone; ``out[j]`` gets their moments (a short last
    group counts whole), so that the sums are live.
    """
    V = np.empty((nvars, LANES))
    for j in range(count):
        b = first + j
        size = base + (1 if b < rem else 0)
        S = np.zeros((4, nvars, HALF))
        shift = np.zeros(nvars)
        for q in range(nvars):
            for l in range(LANES):
                V[q, l] = 1e-6 * b + 1e-3 * (q + l)
        done = 0
        while done < size:
            accumulate_lanes(V, shift, S)
            done += min(LANES, size - done)
        finish_lanes(S, shift, size, out[j])


@kernel
def products_reps(h, W, z, offsets, reps):
    """``reps`` times, every product of one training step through the trainer's own ``chain.linear_rows``.

    Product q multiplies the (m, k) block of ``h`` at ``offsets[q]`` by the (k, n) block of ``W`` into the
    (m, n) block of ``z`` (the three flat buffers hold every product's operands, C order).
    """
    for _ in range(reps):
        for q in range(offsets.shape[0]):
            m, k, n, oh, ow, oz = offsets[q]
            linear_rows(h[oh:oh + m * k].reshape((m, k)), W[ow:ow + k * n].reshape((k, n)),
                    z[oz:oz + m * n].reshape((m, n)))
    return z[0]
