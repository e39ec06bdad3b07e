"""The benchmark behind ``cli.py bench``: the engine against a plain numpy reference.

Each workload runs twice on the same machine, computing the same statistics:
by the engine (its Numba kernel on all threads asked for) and by a vectorized
numpy reference (``np.random.default_rng``, PCG64, in chunks, one thread: it
runs in a subprocess with the BLAS pinned to one thread).

- ``W1``: dropout-gradient with random inputs: n = 16, p = 0.5, per sample
  I ~ N(0, 1)ⁿ and δ ~ Bernoulli(p)ⁿ; moments of the 2n + 2 gradient and loss
  values of plain and inverted dropout (mean and variance of every component).
- ``W1F``: the same with one fixed input vector (only the masks random).
- ``W2``: variance-shift weighted sum: d = 64, p = 0.8, i.i.d. N(1, 1) inputs;
  moments of ``X_train = w·(δ∘x)/p``, ``X_test = w·x`` (paired) and of the
  squared deviations ``variance_shift._shift_blocks`` adds for Δ's error.
- ``W3``: network-shift: d = 256, depth 4, batches of 64, dropout before every
  BN; 64 training runs of ``W3_STEPS`` batches, then eval rows; per layer the
  real variance of the BN input, running_var, Li's ratio and the post-ReLU means.
  A sample is one row through the chain (training or eval).
- ``W4``: the training study (:mod:`simulator.nn.train`): diabetes, depth 2,
  width 64, BN, Adam, batch 32, every placement, 32 runs of 100 epochs, against
  PyTorch float32 trained as users do (eager, one model at a time) and as a
  batched ``torch.func`` vmap ensemble, per model-step (when torch is installed).

Reported per workload: samples/s, mask elements/s, the engine/reference ratio,
peak memory (growth of the resident set during the run), threads; the agreement
of the two sets of statistics in units of their joint MCSE; and, with the raw
generator speed (xoshiro256** draws per second on one core) as the ceiling, the
fraction of it the engine reaches: random draws the run consumed per second and
thread over raw draws per second. Next to W3 and W4, numpy's own dgemm rate on
the same matrix shapes (one thread and the engine's): the limit of a GEMM-bound run.
"""
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

from .nn import chain as net
from .nn import train as tr
from .engine import Plan, run, set_threads
from .errors import ParameterError
from .experiments import dropout_gradient as dg
from .experiments import network_shift as ns
from .experiments import variance_shift as vs
from .rng import _block_state, _draw, _draw_mask, _draw_normal, keep_threshold, stream_key
from .stats import MOM_WIDTH, Sample, _merge
from .tasks import load

WORKLOADS = ("W1", "W1F", "W2", "W3", "W4")
REFERENCE_WORKLOADS = ("W1", "W1F", "W2", "W3")  # against the numpy reference; W4 against PyTorch
# Issue 6's targets: engine samples/s over the numpy reference's, same run, 2 cores.
TARGETS = {"W1": 10.0, "W1F": 10.0, "W2": 7.0, "W3": 5.0}
DEFAULT_SAMPLES = 20_000_000
REFERENCE_DIVISOR = 8  # the numpy reference runs samples / 8: same statistics, ~10x slower
SEED = 6
ZMAX = 5.0

W1_N, W1_P, W1_T = 16, 0.5, 1.0
W2_D, W2_P, W2_C, W2_V = 64, 0.8, 1.0, 1.0
W3_D, W3_DEPTH, W3_M, W3_P, W3_STEPS, W3_RUNS = 256, 4, 64, 0.5, 8, 64
W3_DIVISOR = 512  # eval rows per W3 run: samples / (W3_DIVISOR · W3_RUNS)


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


# --- random-number bookkeeping -------------------------------------------------

