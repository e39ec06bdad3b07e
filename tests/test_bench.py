"""The benchmark library (issues 6 and 21): its kernels, references, ceilings, peers and tables.

No test asserts on timing: speed lives in the benchmark itself.
"""
import json
import os

import numpy as np
import pytest

from simulator import ParameterError, bench
from simulator.bench import kernels, training
from simulator.core.engine import Plan, run, set_threads
from simulator.core.rng import block_state, keep_threshold, stream_key
from simulator.core.stats import LANES
from simulator.data import tasks
from simulator.experiments import dropout_gradient as dg
from simulator.nn import train
from simulator.nn.train import config as tc
from simulator.nn.train import kernels as tk
from tests.reference import Xoshiro, central_moments, gradient_values_lanes, mask_word, zig_normal


def require_jax():
    """``simulator.bench.jax_side`` (it imports JAX), skipping without JAX except in CI (CI="true"), where
    that fails: CI installs the test extra, which brings JAX."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.importorskip("jax")
    from simulator.bench import jax_side
    return jax_side


def _gradient_args(p, random_inputs, n=3):
    w, I = dg.setup(1, n, 0.5, 1.0)
    thr = np.array([keep_threshold(x) for x in p], dtype=np.uint64)
    return (w, I, thr, np.asarray(p, dtype=float), 0.7, random_inputs, 0.5, 2.0)


@pytest.mark.parametrize("random_inputs", [False, True])
@pytest.mark.parametrize("samples", [1280, 64 * 150 + 5])  # blocks shorter than a group; blocks of 2+ groups
def test_gradient_kernel_matches_reference_on_the_same_stream(random_inputs, samples):
    p = [0.3, 0.5, 1.0]
    args = _gradient_args(p, random_inputs)
    key = stream_key(1, "lanes")
    got = run(dg.gradient_blocks, args, 2 * 3 + 2, samples, key)
    values = gradient_values_lanes(key, Plan.of(samples), *args[:2], np.array(p), args[4], random_inputs,
                                   args[6], args[7])
    np.testing.assert_allclose(got.total, central_moments(values), rtol=1e-9, atol=1e-9)


def test_gradient_kernel_is_bit_identical_across_threads():
    args = _gradient_args([0.2, 0.5, 0.9], True)
    key = stream_key(2, "threads")
    runs = []
    for threads in (1, 2):
        set_threads(threads)
        s = run(dg.gradient_blocks, args, 8, 300_001, key)
        runs.append((s.total, s.batches))
    set_threads(None)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_gradient_kernel_at_p_one_is_noiseless():
    s = run(dg.gradient_blocks, _gradient_args([1.0, 1.0, 1.0], False), 8, 10_000, stream_key(3, "p1"))
    assert np.all(s.total[:, 2:] == 0.0)


def test_draw_counts():
    assert bench.draws_per_mask_word(0.5) == 1.0
    assert 1.0 < bench.draws_per_normal() < 1.05  # 98.8% of normals take one draw
    assert bench.raw_generator_speed(draws=1_000_000) > 0


def test_peak_memory_sees_memory_that_stays():
    with bench.PeakMemory() as mem:
        block = np.ones(40 * 2 ** 20 // 8)  # 40 MiB, touched
    assert mem.peak > 30 * 2 ** 20
    del block


def test_engine_memory_is_flat_in_samples():
    peaks = [bench.run_engine("W1F", n)[2] for n in (100_000, 2_000_000)]
    assert peaks[1] - peaks[0] < 10 * 2 ** 20


@pytest.mark.parametrize("name", ["W1", "W1F", "W2"])
def test_numpy_reference_agrees_with_engine(name):
    engine = bench.run_engine(name, 200_000)[0]
    reference = bench.run_reference(name, 100_000)[0]
    rows = bench.agreement(name, engine, reference)
    assert len(rows) == 2 * (2 * bench.W1_N + 2 if name != "W2" else 5)
    assert all(abs(r["z"]) < bench.ZMAX for r in rows), max(rows, key=lambda r: abs(r["z"]))


def test_agreement_refutes_a_wrong_reference():
    engine = bench.run_engine("W2", 100_000)[0]
    wrong = engine.copy()
    wrong[0, 2] *= 1.1  # a train variance 10% too large
    rows = bench.agreement("W2", engine, wrong)
    assert max(abs(r["z"]) for r in rows) > bench.ZMAX



# --- ceilings: generation alone, moments alone, dgemm -----------------------------

def generate_reference(key, block, size, normals, words, threshold):
    """``kernels.generate_block`` on Python integers: its normals buffer and the xor of its mask words."""
    g = Xoshiro(key, block)
    z, bits, done = np.zeros((max(normals, 1), LANES)), 0, 0
    while done < size:
        for lane in range(min(LANES, size - done)):
            for i in range(normals):
                z[i, lane] = zig_normal(g)
        for _ in range(words):
            bits ^= mask_word(g, threshold)
        done += min(LANES, size - done)
    return z, bits


@pytest.mark.parametrize("normals, words, p", [(3, 2, 0.5), (0, 3, 0.8), (2, 1, 0.8)])
def test_generation_kernel_draws_what_the_workloads_draw(normals, words, p):
    key, size = stream_key(4, "generation"), 2 * LANES + 22  # two full groups and a short one
    z = np.zeros((max(normals, 1), LANES))
    checksum = kernels.generate_block(block_state(key, 5), size, normals, words, keep_threshold(p), z)
    ref_z, bits = generate_reference(key, 5, size, normals, words, keep_threshold(p))
    np.testing.assert_array_equal(z, ref_z)
    assert checksum == pytest.approx(ref_z.sum() + float(bits >> 12), rel=1e-12)


def test_moments_kernel_keeps_the_moments_of_its_values():
    nvars, size = 3, 2 * LANES
    out, maxima = np.empty((1, nvars, 5)), np.empty((1, 0))
    kernels.moments_blocks(stream_key(1, "m"), 3, 1, size, 0, nvars, out, maxima)  # block 3, its two groups
    V = np.array([[3 * 1e-6 + 1e-3 * (q + lane) for q in range(nvars)] for _ in range(2) for lane in range(LANES)])
    np.testing.assert_allclose(out[0], central_moments(V), rtol=1e-9, atol=1e-15)


def test_ceiling_rates_and_gemm_ceiling():
    set_threads(2)
    assert bench.generation_rate(*bench.GENERATION["W1"], 20_000) > 0
    assert bench.moments_rate(5, 20_000) > 0
    set_threads(None)
    shapes = [(8, 16, 4), (4, 8, 16)]
    gemm = bench.gemm_ceiling(shapes, 2)
    assert set(gemm) == {"1", "2", "streams", "best"}
    assert gemm["best"] == max(gemm["2"], gemm["streams"], 2 * gemm["1"])
    assert all(r > 0 for r in gemm.values())
    assert set(bench.gemm_ceiling(shapes, 1)) == {"1", "streams", "best"}


def test_bound_says_where_the_time_goes():
    text = bench.bound("W1F", 0.04, 0.6)
    assert "drawing is 4%" in text and "34 values per sample 60%" in text and "rest 36%" in text
    # W1F's statistics alone would reach 0.04 / 0.6 = 7% of its generation ceiling: the target cannot be met.
    assert "keeping the moments alone runs at 7% of generation" in text and "reaches 50%" in text
    assert "moments alone" not in bench.bound("W1", 0.4, 0.3)  # 133%: the statistics alone do not bound it
    assert "products would take 40%" in bench.bound("W3", 0.4) and "other 60%" in bench.bound("W3", 0.4)
    assert "not measured apart" in bench.bound("W3", 0.4)
    assert "they run at 80% of it" in bench.bound("W3", 0.4, products=0.8)


# --- W1-W3 through run_bench ----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return bench.run_bench(samples=100_000, threads=2, reference_samples=50_000,
                           workloads=bench.REFERENCE_WORKLOADS)


def test_run_bench_returns_every_field(tiny):
    json.dumps(tiny)
    for key in ("cpu_count", "threads", "raw_draws_per_s_per_core", "draws_per_normal", "blas", "blas_env"):
        assert key in tiny["machine"]
    assert [w["name"] for w in tiny["workloads"]] == list(bench.REFERENCE_WORKLOADS)
    for w in tiny["workloads"]:
        for side in ("engine", "reference"):
            for key in ("samples", "seconds", "samples_per_s", "mask_elements_per_s", "peak_mb", "threads"):
                assert w[side][key] >= 0, (w["name"], side, key)
        assert w["engine"]["threads"] == 2 and w["reference"]["threads"] == 1
        for key in ("ratio", "raw_fraction", "draws_per_sample", "max_abs_z", "ceiling_fraction"):
            assert w[key] > 0
        assert w["ceiling_target"] == bench.CEILING_TARGETS[w["name"]]
        assert (w["bound"] is None) == (w["ceiling_fraction"] >= w["ceiling_target"])
        kind = "dgemm" if w["name"] == "W3" else "generation"
        assert w["ceiling"]["kind"] == kind
        if kind == "generation":
            assert w["ceiling"]["samples_per_s"] > 0 and w["ceiling"]["moments_per_s"] > 0
            assert w["ceiling_fraction"] == pytest.approx(w["engine"]["samples_per_s"] / w["ceiling"]["samples_per_s"])
        assert w["agree"], (w["name"], max(w["agreement"], key=lambda r: abs(r["z"])))
    w3 = tiny["workloads"][-1]
    assert w3["gflops"] > 0 and set(w3["gemm"]) == {"1", "2", "streams", "best"}
    assert w3["ceiling_fraction"] == pytest.approx(w3["gflops"] * 1e9 / w3["gemm"]["best"])
    c = w3["ceiling"]
    assert c["products_gflops"] > 0
    assert c["products_fraction"] == pytest.approx(c["products_gflops"] * 1e9 / c["gemm"]["1"])
    set_threads(None)


def test_format_table_lists_every_workload_with_its_ceiling(tiny):
    text = bench.format_table(tiny)
    assert "raw generator" in text and "of it" in text and "target" in text
    lines = text.splitlines()
    for w in tiny["workloads"]:
        (row,) = [line for line in lines if line.startswith(f"{w['name']} ")]
        assert f"{100 * w['ceiling_fraction']:.0f}%" in row and f"{100 * w['ceiling_target']:.0f}%" in row
        assert ("gen " if w["name"] != "W3" else "dgemm ") in row
        assert (f"{w['name']}: below its target" in text) == (w["bound"] is not None)
    assert sum("alone, drawing runs at" in line for line in lines) == 3
    assert sum(line.startswith("W3: products alone: chain.linear_rows") for line in lines) == 1


def test_unknown_workload_is_rejected():
    with pytest.raises(ParameterError, match="unknown workload"):
        bench.run_bench(samples=1000, workloads=["W9"])
    with pytest.raises(ParameterError, match="unknown size"):
        bench.run_w4(threads=1, rows=3)


# --- W4 and W5: the trainer against PyTorch and JAX --------------------------------

def test_w5_is_the_teacher_at_thirty_thousand_rows():
    big = bench.study_task("W5")
    X, y = tasks.teacher_data(0, bench.W5_ROWS)
    np.testing.assert_array_equal(big.X, X)
    np.testing.assert_array_equal(big.y, y)
    assert big.X.shape == (bench.W5_ROWS, tasks.TEACHER_INPUTS) and big.kind == "regression"
    Xtr, ytr, Xte, yte = bench.study_data("W5")
    assert Xtr.shape[0] == bench.W5_ROWS - bench.W5_ROWS // 5 and Xte.shape[0] == bench.W5_ROWS // 5
    np.testing.assert_allclose(Xtr.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Xtr.std(axis=0), 1.0, rtol=1e-12)
    assert abs(ytr.mean()) < 1e-12 and abs(ytr.std() - 1.0) < 1e-12
    assert bench.study_config("W5", 3).batch == bench.W5_BATCH and bench.study_config("W4", 3).batch == 32


TINY = {"runs": 1, "epochs": 1, "torch_runs": 1, "torch_epochs": 1, "vmap_runs": 2, "vmap_epochs": 1,
        "jax_runs": 2, "jax_epochs": 1}


@pytest.fixture(scope="module")
def studies():
    result = bench.run_bench(samples=1000, threads=1, workloads=["W4", "W5"], w4=TINY, w5=TINY)
    set_threads(None)
    return result


@pytest.mark.parametrize("name, steps", [("W4", 12), ("W5", 94)])  # 354 rows by 32; 24,000 rows by 256
def test_studies_run_on_a_tiny_budget_and_report_every_field(studies, name, steps):
    json.dumps(studies)
    assert studies["workloads"] == []
    w = studies[name.lower()]
    assert w["name"] == name and w["runs"] == 1 and w["epochs"] == 1
    assert w["engine"]["model_steps"] == 4 * steps and w["engine"]["threads"] == 1
    present = ["engine"] + (["eager", "vmap"] if w["torch"] else []) + (["jax32", "jax64"] if w["jax"] else [])
    for side in present:
        for key in ("seconds", "model_steps", "us_per_step", "steps_per_s", "gflops", "threads"):
            assert w[side][key] > 0, (side, key)
        if side != "engine":
            assert w[f"ratio_{side}"] == pytest.approx(w["engine"]["steps_per_s"] / w[side]["steps_per_s"])
    if w["torch"]:
        assert w["eager"]["model_steps"] == 4 * steps and w["vmap"]["model_steps"] == 2 * 4 * steps
    if w["jax"]:
        assert w["jax32"]["model_steps"] == w["jax64"]["model_steps"] == 2 * 4 * steps
    assert set(w["gemm"]) == {"1", "streams", "best"} and w["flops_per_step"] > 0
    assert w["gemm_fraction"] == pytest.approx(w["engine"]["gflops"] * 1e9 / w["gemm"]["best"])
    assert w["ceiling_target"] == bench.CEILING_TARGETS.get(name)
    assert (w["bound"] is not None) == (name == "W4" and w["products_fraction"] < 1.0)  # its products, alone
    text = bench.format_table(studies)
    assert f"{name}: training" in text and "per model-step" in text and "ceiling: numpy dgemm" in text
    products = [line for line in text.splitlines() if line.startswith("products alone")]
    assert len(products) == 2 and ["(target" in line for line in products] == [True, False]  # W4 has one, W5 none
    if w["jax"]:
        assert "JAX jit+vmap+scan (f32)" in text and "JAX jit+vmap+scan (f64)" in text


def test_studies_without_torch_or_jax_say_so(monkeypatch):
    monkeypatch.setattr(training, "torch_available", lambda: False)
    monkeypatch.setattr(training, "jax_available", lambda: False)
    w = bench.run_w4(runs=1, epochs=1, threads=1)
    assert w["torch"] is None and w["jax"] is None
    assert all(w[key] is None for key in ("eager", "vmap", "jax32", "jax64"))
    assert "PyTorch and JAX not installed" in bench.format_study(w)
    set_threads(None)


STUDY_KEYS = ["name", "title", "runs", "epochs", "torch_runs", "torch_epochs", "vmap_runs", "vmap_epochs", "jax_runs",
              "jax_epochs", "engine", "torch", "jax", "flops_per_step", "gemm", "gemm_fraction",
              "gemm_fraction_per_core", "targets", "products_gflops", "products_fraction", "eager", "ratio_eager",
              "vmap", "ratio_vmap", "jax32", "ratio_jax32", "jax64", "ratio_jax64"]


def test_study_reads_each_peer_from_its_fresh_python_answer(monkeypatch):
    """Each peer's row and ratio from its job's answer (fresh Pythons replaced by fixed answers), keys in order."""
    jobs = []

    def answer(job, env=None):
        jobs.append(job)
        if job["side"] == "torch":
            return {"torch": "9.9", "threads": 3, "eager": [2.0, 10], "vmap": [4.0, 40]}
        return {"jax": "0.1", "threads": 5, "f32": [1.0, 8], "f64": [2.0, 8]}

    monkeypatch.setattr(training, "run_subprocess", answer)
    monkeypatch.setattr(training, "torch_available", lambda: True)
    monkeypatch.setattr(training, "jax_available", lambda: True)
    w = bench.run_study("W4", threads=1, runs=1, epochs=1, torch_runs=1, torch_epochs=1)
    set_threads(None)
    assert list(w) == STUDY_KEYS and w["torch"] == "9.9" and w["jax"] == "0.1"
    assert w["vmap_runs"] == w["jax_runs"] == 1  # None: the engine's runs
    assert jobs == [{"study": "W4", "seed": bench.SEED, "repeats": 1, "side": "torch", "threads": None,
                     "torch_runs": 1, "torch_epochs": 1, "vmap_runs": 1, "vmap_epochs": 10},
                    {"study": "W4", "seed": bench.SEED, "repeats": 1, "side": "jax", "runs": 1, "epochs": 20}]
    flops = w["flops_per_step"]
    for key, seconds, count, threads in (("eager", 2.0, 10, 3), ("vmap", 4.0, 40, 3), ("jax32", 1.0, 8, 5),
                                         ("jax64", 2.0, 8, 5)):
        assert w[key] == {"seconds": seconds, "model_steps": count, "us_per_step": 1e6 * seconds / count,
                          "steps_per_s": count / seconds, "gflops": flops * count / seconds / 1e9,
                          "threads": threads}
        assert w[f"ratio_{key}"] == w["engine"]["steps_per_s"] / (count / seconds)
    with pytest.raises(ParameterError, match="unknown training workload 'W9'"):
        bench.run_study("W9")


def _pack(layers, lay, nparams):
    """The inverse of ``train.unpack``: per-Linear dicts into one flat parameter vector."""
    theta = np.zeros(nparams)
    for entry, (fin, fout, ow, ob, og, obeta) in zip(layers, lay.tolist()):
        theta[ow:ow + fin * fout] = entry["W"].ravel()
        theta[ob:ob + fout] = entry["b"]
        if og >= 0:
            theta[og:og + fout], theta[obeta:obeta + fout] = entry["gamma"], entry["beta"]
    return theta


def engine_first_step(task, config, placement, run_index, key):
    """The trainer's first step of a run, replayed through its own kernels: ``(trace, loss, gradients)``.

    The trace gives the initial parameters, the batch and the noise; the
    kernels, called on them with the run's noise stream, give the loss and the
    gradient in :func:`train.unpack`'s layout.
    """
    from simulator.nn.batchnorm import MOMENTUM

    tr = train.trace(task, config, placement, run_index, key, 1)
    depth, width, B, f = config.depth, config.width, config.batch, tr.Xtr.shape[1]
    lay, nparams = train.layer_table(f, 1, depth, width, True)
    theta = _pack(tr.init, lay, nparams)
    Wt = np.empty(nparams)
    tk.transpose_weights(theta, lay, Wt)
    rows = tr.batches[0]
    m = len(rows)
    xb, yb = np.zeros((B, f)), np.zeros(B)
    xb[:m], yb[:m] = tr.Xtr[rows], tr.ytr[rows]
    kinds = np.full(depth, tc.K_DROPOUT if placement == "hidden" else tc.K_NONE, dtype=np.int64)
    rm, rv = np.zeros((depth, width)), np.ones((depth, width))
    Z, XH, H, NM = (np.zeros((depth, B, width)) for _ in range(4))
    bmean, bvar = np.zeros((depth, width)), np.zeros((depth, width))
    out, dout = np.zeros((B, 1)), np.zeros((B, 1))
    grad = np.zeros(nparams)
    dH, dY, dZ = (np.zeros((B, width)) for _ in range(3))
    w = tk.Work(xb, np.empty(0), Z, XH, H, NM, bmean, bvar, out, dout, dH, dY, dZ)
    spec = tc.Spec(0, 1, 0, nparams, True, 0, B, True, 0.0, 0.0, np.uint64(keep_threshold(config.p)),
                   1.0 / config.p, float(config.beta), False, 0, 0)
    net = tk.Net(theta, Wt, grad, np.empty(0), np.empty(0), rm, rv)
    tk.forward_train(w, m, net, lay, spec, kinds, block_state(key, 4 * run_index + 3), MOMENTUM, 1)
    np.testing.assert_array_equal(NM[:, :m], tr.noise[0])  # the same noise as the traced run
    loss = tk.loss_and_grad(out, yb, m, 1, dout)
    tk.backward(w, m, net, lay, True)
    return tr, loss, train.unpack(grad, lay)


@pytest.mark.parametrize("placement", ["hidden", "none"])
def test_jax_side_trains_the_engines_network(placement):
    """One step's loss, gradients, updated running statistics and Adam step: JAX float64 against the trainer."""
    J = require_jax()
    import jax.numpy as jnp

    config = bench.study_config("W4", 1)
    key = stream_key(21, "bench-jax")
    tr, loss, grads = engine_first_step(tasks.load("diabetes"), config, placement, 2, key)
    params = [{k: jnp.asarray(v) for k, v in e.items()} for e in tr.init]
    rows = tr.batches[0]
    (value, stats), g = J.grad(params, J.init_stats(config, jnp.float64), jnp.asarray(tr.Xtr[rows]),
                               jnp.asarray(tr.ytr[rows]), [jnp.asarray(a) for a in tr.noise[0]])
    assert float(value) == pytest.approx(loss, rel=1e-12)
    for layer, (ours, theirs) in enumerate(zip(grads, g)):
        assert set(ours) == set(theirs)
        for name in ours:
            np.testing.assert_allclose(np.asarray(theirs[name]), ours[name], rtol=1e-9, atol=1e-12,
                                       err_msg=f"gradient of {name}{layer}")
    zeros = [{k: jnp.zeros_like(v) for k, v in e.items()} for e in params]
    stepped, _, _ = J.adam(params, g, zeros, zeros, 1, config.lr)
    for layer, (ours, theirs) in enumerate(zip(tr.final, stepped)):
        for name in ours:
            # The bias of a Linear before BN has a true gradient of 0: both sides compute rounding noise
            # (~1e-16), which Adam's first step divides by about its ε = 1e-8 (see test_train.close_null_bias).
            null = name == "b" and layer < config.depth
            np.testing.assert_allclose(np.asarray(theirs[name]), ours[name], rtol=0 if null else 1e-9,
                                       atol=1e-9 if null else 1e-12, err_msg=f"{name}{layer} after one Adam step")
    for layer, (rm, rv) in enumerate(stats):
        np.testing.assert_allclose(np.asarray(rm), tr.running_mean[layer], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(rv), tr.running_var[layer], rtol=1e-9, atol=1e-12)


