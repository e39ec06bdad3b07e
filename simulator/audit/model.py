"""``audit_model``: a PyTorch model audited for the variance shift at every BN, and fixed.

The passes are in :mod:`.torch_model`, where the noise runs in :mod:`.trace`, the numbers in :mod:`.measure`,
the fix in :mod:`.fix`. PyTorch's ``nn.Dropout(p)`` takes the DROP probability; the audit reports the KEEP
probability ``1 − p``.
"""
import contextlib
import sys
from typing import NamedTuple

import numpy as np

from ..core.errors import ParameterError, SimulationError, shown
from ..core.params import DEFAULT_SEED, check_seed
from ..core.rng import stream_key
from ..nn.batchnorm import running_weights
from .data import batches_of, check_size, load_data, normal_batches
from .fix import FIXES, recalibrate, recalibrate_exact
from .load import check_state, load_factory, load_weights, torch_or_fail
from .measure import (
    FIX_NOTE,
    PREDICTION_NOTE,
    TOLERANCE,
    Z_STAR,
    LayerRecord,
    mark_after,
    mark_output,
    output_effect,
    summarize,
    undecided_notes,
)
from .result import AuditResult
from .torch_model import batchnorms, gather, measure, save_state, structure_pass

DEFAULT_MC = 2  # dropout-on passes per batch: the fewest that estimate the mask noise, which the MCSE includes


def _as_batches(torch, model, data, input_shape, batch, batches, seed):
    if data is not None and input_shape is not None:
        raise ParameterError("give --data or --input-shape, not both")
    if data is None and input_shape is None:
        raise ParameterError("give --data FILE or --input-shape SHAPE (standard-normal inputs)")
    if data is not None:
        arr = load_data(data, rows=batch * batches) if isinstance(data, str) else data
        if not isinstance(data, str):
            arr = np.asarray(arr, dtype=float)
            if not np.all(np.isfinite(arr)):
                raise ParameterError("data: holds NaN or infinite values")
        arr = batches_of(arr, batch, batches)
    else:
        check_size(tuple(input_shape), batch * batches, "--input-shape " + ",".join(map(str, input_shape)))
        arr = normal_batches(seed, tuple(input_shape), batch, batches)
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    device = p.device if p is not None and not isinstance(p, torch.nn.parameter.UninitializedTensorMixin) else "cpu"
    top = float(np.abs(arr).max()) if arr.size else 0.0
    if top > torch.finfo(dtype).max:
        raise ParameterError(f"--data: values up to {top:.3g} overflow the model's {str(dtype).replace('torch.', '')} "
                             f"(largest {torch.finfo(dtype).max:.3g}); rescale the data")
    return [torch.as_tensor(b, dtype=dtype, device=device) for b in arr]


def _check(seed, fix, save, mc, batch, batches, threads):
    seed = check_seed(seed)
    if fix not in (None,) + FIXES:
        raise ParameterError(f"--fix {shown(fix)}: the fixes are {', '.join(FIXES)}")
    if save is not None and fix is None:
        raise ParameterError("--save needs --fix recalibrate (or --fix exact)")
    if int(mc) < 2:
        raise ParameterError(f"--mc {mc}: need at least 2 dropout-on passes")
    if threads is not None and int(threads) < 1:
        raise ParameterError(f"--threads {threads}: must be at least 1")
    if int(batch) < 2 or int(batches) < 2:
        batches_of(__import__("numpy").empty((0, 1)), int(batch), int(batches))
    return seed


def _load(torch, model, model_args, weights, seed):
    label = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        with torch.random.fork_rng(devices=[]):  # the factory's random init then depends on the seed alone
            torch.manual_seed(int(stream_key(seed, "audit-init")[0]) % (1 << 63))
            model = load_factory(model, model_args)
    check_state(model, f"the model {label}")
    if weights is not None:
        load_weights(model, weights)
    return model, label