@njit(cache=True, error_model="numpy")
def _raw_draws(state, count):
    """``count`` raw draws on one core; returns their xor (so nothing is optimized away)."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    acc = np.uint64(0)
    for _ in range(count):
        r, s0, s1, s2, s3 = _draw(s0, s1, s2, s3)
        acc ^= r
    return acc


@njit(cache=True, error_model="numpy")
def _steps_between(a, b, limit):
    """Raw draws that take state a to state b (−1 beyond ``limit``)."""
    s0, s1, s2, s3 = a[0], a[1], a[2], a[3]
    for k in range(limit + 1):
        if s0 == b[0] and s1 == b[1] and s2 == b[2] and s3 == b[3]:
            return k
        _, s0, s1, s2, s3 = _draw(s0, s1, s2, s3)
    return -1


@njit(cache=True, error_model="numpy")
def _normals_then_state(state, count):
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for _ in range(count):
        _, s0, s1, s2, s3 = _draw_normal(s0, s1, s2, s3)
    return np.array([s0, s1, s2, s3])


@njit(cache=True, error_model="numpy")
def _masks_then_state(state, count, threshold):
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for _ in range(count):
        _, s0, s1, s2, s3 = _draw_mask(s0, s1, s2, s3, threshold)
    return np.array([s0, s1, s2, s3])


def draws_per_normal(count=200_000):
    """Raw draws one ziggurat normal consumes on average (measured by replaying the stream)."""
    start = _block_state(stream_key(SEED, "bench", "draws"), 0)
    end = _normals_then_state(start, count)
    return _steps_between(start, end, 2 * count) / count


def draws_per_mask_word(p, count=20_000):
    """Raw draws one 64-gate mask word consumes at keep probability p (measured)."""
    start = _block_state(stream_key(SEED, "bench", "draws"), 1)
    end = _masks_then_state(start, count, keep_threshold(p))
    return _steps_between(start, end, 60 * count) / count


def raw_generator_speed(draws=200_000_000):
    """Raw xoshiro256** draws per second on one core (the ceiling of every kernel)."""
    state = _block_state(stream_key(SEED, "bench", "raw"), 0)
    _raw_draws(state, 1000)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        _raw_draws(state, draws)
        best = min(best, time.perf_counter() - start)
    return draws / best


# --- peak memory ---------------------------------------------------------------

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


def _engine_call(name, samples, seed):
    """``(kernel, args, nvars, engine_samples, key)`` of workload ``name``."""
    key = stream_key(seed, "bench", name)
    if name in ("W1", "W1F"):
        w, I = _w1_setup(seed)
        p = np.full(W1_N, W1_P)
        thr = np.array([keep_threshold(x) for x in p], dtype=np.uint64)
        args = (w, I, thr, p, W1_T, name == "W1", 0.0, 1.0)
        return dg._gradient_blocks, args, 2 * W1_N + 2, samples, key
    if name == "W2":
        w = _w2_weights(seed)
        args = vs._unit_args("bernoulli", W2_P, 0.1, W2_C, W2_V, 0.0, w) + (W2_C * float(w.sum()),)
        return vs._shift_blocks, args, 5, samples, key
    if name == "W3":
        W, (a, b) = _w3_setup(seed)
        codes = np.array([net.BEFORE], dtype=np.int64)
        args = (W, codes, keep_threshold(W3_P), 1.0 / W3_P, 0.1, 0.0, a, b, W3_M, W3_STEPS, 1e-5, 0.1)
        # The engine's samples are W3's eval rows; each of its W3_RUNS blocks is one training run.
        return ns._shift_blocks, args, W3_DEPTH * ns.NQ, _w3_eval_rows(samples), key
    raise ParameterError(f"unknown workload {name!r}; valid: {', '.join(WORKLOADS)}")


def run_engine(name, samples, seed=SEED, progress=None, repeats=1):
    """Run workload ``name`` on the engine: ``(moments, seconds, peak_bytes)``.

    The fastest of ``repeats`` runs (the moments are the same each time);
    ``progress(done)`` is called with the engine samples done (see :func:`engine.run`).
    """
    kernel, args, nvars, n, key = _engine_call(name, samples, seed)
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
        _merge(total, _chunk_moments(v))
    return total


def weighted_sum_numpy(rng, samples, w, p, c, v, chunk=2048):
    """W2 in numpy: moments of [X_train, X_test, A, B, A − B] (shape (5, 5)).

    ``X_train = w·(δ∘x)/p``, ``X_test = w·x``, ``A = (X_test − μ)²``, ``B = (X_train − μ)²``,
    ``μ = c Σw``: the variables of ``variance_shift._shift_blocks``.
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
        _merge(total, _chunk_moments(v_))
    return total


