"""Audit of a PyTorch model: the variance shift at every BatchNorm, measured and predicted, and its fix.

Every module that normalises with running statistics (any ``_BatchNorm``: subclasses with children such as
a fused BN + activation, ``SyncBatchNorm``, the lazy ones) is audited in the order it runs. The passes,
all over the same batches:

1. one eval pass, traced (:mod:`.trace`): BN order, and noise that stays on in eval mode;
2. without weights, the statistics are gathered in train mode (noise on) as a cumulative average, as
   fvcore's precise BN does: no weight is left on the initial value;
3. per batch one linearized pass (model in train mode, BN in eval mode, each noise operation replaced by
   its mean, :mod:`.trace`): it names every noise source that reaches each BN and gives the closed form of
   C5 (docs/theory.md) where the path is linear. When its BN inputs equal those of the eval pass (checked
   on the first batch) it is also the measurement; otherwise eval passes measure;
4. ``mc`` dropout-on passes per batch for the output effect;
5. the fix (:mod:`.fix`), then one eval pass per batch to measure again.

Statistics are sums per channel computed on the fly in torch. PyTorch is imported only inside functions.
"""
import numpy as np

from ..core.errors import ParameterError
from .load import one_line, torch_or_fail
from .measure import OutputRecord
from .trace import make_tracer


class Stop(Exception):
    """Raised by a hook to end a forward pass early (the exact fix)."""


def save_state(model, path):
    """Write ``model.state_dict()`` to ``path`` by :mod:`simulator.core.files`' rules: never half-written, a
    link followed, a device written in place, a new file with the umask's permissions."""
    from ..core.files import open_output

    torch = torch_or_fail()
    with open_output(path, binary=True) as f:
        torch.save(model.state_dict(), f)


def batchnorms(model):
    """Every module with running statistics that normalises like BN, as (name, module), in definition order."""
    torch = torch_or_fail()
    bn = torch.nn.modules.batchnorm._BatchNorm
    return [(n, m) for n, m in model.named_modules() if isinstance(m, bn) and m.track_running_stats]


def first_tensor(y):
    """The first tensor of a model's output (a tensor, or nested lists, tuples and dicts)."""
    torch = torch_or_fail()
    if isinstance(y, torch.Tensor):
        return y
    if isinstance(y, dict):
        y = list(y.values())
    if isinstance(y, (list, tuple)):
        for v in y:
            t = first_tensor(v)
            if t is not None:
                return t
    return None


def call(model, x, mode):
    """``model(x)`` under no_grad; whatever the forward raises becomes one line naming the mode."""
    torch = torch_or_fail()
    try:
        with torch.no_grad():
            return model(x)
    except Stop:
        raise
    except (Exception, SystemExit) as e:
        raise ParameterError(f"the model's forward fails in {mode} on inputs of shape {tuple(x.shape)} "
                             f"({one_line(e)})") from None


def set_mode(model, bns, model_train, bn_train):
    """The model (dropout, functional dropout, DropPath) in one mode, every BN in another."""
    model.train(model_train)
    for _, m in bns:
        m.train(bn_train)


def channel_sums(x, ref):
    """Per channel of ``x`` (N, C, ...): Σ(x − ref), Σ(x − ref)², and the same for the per-sample means.

    Two reductions over x (``var_mean`` and the per-sample means), combined about ``ref`` in float64.
    """
    torch = torch_or_fail()
    x = x.detach()
    N, C = x.shape[:2]
    x = x.reshape(N, C, -1)
    L = x.shape[2]
    var, mean = (v.double() for v in torch.var_mean(x, dim=(0, 2), correction=0))
    xm = x.mean(2).double() - ref[None, :]
    d = mean - ref
    n = N * L
    s1, s2, m1, m2 = (v.cpu().numpy() for v in (n * d, n * (var + d * d), xm.sum(0), (xm * xm).sum(0)))
    return [s1, s2, n, m1, m2, N, L]


def sum_hooks(torch, bns, sink):
    """Forward pre-hooks that send ``channel_sums`` of each BN's input to ``sink(name, sums, x)``."""
    refs = {n: m.running_mean.detach().double().clone() for n, m in bns}

    def hook(name):
        def f(mod, inputs):
            if inputs and isinstance(inputs[0], torch.Tensor):
                sink(name, channel_sums(inputs[0], refs[name]), inputs[0])
        return f

    return [m.register_forward_pre_hook(hook(n)) for n, m in bns]


def structure_pass(torch, model, bns, x):
    """Eval pass on the first batch, traced: the order BNs run in, and the noise that stays on in eval mode."""
    tracer = make_tracer(torch, model, bns, linearize=False)
    set_mode(model, bns, False, False)
    with tracer:
        tracer.start(eval_pass=True)
        call(model, x, "eval mode")
    return tracer


