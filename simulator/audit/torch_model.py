"""Audit of a PyTorch model: the variance shift at every BatchNorm, measured and predicted, and its fix.

Measured **by mode**: forward pre-hooks on every BatchNorm1d/2d/3d capture its
input in eval mode over the data, so any train/eval difference upstream shows
(``F.dropout`` too). Predicted **by structure**: the order modules run in is
recorded with hooks on the first batch; where a dropout module's output feeds a
Linear or Conv whose output feeds the BN (or the dropout feeds the BN directly),
the closed form of C5 (docs/theory.md) is evaluated on the measured activations
(:mod:`.measure`). PyTorch's ``nn.Dropout(p)`` takes the DROP probability; the
audit reports the KEEP probability ``1 − p``.

The fix re-estimates every BN's running statistics with BN in train mode and every
dropout off (Hendrycks & Gimpel 2016). ``torch.optim.swa_utils.update_bn`` leaves
the model in train mode, dropout included, and so re-learns the shift.

PyTorch is imported only inside these functions: the package works without it.
"""
import importlib.util
import math
import os
import sys
import tempfile

import numpy as np

from ..errors import ParameterError, shown
from ..nn.batchnorm import running_weights
from ..rng import stream_key
from ..simulate import DEFAULT_SEED, check_seed
from .data import batches_of, load_data, normal_batches
from .measure import (FIX_NOTE, PREDICTION_NOTE, TOLERANCE, Z_STAR, LayerRecord, OutputRecord, mark_after,
                      output_effect, summarize)
from .result import AuditResult

INSTALL = "PyTorch is not installed: pip install '.[torch]' (or audit a layer spec with --arch, no PyTorch needed)"
CHUNK = 1 << 22  # elements per chunk of the channel-dropout partial convolutions


def _torch():
    try:
        import torch
    except ImportError:
        raise ParameterError(INSTALL) from None
    return torch


def _one_line(e):
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}{'…' if len(text) > 300 else ''}"


def load_factory(spec):
    """Build the model from ``"path/to/file.py:factory"``: the file is run as Python code (it is the user's own).

    Returns
    -------
    torch.nn.Module
    """
    torch = _torch()
    path, sep, name = str(spec).rpartition(":")
    if not sep or not path or not name:
        raise ParameterError(f"--model {shown(spec)}: expected FILE.py:FACTORY")
    if not os.path.isfile(path):
        raise ParameterError(f"--model {shown(spec)}: no such file {shown(path)}")
    module_name = "_audit_user_model"
    loader = importlib.util.spec_from_file_location(module_name, path)
    if loader is None:
        raise ParameterError(f"--model {shown(spec)}: cannot load {shown(path)} as Python")
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up here
    try:
        loader.loader.exec_module(module)
    except Exception as e:
        raise ParameterError(f"--model {shown(spec)}: running the file failed ({_one_line(e)})") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ParameterError(f"--model {shown(spec)}: the file defines no function {shown(name)}")
    try:
        model = factory()
    except Exception as e:
        raise ParameterError(f"--model {shown(spec)}: {name}() failed ({_one_line(e)})") from None
    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"--model {shown(spec)}: {name}() returned {type(model).__name__}, "
                             "not a torch.nn.Module")
    return model


