"""W4 and W5: the Numba trainer against PyTorch (eager and ``torch.func`` vmap) and JAX, per model-step.

- ``W4``: the training study (:mod:`simulator.nn.train`): diabetes, depth 2,
  width 64, BN, Adam, batch 32, every placement, 32 runs of 100 epochs.
- ``W5``: one large-N cell: the synthetic teacher of :mod:`simulator.data.tasks`
  with ``W5_ROWS`` rows instead of its default 600, batch ``W5_BATCH``, the
  same network, the four training modes.

Every side trains the modes none, hidden, head and uout (the engine's W4 also
evaluates the recalibrated placements, which are evaluations of ``hidden`` and
add no steps). A model-step is one optimizer step of one network. PyTorch and
JAX each run in a fresh Python, as users run them, so that their threads do not
meet Numba's. The ceiling of every side is numpy's dgemm on the step's
matrix products and cores (:func:`measure.gemm_ceiling`).
"""
import importlib.util
import time

import numpy as np

from ..core.engine import set_threads
from ..core.errors import ParameterError
from ..core.rng import stream_key
from ..data import tasks
from ..nn import train as tr
from .ceiling import SEED
from .measure import fastest, gemm_ceiling, run_subprocess

STUDIES = ("W4", "W5")
MODES = ("none", "hidden", "head", "uout")  # the training modes of every placement
W4_TASK = "diabetes"
W5_ROWS, W5_BATCH = 30_000, 256
# Models per mode and epochs of each side; None: the engine's runs.
SIZES = {"W4": {"runs": 32, "epochs": 100, "torch_runs": 2, "torch_epochs": 5, "vmap_runs": None,
                "vmap_epochs": 10, "jax_runs": None, "jax_epochs": 20},
         "W5": {"runs": 4, "epochs": 4, "torch_runs": 1, "torch_epochs": 1, "vmap_runs": None,
                "vmap_epochs": 1, "jax_runs": None, "jax_epochs": 2}}
SIDES = (("eager", "PyTorch eager (f32)"), ("vmap", "torch.func vmap (f32)"),
         ("jax32", "JAX jit+vmap+scan (f32)"), ("jax64", "JAX jit+vmap+scan (f64)"))
# Engine model-steps/s over each side's (2 cores): issue 6 (PyTorch) and issue 21 (JAX f32).
W4_TARGETS = {"eager": 20.0, "vmap": 3.0, "jax32": 1.5}
TARGETS = {"W4": W4_TARGETS, "W5": {}}


def study_task(name):
    """The :class:`tasks.Task` of study ``name`` ("W4" or "W5")."""
    if name == "W4":
        return tasks.load(W4_TASK)
    if name == "W5":
        return tasks.load("teacher", rows=W5_ROWS)
    raise ParameterError(f"unknown training workload {name!r}; valid: {', '.join(STUDIES)}")


def study_config(name, epochs):
    """The :class:`train.TrainConfig` of study ``name``: the trainer's defaults, W5 with batch ``W5_BATCH``."""
    return tr.TrainConfig(epochs=int(epochs), batch=W5_BATCH if name == "W5" else tr.TrainConfig().batch)


def study_title(name):
    """One line: the data, the network and the training."""
    c = study_config(name, 1)
    data = W4_TASK if name == "W4" else f"teacher, {W5_ROWS:,} rows"
    what = "every placement" if name == "W4" else "the four training modes"
    return (f"training {'study' if name == 'W4' else 'cell'} ({data}, depth {c.depth}, width {c.width}, BN, "
            f"Adam, batch {c.batch}, {what})")


def study_data(name):
    """The standardised 80/20 split of study ``name`` (first ⌊n/5⌋ rows for the test), float64:
    ``(Xtr, ytr, Xte, yte)``, for the PyTorch and JAX sides (the engine draws its own splits)."""
    task = study_task(name)
    X, y = np.asarray(task.X, dtype=np.float64), np.asarray(task.y, dtype=np.float64)
    n_test = X.shape[0] // tr.TEST_FRACTION_DIVISOR
    Xtr, ytr = X[n_test:], y[n_test:]
    X = (X - Xtr.mean(axis=0)) / Xtr.std(axis=0)
    y = (y - ytr.mean()) / ytr.std()
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test]


def _steps(n_train, batch, epochs):
    """Optimizer steps of one model: every batch but a final one of one row."""
    return epochs * sum(1 for start in range(0, n_train, batch) if min(batch, n_train - start) > 1)


def step_products(n_in, config):
    """``(rows, inner, cols)`` of every matrix product of one training step (forward, then backward)."""
    m, w, d = config.batch, config.width, config.depth
    dims = [n_in] + [w] * d + [1]
    fwd = [(m, dims[l], dims[l + 1]) for l in range(d + 1)]
    grad_w = [(dims[l + 1], m, dims[l]) for l in range(d + 1)]
    grad_a = [(m, dims[l + 1], dims[l]) for l in range(1, d + 1)]
    return fwd + grad_w + grad_a


