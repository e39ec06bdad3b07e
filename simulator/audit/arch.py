"""Audit of a layer spec, run by the project's own Numba layers (no PyTorch needed).

A spec is a comma-separated list of layer words: ``linear:K`` (``nn.Linear``, with
bias, PyTorch's init U(±1/√fan_in) for weight and bias, from the stream
(seed, "audit-arch-linear", position)), ``bn`` (``nn.BatchNorm1d``, γ = 1, β = 0,
eps 1e-5, momentum 0.1), ``relu``, ``dropout:P`` (inverted dropout, P the KEEP
probability: PyTorch ``nn.Dropout(1 − P)``) and ``uout:BETA`` (Li et al. 2019).
Statistics are gathered in train mode (noise on, BN on batch statistics) over the
data, as training would; then the audit measures as :mod:`.torch_model` does.
"""
import math
from typing import NamedTuple

import numpy as np

from ..core.errors import ParameterError, shown
from ..core.params import DEFAULT_SEED, check_seed
from ..core.rng import block_state, keep_threshold, stream_key
from ..nn.batchnorm import EPS, MOMENTUM, bn_eval, bn_train, running_weights, update_running
from ..nn.layers import linear_bias, relu
from ..nn.noise.dropout import dropout
from ..nn.noise.uout import uout
from .data import batches_of, check_bytes, load_data, normal_batches
from .measure import (
    FIX_NOTE,
    PREDICTION_NOTE,
    TOLERANCE,
    Z_STAR,
    LayerRecord,
    OutputRecord,
    mark_after,
    mark_output,
    output_effect,
    summarize,
    undecided_notes,
)
from .result import AuditResult

WORDS = "linear:N, bn, relu, dropout:P (P = KEEP probability), uout:BETA"
RANGES = "linear width an integer ≥ 1, dropout keep probability in (0, 1], uout beta in [0, 1]"
NOISE = ("dropout", "uout")


def parse_arch(spec, n_in):
    """``"linear:64,bn,relu,dropout:0.5,linear:1"`` → list of (word, value) with the widths checked.

    Returns
    -------
    list of tuple
        ``("linear", K)``, ``("bn", None)``, ``("relu", None)``, ``("dropout", p)``, ``("uout", beta)``.
    """
    if n_in is None or int(n_in) < 1:
        raise ParameterError(f"--in {shown(n_in)}: the number of input features (at least 1) is needed with --arch")
    layers = []
    for pos, raw in enumerate(str(spec).split(","), start=1):
        word, _, value = raw.strip().partition(":")
        where = f"--arch, layer {pos} ({shown(raw.strip())})"
        if word not in ("linear", "bn", "relu", "dropout", "uout"):
            raise ParameterError(f"{where}: unknown layer; valid layers: {WORDS}")
        if word in ("linear", "dropout", "uout") and _not_finite(value):
            raise ParameterError(f"{where}: {shown(value)} is not a finite number; {RANGES}")
        try:
            if word == "linear":
                k = float(value)
                if k != int(k) or k < 1:
                    raise ValueError
                layers.append(("linear", int(k)))
            elif word in ("bn", "relu") and not value:
                layers.append((word, None))
            elif word == "dropout":
                p = float(value)
                if not 1e-9 <= p <= 1.0:
                    raise ValueError
                layers.append(("dropout", p))
            elif word == "uout":
                b = float(value)
                if not 0.0 <= b <= 1.0:
                    raise ValueError
                layers.append(("uout", b))
            else:
                raise ValueError
        except ValueError:
            raise ParameterError(f"{where}: bad value; valid layers: {WORDS} ({RANGES})") from None
    return layers


def _not_finite(value):
    """True for a number that is NaN, infinite or overflows a float (``inf``, ``nan``, ``1e400``)."""
    try:
        return not math.isfinite(float(value))
    except (ValueError, OverflowError):
        return False  # not a number at all: the word's own check says so


