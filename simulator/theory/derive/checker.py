"""The checker: each step of a derivation proven equal to the one before it, or not.

A chain (:mod:`simulator.theory.derive.chains`) is a list of steps ``lhs = rhs``; a step
without its own ``lhs`` continues the previous equality (``… = rhs``), as the
document's ``a = b = c`` does. *Given* steps are definitions (``E_N := …``) and
are substituted into every later step. A step is decided under its own
assumptions only: the random sources they declare feed the expectation algebra
(:mod:`simulator.theory.derive.algebra`) and their substitutions (``w' = p w``) are
applied; everything else is a constant.

Verdicts
--------
proven
    ``lhs − rhs`` cancels to 0 (for a chain over sums: at every size tried).
false
    it does not, and would not under any of the chain's assumptions either;
    the residual is the simplified difference.
needs-assumption
    false under the stated assumptions, proven once an unstated one of the
    chain is added (named in the note).
undecided
    the algebra did not finish within the time limit, lacked a moment, or the
    symbolic and numeric answers disagree.

Every decided step is also evaluated at random numbers (``numpy.random.default_rng``
with a fixed seed), its expectations by enumerating the realized sources: ``numeric``
says whether both sides agreed there.
"""
import functools
import signal
import threading
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ...core.errors import ParameterError
from .algebra import Enumerator, MomentUnknown, evaluate
from .chains import CHAINS
from .steps import Assumption, Chain, Step  # noqa: F401  (the checker's vocabulary, re-exported)

TIMEOUT_S = 3.0
SEED = 20240614
RTOL = 1e-8
STATUSES = ("given", "proven", "false", "undecided", "needs-assumption")
# Worst first: a step is as bad as its worst case.
_RANK = {"false": 0, "needs-assumption": 1, "undecided": 2, "proven": 3}


@dataclass(frozen=True)
class StepResult:
    """The verdict on one step (see the module docstring for ``status``)."""

    label: str
    text: str
    latex: str
    status: str
    residual: str = ""
    numeric: bool | None = None
    assumptions: tuple = ()
    note: str = ""


@dataclass(frozen=True)
class ChainResult:
    """The verdicts on one chain; ``first_false`` is the index of its first false step."""

    name: str
    claim: str
    title: str
    source: str
    steps: list = field(default_factory=list)
    first_false: int | None = None


class _Timeout(BaseException):
    # BaseException: sympy's own ``except Exception`` blocks must not swallow it.
    pass


def _raise_timeout(signum, frame):
    raise _Timeout()


def _limited(fn, seconds):
    """``fn()`` with a wall-clock limit; raises :class:`_Timeout` when it runs past it.

    The limit uses SIGALRM, which only the main thread can receive; elsewhere (or
    when another interval timer is running) ``fn`` runs without a limit.
    """
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        return fn()
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def plain(expr):
    """A sympy expression as one line of plain Unicode (``μ_h − μ_h²``)."""
    text = sp.sstr(expr, order="rev-grlex")  # low degree first: "μ_h − μ_h²"
    for k, sup in (("2", "²"), ("3", "³"), ("4", "⁴")):
        text = text.replace(f"**{k}", sup)
    return text.replace("**", "^").replace("*", "·").replace(" - ", " − ").replace("-", "−")


def _equal(a, b):
    """Whether two rational expressions are identical: ``a_num b_den − b_num a_den`` is the zero polynomial.

    Sparse polynomial arithmetic decides this much faster than ``expand`` or
    ``cancel`` on the difference. Radicals become generators of their own; when
    that hides a zero, ``simplify`` gets a last word.
    """
    diff = a - b
    if not any(e.exp.is_negative or not e.exp.is_Integer for e in diff.atoms(sp.Pow) if not e.base.is_Symbol):
        # Denominators (if any) are single symbols such as 1/p: expand decides, and fast.
        return sp.expand(diff) == 0
    (na, da), (nb, db) = (sp.together(e).as_numer_denom() for e in (a, b))
    cross = na * db - nb * da
    if not cross.free_symbols:
        return sp.expand(cross) == 0
    try:
        # A polynomial in the symbols themselves: decisive either way.
        return sp.Poly(cross, *sorted(cross.free_symbols, key=str)).is_zero
    except sp.PolynomialError:
        try:  # radicals: let them be generators of their own
            if sp.Poly(cross).is_zero:
                return True
        except sp.PolynomialError:
            pass
        except sp.polys.polyerrors.GeneratorsNeeded:
            return sp.expand(cross) == 0
    if not diff.has(sp.Pow):
        return False
    return sp.simplify(diff) == 0


