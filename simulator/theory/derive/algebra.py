"""Expectation algebra: E and Var over polynomials in independent random symbols.

A derivation of the document takes expectations of polynomials in random gates
(``δ_i ~ Bernoulli(p_i)``) and inputs (``h`` with mean μ_h and variance σ_h²).
Such an expectation follows from two rules only, linearity and independence::

    E[Σ_k c_k Π_j X_j^{e_kj}] = Σ_k c_k Π_groups E[Π_{j ∈ group} X_j^{e_kj}]

where the coefficients ``c_k`` hold no random symbol and the random symbols fall
into mutually independent *sources*; each source knows the joint moments of its
own symbols (``E[δ^k] = p`` for k ≥ 1; ``E[h] = μ``, ``E[h²] = μ² + σ²``; equal
correlation ρ within a group, …). ``Var(X) = E[X²] − E[X]²``. A moment a source
does not know (a third moment of an input given only its mean and variance, a
random symbol under a square root) raises :class:`MomentUnknown`: the step is then
undecided, never guessed.

Each source can also *realize* itself as a finite discrete distribution with the
same moments (a Bernoulli gate as {0, 1}; an input as three random points; a
uniform as Gauss–Legendre nodes; an equally correlated group through shared and
own Rademacher latents), so that an expectation can be computed a second way, by
enumerating outcomes with numbers: the numeric cross-check of the engine.
"""
import itertools
import math

import numpy as np
import sympy as sp


class Expectation(sp.Function):
    """``E[X]``, left unevaluated until the checker expands it."""

    nargs = 1

    def _sympystr(self, printer):
        return f"E({printer.doprint(self.args[0])})"

    def _latex(self, printer):
        return rf"\mathbb{{E}}\left[{printer.doprint(self.args[0])}\right]"


class Variance(sp.Function):
    """``Var(X) = E[X²] − E[X]²``, left unevaluated until the checker expands it."""

    nargs = 1

    def _sympystr(self, printer):
        return f"Var({printer.doprint(self.args[0])})"

    def _latex(self, printer):
        return rf"\operatorname{{Var}}\left({printer.doprint(self.args[0])}\right)"


class At(sp.Function):
    """``At(f, (w_1, …), (w*_1, …))``: f at w = w*, left unevaluated.

    SymPy's own ``Subs`` prints its arguments to canonicalize them, which takes
    seconds when w* is a large rational expression.
    """

    nargs = 3

    def doit(self, **hints):
        f, names, point = self.args
        return f.doit(**hints).xreplace(dict(zip(names, point)))

    def _sympystr(self, printer):
        f, names, point = self.args
        return f"({printer.doprint(f)})|{printer.doprint(names)}={printer.doprint(point)}"


E = Expectation
Var = Variance


class MomentUnknown(Exception):
    """A moment the stated assumptions do not determine."""


class Source:
    """A group of random symbols, independent of every other source.

    Subclasses give :meth:`moment` (the joint moment of the group's symbols at
    integer exponents) and :meth:`realize` (a finite distribution with the same
    moments, for the numeric cross-check).
    """

    symbols = ()
    params = ()  # the non-random expressions the distribution depends on (p, μ, …)

    def moment(self, exps):
        """``E[Π_j X_j^{exps[j]}]`` over this source's symbols; raises :class:`MomentUnknown`."""
        raise NotImplementedError

    def realize(self, rng, values):
        """Outcomes ``ndarray of shape (K, len(symbols))`` and probabilities ``ndarray of shape (K,)``.

        ``values`` maps the non-random symbols (p, μ, …) to floats.
        """
        raise NotImplementedError


class Bernoulli(Source):
    """Independent gates ``δ_k ~ Bernoulli(p_k)``: ``E[δ^k] = p`` for every k ≥ 1."""

    def __init__(self, symbols, probs):
        self.symbols = tuple(symbols)
        self.probs = tuple(probs)
        self.params = self.probs

    def moment(self, exps):
        return sp.Mul(*[q for q, e in zip(self.probs, exps) if e > 0])

    def realize(self, rng, values):
        ps = [float(sp.sympify(q).xreplace(values)) for q in self.probs]
        rows = np.array(list(itertools.product((0.0, 1.0), repeat=len(ps))))
        prob = np.prod(np.where(rows == 1.0, ps, 1.0 - np.array(ps)), axis=1)
        return rows, prob