def chain_numpy(rng, W, p, m, steps, runs, eval_rows, eps=1e-5, momentum=0.1):
    """W3 in numpy: per run, train the chain with dropout before every BN, evaluate, and take the
    moments over runs of [real var, running_var, Li max, ReLU mean train, ReLU mean eval] per layer.

    The same statistics as ``network_shift._shift_block`` (placement ``before-bn``, c = 0, v = 1, ρ = 0).
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
        _merge(total, np.column_stack([np.ones(depth * ns.NQ), row[0], np.zeros((depth * ns.NQ, 3))]))
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
    raise ParameterError(f"unknown workload {name!r}; valid: {', '.join(WORKLOADS)}")


_ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}


def _subprocess(job, env=None):
    """Run :func:`_main` on ``job`` in a fresh Python; its JSON answer."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join([root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    done = subprocess.run([sys.executable, "-m", "simulator.bench"], input=json.dumps(job), cwd=root,
                          env={**os.environ, **(env or {}), "PYTHONPATH": path},
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench job {job} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_reference_subprocess(name, samples, seed=SEED, repeats=1):
    """:func:`run_reference` in a fresh Python with every BLAS pinned to one thread."""
    result = _subprocess({"side": "reference", "name": name, "samples": int(samples), "seed": int(seed),
                          "repeats": int(repeats)}, env=_ONE_THREAD)
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
        result = _subprocess(job)
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


# --- W4: the training study against PyTorch -----------------------------------------

W4_TASK, W4_RUNS, W4_EPOCHS = "diabetes", 32, 100
W4_TORCH_RUNS, W4_TORCH_EPOCHS = 2, 5  # eager PyTorch: a few models, a few epochs (per model-step rates)
W4_VMAP_EPOCHS = 10
W4_TARGETS = {"eager": 20.0, "vmap": 3.0}  # engine model-steps/s over PyTorch's, 2 cores


def _w4_models(placements):
    """The training modes the engine runs for ``placements`` (the recalibrated ones share ``hidden``)."""
    modes = []
    for name in placements:
        mode = "hidden" if name.startswith("recalibrated") else name
        if mode not in modes:
            modes.append(mode)
    return modes


def _w4_steps(n_train, batch, epochs):
    """Optimizer steps of one model: every batch but a final one of one row."""
    return epochs * sum(1 for start in range(0, n_train, batch) if min(batch, n_train - start) > 1)


def _w4_products(n_in, config):
    """``(rows, inner, cols)`` of every matrix product of one training step (forward, then backward)."""
    m, w, d = config.batch, config.width, config.depth
    dims = [n_in] + [w] * d + [1]
    fwd = [(m, dims[l], dims[l + 1]) for l in range(d + 1)]
    grad_w = [(dims[l + 1], m, dims[l]) for l in range(d + 1)]
    grad_a = [(m, dims[l + 1], dims[l]) for l in range(1, d + 1)]
    return fwd + grad_w + grad_a


def run_w4_engine(runs=W4_RUNS, epochs=W4_EPOCHS, seed=SEED):
    """The diabetes study with the Numba trainer: ``(seconds, model_steps, result)``.

    Every placement of :data:`train.PLACEMENTS`; a model-step is one optimizer
    step of one trained network (the recalibrated placements are evaluations of
    the ``hidden`` training and add no steps).
    """
    task = load(W4_TASK)
    config = tr.TrainConfig(epochs=epochs)
    key = stream_key(seed, "bench", "W4")
    tr.train_runs(task, tr.TrainConfig(epochs=1), tr.PLACEMENTS, 1, key)  # compile or load outside the timing
    start = time.perf_counter()
    result = tr.train_runs(task, config, tr.PLACEMENTS, runs, key)
    took = time.perf_counter() - start
    steps = runs * len(_w4_models(tr.PLACEMENTS)) * _w4_steps(result.n_train, config.batch, epochs)
    return took, steps, result