def _residual(diffs, timeout):
    """The differences simplified for display (unsimplified if that runs past ``timeout``)."""
    def simplified():
        out = [sp.cancel(sp.together(d)) for d in diffs]
        return [sp.expand(r) if r.is_polynomial() else sp.factor(r) for r in out]
    try:
        shown = _limited(simplified, timeout)
    except _Timeout:
        shown = diffs
    return plain(shown[0] if len(shown) == 1 else sp.Matrix(shown).T)


class _Case:
    """One size of a chain, built: definitions, assumptions and random numbers."""

    def __init__(self, chain, case):
        self.case = case
        self.steps, assumptions, self.domains = chain.build(**case)
        self.assumptions = {a.key: a for a in assumptions}
        self.defs = {}
        for step in self.steps:
            if step.given:
                if isinstance(step.lhs, sp.MatrixBase):
                    self.defs.update(zip(step.lhs, step.rhs))
                else:
                    self.defs[step.lhs] = step.rhs

    def sides(self, index):
        step = self.steps[index]
        lhs = step.lhs if step.lhs is not None else self.steps[index - 1].rhs
        return lhs, step.rhs

    def prepare(self, expr, keys):
        """Definitions substituted (to a fixed point), then the assumptions' substitutions."""
        for _ in range(20):
            new = expr.xreplace(self.defs)
            if new == expr:
                break
            expr = new
        subs = dict(s for k in keys for s in self.assumptions[k].subs)
        return expr.xreplace(subs) if subs else expr

    def sources(self, keys):
        return [src for k in keys for src in self.assumptions[k].sources]

    def symbolic(self, index, keys):
        """``(is_zero, differences)`` of ``lhs − rhs`` under the assumptions ``keys``.

        ``differences`` are the entries of ``lhs − rhs`` when it is not 0.
        """
        lhs, rhs = (self.prepare(e, keys) for e in self.sides(index))
        sources = self.sources(keys)
        left, right = evaluate(lhs, sources), evaluate(rhs, sources)
        pairs = list(zip(left, right)) if isinstance(left, sp.MatrixBase) else [(left, right)]
        if all(_equal(a, b) for a, b in pairs):
            return True, ""
        return False, [a - b for a, b in pairs]

    def numeric(self, index, keys):
        """Whether both sides agree at random numbers (expectations by enumeration)."""
        rng = np.random.default_rng([SEED, index])
        lhs, rhs = (self.prepare(e, keys) for e in self.sides(index))
        symbols = set()
        for e in (lhs, rhs):
            symbols |= e.free_symbols
        for src in self.sources(self.assumptions):
            symbols |= set(src.symbols)
            for q in src.params:
                symbols |= sp.sympify(q).free_symbols
        values = {}
        for s in sorted(symbols, key=str):
            lo, hi = self.domains.get(s, (None, None))
            values[s] = sp.Float(rng.uniform(lo, hi) if lo is not None else rng.normal())
        try:
            num = Enumerator(self.sources(keys), values, rng)
            a, b = np.atleast_1d(num.value(lhs)), np.atleast_1d(num.value(rhs))
        except MomentUnknown:
            return None
        scale = max(1.0, float(np.max(np.abs(a))), float(np.max(np.abs(b))))
        return bool(np.all(np.abs(a - b) <= RTOL * scale))

    def decide(self, index, timeout, cross_check=True):
        """``(status, residual, numeric, note)`` of step ``index`` in this case.

        A proven step skips the numeric cross-check unless ``cross_check``
        (the checker asks for it at one size only: it costs as much as the proof).
        """
        step = self.steps[index]
        keys = tuple(step.uses)
        try:
            ok, residual = _limited(lambda: self.symbolic(index, keys), timeout)
        except _Timeout:
            return "undecided", "", self.numeric(index, keys), f"simplification ran past {timeout:g} s"
        except MomentUnknown as e:
            return "undecided", "", self.numeric(index, keys), f"moment unknown: {e}"
        if ok:
            return "proven", "", self.numeric(index, keys) if cross_check else None, ""
        numeric = self.numeric(index, keys)
        residual = _residual(residual, timeout)
        if numeric:
            return "undecided", residual, numeric, "no symbolic zero, but both sides agree at random numbers"
        missing = [k for k in self.assumptions if k not in keys]
        if missing:
            try:
                fixable = _limited(lambda: self.symbolic(index, keys + tuple(missing))[0], timeout)
            except (_Timeout, MomentUnknown):
                fixable = False
            if fixable:
                needed = [k for k in missing if self._proves(index, keys + (k,), timeout)] or missing
                texts = "; ".join(self.assumptions[k].text for k in needed)
                return "needs-assumption", residual, numeric, f"needs: {texts}"
        return "false", residual, numeric, ""

    def _proves(self, index, keys, timeout):
        try:
            return _limited(lambda: self.symbolic(index, keys)[0], timeout)
        except (_Timeout, MomentUnknown):
            return False