def audit_model(model, *, data=None, input_shape=None, weights=None, batch=32, batches=50, seed=DEFAULT_SEED,
                mc=DEFAULT_MC, fix=None, save=None, threads=None, z_star=Z_STAR, tolerance=TOLERANCE,
                model_args=None, progress=None):
    """Audit a PyTorch model for the variance shift at every BatchNorm, and optionally fix it.

    Parameters
    ----------
    model : torch.nn.Module or str
        A module, ``"path/to/file.py:factory"`` (the file is run: it is the user's own code) or
        ``"package.module:factory"``.
    data : str or array_like, optional
        A file for :func:`.data.load_data`, or an array whose rows are samples.
    input_shape : tuple of int, optional
        Standard-normal inputs of this shape per sample, instead of ``data``.
    weights : str, optional
        A state dict file (``torch.load(weights_only=True)``). Without it, the running statistics are first
        gathered in train mode (noise on) over the data, as a cumulative average.
    batch, batches : int
        Batch size and number of batches (full batches only).
    seed : int
        Fixes the inputs and the dropout masks (the caller's torch RNG is restored).
    mc : int
        Dropout-on passes per batch for the output effect.
    fix : {None, "recalibrate", "exact"}
        ``recalibrate``: one pass, BN in train mode, everything else in eval mode. ``exact``: BN by BN in
        execution order (:func:`.fix.recalibrate_exact`).
    save : str, optional
        Where to write the fixed state dict (atomically).
    threads : int, optional
        torch threads for the audit (restored after); small batches run fastest on 1.
    model_args : dict, optional
        Keyword arguments for the factory.
    progress : callable, optional
        ``progress(label, done, total)``.

    Returns
    -------
    AuditResult

    Notes
    -----
    While the model is loaded and run, what it prints goes to stderr (``contextlib.redirect_stdout``), so
    that the program's stdout holds its own output only (``--format json``).
    """
    with contextlib.redirect_stdout(sys.stderr):  # the model's own prints: stdout is the audit's output
        return _audit_model(model, data, input_shape, weights, batch, batches, seed, mc, fix, save, threads,
                            z_star, tolerance, model_args, progress)


def _audit_model(model, data, input_shape, weights, batch, batches, seed, mc, fix, save, threads, z_star,
                 tolerance, model_args, progress):
    """:func:`audit_model`, with the model's prints going to stderr."""
    torch = torch_or_fail()
    seed = _check(seed, fix, save, mc, batch, batches, threads)
    model, label = _load(torch, model, model_args, weights, seed)
    xs = _as_batches(torch, model, data, input_shape, int(batch), int(batches), seed)
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        with torch.random.fork_rng(devices=[]):  # the masks of every pass depend on the seed alone
            torch.manual_seed(int(stream_key(seed, "audit-masks")[0]) % (1 << 63))
            with np.errstate(all="ignore"):  # a forward that makes NaN: the rows say undecided, not a warning
                result = _audit(torch, model, xs, weights, Settings(int(mc), fix, z_star, tolerance, progress))
    finally:
        torch.set_num_threads(threads_before)
    if save is not None:
        _check_fixed(torch, model, save)
        save_state(model, save)
        result.notes.append(f"Recalibrated state dict written to {save}.")
    result.meta.update(model=label, data=data if isinstance(data, str) else ("array" if data is not None else
                       f"standard normal, shape {tuple(input_shape)}"), batch=int(batch), weights=weights,
                       seed=seed)
    return result


def _check_fixed(torch, model, save):
    """Refuse to write a "fixed" state dict whose recalibrated statistics are NaN or infinite."""
    for n, m in batchnorms(model):
        if not all(bool(torch.isfinite(t).all()) for t in (m.running_mean, m.running_var)):
            raise SimulationError(f"--save {shown(save)}: the recalibrated statistics of {n} are not finite (NaN "
                                  "or infinite: the model's activations are not finite on these data); nothing "
                                  "written")


class Settings(NamedTuple):
    """How :func:`audit_model` measures: dropout-on passes, the fix, the verdict's thresholds, the progress."""

    mc: int
    fix: str             # None, "recalibrate" or "exact"
    z_star: float
    tolerance: float
    progress: object     # progress(label, done, total) or None


def _stage(progress, label, total):
    return None if progress is None else (lambda done, _total=None: progress(label, done, _total or total))