def _w4_data(torch):
    """The standardised 80/20 split of the task (first ⌊n/5⌋ rows for the test) as float32 tensors."""
    task = load(W4_TASK)
    X, y = np.asarray(task.X, dtype=np.float64), np.asarray(task.y, dtype=np.float64)
    n_test = X.shape[0] // tr.TEST_FRACTION_DIVISOR
    Xtr, ytr = X[n_test:], y[n_test:]
    X = (X - Xtr.mean(axis=0)) / Xtr.std(axis=0)
    y = (y - ytr.mean()) / ytr.std()
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return t(X[n_test:]), t(y[n_test:]), t(X[:n_test]), t(y[:n_test])


def _torch_model(torch, n_in, config, mode):
    """``nn.Sequential``: depth × [Linear, BatchNorm1d, ReLU, (Dropout or Uout)], Linear(1)."""
    nn = torch.nn

    class Uout(nn.Module):
        """``h (1 + r)``, r ~ U(−β, β), in training mode."""

        def forward(self, h):
            return h * (1.0 + config.beta * (2.0 * torch.rand_like(h) - 1.0)) if self.training else h

    layers, fin = [], n_in
    for layer in range(config.depth):
        layers += [nn.Linear(fin, config.width), nn.BatchNorm1d(config.width), nn.ReLU()]
        if mode == "hidden" or (mode == "head" and layer == config.depth - 1):
            layers.append(nn.Dropout(1.0 - config.p))
        elif mode == "uout":
            layers.append(Uout())
        fin = config.width
    layers.append(nn.Linear(fin, 1))
    return nn.Sequential(*layers)


def run_w4_eager(torch, runs=W4_TORCH_RUNS, epochs=W4_TORCH_EPOCHS, seed=SEED):
    """PyTorch eager float32 as users run it, one model at a time: ``(seconds, model_steps)``."""
    config = tr.TrainConfig(epochs=epochs)
    Xtr, ytr, Xte, yte = _w4_data(torch)
    n = Xtr.shape[0]
    torch.manual_seed(seed)  # torch's own generator: dropout cannot take one
    steps = 0
    start = time.perf_counter()
    for _ in range(runs):
        for mode in _w4_models(tr.PLACEMENTS):
            model = _torch_model(torch, Xtr.shape[1], config, mode)
            opt = torch.optim.Adam(model.parameters(), lr=config.lr)
            for _ in range(epochs):
                model.train()
                order = torch.randperm(n)
                for first in range(0, n, config.batch):
                    idx = order[first:first + config.batch]
                    if idx.numel() == 1:
                        continue
                    opt.zero_grad(set_to_none=True)
                    loss = torch.nn.functional.mse_loss(model(Xtr[idx])[:, 0], ytr[idx])
                    loss.backward()
                    opt.step()
                    steps += 1
            model.eval()
            with torch.no_grad():
                torch.nn.functional.mse_loss(model(Xte)[:, 0], yte)
    return time.perf_counter() - start, steps


def run_w4_vmap(torch, runs=W4_RUNS, epochs=W4_VMAP_EPOCHS, seed=SEED):
    """A ``torch.func`` ensemble: per training mode, ``runs`` models in one vmapped step.

    ``stack_module_state`` + ``functional_call``; BN's buffers are batched too,
    so their running statistics update under vmap; ``randomness="different"``
    gives every model its own dropout. Each model has its own batch order. One
    ``torch.optim.Adam`` over the stacked parameters (elementwise, so it is
    every model's own Adam). Returns ``(seconds, model_steps)``.
    """
    import copy

    from torch.func import functional_call, stack_module_state

    config = tr.TrainConfig(epochs=epochs)
    Xtr, ytr, Xte, yte = _w4_data(torch)
    n = Xtr.shape[0]
    torch.manual_seed(seed)
    steps = 0
    start = time.perf_counter()
    for mode in _w4_models(tr.PLACEMENTS):
        models = [_torch_model(torch, Xtr.shape[1], config, mode) for _ in range(runs)]
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")

        def forward(p, b, x):
            return functional_call(base, (p, b), (x,))

        step = torch.vmap(forward, randomness="different")
        opt = torch.optim.Adam(params.values(), lr=config.lr)
        for _ in range(epochs):
            order = torch.stack([torch.randperm(n) for _ in range(runs)])
            for first in range(0, n, config.batch):
                idx = order[:, first:first + config.batch]
                if idx.shape[1] == 1:
                    continue
                opt.zero_grad(set_to_none=True)
                out = step(params, buffers, Xtr[idx])
                loss = ((out[..., 0] - ytr[idx]) ** 2).mean(dim=1).sum()  # each model's own mean loss
                loss.backward()
                opt.step()
                steps += runs
        base.eval()
        with torch.no_grad():
            torch.vmap(forward, in_dims=(0, 0, None))(params, buffers, Xte)
    return time.perf_counter() - start, steps