def _sizes(cases):
    """``(rows, n) = (2, 1), (2, 2)``: the cases tried, for a note."""
    keys = list(cases[0].case)
    if len(keys) == 1:
        return f"{keys[0]} = " + ", ".join(str(c.case[keys[0]]) for c in cases)
    return f"({', '.join(keys)}) = " + ", ".join("(" + ", ".join(str(v) for v in c.case.values()) + ")"
                                                 for c in cases)


def check(chain, timeout=TIMEOUT_S):
    """Check every step of ``chain`` (a :class:`Chain`); uncached, any chain (mutants too).

    Parameters
    ----------
    chain : Chain
    timeout : float
        Seconds allowed to one symbolic decision before it is ``undecided``.

    Returns
    -------
    ChainResult
    """
    cases = [_Case(chain, case) for case in chain.cases]
    first = cases[0]
    results = []
    for index, step in enumerate(first.steps):
        texts = tuple(first.assumptions[k].text for k in step.uses)
        if step.given:
            results.append(StepResult(step.label, step.text, step.latex, "given", "", None, texts, step.note))
            continue
        tried = [c for c in cases if step.only is None or step.only(**c.case)] if step.sized else cases[:1]
        # The numeric cross-check of a proven step runs at the largest size tried.
        verdicts = [(c.decide(index, timeout, cross_check=c is tried[-1]), c.case) for c in tried]
        (status, residual, numeric, note), where = min(verdicts, key=lambda v: _RANK[v[0][0]])
        notes = [step.note] if step.note else []
        if step.sized and chain.sizes:
            if status == "proven":
                notes.append(f"proven for {chain.sizes if len(tried) == len(cases) else _sizes(tried)}")
            else:
                notes.append(f"{status} at " + ", ".join(f"{k} = {v}" for k, v in where.items()))
        if note:
            notes.append(note)
        if status == "proven":
            numeric = verdicts[-1][0][2]
            if step.sized and len(tried) > 1:
                notes.append(f"numeric cross-check at {_sizes(tried[-1:])}")
        results.append(StepResult(step.label, step.text, step.latex, status, residual, numeric, texts,
                                  "; ".join(notes)))
    first_false = next((i for i, r in enumerate(results) if r.status == "false"), None)
    return ChainResult(chain.name, chain.claim, chain.title, chain.source, results, first_false)


@functools.lru_cache(maxsize=None)
def check_chain(name):
    """The verdicts on the chain ``name`` (cached per process).

    Raises
    ------
    ParameterError
        When no chain has that name.
    """
    chains = CHAINS
    if name not in chains:
        raise ParameterError(f"unknown chain '{name}'; valid: {', '.join(chains)}")
    return check(chains[name])


def check_all():
    """The verdicts on every chain, in the order of :data:`CHAINS`."""
    return [check_chain(name) for name in CHAINS]


_OUTCOME = {"proven": "proven", "false": "false", "undecided": "undecided", "needs-assumption": "undecided"}


def derivation_checks(results=None):
    """One ``(claim_id, Check)`` of kind ``"derivation"`` per checked step.

    Parameters
    ----------
    results : list of ChainResult, optional
        Defaults to :func:`check_all`.

    Returns
    -------
    list of (str, simulator.theory.verdict.Check)
    """
    from ..verdict import Check

    out = []
    for r in check_all() if results is None else results:
        for i, s in enumerate(r.steps):
            if s.status == "given":
                continue
            out.append((r.claim, Check(check=f"{r.name}: {s.label}", kind="derivation", closed_form=0.0,
                                       estimate=0.0, mcse=0.0, formula=s.text, outcome=_OUTCOME[s.status],
                                       params={"chain": r.name, "step": i, "residual": s.residual,
                                               "numeric": s.numeric})))
    return out