class IID(Source):
    """Independent copies of one distribution known by its mean and variance only.

    Moments up to order 2 per symbol: ``E[X] = mean``, ``E[X²] = mean² + var``.
    The realization is one random three-point distribution, standardized to the
    given mean and variance, shared by every copy.
    """

    def __init__(self, symbols, mean, var):
        self.symbols = tuple(symbols)
        self.mean, self.var = mean, var
        self.params = (mean, var)

    def moment(self, exps):
        known = {0: sp.Integer(1), 1: self.mean, 2: self.mean ** 2 + self.var}
        if any(e not in known for e in exps):
            raise MomentUnknown(f"moment of order > 2 of {', '.join(map(str, self.symbols))}")
        return sp.Mul(*[known[e] for e in exps])

    def realize(self, rng, values):
        mean = float(sp.sympify(self.mean).xreplace(values))
        sd = math.sqrt(float(sp.sympify(self.var).xreplace(values)))
        points = rng.normal(size=3)
        weights = rng.dirichlet(np.ones(3))
        mu = weights @ points
        z = (points - mu) / math.sqrt(weights @ (points - mu) ** 2)
        support = mean + sd * z
        rows = np.array(list(itertools.product(support, repeat=len(self.symbols))))
        prob = np.prod(np.array(list(itertools.product(weights, repeat=len(self.symbols)))), axis=1)
        return rows, prob


class Uniform(Source):
    """``r ~ U(−β, β)``: odd moments 0, ``E[r^{2k}] = β^{2k}/(2k+1)``.

    Realized by 4-point Gauss–Legendre nodes, exact to order 7.
    """

    def __init__(self, symbol, half_width):
        self.symbols = (symbol,)
        self.half_width = half_width
        self.params = (half_width,)

    def moment(self, exps):
        (k,) = exps
        return sp.Integer(0) if k % 2 else self.half_width ** k / (k + 1)

    def realize(self, rng, values):
        beta = float(sp.sympify(self.half_width).xreplace(values))
        nodes, weights = np.polynomial.legendre.leggauss(4)
        return (beta * nodes)[:, None], weights / 2


class EquiCorrelated(Source):
    """``x_1 … x_d`` with mean c, variance v and equal pairwise correlation ρ (moments to order 2).

    Realized as ``x_i = c + √v (√ρ z_0 + √(1−ρ) z_i)`` with independent Rademacher z.
    """

    def __init__(self, symbols, mean, var, rho):
        self.symbols = tuple(symbols)
        self.mean, self.var, self.rho = mean, var, rho
        self.params = (mean, var, rho)

    def moment(self, exps):
        order = sum(exps)
        if order == 0:
            return sp.Integer(1)
        if order == 1:
            return self.mean
        if order == 2:
            return self.mean ** 2 + self.var * (1 if max(exps) == 2 else self.rho)
        raise MomentUnknown(f"moment of order {order} of {', '.join(map(str, self.symbols))}")

    def realize(self, rng, values):
        c, v, rho = (float(sp.sympify(q).xreplace(values)) for q in (self.mean, self.var, self.rho))
        d = len(self.symbols)
        z = np.array(list(itertools.product((-1.0, 1.0), repeat=d + 1)))
        rows = c + math.sqrt(v) * (math.sqrt(rho) * z[:, :1] + math.sqrt(1 - rho) * z[:, 1:])
        return rows, np.full(len(z), 0.5 ** (d + 1))


def expect(expr, sources):
    """``E[expr]`` by linearity and independence over ``sources``.

    Parameters
    ----------
    expr : sympy.Expr
        Free of :class:`Expectation` nodes. Symbols of no source count as constants.
    sources : sequence of Source

    Returns
    -------
    sympy.Expr

    Raises
    ------
    MomentUnknown
        When a random symbol enters other than as a polynomial, or a source
        lacks the moment.
    """
    where = {s: (k, j) for k, src in enumerate(sources) for j, s in enumerate(src.symbols)}
    if not expr.free_symbols & where.keys():
        return expr
    total = []
    for term in sp.Add.make_args(sp.expand(expr)):
        exps = [[0] * len(src.symbols) for src in sources]
        const = []
        for factor in sp.Mul.make_args(term):
            base, e = factor.as_base_exp()
            if base in where:
                if not (e.is_Integer and e > 0):
                    raise MomentUnknown(f"{factor} is not a polynomial in {base}")
                k, j = where[base]
                exps[k][j] += int(e)
            elif factor.free_symbols & where.keys():
                raise MomentUnknown(f"{factor} is not a polynomial in the random symbols")
            else:
                const.append(factor)
        moments = [src.moment(tuple(x)) for src, x in zip(sources, exps) if any(x)]
        total.append(sp.Mul(*const, *moments))
    return sp.Add(*total)