def gather(torch, model, bns, xs, noise=True, progress=None):
    """Running statistics learned with BN in train mode over ``xs``, cumulative average (momentum=None).

    Parameters
    ----------
    noise : bool
        The rest of the model in train mode (dropout on, as training) or in eval mode (the fix: dropout,
        functional dropout and DropPath off).

    Returns
    -------
    dict
        BN name → unbiased batch variances, ndarray of shape (K, C).
    """
    seen = {n: [] for n, _ in bns}
    saved = {n: m.momentum for n, m in bns}

    def hook(name):  # the cumulative average after each batch: the batch variances are its increments
        def f(mod, inputs, output):
            seen[name].append(mod.running_var.detach().double().cpu().numpy().copy())
        return f

    handles = [m.register_forward_hook(hook(n)) for n, m in bns]
    try:
        for _, m in bns:
            m.reset_running_stats()
            m.momentum = None
        set_mode(model, bns, noise, True)
        for i, x in enumerate(xs):
            call(model, x, "train mode" if noise else "eval mode with BN in train mode")
            if progress:
                progress(i + 1)
    finally:
        for h in handles:
            h.remove()
        for n, m in bns:
            m.momentum = saved[n]
        model.eval()
    return {n: _increments(np.array(v)) for n, v in seen.items()}


def _increments(avg):
    """Batch values from their cumulative averages: ``v_k = k·avg_k − (k − 1)·avg_(k−1)``."""
    if len(avg) == 0:
        return avg
    k = np.arange(1, len(avg) + 1, dtype=float)[:, None]
    total = k * avg
    return np.diff(total, axis=0, prepend=0.0)


def _same(a, b):
    """Whether two passes agree; NaN where both have NaN agrees (the rows then say the statistics are not finite)."""
    if a is None or b is None or a.shape != b.shape:
        return a is None and b is None
    torch = torch_or_fail()
    a, b = a.detach().double(), b.detach().double()
    finite = b[torch.isfinite(b)]
    scale = float(finite.abs().max()) if finite.numel() else 0.0
    return bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6 * max(scale, 1.0), equal_nan=True))


def measure(torch, model, bns, xs, records, mc, progress=None, trace=True):
    """Fill ``records`` (BN sums per batch) and return (tracer, OutputRecord, linearized pass = eval pass).

    ``trace=False`` (after the fix): plain eval passes, no noise terms, no Monte Carlo passes.
    """
    out = OutputRecord()
    tracer = make_tracer(torch, model, bns, linearize=True) if trace else None
    first = {}

    def sink(name, sums, x_in):
        records[name].add_sums(*sums)
        if name not in first:
            first[name] = x_in.detach().clone()

    linear_is_eval = [trace]
    for b, x in enumerate(xs):
        y = _measure_batch(torch, model, bns, x, sink, tracer, linear_is_eval, first, b)
        if trace and mc and y is not None:
            set_mode(model, bns, True, False)
            ys = [first_tensor(call(model, x, "train mode")) for _ in range(mc)]
            if all(v is not None and v.shape == y.shape for v in ys):
                n0 = y.shape[0]
                out.add(y.double().reshape(n0, -1).cpu().numpy(),
                        torch.stack(ys).double().reshape(mc, n0, -1).cpu().numpy())
        if progress:
            progress(b + 1)
    model.eval()
    return tracer, out, linear_is_eval[0]


def _measure_batch(torch, model, bns, x, sink, tracer, linear_is_eval, first, b):
    """One batch: the linearized pass (traced) and, unless it equals the eval pass, an eval pass.

    On the first batch both run, and the BN inputs and outputs of the two are compared (``first``: the eval
    pass's BN inputs of the first batch, by BN name).
    """
    y = None
    if tracer is not None:
        lin = {}
        use = linear_is_eval[0] and b > 0
        handles = sum_hooks(torch, bns, sink if use else lambda n, s, x_in: lin.setdefault(n, x_in.clone()))
        try:
            set_mode(model, bns, True, False)
            with tracer:
                tracer.start()
                y = first_tensor(call(model, x, "train mode with BN in eval mode"))
        finally:
            for h in handles:
                h.remove()
        if use:
            return None if y is None else y.detach()
    y_lin = y
    handles = sum_hooks(torch, bns, sink)
    try:
        set_mode(model, bns, False, False)
        y = first_tensor(call(model, x, "eval mode"))
    finally:
        for h in handles:
            h.remove()
    if tracer is not None and b == 0:
        linear_is_eval[0] = all(_same(lin.get(n), first.get(n)) for n, _ in bns) and _same(y_lin, y)
    return None if y is None else y.detach()
