"""The benchmark's text: one table of W1–W3, then one of each training workload (W4, W5)."""
from .sampling import TARGETS
from .training import SIDES


def _pct(x):
    return f"{100 * x:.0f}%"


def _met(value, target, unit):
    """``≥T`` or ``<T`` for a target, blank without one."""
    if target is None:
        return ""
    shown = _pct(target) if unit == "%" else f"{target:g}x"
    return f"{'≥' if value >= target else '<'}{shown}"


def _ceiling_cell(w):
    c = w["ceiling"]
    if c["kind"] == "generation":
        return f"gen {c['samples_per_s']:.3g}"
    return f"dgemm {c['gemm']['best'] / 1e9:.1f}GF"


def _gemm_text(gemm):
    """numpy's dgemm rates (:func:`measure.gemm_ceiling`) in words."""
    parts = [f"BLAS on {t} thread(s) {r / 1e9:.2f}" for t, r in gemm.items() if t not in ("streams", "best")]
    threads = max(int(t) for t in gemm if t.isdigit())
    if threads > 1:
        parts.append(f"{threads} one-thread streams at once {gemm['streams'] / 1e9:.2f}")
        parts.append(f"{threads} × the 1-thread rate {threads * gemm['1'] / 1e9:.2f}")
    return ", ".join(parts) + f" GFLOP/s; ceiling (the highest) {gemm['best'] / 1e9:.2f}"


def _header(m):
    blas = m.get("blas")
    text = (f"raw generator: {m['raw_draws_per_s_per_core']:.3g} xoshiro256** draws/s per core; engine threads: "
            f"{m['threads']}, numpy reference: 1 thread")
    if blas:
        text += f"; numpy's BLAS: {blas['library']} {blas['version']} ({blas['kernel']} kernel)"
    if m.get("blas_env"):
        text += " with " + ", ".join(f"{k}={v}" for k, v in m["blas_env"].items())
    return text


def format_sampling(result):
    """W1–W3: rates, the numpy ratio (information), the fraction of the ceiling and its target."""
    lines = [_header(result["machine"]),
             f"{'workload':<8} {'engine/s':>10} {'numpy/s':>10} {'ratio':>7} {'was':>5} {'ceiling':>15} "
             f"{'of it':>6} {'target':>6} {'masks/s':>10} {'eng MB':>7} {'np MB':>6} {'max|z|':>7}  agree"]
    for w in result["workloads"]:
        e, r = w["engine"], w["reference"]
        lines.append(f"{w['name']:<8} {e['samples_per_s']:>10.3g} {r['samples_per_s']:>10.3g} {w['ratio']:>6.1f}x "
                     f"{_met(w['ratio'], TARGETS[w['name']], 'x'):>5} {_ceiling_cell(w):>15} "
                     f"{_pct(w['ceiling_fraction']):>6} {_met(w['ceiling_fraction'], w['ceiling_target'], '%'):>6} "
                     f"{e['mask_elements_per_s']:>10.3g} {e['peak_mb']:>7.1f} {r['peak_mb']:>6.1f} "
                     f"{w['max_abs_z']:>7.2f}  {'yes' if w['agree'] else 'NO'}")
    lines.append("ratio: engine over numpy samples/s ('was': issue 6's target, information); ceiling: generation "
                 "alone (gen, samples/s: the engine's generators drawing what one sample needs, same threads) "
                 "or numpy's best dgemm on the same shapes and cores (GFLOP/s; see the dgemm lines)")
    for w in result["workloads"]:
        lines.append(f"{w['name']}: {w['title']}; engine {w['engine']['samples']:,} samples in "
                     f"{w['engine']['seconds']:.3g} s, numpy {w['reference']['samples']:,} in "
                     f"{w['reference']['seconds']:.3g} s")
        c = w["ceiling"]
        if c["kind"] == "generation":
            draw, keep = w["ceiling_fraction"], w["engine"]["samples_per_s"] / c["moments_per_s"]
            lines.append(f"{w['name']}: alone, drawing runs at {c['samples_per_s']:.3g} samples/s and keeping the "
                         f"moments at {c['moments_per_s']:.3g}: {draw:.0%} and {keep:.0%} of the engine's time, "
                         f"the rest {max(0.0, 1 - draw - keep):.0%}")
        else:
            lines.append(f"{w['name']}: engine {c['gflops']:.2f} GFLOP/s in its products; numpy dgemm on the same "
                         f"shapes: {_gemm_text(c['gemm'])}")
            if c.get("products_fraction") is not None:
                lines.append(f"{w['name']}: products alone: chain.linear_rows on the same shapes, one thread: "
                             f"{c['products_gflops']:.2f} GFLOP/s = {_pct(c['products_fraction'])} of numpy dgemm "
                             "on one thread")
        if w["bound"]:
            lines.append(f"{w['name']}: below its target ({_pct(w['ceiling_target'])}): {w['bound']}")
    return lines


