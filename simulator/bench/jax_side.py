"""The trained network of W4 and W5 in JAX: a jit + vmap + ``lax.scan`` ensemble, float32 or float64.

The network, its initialisation and its optimizer are the trainer's
(:mod:`simulator.nn.train`), written in ``jax.numpy``: depth × [Linear(width) →
BatchNorm1d(eps=1e-5, momentum=0.1) → ReLU → noise] → Linear(1), ``nn.Linear``'s
init (W and b ~ U(−1/√fan_in, 1/√fan_in)), γ = 1, β = 0, ``F.mse_loss`` and
``torch.optim.Adam(lr)`` in the trainer's own form (:func:`adam`). Parameters are
a list of per-Linear dicts ``{"W" (out, in), "b", ("gamma", "beta")}``, the
layout of :func:`train.unpack`, so a test can start both from the same values.

An ensemble trains ``runs`` models of one noise mode at once: ``jax.vmap`` over
the models of a jitted epoch, inside it ``lax.scan`` over the epoch's full
batches (one optimizer step each) and one more step for a short last batch of
two rows or more; each model draws its own init, batch order and noise from
``jax.random`` keys. Epochs are a Python loop over that one compiled function,
which takes the mode as an argument (a ``lax.switch``), so that XLA compiles
one program for all modes.

Importing this module imports JAX and enables float64 (``jax_enable_x64``);
every array is given its dtype explicitly, so float32 runs stay float32.
"""
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ..nn.batchnorm import EPS, MOMENTUM
from ..nn.train import ADAM_BETA1, ADAM_BETA2, ADAM_EPS
from .measure import fastest

jax.config.update("jax_enable_x64", True)


def init_params(key, n_in, config, dtype):
    """PyTorch's default init of the network (see the module docstring) from the JAX key ``key``."""
    dims = [n_in] + [config.width] * config.depth + [1]
    params = []
    for layer, k in enumerate(jax.random.split(key, config.depth + 1)):
        kw, kb = jax.random.split(k)
        fin, fout = dims[layer], dims[layer + 1]
        bound = 1.0 / np.sqrt(fin)
        entry = {"W": jax.random.uniform(kw, (fout, fin), dtype, -bound, bound),
                 "b": jax.random.uniform(kb, (fout,), dtype, -bound, bound)}
        if config.bn and layer < config.depth:
            entry["gamma"] = jnp.ones(fout, dtype)
            entry["beta"] = jnp.zeros(fout, dtype)
        params.append(entry)
    return params


def init_stats(config, dtype):
    """BN running statistics ``[(running_mean, running_var)]`` per hidden layer: zeros and ones."""
    return [(jnp.zeros(config.width, dtype), jnp.ones(config.width, dtype)) for _ in range(config.depth)]


def forward_train(params, stats, x, noise):
    """Training-mode forward of a batch ``x`` (m, f): the outputs (m,) and the updated running statistics.

    Notes
    -----
    Per hidden layer: ``z = x Wᵀ + b``; with BN ``x̂ = (z − μ_B)/√(σ²_B + ε)`` (biased σ²_B),
    ``running ← (1 − 0.1) running + 0.1 (μ_B, σ²_B m/(m − 1))``; ``h = ReLU(γ x̂ + β) · noise``.
    """
    h, new_stats = x, []
    for layer, entry in enumerate(params[:-1]):
        z = h @ entry["W"].T + entry["b"]
        if "gamma" in entry:
            m = z.shape[0]
            mean = z.mean(axis=0)
            var = ((z - mean) ** 2).mean(axis=0)
            rm, rv = stats[layer]
            new_stats.append(((1.0 - MOMENTUM) * rm + MOMENTUM * mean,
                              (1.0 - MOMENTUM) * rv + MOMENTUM * var * (m / (m - 1.0))))
            z = entry["gamma"] * ((z - mean) / jnp.sqrt(var + EPS)) + entry["beta"]
        else:
            new_stats.append(stats[layer])
        h = jnp.maximum(z, 0.0) * noise[layer]
    return (h @ params[-1]["W"].T + params[-1]["b"])[:, 0], new_stats