def load_weights(model, path):
    """Load a state dict saved by ``torch.save(model.state_dict(), path)``; never unpickles other objects."""
    torch = _torch()
    if not os.path.isfile(path):
        raise ParameterError(f"--weights {shown(path)}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ParameterError(f"--weights {shown(path)}: not a state dict torch.load(weights_only=True) "
                             f"can read ({_one_line(e)})") from None
    if not isinstance(state, dict):
        raise ParameterError(f"--weights {shown(path)}: holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except Exception as e:
        raise ParameterError(f"--weights {shown(path)}: does not fit the model ({_one_line(e)})") from None


def save_state(model, path):
    """Write ``model.state_dict()`` to ``path`` through a temporary file and a rename."""
    torch = _torch()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(model.state_dict(), f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _kinds():
    torch = _torch()
    nn = torch.nn
    bn = nn.modules.batchnorm._BatchNorm
    drop = nn.modules.dropout._DropoutNd
    channel = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
    alpha = (nn.AlphaDropout, nn.FeatureAlphaDropout)
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return bn, drop, channel, alpha, conv


def _bns(model):
    bn = _kinds()[0]
    return [(n, m) for n, m in model.named_modules() if isinstance(m, bn) and m.track_running_stats]


def _same(a, b):
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride())


def _first_tensor(y):
    torch = _torch()
    if isinstance(y, torch.Tensor):
        return y
    if isinstance(y, dict):
        y = list(y.values())
    if isinstance(y, (list, tuple)):
        for v in y:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


class _Structure:
    """Per BN name: the noise modules that ran before it and the dropout → (Linear | Conv) → BN pattern."""

    def __init__(self, model, x):
        torch = _torch()
        bn, drop, channel, alpha, conv = _kinds()
        trace = []
        leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]

        def hook(name):
            def f(mod, inputs, output):
                first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
                trace.append((name, mod, first, output if isinstance(output, torch.Tensor) else None))
            return f

        handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
        try:
            model.eval()
            with torch.no_grad():
                try:
                    model(x)
                except Exception as e:
                    raise ParameterError(f"the model rejects inputs of shape {tuple(x.shape)} "
                                         f"({_one_line(e)})") from None
        finally:
            for h in handles:
                h.remove()
        counts = {}
        for name, *_ in trace:
            counts[name] = counts.get(name, 0) + 1
        self.order = [name for name, *_ in trace]
        self.upstream, self.pattern, self.why_not = {}, {}, {}
        for i, (name, mod, xin, _) in enumerate(trace):
            if not (isinstance(mod, bn) and mod.track_running_stats) or name in self.upstream:
                continue
            self.upstream[name] = [(n, type(m).__name__, 1.0 - float(m.p)) for n, m, *_ in trace[:i]
                                   if isinstance(m, drop)]
            self.why_not[name] = "no dropout module upstream" if not self.upstream[name] else \
                "the dropout does not feed a Linear or Conv that feeds this BN"
            prod = self._producer(trace, i, xin)
            if prod is None:
                continue
            chain = [prod]
            if not isinstance(trace[prod][1], drop) and isinstance(trace[prod][1], (torch.nn.Linear,) + conv):
                before = self._producer(trace, prod, trace[prod][2])
                if before is None or not isinstance(trace[before][1], drop):
                    continue
                chain.insert(0, before)
            elif not isinstance(trace[prod][1], drop):
                continue
            dname, dmod, h, _ = trace[chain[0]]
            mid = trace[chain[1]][1] if len(chain) == 2 else None
            names = [trace[c][0] for c in chain] + [name]
            if any(counts[n] > 1 for n in names):
                self.why_not[name] = "a module of the pattern runs more than once a forward pass"
                continue
            is_channel = isinstance(dmod, channel)
            if isinstance(dmod, alpha):
                self.why_not[name] = f"{type(dmod).__name__} is not mean-one multiplicative noise"
                continue
            if is_channel and h.dim() < 3:
                self.why_not[name] = "channel dropout on an input without spatial axes"
                continue
            if isinstance(mid, torch.nn.Linear) and (is_channel or h.dim() != 2 or xin.dim() != 2):
                self.why_not[name] = "Linear on inputs that are not (batch, features)"
                continue
            if isinstance(mid, conv) and (mid.groups != 1 or mid.padding_mode != "zeros"):
                self.why_not[name] = "grouped or non-zero-padded convolution"
                continue
            keep = 1.0 - float(dmod.p)
            if keep <= 0.0:
                self.why_not[name] = "the dropout keeps nothing"
                continue
            label = f"{type(dmod).__name__}(keep {keep:g})"
            mid_label = f" → {type(mid).__name__}" if mid is not None else ""
            self.pattern[name] = (dname, dmod, mid, is_channel, (1.0 - keep) / keep,
                                  f"{label}{mid_label} → {type(mod).__name__}")

    @staticmethod
    def _producer(trace, i, x):
        """Index of the last module before i whose output is ``x``."""
        if x is None:
            return None
        for j in range(i - 1, -1, -1):
            out = trace[j][3]
            if out is not None and _same(out, x):
                return j
        return None