def _gemm_job(shapes, seconds):
    """Float64 GEMM rate (flop/s) of the product sequence ``shapes`` in numpy, in this process."""
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal((m, k)), rng.standard_normal((k, n))) for m, k, n in shapes]
    outs = [np.empty((m, n)) for m, _, n in shapes]
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    for (a, b), c in zip(pairs, outs):
        np.matmul(a, b, out=c)
    best = math.inf
    for _ in range(5):
        reps, start = 0, time.perf_counter()
        while True:
            for (a, b), c in zip(pairs, outs):
                np.matmul(a, b, out=c)
            reps += 1
            took = time.perf_counter() - start
            if took >= seconds / 5:
                break
        best = min(best, took / reps)
    return flops / best


def gemm_rate(shapes, threads, seconds=0.5):
    """numpy's dgemm rate (flop/s) on the product sequence ``shapes`` with the BLAS on ``threads`` threads.

    Run in a fresh Python so that the BLAS thread count can be pinned.
    """
    env = {k: str(int(threads)) for k in _ONE_THREAD}
    result = _subprocess({"side": "gemm", "shapes": [list(map(int, s)) for s in shapes], "seconds": seconds},
                         env=env)
    return result["flops_per_s"]


def _w3_products():
    """The products of W3: every row goes through depth × (d × d)."""
    return [(W3_M, W3_D, W3_D)] * W3_DEPTH


def run_w4(runs=W4_RUNS, epochs=W4_EPOCHS, torch_runs=W4_TORCH_RUNS, torch_epochs=W4_TORCH_EPOCHS,
           vmap_runs=None, vmap_epochs=W4_VMAP_EPOCHS, threads=None, seed=SEED, torch_threads=None):
    """W4: the diabetes study on the Numba trainer against PyTorch eager and a vmap ensemble.

    Parameters
    ----------
    runs, epochs : int
        The engine's study (every placement).
    torch_runs, torch_epochs : int
        Eager PyTorch: models per training mode and epochs (fewer: it is slow).
    vmap_runs, vmap_epochs : int
        The vmap ensemble's models per mode (default ``runs``) and epochs.
    threads : int, optional
        Numba threads (all cores when None).
    torch_threads : int, optional
        PyTorch's threads (its default when None). PyTorch runs in a fresh Python.

    Returns
    -------
    dict
        ``engine`` (seconds, model_steps, us_per_step, steps_per_s, gflops,
        threads), ``eager`` and ``vmap`` (the same, or None without torch),
        ``ratio_eager``, ``ratio_vmap`` (engine steps/s over torch's),
        ``gemm`` (numpy dgemm flop/s on the step's shapes, 1 thread and the
        engine's), ``torch`` (version or None) and the sizes.
    """
    used = set_threads(threads)
    took, steps, _ = run_w4_engine(runs, epochs, seed)
    n_in = load(W4_TASK).X.shape[1]
    config = tr.TrainConfig()
    shapes = _w4_products(n_in, config)
    flops = sum(2.0 * m * k * n for m, k, n in shapes)

    def side(seconds, count, threads_used):
        return {"seconds": seconds, "model_steps": count, "us_per_step": 1e6 * seconds / count,
                "steps_per_s": count / seconds, "gflops": flops * count / seconds / 1e9, "threads": threads_used}

    out = {"name": "W4", "title": f"training study ({W4_TASK}, depth {config.depth}, width {config.width}, BN, "
                                  f"Adam, batch {config.batch}, every placement)",
           "runs": runs, "epochs": epochs, "torch_runs": torch_runs, "torch_epochs": torch_epochs,
           "vmap_runs": vmap_runs or runs, "vmap_epochs": vmap_epochs,
           "engine": side(took, steps, used), "eager": None, "vmap": None, "torch": None,
           "ratio_eager": None, "ratio_vmap": None, "flops_per_step": flops,
           "gemm": {"1": gemm_rate(shapes, 1), str(used): gemm_rate(shapes, used)}}
    # PyTorch in a fresh Python, as users run it: its OpenMP threads do not meet Numba's.
    job = {"side": "w4-torch", "torch_runs": int(torch_runs), "torch_epochs": int(torch_epochs),
           "vmap_runs": int(vmap_runs or runs), "vmap_epochs": int(vmap_epochs), "seed": int(seed),
           "threads": None if torch_threads is None else int(torch_threads)}
    answer = _subprocess(job) if torch_available() else {"torch": None}
    if answer["torch"] is None:
        return out
    out["torch"] = answer["torch"]
    out["eager"] = side(answer["eager"][0], answer["eager"][1], answer["threads"])
    out["vmap"] = side(answer["vmap"][0], answer["vmap"][1], answer["threads"])
    rate = out["engine"]["steps_per_s"]
    out["ratio_eager"] = rate / out["eager"]["steps_per_s"]
    out["ratio_vmap"] = rate / out["vmap"]["steps_per_s"]
    return out