def products_rate(shapes, seed=SEED, seconds=0.3, repeats=3):
    """The trainer's own product routine (``nn.chain.linear_rows``) alone, on one thread, on the products
    ``shapes`` of one step with dense operands: flop/s, the fastest of ``repeats`` timings.

    What W4's and W5's products reach against numpy's dgemm on the same shapes (``gemm["1"]``), apart from
    everything else a training step does (noise, BN, ReLU, Adam).
    """
    from .kernels import products_reps

    rng = np.random.default_rng(stream_key(seed, "bench", "products"))
    offsets, sizes = [], [0, 0, 0]
    for m, k, n in shapes:
        offsets.append((m, k, n, sizes[0], sizes[1], sizes[2]))
        sizes = [sizes[0] + m * k, sizes[1] + k * n, sizes[2] + m * n]
    h, W = rng.standard_normal(sizes[0]), rng.standard_normal(sizes[1])
    z, offsets = np.zeros(sizes[2]), np.array(offsets, dtype=np.int64)
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    reps = 1
    while True:  # compile or load, then enough repetitions for a steady timing
        start = time.perf_counter()
        products_reps(h, W, z, offsets, reps)
        if time.perf_counter() - start > seconds / 4 or reps > 1 << 24:
            break
        reps *= 2

    def once():
        start = time.perf_counter()
        products_reps(h, W, z, offsets, reps)
        return (time.perf_counter() - start,)

    (took,) = fastest(once, repeats)
    return flops * reps / took


def run_engine(name, runs, epochs, seed=SEED, repeats=1):
    """Study ``name`` on the Numba trainer: ``(seconds, model_steps, result)``, the fastest of ``repeats``
    runs (the same result each time; compilation outside the timing)."""
    task = study_task(name)
    config = study_config(name, epochs)
    placements = tr.PLACEMENTS if name == "W4" else MODES
    key = stream_key(seed, "bench", name)
    tr.train_runs(task, study_config(name, 1), placements, 1, key)  # compile or load outside the timing

    def once():
        start = time.perf_counter()
        result = tr.train_runs(task, config, placements, runs, key)
        return time.perf_counter() - start, runs * len(MODES) * _steps(result.n_train, config.batch, epochs), result

    return fastest(once, repeats)


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



def _torch_data(torch, name):
    """:func:`study_data` as float32 tensors."""
    return tuple(torch.tensor(a, dtype=torch.float32) for a in study_data(name))


def run_eager(torch, name, runs, epochs, seed=SEED):
    """PyTorch eager float32 as users run it, one model at a time: ``(seconds, model_steps)``."""
    config = study_config(name, epochs)
    Xtr, ytr, Xte, yte = _torch_data(torch, name)
    n = Xtr.shape[0]
    torch.manual_seed(seed)  # torch's own generator: dropout cannot take one
    steps = 0
    start = time.perf_counter()
    for _ in range(runs):
        for mode in MODES:
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


def run_vmap(torch, name, runs, epochs, seed=SEED):
    """A ``torch.func`` ensemble: per training mode, ``runs`` models in one vmapped step.

    ``stack_module_state`` + ``functional_call``; BN's buffers are batched too,
    so their running statistics update under vmap; ``randomness="different"``
    gives every model its own dropout. Each model has its own batch order. One
    ``torch.optim.Adam`` over the stacked parameters (elementwise, so it is
    every model's own Adam). Returns ``(seconds, model_steps)``.
    """
    import copy

    from torch.func import functional_call, stack_module_state

    config = study_config(name, epochs)
    Xtr, ytr, Xte, yte = _torch_data(torch, name)
    n = Xtr.shape[0]
    torch.manual_seed(seed)
    steps = 0
    start = time.perf_counter()
    for mode in MODES:
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


def torch_job(job):
    """The PyTorch sides in this process: ``{"torch", "threads", "eager", "vmap"}``."""
    try:
        import torch
    except ImportError:
        return {"torch": None}
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    name, seed, repeats = job["study"], job["seed"], job.get("repeats", 1)
    # First calls (allocator, dispatch, vmap's tracing) outside the timing.
    run_eager(torch, "W4", 1, 1, seed)
    run_vmap(torch, "W4", 2, 1, seed)
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "eager": fastest(lambda: run_eager(torch, name, job["torch_runs"], job["torch_epochs"], seed), repeats),
            "vmap": fastest(lambda: run_vmap(torch, name, job["vmap_runs"], job["vmap_epochs"], seed), repeats)}


def torch_available():
    """Whether PyTorch can be imported (looked up without importing it)."""
    return importlib.util.find_spec("torch") is not None


def jax_available():
    """Whether JAX can be imported (looked up without importing it)."""
    return importlib.util.find_spec("jax") is not None


def _sides(name, sizes, seed, torch_threads, repeats):
    """The PyTorch and JAX answers of study ``name`` (each from a fresh Python; None where not installed)."""
    job = {"study": name, "seed": int(seed), "repeats": int(repeats)}
    torch = jax = None
    if torch_available():
        counts = {k: int(sizes[k]) for k in ("torch_runs", "torch_epochs", "vmap_runs", "vmap_epochs")}
        torch = run_subprocess({**job, "side": "torch", "threads": torch_threads, **counts})
    if jax_available():
        jax = run_subprocess({**job, "side": "jax", "runs": int(sizes["jax_runs"]), "epochs": int(sizes["jax_epochs"])})
    return torch, jax