def _noise_terms(h, mid, channel, s2):
    """Σ over a batch of the dropout noise variance at the BN input, per BN channel, and of its sample means.

    Parameters
    ----------
    h : Tensor
        The dropout's input (eval mode), shape (N, C, ...) or (N, F).
    mid : nn.Linear, nn.Conv1d/2d/3d or None
        The layer between dropout and BN (None: the dropout feeds the BN).
    channel : bool
        Channel dropout (Dropout1d/2d/3d: one gate per sample and channel).
    s2 : float
        ``(1 − p)/p``.

    Returns
    -------
    t, tbar : ndarray of shape (K,)

    Notes
    -----
    Conditional on h, the BN input ``z_k = Σ_g δ_g c_kg / p + rest`` with one
    gate per mask group g, so ``Var(z_k | h) = s² Σ_g c_kg²``. Element dropout
    (independent gates, the approximation for nn.Dropout): ``c = W_kj h_j`` for a
    Linear, and for a Conv the sum over input channels and kernel positions of
    ``W² h²`` (a convolution of h² with W²). Channel dropout: one group per input
    channel, ``c_kc = Σ_u W_kcu h_c(· + u)`` (the partial convolution of channel c
    alone): the same-channel cross terms ``W_kcu W_kcu' h_c h_c'`` do not vanish,
    so the term is ``s² Σ_c E[(partial conv_c)²]``, computed exactly. ``tbar`` is
    the same for the per-sample mean over positions (exact for channel dropout and
    for no layer between; for element dropout before a Conv the kernel sums are
    used at every position, ignoring the border: an O(1/(N L)) correction).
    """
    torch = _torch()
    F = torch.nn.functional
    h = h.detach().double()
    N = h.shape[0]
    if mid is None:
        x = h.reshape(N, h.shape[1], -1)
        L = x.shape[2]
        t = (x * x).sum((0, 2))
        tbar = (x.mean(2) ** 2).sum(0) if channel else t / L ** 2
    elif isinstance(mid, torch.nn.Linear):
        W2 = mid.weight.detach().double() ** 2
        t = ((h * h) @ W2.T).sum(0)
        tbar = t
    else:
        W = mid.weight.detach().double()
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[W.dim()]
        args = (mid.stride, mid.padding, mid.dilation)
        if not channel:
            out = conv(h * h, W * W, None, *args)
            Lout = math.prod(out.shape[2:])
            t = out.sum([0] + list(range(2, out.dim())))
            S = W.sum(list(range(2, W.dim())))
            hs = (h * h).sum(list(range(2, h.dim())))
            tbar = (hs @ (S * S).T).sum(0) / Lout ** 2
        else:
            K, C = W.shape[:2]
            Wg = W.transpose(0, 1).reshape((C * K, 1) + tuple(W.shape[2:]))
            t = torch.zeros(K, dtype=torch.float64)
            tbar = torch.zeros(K, dtype=torch.float64)
            per = max(1, CHUNK // max(1, C * K * math.prod(h.shape[2:])))
            for a in range(0, N, per):
                P = conv(h[a:a + per], Wg, None, *args, C)
                P = P.reshape(P.shape[0], C, K, -1)
                t += (P * P).sum((0, 1, 3))
                tbar += (P.mean(3) ** 2).sum((0, 1))
    return s2 * t.cpu().numpy(), s2 * tbar.cpu().numpy()


def _gather(model, batches, cumulative, dropout):
    """Running statistics learned in train mode over ``batches``; per BN, the unbiased batch variances.

    Parameters
    ----------
    cumulative : bool
        Reset the running statistics and use the cumulative average (momentum=None);
        each module's own momentum is restored afterwards. False: momentum as set.
    dropout : bool
        Dropout on (as training, and as ``swa_utils.update_bn``) or off (the fix).

    Returns
    -------
    dict
        BN name → (unbiased batch variances, ndarray of shape (K, C); weights a_k; a0).
    """
    torch = _torch()
    bns = _bns(model)
    seen = {n: [] for n, _ in bns}
    saved = {n: m.momentum for n, m in bns}

    def hook(name):
        def f(mod, inputs):
            x = inputs[0].detach().double()
            x = x.reshape(x.shape[0], x.shape[1], -1).transpose(0, 1).reshape(x.shape[1], -1)
            seen[name].append(x.var(1, unbiased=True).cpu().numpy())
        return f

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in bns]
    was_training = model.training
    try:
        for n, m in bns:
            m.reset_running_stats()
            if cumulative:
                m.momentum = None
        model.train(dropout)
        for _, m in bns:
            m.train()
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
        for n, m in bns:
            m.momentum = saved[n]
        model.train(was_training)
    info = {}
    for n, m in bns:
        v = np.array(seen[n])
        a0, a = running_weights(None if cumulative else m.momentum, len(v))
        info[n] = (v, a, a0)
    return info