def _check_memory(layers, n_in, batch, batches):
    """Refuse a spec whose weights or activations would not fit in memory, before allocating them."""
    d, values = n_in, float(n_in) * batch * batches
    for word, value in layers:
        if word == "linear":
            values += float(value) * d + 4.0 * value * batch
            d = value
        else:
            values += 4.0 * d * batch
    check_bytes(8.0 * values, f"--arch with --in {n_in}: the weights and activations (batch {batch})")


class Net:
    """Parameters and running statistics of a parsed spec (arrays, float64)."""

    def __init__(self, layers, n_in, seed):
        self.layers, self.params, self.width = layers, [], []
        d = int(n_in)
        for i, (word, value) in enumerate(layers):
            if word == "linear":
                rng = np.random.default_rng(stream_key(seed, "audit-arch-linear", i))
                bound = 1.0 / np.sqrt(d)
                W = rng.uniform(-bound, bound, (value, d))
                b = rng.uniform(-bound, bound, value)
                self.params.append((W, b))
                d = value
            elif word == "bn":
                self.params.append([np.zeros(d), np.ones(d)])
            else:
                self.params.append(None)
            self.width.append(d)
        self.n_in = int(n_in)

    def forward(self, x, bn_mode, noise, s_key=None, block=0, step=0, momentum=MOMENTUM, pre=None):
        """Run the rows of ``x``.

        Parameters
        ----------
        bn_mode : {"train", "eval"}
            Train: normalize with batch statistics and update the running ones (update
            number ``step``; momentum −1 is the cumulative average).
        noise : bool
            Dropout/Uout on.
        pre : callable, optional
            ``pre(i, h)`` is called with each layer's input.
        """
        h = np.ascontiguousarray(x, dtype=float)
        m = h.shape[0]
        for i, (word, value) in enumerate(self.layers):
            if pre is not None:
                pre(i, h)
            if word == "linear":
                W, b = self.params[i]
                out = np.empty((m, W.shape[0]))
                linear_bias(h, W, b, out)
            elif word == "bn":
                rm, rv = self.params[i]
                out = np.empty_like(h)
                if bn_mode == "train":
                    mean, var = np.empty(h.shape[1]), np.empty(h.shape[1])
                    bn_train(h, EPS, out, mean, var)
                    update_running(rm, rv, mean, var, m, momentum, step)
                else:
                    bn_eval(h, rm, rv, EPS, out)
            elif word == "relu":
                out = np.empty_like(h)
                relu(h, out)
            elif noise:
                s = block_state(s_key, block * len(self.layers) + i)
                out = np.empty_like(h)
                if word == "dropout":
                    dropout(s, h, keep_threshold(value), 1.0 / value, out)
                else:
                    uout(s, h, float(value), out)
            else:
                out = h
            h = out
        return h


def _structure(layers):
    """Per BN position: upstream noise layers, and the (noise, linear or None) pattern when there is one."""
    upstream, pattern, why_not = {}, {}, {}
    for i, (word, _) in enumerate(layers):
        if word != "bn":
            continue
        upstream[i] = [f"{w} {j}:{w}, {'keep' if w == 'dropout' else 'beta'} {v:g}"
                       for j, (w, v) in enumerate(layers[:i]) if w in NOISE]
        why_not[i] = "no dropout layer upstream" if not upstream[i] else \
            "the dropout does not feed a linear that feeds this BN"
        if i >= 1 and layers[i - 1][0] in NOISE:
            pattern[i] = (i - 1, None)
        elif i >= 2 and layers[i - 1][0] == "linear" and layers[i - 2][0] in NOISE:
            pattern[i] = (i - 2, i - 1)
    return upstream, pattern, why_not


def _s2(word, value):
    """Variance of the mean-one multiplicative noise: (1 − p)/p for dropout, β²/3 for Uout (docs/theory.md, C5)."""
    return (1.0 - value) / value if word == "dropout" else value * value / 3.0