def evaluate(expr, sources):
    """Expand every E, Var, derivative and substitution in ``expr``, innermost first."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: evaluate(e, sources))
    if expr.is_Atom:
        return expr
    if isinstance(expr, Expectation):
        return expect(evaluate(expr.args[0], sources), sources)
    if isinstance(expr, Variance):
        x = evaluate(expr.args[0], sources)
        return expect(x ** 2, sources) - expect(x, sources) ** 2
    if isinstance(expr, sp.Derivative):
        return sp.diff(evaluate(expr.expr, sources), *expr.variables)
    if isinstance(expr, At):
        f, names, point = expr.args
        return evaluate(f, sources).xreplace(dict(zip(names, point)))
    return expr.func(*[evaluate(a, sources) for a in expr.args])


class Enumerator:
    """Numeric values of expressions with E and Var, by enumerating realized sources.

    Parameters
    ----------
    sources : sequence of Source
    values : dict
        Float value of every other symbol (random symbols outside any E included:
        an equality between random quantities must hold at any value).
    rng : numpy.random.Generator
        Draws each source's realization once.
    """

    def __init__(self, sources, values, rng):
        self.sources = list(sources)
        self.values = dict(values)
        self.realized = [src.realize(rng, self.values) for src in self.sources]

    def value(self, expr):
        """``expr`` as a float (a list of floats for a matrix)."""
        if isinstance(expr, sp.MatrixBase):
            return [self.value(e) for e in expr]
        return complex(sp.sympify(self._num(expr)).xreplace(self.values).evalf()).real

    def _num(self, expr):
        if not expr.has(Expectation, Variance, sp.Derivative, At):
            return expr
        if isinstance(expr, Expectation):
            return sp.Float(self._enumerate(expr.args[0]))
        if isinstance(expr, Variance):
            x = expr.args[0]
            return sp.Float(self._enumerate(x ** 2) - self._enumerate(x) ** 2)
        if isinstance(expr, (sp.Derivative, At)):
            inner = _inward(expr)
            if inner.has(Expectation, Variance) and not isinstance(inner, Expectation):
                raise MomentUnknown(f"cannot move {type(expr).__name__} inside {expr.expr}")
            return self._num(inner.doit() if not isinstance(inner, Expectation) else inner)
        return expr.func(*[self._num(a) for a in expr.args])

    def _enumerate(self, arg):
        arg = self._num(arg).doit()
        used = [k for k, src in enumerate(self.sources) if set(src.symbols) & arg.free_symbols]
        rand = [s for k in used for s in self.sources[k].symbols]
        fixed = {s: v for s, v in self.values.items() if s not in set(rand)}
        arg = arg.xreplace(fixed)
        if not used:
            return complex(arg.evalf()).real
        columns, prob = [], np.ones(1)
        for k in used:
            rows, p = self.realized[k]
            columns = [np.repeat(c, len(p)) for c in columns] + [np.tile(rows[:, j], len(prob))
                                                                 for j in range(rows.shape[1])]
            prob = np.repeat(prob, len(p)) * np.tile(p, len(prob))
        f = sp.lambdify(rand, arg, "numpy")
        vals = np.broadcast_to(np.asarray(f(*columns), dtype=float), prob.shape)
        return float(prob @ vals)


def _inward(expr):
    """Move derivatives and substitutions inside an expectation: ``∂E[f]/∂w = E[∂f/∂w]``.

    E over finitely many outcomes is a finite weighted sum, so it commutes with
    ∂/∂w and with ``w ← w*`` when w* is not random.
    """
    if not isinstance(expr, (sp.Derivative, At)):
        return expr
    inner = _inward(expr.args[0])
    if isinstance(inner, Expectation):
        return Expectation(expr.func(inner.args[0], *expr.args[1:]))
    return expr.func(inner, *expr.args[1:])
