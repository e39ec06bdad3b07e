"""The benchmark library and the fast dropout-gradient kernel it measures (issue 6).

No test asserts on timing: speed lives in the benchmark itself.
"""
import json

import numpy as np
import pytest

from simulator import ParameterError, bench
from simulator.engine import Plan, run, set_threads
from simulator.experiments import dropout_gradient as dg
from simulator.rng import keep_threshold, stream_key
from tests.reference import central_moments, gradient_values_lanes


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
    got = run(dg._gradient_blocks, args, 2 * 3 + 2, samples, key)
    values = gradient_values_lanes(key, Plan.of(samples), *args[:2], np.array(p), args[4], random_inputs,
                                   args[6], args[7])
    np.testing.assert_allclose(got.total, central_moments(values), rtol=1e-9, atol=1e-9)


def test_gradient_kernel_is_bit_identical_across_threads():
    args = _gradient_args([0.2, 0.5, 0.9], True)
    key = stream_key(2, "threads")
    runs = []
    for threads in (1, 2):
        set_threads(threads)
        s = run(dg._gradient_blocks, args, 8, 300_001, key)
        runs.append((s.total, s.batches))
    set_threads(None)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_gradient_kernel_at_p_one_is_noiseless():
    s = run(dg._gradient_blocks, _gradient_args([1.0, 1.0, 1.0], False), 8, 10_000, stream_key(3, "p1"))
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


@pytest.fixture(scope="module")
def tiny():
    return bench.run_bench(samples=100_000, threads=2, reference_samples=50_000,
                           workloads=bench.REFERENCE_WORKLOADS)


def test_run_bench_returns_every_field(tiny):
    json.dumps(tiny)
    for key in ("cpu_count", "threads", "raw_draws_per_s_per_core", "draws_per_normal"):
        assert key in tiny["machine"]
    assert [w["name"] for w in tiny["workloads"]] == list(bench.REFERENCE_WORKLOADS)
    for w in tiny["workloads"]:
        for side in ("engine", "reference"):
            for key in ("samples", "seconds", "samples_per_s", "mask_elements_per_s", "peak_mb", "threads"):
                assert w[side][key] >= 0, (w["name"], side, key)
        assert w["engine"]["threads"] == 2 and w["reference"]["threads"] == 1
        for key in ("ratio", "raw_fraction", "draws_per_sample", "max_abs_z"):
            assert w[key] > 0
        assert w["agree"], (w["name"], max(w["agreement"], key=lambda r: abs(r["z"])))
    w3 = tiny["workloads"][-1]
    assert w3["gflops"] > 0 and set(w3["gemm"]) == {"1", "2"} and all(r > 0 for r in w3["gemm"].values())
    set_threads(None)


def test_format_table_lists_every_workload(tiny):
    text = bench.format_table(tiny)
    assert "raw generator" in text
    for name in bench.REFERENCE_WORKLOADS:
        assert f"\n{name} " in text


def test_unknown_workload_is_rejected():
    with pytest.raises(ParameterError, match="unknown workload"):
        bench.run_bench(samples=1000, workloads=["W9"])


def test_w4_runs_on_a_tiny_budget_and_reports_every_field():
    w4 = {"runs": 1, "epochs": 1, "torch_runs": 1, "torch_epochs": 1, "vmap_runs": 2, "vmap_epochs": 1}
    result = bench.run_bench(samples=1000, threads=1, workloads=["W4"], w4=w4)
    json.dumps(result)
    assert result["workloads"] == []
    w = result["w4"]
    assert w["name"] == "W4" and w["runs"] == 1 and w["epochs"] == 1
    # 1 run × 4 training modes (none, hidden, head, uout) × 12 batches of the 354 training rows.
    assert w["engine"]["model_steps"] == 4 * 12 and w["engine"]["threads"] == 1
    sides = ["engine"] + (["eager", "vmap"] if w["torch"] is not None else [])
    for side in sides:
        for key in ("seconds", "model_steps", "us_per_step", "steps_per_s", "gflops", "threads"):
            assert w[side][key] > 0, (side, key)
    if w["torch"] is not None:
        assert w["eager"]["model_steps"] == 4 * 12 and w["vmap"]["model_steps"] == 2 * 4 * 12
        assert w["ratio_eager"] > 0 and w["ratio_vmap"] > 0
    assert set(w["gemm"]) == {"1"} and w["gemm"]["1"] > 0 and w["flops_per_step"] > 0
    text = bench.format_table(result)
    assert "W4: training study" in text and "per model-step" in text
    set_threads(None)


def test_w4_without_torch_says_so(monkeypatch):
    monkeypatch.setattr(bench, "torch_available", lambda: False)
    w = bench.run_w4(runs=1, epochs=1, threads=1)
    assert w["torch"] is None and w["eager"] is None and w["vmap"] is None
    assert "PyTorch is not installed" in bench.format_w4(w)
    set_threads(None)