def _measure(net, run, s_key, train_info, noise=True):
    """Rows of every BN of ``net`` over ``run.xs`` and the output effect; ``noise`` False: after the fix."""
    layers = net.layers
    upstream, pattern, why_not = _structure(layers)
    records = {}
    for i, (word, _) in enumerate(layers):
        if word == "bn":
            rm, rv = net.params[i]
            rec = LayerRecord(f"{i}:bn", "BatchNorm1d", rv.copy(), rm.copy(), upstream=upstream[i],
                              why_not=why_not[i])
            if i in pattern:
                j = pattern[i][0]
                w, v = layers[j]
                mid = " → linear" if pattern[i][1] is not None else ""
                rec.structure = f"{w}({'keep' if w == 'dropout' else 'beta'} {v:g}){mid} → bn"
            if train_info is not None:
                rec.train_var, rec.weights, rec.a0 = train_info[i]
            records[i] = rec
    noise_at = {pattern[i][0]: i for i in pattern}

    def pre(i, h):
        if i in records:
            records[i].add(h[:, :, None])
        if i in noise_at:
            k = noise_at[i]
            word, value = layers[i]
            s2 = _s2(word, value) if noise else 0.0
            lin = pattern[k][1]
            h2 = h * h
            t = (h2 @ (net.params[lin][0] ** 2).T).sum(0) if lin is not None else h2.sum(0)
            records[k].t.append(s2 * t)
            records[k].tbar.append(s2 * t)

    out = OutputRecord()
    for b, x in enumerate(run.xs):
        y_eval = net.forward(x, "eval", False, pre=pre)
        y_train = np.stack([net.forward(x, "eval", True, s_key, block=b * run.mc + r) for r in range(run.mc)])
        out.add(y_eval, y_train)
    rows = [summarize(records[i], run.z_star, run.tolerance) for i in sorted(records)]
    return rows, output_effect(out)


def _gather(net, xs, s_key, cumulative, noise):
    """Train-mode pass over ``xs``; per BN position, (unbiased batch variances, weights, a0)."""
    seen = {i: [] for i, (w, _) in enumerate(net.layers) if w == "bn"}

    def pre(i, h):
        if i in seen:
            seen[i].append(h.var(0, ddof=1))

    if cumulative:
        for i in seen:
            net.params[i][0][:] = 0.0
            net.params[i][1][:] = 1.0
    momentum = -1.0 if cumulative else MOMENTUM
    for b, x in enumerate(xs):
        net.forward(x, "train", noise, s_key, block=b, step=b + 1, momentum=momentum, pre=pre)
    info = {}
    for i, v in seen.items():
        a0, a = running_weights(None if cumulative else MOMENTUM, len(v))
        info[i] = (np.array(v), a, a0)
    return info


class ArchRun(NamedTuple):
    """What an audit of a spec measures on and how: its batches, seed, Monte Carlo passes and thresholds."""

    xs: np.ndarray       # (batches, batch, n_in)
    seed: int
    mc: int              # dropout-on passes per batch for the output effect
    z_star: float
    tolerance: float