def torch_available():
    """Whether PyTorch can be imported (looked up without importing it)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _w4_torch_job(job):
    """The torch sides of W4 in this process: ``{"torch", "threads", "eager", "vmap"}``."""
    try:
        import torch
    except ImportError:
        return {"torch": None}
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    seed = job["seed"]
    run_w4_eager(torch, 1, 1, seed)  # first calls (allocator, dispatch, vmap's tracing) outside the timing
    run_w4_vmap(torch, 2, 1, seed)
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "eager": run_w4_eager(torch, job["torch_runs"], job["torch_epochs"], seed),
            "vmap": run_w4_vmap(torch, job["vmap_runs"], job["vmap_epochs"], seed)}


def format_w4(w):
    """W4's table: µs per model-step of the engine and of PyTorch, the ratios and the GEMM limit."""
    e = w["engine"]
    lines = [f"W4: {w['title']}",
             f"{'side':<22} {'threads':>7} {'models×steps':>13} {'s':>8} {'µs/step':>9} {'GFLOP/s':>8} "
             f"{'engine is':>10} {'target':>7}",
             f"{'Numba engine (f64)':<22} {e['threads']:>7} {e['model_steps']:>13,} {e['seconds']:>8.3g} "
             f"{e['us_per_step']:>9.2f} {e['gflops']:>8.2f}"]
    if w["torch"] is None:
        lines.append("PyTorch is not installed: the engine alone (pip install torch to compare)")
    else:
        for key, label in (("eager", "PyTorch eager (f32)"), ("vmap", "torch.func vmap (f32)")):
            s, ratio, target = w[key], w[f"ratio_{key}"], W4_TARGETS[key]
            met = f"{'≥' if ratio >= target else '<'}{target:g}x"
            lines.append(f"{label:<22} {s['threads']:>7} {s['model_steps']:>13,} {s['seconds']:>8.3g} "
                         f"{s['us_per_step']:>9.2f} {s['gflops']:>8.2f} {ratio:>9.1f}x {met:>7}")
    gemm = ", ".join(f"{t} thread(s) {r / 1e9:.2f} GFLOP/s" for t, r in w["gemm"].items())
    lines.append(f"numpy dgemm on the step's shapes ({w['flops_per_step'] / 1e3:.0f} kflop per step): {gemm}")
    lines.append(f"engine: {w['runs']} runs × {w['epochs']} epochs; eager: {w['torch_runs']} runs × "
                 f"{w['torch_epochs']} epochs; vmap: {w['vmap_runs']} runs × {w['vmap_epochs']} epochs; "
                 "compared per model-step (one optimizer step of one network; every side trains the modes "
                 "none, hidden, head, uout; GFLOP/s counts the dense products)")
    return "\n".join(lines)


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


# --- the benchmark ---------------------------------------------------------------