def _study_sizes(name, sizes):
    """The sizes of study ``name``: :data:`SIZES` updated by ``sizes``, the vmap and JAX runs the engine's where
    None; an unknown study or size is refused."""
    if name not in STUDIES:
        raise ParameterError(f"unknown training workload {name!r}; valid: {', '.join(STUDIES)}")
    unknown = set(sizes) - set(SIZES[name])
    if unknown:
        raise ParameterError(f"unknown size {sorted(unknown)[0]!r}; valid: {', '.join(SIZES[name])}")
    sizes = {**SIZES[name], **sizes}
    for k in ("vmap_runs", "jax_runs"):
        sizes[k] = sizes[k] or sizes["runs"]
    return sizes


def _side(flops, seconds, count, threads):
    """One side's rates: ``count`` model-steps of ``flops`` each in ``seconds`` on ``threads`` threads."""
    return {"seconds": seconds, "model_steps": count, "us_per_step": 1e6 * seconds / count,
            "steps_per_s": count / seconds, "gflops": flops * count / seconds / 1e9, "threads": threads}


def _add_peers(out, torch, jax, flops):
    """Each PyTorch and JAX side (:func:`_sides`' answers) into ``out``, with its ratio to the engine."""
    answers = []
    if torch is not None and torch["torch"] is not None:
        out["torch"] = torch["torch"]
        answers += [("eager", torch["eager"], torch["threads"]), ("vmap", torch["vmap"], torch["threads"])]
    if jax is not None:
        out["jax"] = jax["jax"]
        answers += [("jax32", jax["f32"], jax["threads"]), ("jax64", jax["f64"], jax["threads"])]
    for key, (seconds, count), threads_used in answers:
        out[key] = _side(flops, seconds, count, threads_used)
        out[f"ratio_{key}"] = out["engine"]["steps_per_s"] / out[key]["steps_per_s"]


def run_study(name, threads=None, seed=SEED, torch_threads=None, repeats=1, **sizes):
    """W4 or W5: the Numba trainer against PyTorch eager, a vmap ensemble and JAX (f32, f64).

    Parameters
    ----------
    name : str
        "W4" or "W5".
    threads : int, optional
        Numba threads (all cores when None).
    seed : int
    torch_threads : int, optional
        PyTorch's threads (its default when None).
    repeats : int
        Each side's time is the fastest of this many runs.
    **sizes
        Any of :data:`SIZES`' keys: ``runs``, ``epochs`` (the engine: models per
        mode, epochs), ``torch_runs``, ``torch_epochs`` (eager PyTorch, slow:
        fewer), ``vmap_runs``, ``vmap_epochs``, ``jax_runs``, ``jax_epochs``
        (None: the engine's runs).

    Returns
    -------
    dict
        ``engine`` and each of ``eager``, ``vmap``, ``jax32``, ``jax64`` (seconds,
        model_steps, us_per_step, steps_per_s, gflops, threads; None where the
        library is missing), ``ratio_<side>`` (engine steps/s over the side's),
        ``gemm`` (:func:`measure.gemm_ceiling` on the step's shapes and the
        engine's threads), ``gemm_fraction`` (the engine's GFLOP/s over its
        "best"), ``gemm_fraction_per_core`` (per thread, over the 1-thread
        rate), ``products_gflops`` and ``products_fraction`` (the trainer's
        product routine alone on one thread, :func:`products_rate`, and its
        rate over numpy's one-thread dgemm on the same shapes), ``torch`` and ``jax`` (versions or None),
        the sizes and the title.
    """
    sizes = _study_sizes(name, sizes)
    used = set_threads(threads)
    took, steps, _ = run_engine(name, sizes["runs"], sizes["epochs"], seed, repeats)
    shapes = step_products(study_task(name).X.shape[1], study_config(name, 1))
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    engine = _side(flops, took, steps, used)
    gemm = gemm_ceiling(shapes, used)
    products = products_rate(shapes, seed, repeats=max(repeats, 3))
    out = {"name": name, "title": study_title(name), **sizes, "engine": engine, "torch": None, "jax": None,
           "flops_per_step": flops, "gemm": gemm, "gemm_fraction": engine["gflops"] * 1e9 / gemm["best"],
           "gemm_fraction_per_core": engine["gflops"] * 1e9 / used / gemm["1"], "targets": TARGETS[name],
           "products_gflops": products / 1e9, "products_fraction": products / gemm["1"]}
    for key, _ in SIDES:
        out[key] = out[f"ratio_{key}"] = None
    _add_peers(out, *_sides(name, sizes, seed, torch_threads, repeats), flops)
    return out


def run_w4(threads=None, seed=SEED, torch_threads=None, repeats=1, **sizes):
    """:func:`run_study` of W4 (the diabetes study)."""
    return run_study("W4", threads=threads, seed=seed, torch_threads=torch_threads, repeats=repeats, **sizes)