def test_jax_ensemble_steps_are_the_checked_step():
    """Every model of the vmapped, scanned ensemble takes exactly the step checked above, with its own
    key's batch order and noise, in the mode it is given."""
    J = require_jax()
    import jax
    import jax.numpy as jnp

    config = train.TrainConfig(depth=2, width=8, epochs=1, batch=16)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal(16)
    f64 = jnp.float64
    start, epoch, _ = J.ensemble(*(jnp.asarray(a) for a in (X, y, X[:4], y[:4])), ("none", "hidden"), config, f64)
    keys = jax.random.split(jax.random.key(3), 2)
    before = start(keys)
    after, _ = epoch(before, keys, 1)
    for r in range(2):
        k_order, k_noise = jax.random.split(keys[r])
        order = np.asarray(jax.random.permutation(k_order, 16))
        noise = J.noise(jax.random.split(k_noise, 2)[0], "hidden", 16, config, f64)
        assert 0.3 < float(jnp.mean(noise[0] > 0)) < 0.7  # dropout at p = 0.5
        params = jax.tree.map(lambda a: a[r], before[0])
        _, g = J.grad(params, J.init_stats(config, f64), jnp.asarray(X[order]), jnp.asarray(y[order]), noise)
        zeros = jax.tree.map(jnp.zeros_like, params)
        expected, _, _ = J.adam(params, g, zeros, zeros, 1, config.lr)
        got = jax.tree.map(lambda a: a[r], after[0])
        for e, o in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
            # atol: the null biases before BN (see above); every other value moves by about lr = 1e-3.
            np.testing.assert_allclose(np.asarray(o), np.asarray(e), rtol=1e-10, atol=1e-9)


