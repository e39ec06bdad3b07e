"""Numbers as text, the one way every table, headline and page of the package writes them.

A value is written to ``digits`` significant digits (Python's ``g`` format), a missing
one (None) as a dash. Infinity is written ``∞`` / ``−∞`` on the report's page; the
terminal tables keep Python's ``inf`` / ``-inf`` (``symbols=False``), as they always have.
It lives in the bottom layer so that any layer may use it (the claims' headlines in
:mod:`simulator.theory.claims` as well as the tables of :mod:`simulator.present.output`).
"""
import math

MISSING = "—"


def number(x, digits=4, symbols=True):
    """``x`` to ``digits`` significant digits; None as ``—``; infinity as ``∞`` (or ``inf`` without ``symbols``).

    >>> number(3.14159), number(2.0, 6), number(None), number(float("-inf")), number(float("inf"), symbols=False)
    ('3.142', '2', '—', '−∞', 'inf')
    """
    if x is None:
        return MISSING
    if symbols and isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"
