"""W1–W3: Monte Carlo workloads of the engine against a vectorized numpy reference.

Each runs twice, computing the same statistics: by the engine (its kernel on
all threads asked for) and by numpy (``np.random.default_rng``, PCG64, in
chunks, one thread: in a fresh Python with the BLAS pinned to one thread). The
two sets of statistics must agree within their joint MCSE.
"""
import math
import time
from dataclasses import dataclass

import numpy as np

from ..core.engine import Plan, run, set_threads
from ..core.errors import ParameterError
from ..core.rng import keep_threshold, stream_key
from ..core.stats import MOM_WIDTH, Sample, merge_moments
from ..experiments import dropout_gradient as dg
from ..experiments import network_shift as ns
from ..experiments import variance_shift as vs
from ..nn import chain as net
from .ceiling import SEED, draws_per_mask_word, draws_per_normal
from .measure import ONE_THREAD, PeakMemory, run_subprocess

REFERENCE_WORKLOADS = ("W1", "W1F", "W2", "W3")
# Issue 6's targets, kept as information: engine samples/s over the numpy reference's, same run, 2 cores.
TARGETS = {"W1": 10.0, "W1F": 10.0, "W2": 7.0, "W3": 5.0}
DEFAULT_SAMPLES = 20_000_000
REFERENCE_DIVISOR = 8  # the numpy reference runs samples / 8: same statistics, ~10x slower
ZMAX = 5.0

W1_N, W1_P, W1_T = 16, 0.5, 1.0
W2_D, W2_P, W2_C, W2_V = 64, 0.8, 1.0, 1.0
W3_D, W3_DEPTH, W3_M, W3_P, W3_STEPS, W3_RUNS = 256, 4, 64, 0.5, 8, 64
W3_DIVISOR = 512  # eval rows per W3 run: samples / (W3_DIVISOR · W3_RUNS)
# What one sample draws, for the generation ceiling: (normals per sample, mask words per 64 samples, keep p).
GENERATION = {"W1": (W1_N, W1_N, W1_P), "W1F": (0, W1_N, W1_P), "W2": (W2_D, W2_D, W2_P)}
MOMENT_VARS = {"W1": 2 * W1_N + 2, "W1F": 2 * W1_N + 2, "W2": 5}  # values whose moments one sample adds


@dataclass(frozen=True)
class Spec:
    """What one workload is: its title, its sizes and the random numbers it consumes.

    Attributes
    ----------
    name, title : str
    samples : int
        Samples the engine runs (rows, for W3).
    masks : float
        Mask elements per sample.
    draws : float
        Raw 64-bit draws per sample (normals, masks and uniforms as the kernel consumes them).
    """

    name: str
    title: str
    samples: int
    masks: float
    draws: float


# --- the workloads, engine side --------------------------------------------------

def _w1_setup(seed):
    return dg.setup(seed, W1_N, 0.0, 1.0)


def _w2_weights(seed):
    return vs.weights(seed, W2_D, None)


def _w3_setup(seed):
    return net.he_weights(seed, W3_D, W3_DEPTH), net.input_scales(1.0, 0.0)


