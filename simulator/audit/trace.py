"""Where the noise runs: every stochastic operation of a forward pass, the module that called it, the BNs it reaches.

A ``torch.overrides.TorchFunctionMode`` sees every torch call of a forward pass: ``F.dropout`` called inside
a block's ``forward`` as well as ``nn.Dropout`` (which calls it), ``torch.bernoulli`` / ``Tensor.bernoulli_``
masks (stochastic depth, DropPath) and ``rand``/``randn``-based noise (Uout, Gaussian dropout). Hooks on every
module keep the stack of running modules, so each noise operation is recorded with the module whose
``forward`` called it. Every tensor keeps the set of noise operations upstream of it, through any operation
(concatenation and residual sums included), so each BN learns which sources reach it.

Linearized pass (``linearize=True``; the model in train mode, every BN in eval mode): each noise operation
returns its mean, and its output carries the noise as terms ``A ⊙ ε`` (ε zero-mean, unit variance,
independent over ``eps_shape`` and broadcast over the other axes). Linear operations carry the terms: sums
(variances of independent sources add; one source on two branches adds coefficients), concatenation,
products with noise-free tensors, views, and, for a gate shared by a whole sample (DropPath), any Linear,
Conv or average pooling. One Linear or Conv on per-element or per-channel noise gives what a BN needs, per
channel (docs/theory.md, C5): ``t = Σ Var`` over the batch's elements and ``tbar = Σ`` over samples of the
variance of the sample's mean. Anything else keeps only the sources: "no prediction".
"""
import math
from dataclasses import dataclass

import numpy as np

CHUNK = 1 << 22          # elements per chunk of the channel-dropout partial convolutions
MAX_TERMS = 32           # beyond this many linear terms on one tensor, keep only the sources
DROPOUTS = {"dropout": "element", "dropout1d": "channel", "dropout2d": "channel", "dropout3d": "channel",
            "alpha_dropout": "alpha", "feature_alpha_dropout": "alpha"}
GATES = ("bernoulli", "bernoulli_", "rand", "rand_like", "randn", "randn_like", "uniform_", "normal_")
ADD = {"add", "add_", "__add__", "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__rsub__", "__isub__"}
MUL = {"mul", "mul_", "__mul__", "__rmul__", "__imul__"}
DIV = {"div", "div_", "__truediv__", "__itruediv__", "true_divide"}
SAME = {"contiguous", "clone", "detach", "to", "float", "double", "half", "type", "type_as", "cpu"}
MOVE = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "view_as", "reshape_as"}
POOL = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
        "adaptive_avg_pool3d", "mean", "pad", "expand", "expand_as"}
WEIGHT = {"linear", "conv1d", "conv2d", "conv3d"}


class Nonlinear(Exception):
    """The operation does not carry the noise terms linearly."""


@dataclass
class NoiseOp:
    """One stochastic operation: what it is, the module whose forward called it, its keep probability."""

    op: str                 # "F.dropout", "Tensor.bernoulli_", ...
    module: str             # dotted module name ("" for the model's own forward)
    module_kind: str
    keep: float = None
    in_eval: bool = False   # seen in an eval-mode pass: noise that stays on at inference

    @property
    def label(self):
        where = self.module or "the model's forward"
        keep = "" if self.keep is None else f", keep {self.keep:.3g}"
        if self.op.startswith("F.") and self.op[2:].replace("_", "") == self.module_kind.lower():
            return f"nn.{self.module_kind} {where}{keep}"
        return f"{self.op} in {where}{keep}"


@dataclass
class Info:
    """What a tensor carries: the noise sources upstream of it, and its noise as linear terms (or None)."""

    sources: frozenset
    terms: dict = None      # source → ("pre", A, eps_shape) or ("agg", t, tbar)
    exact: bool = True      # the terms are all of its noise


def _arg(args, kwargs, i, name, default):
    return args[i] if len(args) > i else kwargs.get(name, default)


def _flat(x):
    """The leaves of nested lists, tuples and dicts (the arguments of a torch call)."""
    out = []
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        else:
            out.append(v)
    return out