def run_bench(samples=DEFAULT_SAMPLES, threads=None, workloads=WORKLOADS, progress=None,
              reference_samples=None, seed=SEED, repeats=1, w4=None):
    """Run the engine and the numpy reference on each workload; a JSON-able dict.

    Parameters
    ----------
    samples : int
        Engine samples per workload (W3 derives its rows from it, see the module docstring).
    threads : int, optional
        Numba threads for the engine (all cores when None); the reference uses one.
    workloads : sequence of str
        Names from :data:`WORKLOADS`.
    progress : callable, optional
        ``progress(label, done, total)`` as the runs go.
    reference_samples : int, optional
        Samples of the numpy reference (default ``samples // REFERENCE_DIVISOR``).
    seed : int
    repeats : int
        Each side's time is the fastest of this many runs (a busy machine slows some).
    w4 : dict, optional
        Sizes of W4 (keyword arguments of :func:`run_w4`; its defaults when None).

    Returns
    -------
    dict
        ``machine`` (cores, threads, raw generator draws/s per core, draws per normal),
        ``workloads``: one dict per workload with ``engine`` and ``reference``
        (samples, seconds, samples_per_s, mask_elements_per_s, peak_mb, threads),
        ``ratio`` (engine/reference samples per second), ``raw_fraction`` (draws
        per second and thread over the raw speed), ``agreement`` (every statistic,
        its z in joint MCSE units) with ``max_abs_z`` and ``agree`` (all |z| < 5);
        W3 also ``gflops`` and ``gemm`` (numpy dgemm flop/s on its shapes, one
        thread and the engine's). ``w4``: :func:`run_w4`'s dict, when W4 is asked for.
    """
    samples = int(samples)
    if samples < 1000:
        raise ParameterError(f"samples={samples}: need at least 1000")
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ParameterError(f"unknown workload {unknown[0]!r}; valid: {', '.join(WORKLOADS)}")
    if int(repeats) < 1:
        raise ParameterError(f"repeats={repeats}: must be at least 1")
    used = set_threads(threads)
    ref_samples = max(1000, int(reference_samples or samples // REFERENCE_DIVISOR))
    raw = raw_generator_speed()
    all_specs = specs(samples)
    ref_specs = specs(ref_samples)
    machine = {"cpu_count": os.cpu_count(), "threads": used, "numba_threads_max": numba.config.NUMBA_NUM_THREADS,
               "raw_draws_per_s_per_core": raw, "draws_per_normal": draws_per_normal(),
               "numpy": np.__version__, "numba": numba.__version__}
    out = {"machine": machine, "seed": seed, "samples": samples, "reference_samples": ref_samples,
           "repeats": int(repeats), "workloads": []}
    for name in workloads:
        if name == "W4":
            if progress is not None:
                progress("bench W4", 0, 1)
            out["w4"] = run_w4(threads=used, seed=seed, **(w4 or {}))
            if progress is not None:
                progress("bench W4", 1, 1)
            continue
        # W3's statistics depend on the eval rows per run: the reference runs the same rows.
        n_ref = samples if name == "W3" else ref_samples
        spec, rspec = all_specs[name], (all_specs if name == "W3" else ref_specs)[name]
        bar = None
        if progress is not None:
            total = _engine_call(name, samples, seed)[3]
            bar = (lambda done, name=name, total=total: progress(f"bench {name} engine", done, total))
        moments, took, peak = run_engine(name, samples, seed, progress=bar, repeats=repeats)
        if progress is not None:
            progress(f"bench {name} numpy", 0, 1)
        ref, ref_took, ref_peak = run_reference_subprocess(name, n_ref, seed, repeats)
        rows = agreement(name, moments, ref)
        rate, ref_rate = spec.samples / took, rspec.samples / ref_took
        out["workloads"].append({
            "name": name, "title": spec.title,
            "engine": {"samples": spec.samples, "seconds": took, "samples_per_s": rate,
                       "mask_elements_per_s": rate * spec.masks, "peak_mb": peak / 2 ** 20, "threads": used},
            "reference": {"samples": rspec.samples, "seconds": ref_took, "samples_per_s": ref_rate,
                          "mask_elements_per_s": ref_rate * rspec.masks, "peak_mb": ref_peak / 2 ** 20,
                          "threads": 1},
            "ratio": rate / ref_rate,
            "draws_per_sample": spec.draws,
            "raw_fraction": rate * spec.draws / used / raw,
            "agreement": rows,
            "max_abs_z": max(abs(r["z"]) for r in rows),
            "agree": all(abs(r["z"]) < ZMAX for r in rows),
        })
        if name == "W3":
            shapes = _w3_products()
            out["workloads"][-1]["gflops"] = rate * sum(2.0 * m * k * n for m, k, n in shapes) / W3_M / 1e9
            out["workloads"][-1]["gemm"] = {"1": gemm_rate(shapes, 1), str(used): gemm_rate(shapes, used)}
        if progress is not None:
            progress(f"bench {name} numpy", 1, 1)
    return out


def format_table(result):
    """The benchmark as a text table."""
    m = result["machine"]
    lines = [f"raw generator: {m['raw_draws_per_s_per_core']:.3g} xoshiro256** draws/s per core "
             f"(the ceiling); engine threads: {m['threads']}, numpy reference: 1 thread",
             f"{'workload':<8} {'engine/s':>10} {'numpy/s':>10} {'ratio':>7} {'target':>7} {'masks/s':>10} "
             f"{'raw frac':>8} {'eng MB':>7} {'np MB':>7} {'max|z|':>7}  agree"]
    for w in result["workloads"]:
        e, r = w["engine"], w["reference"]
        target = TARGETS[w["name"]]
        met = f"{'≥' if w['ratio'] >= target else '<'}{target:g}x"
        lines.append(f"{w['name']:<8} {e['samples_per_s']:>10.3g} {r['samples_per_s']:>10.3g} {w['ratio']:>6.1f}x "
                     f"{met:>7} {e['mask_elements_per_s']:>10.3g} {w['raw_fraction']:>8.2f} {e['peak_mb']:>7.1f} "
                     f"{r['peak_mb']:>7.1f} {w['max_abs_z']:>7.2f}  {'yes' if w['agree'] else 'NO'}")
    lines.append("")
    for w in result["workloads"]:
        lines.append(f"{w['name']}: {w['title']}; engine {w['engine']['samples']:,} samples in "
                     f"{w['engine']['seconds']:.3g} s, numpy {w['reference']['samples']:,} in "
                     f"{w['reference']['seconds']:.3g} s")
        if "gemm" in w:
            lines.append(f"{w['name']}: engine {w['gflops']:.2f} GFLOP/s in its products; numpy dgemm on the "
                         "same shapes: " + ", ".join(f"{t} thread(s) {r / 1e9:.2f} GFLOP/s"
                                                     for t, r in w["gemm"].items()))
    if "w4" in result:
        lines.append("")
        lines.append(format_w4(result["w4"]))
    if "scaling" in result:
        sc = result["scaling"]
        lines.append("thread scaling (W1): " + ", ".join(f"{t} thread(s) {r:.3g}/s" for t, r in sc["rates"].items())
                     + f"; speed-up {max(sc['speedup'].values()):.2f}x (target ≥ 1.8x); "
                     + ("bit-identical" if sc["identical"] else "NOT bit-identical") + " across thread counts")
    if "memory" in result:
        mem = result["memory"]
        lines.append("peak memory growth (W1): " + ", ".join(f"{r['samples']:.0e} samples {r['peak_mb']:.1f} MB "
                                                            f"({r['seconds']:.1f} s)" for r in mem)
                     + f"; difference {abs(mem[-1]['peak_mb'] - mem[0]['peak_mb']):.1f} MB (target < 10 MB)")
    return "\n".join(lines) + "\n"


def _main():
    """Subprocess entry: a JSON job on stdin (see :func:`_subprocess`), the result on stdout."""
    job = json.loads(sys.stdin.read())
    if job["side"] == "w4-torch":
        print(json.dumps(_w4_torch_job(job)))
        return
    if job["side"] == "gemm":
        print(json.dumps({"flops_per_s": _gemm_job([tuple(x) for x in job["shapes"]], job["seconds"])}))
        return
    if job["side"] == "engine":
        set_threads(job.get("threads"))
        total, took, peak = run_engine(job["name"], job["samples"], job["seed"])
    else:
        total, took, peak = run_reference(job["name"], job["samples"], job["seed"], job.get("repeats", 1))
    print(json.dumps({"moments": total.tolist(), "seconds": took, "peak_bytes": peak}))


if __name__ == "__main__":
    _main()