def forward_eval(params, stats, x):
    """Eval mode (no noise, BN with the running statistics): the outputs (n,)."""
    h = x
    for layer, entry in enumerate(params[:-1]):
        z = h @ entry["W"].T + entry["b"]
        if "gamma" in entry:
            rm, rv = stats[layer]
            z = entry["gamma"] * ((z - rm) / jnp.sqrt(rv + EPS)) + entry["beta"]
        h = jnp.maximum(z, 0.0)
    return (h @ params[-1]["W"].T + params[-1]["b"])[:, 0]


def loss(params, stats, x, y, noise):
    """``F.mse_loss``: the mean of (output − y)² over the batch; with the updated statistics as aux."""
    out, new_stats = forward_train(params, stats, x, noise)
    return jnp.mean((out - y) ** 2), new_stats


def grad(params, stats, x, y, noise):
    """``((loss, new_stats), gradients)``: the gradients in the layout of ``params``."""
    return jax.value_and_grad(loss, has_aux=True)(params, stats, x, y, noise)


def adam(params, grads, m1, m2, t, lr):
    """``torch.optim.Adam`` step t (from 1), betas (0.9, 0.999), eps 1e-8, as the trainer writes it.

    Notes
    -----
    ``m ← m + (1 − β1)(g − m)``, ``v ← β2 v + (1 − β2) g²``,
    ``θ ← θ − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)``.
    """
    t = jnp.asarray(t, jax.tree.leaves(params)[0].dtype)  # the step count must not promote float32 to float64
    step_size = lr / (1.0 - ADAM_BETA1 ** t)
    bc2 = jnp.sqrt(1.0 - ADAM_BETA2 ** t)
    m1 = jax.tree.map(lambda m, g: m + (1.0 - ADAM_BETA1) * (g - m), m1, grads)
    m2 = jax.tree.map(lambda v, g: ADAM_BETA2 * v + (1.0 - ADAM_BETA2) * g * g, m2, grads)
    params = jax.tree.map(lambda p, m, v: p - step_size * (m / (jnp.sqrt(v) / bc2 + ADAM_EPS)), params, m1, m2)
    return params, m1, m2


def _multipliers(key, kinds, m, config, dtype):
    """Noise multipliers per hidden layer, shape (m, width), for the static kinds ("dropout", "uout", None)."""
    out = []
    for kind, k in zip(kinds, jax.random.split(key, config.depth)):
        shape = (m, config.width)
        if kind == "dropout":
            out.append(jax.random.bernoulli(k, config.p, shape).astype(dtype) / config.p)
        elif kind == "uout":
            out.append(1.0 + config.beta * (2.0 * jax.random.uniform(k, shape, dtype) - 1.0))
        else:
            out.append(jnp.ones(shape, dtype))
    return out


def kinds_of(mode, depth):
    """The noise kind after each hidden layer in training mode ``mode`` (none, hidden, head, uout)."""
    if mode == "hidden":
        return ("dropout",) * depth
    if mode == "head":
        return (None,) * (depth - 1) + ("dropout",)
    return (("uout" if mode == "uout" else None),) * depth


def noise(key, mode, m, config, dtype, modes=None):
    """Noise multipliers per hidden layer, shape (m, width): ``δ/p`` (dropout), ``1 + r`` (Uout) or 1.

    ``mode`` is a name, or with ``modes`` (a tuple of names) an index into it,
    possibly traced: ``lax.switch`` then picks the branch at run time, so one
    compiled program serves every mode (unbatched under ``vmap``, it stays a switch).
    """
    if modes is None:
        return _multipliers(key, kinds_of(mode, config.depth), m, config, dtype)
    branches = [lambda k, name=name: _multipliers(k, kinds_of(name, config.depth), m, config, dtype)
                for name in modes]
    return jax.lax.switch(mode, branches, key)


def _step(carry, x, y, k, mode, modes, config, dtype):
    """One optimizer step of one model on the batch (x, y) with noise from key k (see :func:`noise`)."""
    params, stats, m1, m2, t = carry
    (value, stats), g = grad(params, stats, x, y, noise(k, mode, x.shape[0], config, dtype, modes))
    t = t + 1
    params, m1, m2 = adam(params, g, m1, m2, t, config.lr)
    return (params, stats, m1, m2, t), value