def _measure(model, structure, batches, train_info, mc, z_star, tolerance, noise=True):
    """One eval pass with hooks (BN inputs, dropout inputs), then ``mc`` dropout-on passes per batch.

    ``noise=False``: the running statistics were learned with dropout off (the fix),
    so the prediction is the ratio without the dropout term.
    """
    torch = _torch()
    bns = _bns(model)
    records = {}
    for n, m in bns:
        rec = LayerRecord(n, type(m).__name__, m.running_var.detach().double().cpu().numpy().copy(),
                          m.running_mean.detach().double().cpu().numpy().copy(),
                          upstream=structure.upstream.get(n, []),
                          why_not=structure.why_not.get(n, "the layer did not run on these inputs"))
        if n in structure.pattern:
            rec.structure = structure.pattern[n][5]
        if train_info is not None:
            rec.train_var, rec.weights, rec.a0 = train_info[n]
        records[n] = rec
    handles, on = [], [True]

    def bn_hook(name):
        def f(mod, inputs):
            if on[0]:
                x = inputs[0].detach().double()
                records[name].add(x.reshape(x.shape[0], x.shape[1], -1).cpu().numpy())
        return f

    def drop_hook(name, mid, channel, s2):
        def f(mod, inputs, output):
            if on[0]:
                t, tbar = _noise_terms(inputs[0], mid, channel, s2 if noise else 0.0)
                records[name].t.append(t)
                records[name].tbar.append(tbar)
        return f

    modules = dict(model.named_modules())
    for n, m in bns:
        handles.append(m.register_forward_pre_hook(bn_hook(n)))
        if n in structure.pattern:
            dname, _, mid, channel, s2, _ = structure.pattern[n]
            handles.append(modules[dname].register_forward_hook(drop_hook(n, mid, channel, s2)))
    out = OutputRecord()
    was_training = model.training
    try:
        with torch.no_grad():
            for x in batches:
                on[0] = True
                model.eval()
                y_eval = _first_tensor(model(x))
                on[0] = False
                model.train()  # dropout on (modules and F.dropout(training=self.training)), BN on running stats
                for _, m in bns:
                    m.eval()
                y_train = [_first_tensor(model(x)) for _ in range(mc)]
                if y_eval is not None and all(y is not None for y in y_train):
                    n0 = y_eval.shape[0]
                    out.add(y_eval.detach().double().reshape(n0, -1).cpu().numpy(),
                            torch.stack(y_train).detach().double().reshape(mc, n0, -1).cpu().numpy())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rows = [summarize(records[n], z_star, tolerance) for n in structure.order if n in records and records[n].s1]
    rows = list({r["layer"]: r for r in rows}.values())
    return rows, output_effect(out)


def _as_batches(torch, model, data, input_shape, batch, batches, seed):
    if data is not None and input_shape is not None:
        raise ParameterError("give --data or --input-shape, not both")
    if data is None and input_shape is None:
        raise ParameterError("give --data FILE or --input-shape SHAPE (standard-normal inputs)")
    if data is not None:
        arr = load_data(data) if isinstance(data, str) else np.asarray(data, dtype=float)
        arr = batches_of(arr, batch, batches)
    else:
        arr = normal_batches(seed, tuple(input_shape), batch, batches)
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    device = p.device if p is not None else "cpu"
    return [torch.as_tensor(b, dtype=dtype, device=device) for b in arr]


def recalibrate(model, batches, dropout=False):
    """Re-estimate every BN's running statistics: BN in train mode, cumulative average over ``batches``.

    Parameters
    ----------
    model : torch.nn.Module
        Changed in place (running statistics only); each BN's momentum is restored.
    batches : iterable of Tensor
        Input batches (the data the statistics should describe).
    dropout : bool
        False (the fix): every dropout module in eval mode, and functional dropout
        that follows ``self.training`` off too. True reproduces
        ``torch.optim.swa_utils.update_bn``, which keeps dropout on and so
        re-learns the variance shift.

    Returns
    -------
    dict
        BN name → (unbiased batch variances, weights, a0), as used for the MCSE.
    """
    return _gather(model, list(batches), cumulative=True, dropout=dropout)