def test_the_audit_line_says_its_ratio_and_target():
    from simulator.bench.table import format_audit
    line = format_audit({"audit_s": 7.9, "plain_s": 4.1, "passes": 302, "ratio": 7.9 / 4.1, "target": 2.0,
                         "ratio_50": 11.0, "bn_layers": 28})
    assert "1.93x (target ≤ 2x, met)" in line and "302 plain forward passes" in line
    assert format_audit({"skipped": "needs torchvision"}) == "audit: skipped (needs torchvision)"


def test_the_products_alone_kernel_computes_every_product_of_the_step():
    import numpy as np

    from simulator.bench import training as t
    from simulator.bench.kernels import products_reps
    shapes = t.step_products(10, t.study_config("W4", 1))
    rng = np.random.default_rng(3)
    offsets, sizes = [], [0, 0, 0]
    for m, k, n in shapes:
        offsets.append((m, k, n, *sizes))
        sizes = [sizes[0] + m * k, sizes[1] + k * n, sizes[2] + m * n]
    h, W, z = rng.standard_normal(sizes[0]), rng.standard_normal(sizes[1]), np.zeros(sizes[2])
    products_reps(h, W, z, np.array(offsets, dtype=np.int64), 2)
    for m, k, n, oh, ow, oz in offsets:
        want = h[oh:oh + m * k].reshape(m, k) @ W[ow:ow + k * n].reshape(k, n)
        assert np.allclose(z[oz:oz + m * n].reshape(m, n), want, rtol=1e-12, atol=1e-12)
    assert t.products_rate(shapes, seconds=0.01, repeats=1) > 0
