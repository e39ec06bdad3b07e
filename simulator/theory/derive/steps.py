"""A derivation as data: its steps, the assumptions they state, and the chain that builds them.

:mod:`simulator.theory.derive.chains` writes the document's derivations with these;
:mod:`simulator.theory.derive.checker` decides each step.
"""
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Assumption:
    """A stated hypothesis: the random sources it declares and the substitutions it allows."""

    key: str
    text: str
    sources: tuple = ()
    subs: tuple = ()  # pairs (symbol, expression)


@dataclass(frozen=True)
class Step:
    """One equality of a derivation, as written in the document.

    Attributes
    ----------
    label : str
        Where it stands in the document, e.g. ``"§1, E[∂E_D/∂w_i], line 2"``.
    text, latex : str
        The formula as written (plain Unicode, LaTeX).
    rhs : sympy.Expr or sympy.Matrix
        Right-hand side.
    lhs : sympy.Expr or None
        Left-hand side; None continues the previous step's right-hand side.
    uses : tuple of str
        Keys of the assumptions the step states.
    given : bool
        A definition: ``lhs := rhs`` (``lhs`` a symbol or a matrix of symbols).
    sized : bool
        The step involves a sum over n terms: it is checked at every size.
    note : str
    only : callable or None
        ``only(**case)`` is True at the sizes a sized step is checked at, where
        the algebra grows too fast for all of them.
    """

    label: str
    text: str
    latex: str
    rhs: object
    lhs: object = None
    uses: tuple = ()
    given: bool = False
    sized: bool = False
    note: str = ""
    only: Callable | None = None  # for a sized step: the cases it is checked at (default: all)


@dataclass(frozen=True)
class Chain:
    """A derivation as data: ``build(**case)`` returns ``(steps, assumptions, domains)``.

    ``domains`` maps symbols to the interval ``(lo, hi)`` their random numeric
    values are drawn from (probabilities in (0, 1), variances positive); other
    symbols are standard normal. ``cases`` are the sizes tried (one empty case
    when nothing is summed); ``sizes`` describes them for the notes.
    """

    name: str
    claim: str
    title: str
    source: str
    build: Callable
    cases: tuple = ({},)
    sizes: str = ""

    def altered(self, index, rhs=None, uses=None):
        """This chain with step ``index`` changed by ``rhs(old_rhs)`` and/or ``uses(old_uses)``."""
        build = self.build

        def altered_build(**case):
            steps, assumptions, domains = build(**case)
            step = steps[index]
            changes = {}
            if rhs is not None:
                changes["rhs"] = rhs(step.rhs)
            if uses is not None:
                changes["uses"] = tuple(uses(step.uses))
            steps = list(steps)
            steps[index] = dataclasses.replace(step, **changes)
            return steps, assumptions, domains

        return dataclasses.replace(self, build=altered_build)