def eps_kind(A, eps):
    """``"sample"`` (one draw per sample), ``"element"``, ``"channel"`` (per sample and channel) or ``"other"``."""
    if len(eps) != A.dim() or A.dim() < 2 or eps[0] != A.shape[0]:
        return "other"
    if all(e == 1 for e in eps[1:]):
        return "sample"
    if tuple(eps) == tuple(A.shape):
        return "element"
    if eps[1] == A.shape[1] and all(e == 1 for e in eps[2:]):
        return "channel"
    return "other"


def aggregate(A, eps):
    """Per channel: ``t = Σ_{n,l} A²`` and ``tbar = Σ_n Var(mean_l of the noise)``, float64 numpy.

    Parameters
    ----------
    A : Tensor of shape (N, C, ...)
        Coefficients of the noise ``A ⊙ ε``.
    eps : tuple of int
        The shape ε is drawn in (broadcast to A's shape).
    """
    kind = eps_kind(A, eps)
    x = A.detach().double().reshape(A.shape[0], A.shape[1], -1)
    L = x.shape[2]
    t = (x * x).sum((0, 2))
    if kind == "element":
        tbar = t / L ** 2
    elif kind in ("sample", "channel"):
        tbar = (x.mean(2) ** 2).sum(0)
    else:
        raise Nonlinear("noise drawn in a shape that is neither per element, per channel nor per sample")
    return t.cpu().numpy(), tbar.cpu().numpy()