def _side_row(label, s, ratio=None, target=None):
    cells = (f"{label:<24} {s['threads']:>7} {s['model_steps']:>13,} {s['seconds']:>8.3g} "
             f"{s['us_per_step']:>9.2f} {s['gflops']:>8.2f}")
    if ratio is None:
        return cells
    return cells + f" {ratio:>9.2f}x {_met(ratio, target, 'x'):>7}"


def format_study(w):
    """W4 or W5: µs per model-step of the engine, PyTorch and JAX, the ratios and the dgemm ceiling."""
    e = w["engine"]
    lines = [f"{w['name']}: {w['title']}",
             f"{'side':<24} {'threads':>7} {'models×steps':>13} {'s':>8} {'µs/step':>9} {'GFLOP/s':>8} "
             f"{'engine is':>10} {'target':>7}",
             _side_row("Numba engine (f64)", e)]
    for key, label in SIDES:
        if w[key] is not None:
            lines.append(_side_row(label, w[key], w[f"ratio_{key}"], w["targets"].get(key)))
    missing = [(name, extra) for name, version, extra in (("PyTorch", w["torch"], "torch"), ("JAX", w["jax"], "bench"))
               if version is None]
    if missing:
        lines.append(f"{' and '.join(n for n, _ in missing)} not installed: pip install "
                     f"'.[{','.join(e for _, e in missing)}]' to compare")
    used = str(e["threads"])
    gemm = _gemm_text(w["gemm"])
    target = w.get("ceiling_target")
    lines.append(f"ceiling: numpy dgemm on the step's shapes ({w['flops_per_step'] / 1e3:.0f} kflop per step): {gemm}; "
                 f"the engine's whole step runs its products at {_pct(w['gemm_fraction'])} of it on {used} thread(s)")
    if w.get("products_fraction") is not None:
        met = f" (target {_met(w['products_fraction'], target, '%')})" if target is not None else ""
        lines.append(f"products alone: the trainer's chain.linear_rows on the step's shapes, dense, one thread: "
                     f"{w['products_gflops']:.2f} GFLOP/s = {_pct(w['products_fraction'])} of numpy dgemm on one "
                     f"thread{met}")
    if w.get("bound"):
        lines.append(f"{w['name']}: below its target: {w['bound']}")
    lines.append(f"engine: {w['runs']} runs × {w['epochs']} epochs; eager: {w['torch_runs']} × {w['torch_epochs']}; "
                 f"vmap: {w['vmap_runs']} × {w['vmap_epochs']}; JAX: {w['jax_runs']} × {w['jax_epochs']} "
                 "(models per mode × epochs); compared per model-step (one optimizer step of one network; every "
                 "side trains the modes none, hidden, head, uout; GFLOP/s counts the dense products)")
    return "\n".join(lines)


def format_table(result):
    """The benchmark as text."""
    lines = format_sampling(result) if result["workloads"] else [_header(result["machine"])]
    for key in ("w4", "w5"):
        if key in result:
            lines += ["", format_study(result[key])]
    if "scaling" in result:
        sc = result["scaling"]
        lines.append("thread scaling (W1): " + ", ".join(f"{t} thread(s) {r:.3g}/s" for t, r in sc["rates"].items())
                     + f"; speed-up {max(sc['speedup'].values()):.2f}x (target ≥ 1.8x); "
                     + ("bit-identical" if sc["identical"] else "NOT bit-identical") + " across thread counts")
    if "audit" in result:
        lines.append(format_audit(result["audit"]))
    if "memory" in result:
        mem = result["memory"]
        lines.append("peak memory growth (W1): " + ", ".join(f"{r['samples']:.0e} samples {r['peak_mb']:.1f} MB "
                                                            f"({r['seconds']:.1f} s)" for r in mem)
                     + f"; difference {abs(mem[-1]['peak_mb'] - mem[0]['peak_mb']):.1f} MB (target < 10 MB)")
    return "\n".join(lines) + "\n"


def format_audit(a):
    """The audit's line: its time against as many plain forward passes of the same model, same run."""
    if "skipped" in a:
        return f"audit: skipped ({a['skipped']})"
    met = "met" if a["ratio"] <= a["target"] else "MISSED"
    return (f"audit (zoo DenseNet, {a['bn_layers']} BN layers, --fix recalibrate): {a['audit_s']:.2f} s against "
            f"{a['plain_s']:.2f} s for its {a['passes']} plain forward passes: {a['ratio']:.2f}x (target ≤ "
            f"{a['target']:g}x, {met}); {a['ratio_50']:.1f}x the time of 50 passes")