def audit_model(model, *, data=None, input_shape=None, weights=None, batch=32, batches=50, seed=DEFAULT_SEED,
                mc=8, fix=None, save=None, threads=None, z_star=Z_STAR, tolerance=TOLERANCE):
    """Audit a PyTorch model for the variance shift at every BatchNorm, and optionally fix it.

    Parameters
    ----------
    model : torch.nn.Module or str
        A module, or ``"path/to/file.py:factory"`` (the file is run: it is the user's own code).
    data : str or array_like, optional
        A file for :func:`.data.load_data`, or an array whose rows are samples.
    input_shape : tuple of int, optional
        Standard-normal inputs of this shape per sample, instead of ``data``.
    weights : str, optional
        A state dict file (``torch.load(weights_only=True)``). Without it, the
        running statistics are first gathered in train mode (dropout on, each
        BN's own momentum) over the data, as training would.
    batch, batches : int
        Batch size and number of batches (full batches only).
    seed : int
        Fixes the inputs and the dropout masks (the caller's torch RNG is restored).
    mc : int
        Dropout-on passes per batch for the output effect.
    fix : {None, "recalibrate"}
    save : str, optional
        Where to write the fixed state dict (atomically).
    threads : int, optional
        torch threads for the audit (restored after); small batches run fastest on 1.

    Returns
    -------
    AuditResult
    """
    torch = _torch()
    seed = check_seed(seed)
    if fix not in (None, "recalibrate"):
        raise ParameterError(f"--fix {shown(fix)}: the only fix is 'recalibrate'")
    if save is not None and fix is None:
        raise ParameterError("--save needs --fix recalibrate")
    if int(mc) < 2:
        raise ParameterError(f"--mc {mc}: need at least 2 dropout-on passes")
    label = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        with torch.random.fork_rng(devices=[]):  # the factory's random init then depends on the seed alone
            torch.manual_seed(int(stream_key(seed, "audit-init")[0]) % (1 << 63))
            model = load_factory(model)
    if weights is not None:
        load_weights(model, weights)
    xs = _as_batches(torch, model, data, input_shape, int(batch), int(batches), seed)
    notes = []
    threads_before = torch.get_num_threads()
    if threads is not None:
        if int(threads) < 1:
            raise ParameterError(f"--threads {threads}: must be at least 1")
        torch.set_num_threads(int(threads))
    try:
        return _audit(torch, model, label, xs, weights, batch, seed, mc, fix, save, data, input_shape,
                      z_star, tolerance, notes)
    finally:
        torch.set_num_threads(threads_before)


def _audit(torch, model, label, xs, weights, batch, seed, mc, fix, save, data, input_shape, z_star, tolerance,
           notes):
    torch_seed = int(stream_key(seed, "audit-masks")[0]) % (1 << 63)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        structure = _Structure(model, xs[0])
        train_info = None
        if weights is None and _bns(model):
            train_info = _gather(model, xs, cumulative=False, dropout=True)
            notes.append(f"No weights given: running statistics gathered in train mode (dropout on, each BN's own "
                         f"momentum) over {len(xs)} batches of {int(batch)}, as training would.")
        rows, out = _measure(model, structure, xs, train_info, int(mc), z_star, tolerance)
        for r in rows:
            r["stage"] = "before"
        output = {"before": out}
        if fix == "recalibrate":
            info = recalibrate(model, xs, dropout=False)
            after, _ = _measure(model, structure, xs, info, int(mc), z_star, tolerance, noise=False)
            mark_after(after)
            rows += after
            # the output effect is not re-reported: eval vs dropout-on is not what the fix aims at
            if save is not None:
                save_state(model, save)
                notes.append(f"Recalibrated state dict written to {save}.")
    if any(r["predicted_mean"] is not None for r in rows):
        notes.append(PREDICTION_NOTE)
    if fix is not None and len(rows) > 2:
        notes.append(FIX_NOTE)
    if not _bns(model):
        notes.insert(0, "Nothing to shift: the model has no BatchNorm layer with running statistics.")
    meta = {"model": label, "data": data if isinstance(data, str) else ("array" if data is not None else
            f"standard normal, shape {tuple(input_shape)}"), "batch": int(batch), "batches": len(xs),
            "seed": seed, "mc": int(mc), "weights": weights, "fix": fix, "z_star": z_star, "tolerance": tolerance,
            "p_meaning": "keep probability = 1 − PyTorch's nn.Dropout(p)", "order": structure.order}
    return AuditResult(rows, output, meta, notes)