def ensemble(Xtr, ytr, Xte, yte, modes, config, dtype):
    """``(start, epoch, test)``: jitted functions of an ensemble of models, vmapped over the models.

    ``start(keys)`` makes each model's carry (params, stats, Adam moments, step);
    ``epoch(carry, keys, mode)`` trains every model one epoch in training mode
    ``modes[mode]`` (its own batch order and noise from its key); ``test(carry)``
    is each model's test MSE in eval mode.
    """
    n, f = Xtr.shape
    B = config.batch
    full, rest = divmod(n, B)

    def start(k):
        p = init_params(k, f, config, dtype)
        zeros = jax.tree.map(jnp.zeros_like, p)
        return p, init_stats(config, dtype), zeros, zeros, jnp.zeros((), jnp.int64)

    def epoch(carry, k, mode):
        k_order, k_noise = jax.random.split(k)
        order = jax.random.permutation(k_order, n)
        keys = jax.random.split(k_noise, full + 1)

        def body(c, inp):
            idx, kb = inp
            return _step(c, Xtr[idx], ytr[idx], kb, mode, modes, config, dtype)

        carry, values = jax.lax.scan(body, carry, (order[:full * B].reshape(full, B), keys[:full]))
        if rest > 1 and config.final_batch == "keep":  # the trainer's rule for a short final batch
            idx = order[full * B:]
            carry, _ = _step(carry, Xtr[idx], ytr[idx], keys[full], mode, modes, config, dtype)
        return carry, values[-1]

    def test(carry):
        return jnp.mean((forward_eval(carry[0], carry[1], Xte) - yte) ** 2)

    return (jax.jit(jax.vmap(start)), jax.jit(jax.vmap(epoch, in_axes=(0, 0, None))),
            jax.jit(jax.vmap(test)))


def train_ensembles(data, modes, runs, epochs, config, dtype, seed, repeats=1):
    """Train ``runs`` models of every mode for ``epochs`` epochs: ``(seconds, model_steps, test_mse)``.

    ``data`` is ``(Xtr, ytr, Xte, yte)`` as numpy arrays; compilation (one
    program for every mode) and a first epoch are outside the timing; the
    seconds are the fastest of ``repeats`` trainings. ``test_mse`` is an array
    of shape (modes, runs).
    """
    Xtr, ytr, Xte, yte = (jnp.asarray(a, dtype) for a in data)
    n, B = Xtr.shape[0], config.batch
    steps_per_epoch = n // B + (1 if n % B > 1 else 0)
    start, epoch, test = ensemble(Xtr, ytr, Xte, yte, tuple(modes), config, dtype)
    key = jax.random.key(seed)
    keys = jax.random.split(key, runs)
    jax.block_until_ready(test(epoch(start(keys), keys, 0)[0]))  # compile outside the timing

    def once():
        results = []
        begin = time.perf_counter()
        for j in range(len(modes)):
            k = jax.random.fold_in(key, j)
            carry = start(jax.random.split(k, runs))
            for e in range(epochs):
                carry, _ = epoch(carry, jax.random.split(jax.random.fold_in(k, e + 1), runs), j)
            results.append(test(carry))
        results = jax.block_until_ready(results)
        return time.perf_counter() - begin, len(modes) * runs * epochs * steps_per_epoch, np.asarray(results)

    return fastest(once, repeats)


def jax_job(job):
    """The JAX sides in this process: ``{"jax", "threads", "f32", "f64"}`` (each ``(seconds, model_steps)``)."""
    from .training import MODES, study_config, study_data

    data = study_data(job["study"])
    config = study_config(job["study"], job["epochs"])
    out = {"jax": jax.__version__, "threads": os.cpu_count()}
    for name, dtype in (("f32", jnp.float32), ("f64", jnp.float64)):
        took, steps, _ = train_ensembles(data, MODES, job["runs"], job["epochs"], config, dtype, job["seed"],
                                         job.get("repeats", 1))
        out[name] = (took, steps)
    return out