def _w3_eval_rows(samples):
    return max(1000, samples // W3_DIVISOR)


def specs(samples=DEFAULT_SAMPLES):
    """The :class:`Spec` of every workload at ``samples`` (W3 derives its row counts from it)."""
    per_normal = draws_per_normal()
    eval_rows = _w3_eval_rows(samples)
    train_rows = W3_RUNS * W3_STEPS * W3_M
    rows = train_rows + eval_rows
    w1_masks = W1_N / 64 * draws_per_mask_word(W1_P)
    return {
        "W1": Spec("W1", f"dropout-gradient, random inputs (n={W1_N}, p={W1_P:g})", samples, W1_N,
                   W1_N * per_normal + w1_masks),
        "W1F": Spec("W1F", f"dropout-gradient, fixed input (n={W1_N}, p={W1_P:g})", samples, W1_N, w1_masks),
        # variance_shift draws d normals per sample and one mask word per input per 64 samples.
        "W2": Spec("W2", f"variance-shift weighted sum (d={W2_D}, p={W2_P:g})", samples, W2_D,
                   W2_D * per_normal + W2_D / 64 * draws_per_mask_word(W2_P)),
        # network draws d normals per input row and one raw draw per gate of each layer's input in training.
        "W3": Spec("W3", f"network-shift (d={W3_D}, depth {W3_DEPTH}, batches of {W3_M}, dropout before BN, "
                   f"{W3_RUNS} runs of {W3_STEPS} batches + {eval_rows} eval rows)", rows,
                   train_rows * W3_D * W3_DEPTH / rows,
                   (rows * W3_D * per_normal + train_rows * W3_D * W3_DEPTH) / rows),
    }


def engine_call(name, samples, seed):
    """``(kernel, args, nvars, engine_samples, key)`` of workload ``name``."""
    key = stream_key(seed, "bench", name)
    if name in ("W1", "W1F"):
        w, I = _w1_setup(seed)
        p = np.full(W1_N, W1_P)
        thr = np.array([keep_threshold(x) for x in p], dtype=np.uint64)
        args = (w, I, thr, p, W1_T, name == "W1", 0.0, 1.0)
        return dg.gradient_blocks, args, 2 * W1_N + 2, samples, key
    if name == "W2":
        w = _w2_weights(seed)
        args = vs.unit_args("bernoulli", W2_P, 0.1, W2_C, W2_V, 0.0, w) + (W2_C * float(w.sum()),)
        return vs.shift_blocks, args, 5, samples, key
    if name == "W3":
        W, (a, b) = _w3_setup(seed)
        codes = np.array([net.BEFORE], dtype=np.int64)
        args = (W, codes, keep_threshold(W3_P), 1.0 / W3_P, 0.1, 0.0, a, b, W3_M, W3_STEPS, 1e-5, 0.1)
        # The engine's samples are W3's eval rows; each of its W3_RUNS blocks is one training run.
        return ns.shift_blocks, args, W3_DEPTH * ns.NQ, _w3_eval_rows(samples), key
    raise ParameterError(f"unknown workload {name!r}; valid: {', '.join(REFERENCE_WORKLOADS)}")


def run_engine(name, samples, seed=SEED, progress=None, repeats=1):
    """Run workload ``name`` on the engine: ``(moments, seconds, peak_bytes)``.

    The fastest of ``repeats`` runs (the moments are the same each time);
    ``progress(done)`` is called with the engine samples done (see :func:`engine.run`).
    """
    kernel, args, nvars, n, key = engine_call(name, samples, seed)
    run(kernel, args, nvars, 1000, key)  # compile (or load from the cache) outside the timing
    best, peak = math.inf, 0
    for _ in range(repeats):
        with PeakMemory() as mem:
            start = time.perf_counter()
            sample = run(kernel, args, nvars, n, key, progress=progress)
            best = min(best, time.perf_counter() - start)
        peak = max(peak, mem.peak)
    return sample.total, best, peak


# --- the workloads, numpy side (single thread) -----------------------------------

def _chunk_moments(V):
    """``(n, mean, M2, M3, M4)`` of each column of ``V`` (two passes over the chunk)."""
    out = np.empty((V.shape[1], MOM_WIDTH))
    mean = V.mean(axis=0)
    d = V - mean
    d2 = d * d
    out[:, 0] = V.shape[0]
    out[:, 1] = mean
    out[:, 2] = d2.sum(axis=0)
    out[:, 3] = np.einsum("ij,ij->j", d2, d)
    out[:, 4] = np.einsum("ij,ij->j", d2, d2)
    return out


def _gates(rng, shape, p):
    """Bernoulli(p) gates: for p = 1/2 one random bit each (8 per byte drawn), else ``random() < p``."""
    if p == 0.5:
        count = int(np.prod(shape))
        bits = np.unpackbits(np.frombuffer(rng.bytes((count + 7) // 8), dtype=np.uint8), count=count)
        return bits.reshape(shape).view(bool)
    return rng.random(shape) < p


def gradient_numpy(rng, samples, w, I, p, t, random_inputs, chunk=2048):
    """W1/W1F in numpy: moments of [grad, loss, inv_grad, inv_loss] (shape (2n + 2, 5))."""
    n = w.size
    wp, ip = w / p, 1.0 / p
    total = np.zeros((2 * n + 2, MOM_WIDTH))
    V = np.empty((chunk, 2 * n + 2))
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        x = rng.standard_normal((m, n)) if random_inputs else np.broadcast_to(I, (m, n))
        gx = x * _gates(rng, (m, n), p[0])
        r = t - gx @ w
        ri = t - gx @ wp
        v = V[:m]
        np.multiply(gx, -r[:, None], out=v[:, :n])
        np.multiply(gx * ip, -ri[:, None], out=v[:, n + 1:2 * n + 1])
        v[:, n] = 0.5 * r * r
        v[:, 2 * n + 1] = 0.5 * ri * ri
        merge_moments(total, _chunk_moments(v))
    return total


def weighted_sum_numpy(rng, samples, w, p, c, v, chunk=2048):
    """W2 in numpy: moments of [X_train, X_test, A, B, A − B] (shape (5, 5)).

    ``X_train = w·(δ∘x)/p``, ``X_test = w·x``, ``A = (X_test − μ)²``, ``B = (X_train − μ)²``,
    ``μ = c Σw``: the variables of ``variance_shift.shift_blocks``.
    """
    total = np.zeros((5, MOM_WIDTH))
    wp = w / p
    mu = c * float(w.sum())
    V = np.empty((chunk, 5))
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        x = rng.standard_normal((m, w.size))
        x *= math.sqrt(v)
        x += c
        v_ = V[:m]
        np.matmul(x, w, out=v_[:, 1])
        x *= _gates(rng, x.shape, p)
        np.matmul(x, wp, out=v_[:, 0])
        np.square(v_[:, 1] - mu, out=v_[:, 2])
        np.square(v_[:, 0] - mu, out=v_[:, 3])
        np.subtract(v_[:, 2], v_[:, 3], out=v_[:, 4])
        merge_moments(total, _chunk_moments(v_))
    return total


def chain_numpy(rng, W, p, m, steps, runs, eval_rows, eps=1e-5, momentum=0.1):
    """W3 in numpy: per run, train the chain with dropout before every BN, evaluate, and take the
    moments over runs of [real var, running_var, Li max, ReLU mean train, ReLU mean eval] per layer.

    The same statistics as ``network_shift.shift_block`` (placement ``before-bn``, c = 0, v = 1, ρ = 0).
    """
    depth, d = W.shape[0], W.shape[1]
    total = np.zeros((depth * ns.NQ, MOM_WIDTH))
    for run_index in range(runs):
        rm, rv = np.zeros((depth, d)), np.ones((depth, d))
        relu_train = np.zeros(depth)
        for step in range(steps):
            h = rng.standard_normal((m, d))
            for layer in range(depth):
                h *= _gates(rng, h.shape, p)
                h /= p
                z = h @ W[layer]
                mean = z.mean(axis=0)
                var = z.var(axis=0)
                rm[layer] = (1 - momentum) * rm[layer] + momentum * mean
                rv[layer] = (1 - momentum) * rv[layer] + momentum * var * (m / (m - 1))
                h = np.maximum((z - mean) / np.sqrt(var + eps), 0.0)
                relu_train[layer] += h.sum()
        n_eval = eval_rows[run_index]
        s1, s2 = np.zeros((depth, d)), np.zeros((depth, d))
        relu_eval = np.zeros(depth)
        for start in range(0, n_eval, m):
            h = rng.standard_normal((min(m, n_eval - start), d))
            for layer in range(depth):
                e = h @ W[layer] - rm[layer]
                s1[layer] += e.sum(axis=0)
                s2[layer] += (e * e).sum(axis=0)
                h = np.maximum(e / np.sqrt(rv[layer] + eps), 0.0)
                relu_eval[layer] += h.sum()
        real = np.maximum(s2 - s1 * s1 / n_eval, 0.0) / (n_eval - 1)
        row = np.empty((1, depth * ns.NQ))
        q = row[0].reshape(depth, ns.NQ)
        q[:, ns.REAL] = real.mean(axis=1)
        q[:, ns.MOVING] = rv.mean(axis=1)
        q[:, ns.LI] = np.maximum(real / rv, rv / real).mean(axis=1)
        q[:, ns.RELU_TRAIN] = relu_train / (steps * m * d)
        q[:, ns.RELU_EVAL] = relu_eval / (n_eval * d)
        merge_moments(total, np.column_stack([np.ones(depth * ns.NQ), row[0], np.zeros((depth * ns.NQ, 3))]))
    return total


def run_reference(name, samples, seed=SEED, repeats=1):
    """Run workload ``name`` in numpy in this process: ``(moments, seconds, peak_bytes)``.

    The fastest of ``repeats`` runs, each on the same stream.
    """
    _reference(name, 1000, np.random.default_rng(0), seed, runs=1)  # first-call allocations (BLAS buffers)
    best, peak = math.inf, 0
    for _ in range(repeats):
        rng = np.random.default_rng(stream_key(seed, "bench-numpy", name))
        with PeakMemory() as mem:
            start = time.perf_counter()
            total = _reference(name, samples, rng, seed)
            best = min(best, time.perf_counter() - start)
        peak = max(peak, mem.peak)
    return total, best, peak


def _reference(name, samples, rng, seed, runs=W3_RUNS):
    if name in ("W1", "W1F"):
        w, I = _w1_setup(seed)
        return gradient_numpy(rng, samples, w, I, np.full(W1_N, W1_P), W1_T, name == "W1")
    if name == "W2":
        return weighted_sum_numpy(rng, samples, _w2_weights(seed), W2_P, W2_C, W2_V)
    if name == "W3":
        W, _ = _w3_setup(seed)
        plan = Plan.of(_w3_eval_rows(samples))
        runs = min(runs, plan.nblocks)
        return chain_numpy(rng, W, W3_P, W3_M, W3_STEPS, runs, [plan.block_size(b) for b in range(runs)])
    raise ParameterError(f"unknown workload {name!r}; valid: {', '.join(REFERENCE_WORKLOADS)}")


def run_reference_subprocess(name, samples, seed=SEED, repeats=1):
    """:func:`run_reference` in a fresh Python with every BLAS pinned to one thread."""
    result = run_subprocess({"side": "reference", "name": name, "samples": int(samples), "seed": int(seed),
                          "repeats": int(repeats)}, env=ONE_THREAD)
    return np.array(result["moments"]), result["seconds"], result["peak_bytes"]


def memory_growth(name="W1", samples=(1_000_000, 1_000_000_000), threads=None, seed=SEED):
    """Peak resident-set growth of the engine running ``name``, each sample count in a fresh Python.

    The engine streams, so the peaks should not depend on the sample count
    (issue 6: 1e6 and 1e9 samples within 10 MB). Returns a list of dicts
    ``samples``, ``seconds``, ``peak_mb``.
    """
    rows = []
    for n in samples:
        job = {"side": "engine", "name": name, "samples": int(n), "seed": int(seed), "threads": threads}
        result = run_subprocess(job)
        rows.append({"samples": int(n), "seconds": result["seconds"], "peak_mb": result["peak_bytes"] / 2 ** 20})
    return rows


def thread_scaling(name="W1", samples=DEFAULT_SAMPLES, threads=(1, 2), repeats=3, seed=SEED):
    """Engine samples/s of ``name`` at each thread count, and whether all runs gave the same bits.

    Returns a dict: ``rates`` (thread count → samples/s), ``speedup`` (over the first
    count) and ``identical`` (every moment bit-identical across thread counts).
    """
    rates, totals = {}, []
    try:
        for t in threads:
            set_threads(t)
            total, took, _ = run_engine(name, samples, seed, repeats=repeats)
            rates[int(t)] = specs(samples)[name].samples / took
            totals.append(total)
    finally:
        set_threads(None)
    first = rates[int(threads[0])]
    return {"rates": rates, "speedup": {t: r / first for t, r in rates.items()},
            "identical": all(np.array_equal(totals[0], t) for t in totals[1:])}


def w3_products():
    """The products of W3: every row goes through depth × (d × d)."""
    return [(W3_M, W3_D, W3_D)] * W3_DEPTH


# --- comparing the two -----------------------------------------------------------

def _labels(name):
    if name in ("W1", "W1F"):
        n = W1_N
        return ([f"grad[{i + 1}]" for i in range(n)] + ["loss"] + [f"inv-grad[{i + 1}]" for i in range(n)]
                + ["inv-loss"])
    if name == "W2":
        return ["X_train", "X_test", "A", "B", "A-B"]
    names = ("real", "moving", "li", "relu-train", "relu-eval")
    return [f"L{layer + 1} {names[q]}" for layer in range(W3_DEPTH) for q in range(ns.NQ)]


def agreement(name, engine, reference):
    """Engine against reference on every statistic: means (and variances, but for W3's per-run values).

    Returns a list of dicts with ``stat``, ``engine``, ``reference``, ``mcse`` (joint) and ``z``.
    """
    a = Sample(engine, engine[None], np.zeros(0))
    b = Sample(reference, reference[None], np.zeros(0))
    rows = []
    for k, label in enumerate(_labels(name)):
        kinds = (("mean", Sample.mean),) if name == "W3" else (("mean", Sample.mean), ("var", Sample.var))
        for kind, f in kinds:
            x, y = f(a, k), f(b, k)
            se = math.hypot(x.mcse, y.mcse)
            z = (x.value - y.value) / se if se > 0 else (0.0 if x.value == y.value else math.inf)
            rows.append({"stat": f"{kind} {label}", "engine": float(x.value), "reference": float(y.value),
                         "mcse": float(se), "z": float(z)})
    return rows