def _audit(torch, model, xs, weights, run):
    mc, fix, progress = run.mc, run.fix, run.progress
    bns = batchnorms(model)
    tracer0 = structure_pass(torch, model, bns, xs[0])
    bns = batchnorms(model)
    order = tracer0.order + [n for n, _ in bns if n not in tracer0.order]
    on_in_eval = [op.label for op in tracer0.ops]
    notes = [(f"Noise that stays on in eval mode: {'; '.join(on_in_eval)} (training=True hard-coded?). It is a "
              "bug in the model, and recalibration cannot remove it.")] if on_in_eval else []
    meta = {"mc": mc, "fix": fix, "z_star": run.z_star, "tolerance": run.tolerance, "batches": len(xs), "order": order,
            "p_meaning": "keep probability = 1 − PyTorch's nn.Dropout(p)", "eval_noise": on_in_eval}
    if not bns:
        notes.insert(0, "Nothing to shift: the model has no BatchNorm layer with running statistics.")
        return AuditResult([], {}, dict(meta, noise_sources=[]), notes)
    train_info = None
    if weights is None:
        train_info = gather(torch, model, bns, xs, noise=True, progress=_stage(progress, "audit: statistics",
                                                                                 len(xs)))
        notes.append(f"No weights given: running statistics gathered in train mode (noise on) over {len(xs)} "
                     "batches as a cumulative average (no weight left on the initial value).")
    records = _records(bns, train_info, tracer0)
    tracer, out, linear_is_eval = measure(torch, model, bns, xs, records, mc,
                                          progress=_stage(progress, "audit: measuring", len(xs)))
    _attach(records, tracer, len(xs))
    if not linear_is_eval:
        notes.append("The model differs between train and eval mode beyond its noise: measured in eval passes.")
    rows = _rows(records, order, "before", run)
    if fix is not None:
        rows += _fixed(torch, model, bns, xs, order, run)
    if any(r["predicted_mean"] is not None for r in rows):
        notes.append(PREDICTION_NOTE)
    if fix == "recalibrate" and len(rows) > 2:
        notes.append(FIX_NOTE)
    output = mark_output(rows, {"before": output_effect(out)})
    notes += undecided_notes(rows, output)
    meta.update(noise_sources=[op.label for op in tracer.ops], measured_in="linearized pass" if linear_is_eval
                else "eval passes")
    return AuditResult(rows, output, meta, notes)


def _a0(m):
    """Weight on running_var's initial value 1 in given weights: 1 when num_batches_tracked says it never moved.

    (num_batches_tracked cannot tell a momentum average from a cumulative one, as update_bn leaves it.)
    """
    k = getattr(m, "num_batches_tracked", None)
    return 1.0 if k is not None and int(k) == 0 else 0.0


def _records(bns, train_info, tracer0):
    records = {}
    for n, m in bns:
        rec = LayerRecord(n, type(m).__name__, m.running_var.detach().double().cpu().numpy().copy(),
                          m.running_mean.detach().double().cpu().numpy().copy(),
                          resolution=float(torch_or_fail().finfo(m.running_var.dtype).eps))
        if train_info is not None:
            v = train_info[n]
            rec.train_var, rec.a0 = v, 0.0
            rec.weights = running_weights(None, len(v))[1] if len(v) else None
        else:
            rec.a0 = _a0(m)
        calls = tracer0.at_bn.get(n, [])
        rec.eval_noise = sorted({tracer0.ops[s].label for c in calls for s in c[0]})
        records[n] = rec
    return records


def _attach(records, tracer, B):
    """Sources and, on a linear path, the noise terms of each BN, from the linearized passes."""
    for n, rec in records.items():
        calls = tracer.at_bn.get(n, [])
        srcs = sorted(set().union(*(c[0] for c in calls))) if calls else []
        rec.upstream = [tracer.ops[s].label for s in srcs]
        if not srcs:
            rec.why_not = "no noise source reaches it" if calls else "the layer did not run on these inputs"
        elif len(calls) != B:
            rec.why_not = "the layer runs more than once a forward pass"
        elif any(c[1] is None for c in calls):
            rec.why_not = next((c[4] for c in calls if c[4]), "the path from the noise is not linear")
        else:
            rec.t, rec.tbar = [c[1] for c in calls], [c[2] for c in calls]
            exact = all(c[3] for c in calls)
            rec.structure = (f"{'; '.join(rec.upstream)} → {rec.kind}" +
                             ("" if exact else " (approximate: noise also reaches it through nonlinear layers)"))


def _rows(records, order, stage, run):
    rows = [summarize(records[n], run.z_star, run.tolerance) for n in order if n in records and records[n].s1]
    for r in rows:
        r["stage"] = stage
    return rows


def _fixed(torch, model, bns, xs, order, run):
    """Apply the fix, then measure again (eval passes, no noise terms, no Monte Carlo passes)."""
    fix, progress = run.fix, run.progress
    if fix == "exact":
        info = recalibrate_exact(model, xs, order, progress=_stage(progress, "audit: exact fix", len(bns)))
    else:
        info = recalibrate(model, xs, progress=_stage(progress, "audit: recalibrating", len(xs)))
    records = _records(bns, info, _Empty())
    for rec in records.values():
        rec.why_not = "after the fix"
    measure(torch, model, bns, xs, records, 0, trace=False,
            progress=_stage(progress, "audit: measuring again", len(xs)))
    for rec in records.values():
        rec.upstream = []
    return mark_after(_rows(records, order, "after", run))


class _Empty:
    at_bn, ops = {}, []