def _arch_data(data, n_in, rows):
    """``(array or None, n_in)``: the user's data (a file or an array) checked against ``n_in``."""
    if data is None:
        return None, n_in
    arr = load_data(data, rows=rows) if isinstance(data, str) else np.asarray(data, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ParameterError("data: holds NaN or infinite values")
    if arr.ndim != 2:
        raise ParameterError(f"--data: --arch takes rows of features, got an array of shape {arr.shape}")
    if n_in is None:
        n_in = arr.shape[1]
    elif arr.shape[1] != int(n_in):
        raise ParameterError(f"--data has {arr.shape[1]} columns but --in is {n_in}")
    return arr, n_in


def _arch_rows(net, run, fix):
    """Statistics gathered in train mode, then the rows as found and, with ``fix``, after it; the output effect."""
    train_info = _gather(net, run.xs, stream_key(run.seed, "audit-arch-noise", "gather"), True, True)
    rows, out = _measure(net, run, stream_key(run.seed, "audit-arch-noise", "measure"), train_info)
    for r in rows:
        r["stage"] = "before"
    if fix is not None:  # BN1d chains: the exact variant is the same one pass here (see FIX_NOTE)
        info = _gather(net, run.xs, None, True, False)
        after, _ = _measure(net, run, stream_key(run.seed, "audit-arch-noise", "after"), info, noise=False)
        mark_after(after)
        rows += after
    return rows, out


def _arch_notes(rows, fix, has_bn, batches, batch):
    """The notes of an audit of a spec."""
    notes = []
    if has_bn:
        notes.append(f"Running statistics gathered in train mode (noise on) over {batches} batches of "
                     f"{batch} as a cumulative average (no weight left on the initial value).")
    if any(r["predicted_mean"] is not None for r in rows):
        notes.append(PREDICTION_NOTE)
    if fix is not None and len(rows) > 2:
        notes.append(FIX_NOTE)
    if not has_bn:
        notes.insert(0, "Nothing to shift: the spec has no bn layer.")
    return notes


def audit_arch(spec, n_in=None, *, data=None, batch=32, batches=50, seed=DEFAULT_SEED, mc=8, fix=None,
               z_star=Z_STAR, tolerance=TOLERANCE):
    """Audit a layer spec for the variance shift, with the project's own layers.

    Parameters
    ----------
    spec : str
        E.g. ``"linear:64,bn,relu,dropout:0.5,linear:64,bn,relu,linear:1"``; dropout's
        number is the KEEP probability.
    n_in : int, optional
        Input features (default: the columns of ``data``).
    data : str or array_like, optional
        A file (:func:`.data.load_data`) or an array of shape (rows, n_in); default
        standard-normal inputs.
    batch, batches, seed, mc, fix
        As :func:`~simulator.audit.audit_model`.

    Returns
    -------
    AuditResult
    """
    seed = check_seed(seed)
    if fix not in (None, "recalibrate", "exact"):
        raise ParameterError(f"--fix {shown(fix)}: the fixes are recalibrate, exact")
    if int(mc) < 2:
        raise ParameterError(f"--mc {mc}: need at least 2 dropout-on passes")
    arr, n_in = _arch_data(data, n_in, int(batch) * int(batches))
    layers = parse_arch(spec, n_in)
    _check_memory(layers, int(n_in), int(batch), int(batches))
    xs = batches_of(arr, int(batch), int(batches)) if arr is not None else \
        normal_batches(seed, (int(n_in),), int(batch), int(batches))
    has_bn = any(w == "bn" for w, _ in layers)
    with np.errstate(all="ignore"):  # overflowing or constant inputs: the rows say undecided, not a warning
        rows, out = _arch_rows(Net(layers, n_in, seed), ArchRun(xs, seed, int(mc), z_star, tolerance), fix)
    output = mark_output(rows, {"before": out})
    notes = _arch_notes(rows, fix, has_bn, len(xs), int(batch)) + undecided_notes(rows, output)
    meta = {"model": f"--arch {spec}", "data": data if isinstance(data, str) else (
            "array" if data is not None else f"standard normal, {int(n_in)} features"), "batch": int(batch),
            "batches": len(xs), "seed": seed, "mc": int(mc), "fix": fix, "z_star": z_star, "tolerance": tolerance,
            "p_meaning": "dropout:P is the KEEP probability (PyTorch nn.Dropout(1 − P))"}
    return AuditResult(rows, output, meta, notes)


def arch_to_torch(spec, n_in, seed=DEFAULT_SEED):
    """The same network as a ``torch.nn.Sequential``, same initial weights (dropout keep P → nn.Dropout(1 − P))."""
    from .load import torch_or_fail as _torch

    torch = _torch()
    nn = torch.nn
    layers = parse_arch(spec, n_in)
    _check_memory(layers, int(n_in), 1, 1)
    net = Net(layers, n_in, check_seed(seed))
    mods = []
    for (word, value), params in zip(layers, net.params):
        if word == "linear":
            lin = nn.Linear(params[0].shape[1], value)
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(params[0]))
                lin.bias.copy_(torch.as_tensor(params[1]))
            mods.append(lin)
        elif word == "bn":
            mods.append(nn.BatchNorm1d(params[0].size))
        elif word == "relu":
            mods.append(nn.ReLU())
        elif word == "dropout":
            mods.append(nn.Dropout(1.0 - value))
        else:
            raise ParameterError("uout has no PyTorch module; audit it with --arch")
    return nn.Sequential(*mods)