def weight_terms(torch, name, A, eps, weight, rest):
    """A Linear or Conv (no bias) applied to the noise ``A ⊙ ε``: a new term ("pre" or "agg")."""
    F = torch.nn.functional
    func = getattr(F, name) if name == "linear" else getattr(torch, name)
    kind = eps_kind(A, eps)
    groups = rest[3] if len(rest) > 3 else 1
    if kind == "sample" or (kind == "channel" and name != "linear" and groups == A.shape[1] == weight.shape[0]):
        B = func(A, weight, None, *rest)
        return ("pre", B, tuple(B.shape[:2 if kind == "channel" else 1]) + (1,) * (B.dim() - (2 if kind == "channel"
                                                                                             else 1)))
    W = weight.detach().double()
    h = A.detach().double()
    if name == "linear":
        if h.dim() != 2 or kind not in ("element", "channel"):
            raise Nonlinear("Linear on inputs that are not (batch, features)")
        t = ((h * h) @ (W * W).T).sum(0)
        return ("agg", t.cpu().numpy(), t.cpu().numpy())
    if kind == "element":
        out = func(h * h, W * W, None, *rest)
        Lout = math.prod(out.shape[2:])
        t = out.sum([0] + list(range(2, out.dim())))
        K, Cg = W.shape[:2]
        g = h.shape[1] // Cg
        S = W.sum(list(range(2, W.dim()))).reshape(g, K // g, Cg)
        hs = (h * h).sum([0] + list(range(2, h.dim()))).reshape(g, Cg)
        tbar = torch.einsum("gc,gkc->gk", hs, S * S).reshape(K) / Lout ** 2  # border ignored: O(1/(N L))
        return ("agg", t.cpu().numpy(), tbar.cpu().numpy())
    if kind == "channel" and groups == 1:
        return ("agg",) + _partial_convs(func, h, W, rest)
    raise Nonlinear("a grouped convolution of channel noise")


def _partial_convs(conv, h, W, rest):
    """Channel gates: ``Σ_c (convolution of channel c alone)²``, exact, in chunks of the batch."""
    import torch

    N, C = h.shape[:2]
    K = W.shape[0]
    Wg = W.transpose(0, 1).reshape((C * K, 1) + tuple(W.shape[2:]))
    t = torch.zeros(K, dtype=torch.float64)
    tbar = torch.zeros(K, dtype=torch.float64)
    per = max(1, CHUNK // max(1, C * K * math.prod(h.shape[2:])))
    args = tuple(rest[:3])
    for a in range(0, N, per):
        P = conv(h[a:a + per], Wg, None, *args, C)
        P = P.reshape(P.shape[0], C, K, -1)
        t += (P * P).sum((0, 1, 3))
        tbar += (P.mean(3) ** 2).sum((0, 1))
    return t.numpy(), tbar.numpy()


def _scale(term, c):
    """A term times a noise-free factor ``c`` (number or broadcastable tensor)."""
    if term[0] == "pre":
        return ("pre", term[1] * c, term[2])
    if isinstance(c, (int, float)) or getattr(c, "dim", lambda: 1)() == 0:
        c2 = float(c) ** 2
        return ("agg", term[1] * c2, term[2] * c2)
    raise Nonlinear("a per-channel sum times a tensor")


def _merge(terms, src, term):
    if src not in terms:
        terms[src] = term
        return
    old = terms[src]
    if old[0] == term[0] == "pre" and tuple(old[2]) == tuple(term[2]):
        terms[src] = ("pre", old[1] + term[1], old[2])  # one source on two branches: coefficients add
    else:
        raise Nonlinear("one noise source reaches a sum twice in different forms")


LINEAR = ADD | MUL | DIV | SAME | MOVE | POOL | WEIGHT | {"neg", "__neg__", "cat", "concat", "concatenate"}


def linear_terms(torch, name, args, kwargs, out, info_of, noisy=None):
    """The noise terms of ``out`` when the operation is linear in its noisy inputs; raises :class:`Nonlinear`."""
    if name not in LINEAR:
        raise Nonlinear(name)
    if noisy is None:
        noisy = [a for a in _flat((args, kwargs)) if isinstance(a, torch.Tensor) and info_of(a) is not None]
    known = [(a, info_of(a)) for a in noisy if info_of(a).terms is not None]
    if name in SAME:
        return dict(known[0][1].terms) if known else {}
    if name in ADD:
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        sb = -1.0 if name.startswith(("sub", "__sub", "__isub")) else 1.0
        coef = {id(a): -1.0 if name == "__rsub__" else 1.0,
                id(b): sb * float(kwargs.get("alpha", 1)) * (-1.0 if name == "__rsub__" else 1.0)}
        terms = {}
        for x, info in known:
            for src, term in info.terms.items():
                if term[0] == "pre" and tuple(term[1].shape) != tuple(out.shape):
                    term = ("pre", term[1].expand(out.shape), term[2])
                elif term[0] == "agg" and tuple(x.shape) != tuple(out.shape):
                    raise Nonlinear("a broadcast per-channel sum")
                _merge(terms, src, _scale(term, coef.get(id(x), 1.0)) if coef.get(id(x), 1.0) != 1.0 else term)
        return terms
    if name in MUL or name in DIV:
        if len(noisy) != 1 or (name in DIV and noisy[0] is not args[0]) or kwargs.get("rounding_mode"):
            raise Nonlinear("a product of noisy tensors")
        other = args[1] if noisy[0] is args[0] else args[0]
        if isinstance(other, torch.Tensor):
            other = other.detach()
        c = 1.0 / other if name in DIV else other
        return {s: _scale(t, c) for s, t in known[0][1].terms.items()} if known else {}
    if name in ("neg", "__neg__"):
        return dict(known[0][1].terms) if known else {}
    if name in ("cat", "concat", "concatenate"):
        return _cat_terms(torch, args, kwargs, out, info_of)
    if name in MOVE or name in POOL or name in WEIGHT:
        if len(noisy) != 1 or noisy[0] is not args[0]:
            raise Nonlinear(f"{name} with noise outside its input")
        terms = {}
        for src, term in (known[0][1].terms.items() if known else ()):
            terms[src] = _moved(torch, name, term, args, kwargs, out)
        return terms
    raise Nonlinear(name)


def _moved(torch, name, term, args, kwargs, out):
    if term[0] != "pre":
        raise Nonlinear(f"{name} of a per-channel sum")
    A, eps = term[1], term[2]
    kind = eps_kind(A, eps)
    if name in WEIGHT:
        weight = _arg(args, kwargs, 1, "weight", None)
        names = ("stride", "padding", "dilation", "groups")
        rest = tuple(_arg(args, kwargs, 3 + i, n, d) for i, (n, d) in enumerate(zip(names, (1, 0, 1, 1))))
        return weight_terms(torch, name, A, eps, weight, rest if name != "linear" else ())
    func = getattr(torch.Tensor, name, None) if name not in POOL or name in ("mean", "expand", "expand_as") else \
        getattr(torch.nn.functional, name)
    if func is None:
        raise Nonlinear(name)
    if kind == "sample" or (kind == "element" and name in MOVE):
        B = func(A, *args[1:], **kwargs)
        if tuple(B.shape) != tuple(out.shape):
            raise Nonlinear(name)
        return ("pre", B, tuple(B.shape) if kind == "element" else (B.shape[0],) + (1,) * (B.dim() - 1))
    raise Nonlinear(f"{name} of {kind} noise")


def _cat_terms(torch, args, kwargs, out, info_of):
    tensors = _arg(args, kwargs, 0, "tensors", ())
    dim = _arg(args, kwargs, 1, "dim", 0)
    if out.dim() < 2 or dim % out.dim() != 1:
        raise Nonlinear("concatenation along an axis other than the channels")
    C, offset, terms = out.shape[1], 0, {}
    for x in tensors:
        info = info_of(x) if isinstance(x, torch.Tensor) else None
        for src, term in (info.terms.items() if info is not None and info.terms is not None else ()):
            if src in terms:
                raise Nonlinear("one noise source in two concatenated parts")
            t, tbar = aggregate(term[1], term[2]) if term[0] == "pre" else term[1:]
            T, Tb = np.zeros(C), np.zeros(C)
            T[offset:offset + len(t)], Tb[offset:offset + len(t)] = t, tbar
            terms[src] = ("agg", T, Tb)
        offset += x.shape[1]
    return terms


def _noise_value(torch, name, func, args, kwargs, linearize):
    """Run (or, linearized, replace by its mean) one noise operation: (output, keep, term kind or None)."""
    if name in DROPOUTS:
        x, p = args[0], float(_arg(args, kwargs, 1, "p", 0.5))
        training = bool(_arg(args, kwargs, 2, "training", True))
        if not training or p == 0.0:
            return None
        keep, kind = 1.0 - p, DROPOUTS[name]
        inplace = bool(_arg(args, kwargs, 3, "inplace", False))
        if not linearize:
            return func(*args, **kwargs), keep, None
        out = x if inplace else x.clone()
        if kind == "alpha" or keep <= 0.0:
            return out, keep, None
        A = x.detach() * math.sqrt(p / keep)
        eps = tuple(A.shape) if kind == "element" else tuple(A.shape[:2]) + (1,) * (A.dim() - 2)
        return out, keep, ("pre", A, eps)
    out = func(*args, **kwargs)
    if not linearize:
        return out, None, None
    if name.startswith("bernoulli"):
        prob = _arg(args, kwargs, 1, "p", None)
        prob = args[0] if prob is None and name == "bernoulli" and not kwargs.get("p") else prob
        prob = 0.5 if prob is None else prob
        mean = torch.as_tensor(prob, dtype=out.dtype).expand(out.shape).clone()
        sd = (mean * (1 - mean)).sqrt()
    elif name.startswith("rand"):
        normal = name.startswith("randn")
        mean, sd = torch.full_like(out, 0.0 if normal else 0.5), torch.full_like(out, 1.0 if normal else 12 ** -0.5)
    elif name == "uniform_":
        a, b = float(_arg(args, kwargs, 1, "from", 0.0)), float(_arg(args, kwargs, 2, "to", 1.0))
        mean, sd = torch.full_like(out, (a + b) / 2), torch.full_like(out, (b - a) / 12 ** 0.5)
    else:
        m, s = float(_arg(args, kwargs, 1, "mean", 0.0)), float(_arg(args, kwargs, 2, "std", 1.0))
        mean, sd = torch.full_like(out, m), torch.full_like(out, s)
    keep = float(mean.flatten()[0]) if name.startswith("bernoulli") and mean.numel() else None
    with torch.no_grad():
        out.copy_(mean)  # in-place or fresh: the mean stands in for the draw
    return out, keep, ("pre", sd, tuple(out.shape))


class TracerLogic:
    """The tracer's state and methods; :func:`make_tracer` mixes it with ``TorchFunctionMode``."""

    def __init__(self, torch, model, bns, linearize):
        super().__init__()
        self.torch, self.bns, self.linearize, self.model = torch, bns, linearize, model
        self.names = {id(m): n for n, m in model.named_modules()}
        self.kinds = {id(m): type(m).__name__ for m in model.modules()}
        self.ops, self.keys, self.info, self.stack, self.at_bn = [], {}, {}, [], {n: [] for n, _ in bns}
        self.order, self.eval_pass = [], False
        self._counts, self._handles = {}, []

    def info_of(self, t):
        entry = self.info.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else None

    def start(self, eval_pass=False):
        """Before each forward pass."""
        self.info, self.stack, self._counts, self.eval_pass = {}, [], {}, eval_pass

    def _source(self, name, keep):
        mod = self.stack[-1] if self.stack else None
        where = self.names.get(id(mod), "") if mod is not None else ""
        op = f"F.{name}" if name in DROPOUTS else (f"Tensor.{name}" if name.endswith("_") else f"torch.{name}")
        n = self._counts[(where, op)] = self._counts.get((where, op), 0) + 1
        key = (where, op, n)
        if key not in self.keys:
            self.keys[key] = len(self.ops)
            self.ops.append(NoiseOp(op, where, self.kinds.get(id(mod), ""), keep))
        src = self.keys[key]
        self.ops[src].in_eval |= self.eval_pass
        return src

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (name in DROPOUTS or name in GATES) and getattr(func, "__module__", "") != "torch.nn.init":
            res = _noise_value(self.torch, name, func, args, kwargs, self.linearize)
            if res is not None:
                out, keep, term = res
                src = self._source(name, keep)
                base = self.info_of(args[0]) if args and isinstance(args[0], self.torch.Tensor) else None
                terms = {} if base is None or base.terms is None else dict(base.terms)
                if term is not None:
                    terms[src] = term
                ok = term is not None and (base is None or not base.sources)
                self.info[id(out)] = (out, Info(frozenset({src}) | (base.sources if base else frozenset()),
                                                terms if term is not None else None, ok))
                return out
        out = func(*args, **kwargs)
        if isinstance(out, self.torch.Tensor) and self.info:
            self._propagate(name, args, kwargs, out)
        return out

    def _propagate(self, name, args, kwargs, out):
        noisy = [a for a in _flat((args, kwargs)) if isinstance(a, self.torch.Tensor) and self.info_of(a) is not None]
        if not noisy:
            return
        ins = [self.info_of(a) for a in noisy]
        sources = frozenset().union(*(i.sources for i in ins))
        try:
            terms = linear_terms(self.torch, name, args, kwargs, out, self.info_of, noisy)
            terms = terms if len(terms) <= MAX_TERMS else None
        except Nonlinear:
            terms = None
        exact = terms is not None and all(i.exact and i.terms is not None for i in ins)
        self.info[id(out)] = (out, Info(sources, terms, exact))

    def _bn_input(self, name, x):
        if name not in self.order:
            self.order.append(name)
        info = self.info_of(x)
        if info is None:
            self.at_bn[name].append((frozenset(), None, None, True, ""))
            return
        t = tbar = None
        why = "the path from the noise is not linear"
        if info.terms:
            try:
                parts = [aggregate(term[1], term[2]) if term[0] == "pre" else term[1:]
                         for term in info.terms.values()]
                t, tbar = sum(p[0] for p in parts), sum(p[1] for p in parts)
                why = ""
            except Nonlinear as e:
                why = str(e)
        self.at_bn[name].append((info.sources, t, tbar, info.exact, why))

    def __enter__(self):
        bn_ids = {id(m): n for n, m in self.bns}

        def pre(mod, inputs):
            self.stack.append(mod)
            if id(mod) in bn_ids and inputs and isinstance(inputs[0], self.torch.Tensor):
                self._bn_input(bn_ids[id(mod)], inputs[0])

        def post(mod, inputs, output):
            if self.stack and self.stack[-1] is mod:
                self.stack.pop()

        for m in self.model.modules():
            self._handles.append(m.register_forward_pre_hook(pre))
            self._handles.append(m.register_forward_hook(post, always_call=True))
        return super().__enter__()

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        self.info = {}
        return super().__exit__(*exc)


def make_tracer(torch, model, bns, linearize):
    """A context manager tracing one forward pass at a time: see the module docstring.

    Parameters
    ----------
    bns : list of (name, module)
        The BN layers to report on; each gets ``tracer.at_bn[name]``: a list, one entry per call, of
        ``(sources, t, tbar, exact, why)`` (t, tbar None when there is no prediction).
    linearize : bool
        Noise operations return their mean and carry linear terms (see the module docstring).
    """
    from torch.overrides import TorchFunctionMode

    cls = type("Tracer", (TracerLogic, TorchFunctionMode), {})
    return cls(torch, model, bns, linearize)
