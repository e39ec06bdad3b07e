"""Verdicts: how an estimate is judged against a closed form, and what a check could detect.

Kinds
-----
exact
    z-test of the estimate against the closed form; confirmed when ``|z| ≤ z*``.
erratum
    the same z-test against the document's formula *as written*, which the
    project holds to be wrong: the expected outcome is ``refuted``. When the
    formula as written and the corrected one (``truth``) differ by less than
    the check's resolution, the run cannot tell them apart and the verdict is
    ``inconclusive`` (more samples, or parameters where they differ more).
enumeration
    an expectation computed by summing over every mask (no Monte Carlo noise):
    confirmed when the relative error is at most ``ENUM_RTOL``.
inequality
    the estimate is a difference that the claim says is ``≥ 0``: refuted when
    ``z < −z*``.
approximation
    a closed form that is only approximate, with a stated relative tolerance:
    ``z = (|estimate − closed form| − tolerance·|closed form|) / MCSE``, the
    excess over the tolerance in MCSE (negative: within it); refuted when
    ``z > z*``.
measurement
    a quantity reported with its MCSE and no claim attached: verdict ``measured``.

The threshold ``z*`` controls the family-wise error rate over all checks of a
run (Bonferroni): ``z* = Φ⁻¹(1 − α / (2 m))``. A check can only detect a
deviation larger than its *resolution*, about ``(z* + 1.3) · MCSE`` (90% power).
"""
import math
from dataclasses import dataclass, field

from scipy.stats import norm

KINDS = ("exact", "erratum", "enumeration", "inequality", "approximation", "measurement")
ENUM_RTOL = 1e-9
# Relative size below which an MCSE counts as zero: the estimate is then exact
# arithmetic (e.g. p = 1, no randomness left) and is compared at ENUM_RTOL.
_ZERO_MCSE = 1e-13
_POWER_Z = 1.2816  # one-sided 90% power


def z_threshold(alpha, m):
    """Two-sided Bonferroni threshold for ``m`` checks at family-wise level ``alpha``."""
    return float(norm.isf(alpha / (2 * max(int(m), 1))))


@dataclass(frozen=True)
class Check:
    """One measured check, before it is judged.

    Attributes
    ----------
    check : str
        Name of the check inside its experiment.
    kind : str
        One of :data:`KINDS`.
    closed_form : float
        The value the claim predicts (0 for an inequality ``estimate ≥ 0``).
    estimate, mcse : float
        The Monte Carlo estimate and its standard error (0 for enumeration).
    params : dict
        The parameters this check ran with.
    tolerance : float
        Relative tolerance of an approximation.
    formula : str
        The closed form in words or symbols.
    scale : float
        Size of the quantity being checked, where the closed form itself can be
        near zero (e.g. the largest component of a vector): exact comparisons
        are relative to ``max(|closed_form|, scale)``.
    """

    check: str
    kind: str
    closed_form: float
    estimate: float
    mcse: float
    params: dict = field(default_factory=dict)
    tolerance: float = 0.0
    formula: str = ""
    scale: float = 0.0
    truth: float | None = None


@dataclass(frozen=True)
class Judged:
    """A check with its z-score, resolution and verdict."""

    z: float | None
    resolution: float
    rel_error: float | None
    verdict: str


def _scale(x):
    return max(abs(x), 1e-300)


def judge(c, zstar):
    """Judge a :class:`Check` at threshold ``zstar``; returns a :class:`Judged`."""
    diff = c.estimate - c.closed_form
    rel = abs(diff) / _scale(c.closed_form) if c.closed_form != 0 else None
    size = max(abs(c.closed_form), c.scale)
    noiseless = c.mcse <= _ZERO_MCSE * max(1.0, abs(c.closed_form), abs(c.estimate))
    res = (zstar + _POWER_Z) * c.mcse
    if c.kind == "measurement":
        return Judged(None, res, rel, "measured")
    if c.kind == "approximation":
        allowed = c.tolerance * abs(c.closed_form)
        excess = abs(diff) - allowed
        if noiseless:
            return Judged(None, allowed, rel, "refuted" if excess > ENUM_RTOL * size else "confirmed")
        zex = excess / c.mcse
        return Judged(zex, allowed + res, rel, "refuted" if zex > zstar else "confirmed")
    if c.kind == "enumeration" or noiseless:
        # No Monte Carlo noise left: compare as exact arithmetic.
        agree = abs(diff) <= ENUM_RTOL * size
        ok = c.estimate >= -ENUM_RTOL * size if c.kind == "inequality" else agree
        z = None if c.kind == "enumeration" else (0.0 if agree else math.copysign(math.inf, diff))
        return Judged(z, ENUM_RTOL * size, rel, "confirmed" if ok else "refuted")
    z = diff / c.mcse
    if c.kind == "erratum" and abs(z) <= zstar and c.truth is not None and abs(c.closed_form - c.truth) < res:
        return Judged(z, res, rel, "inconclusive")
    if c.kind in ("exact", "erratum"):
        return Judged(z, res, rel, "confirmed" if abs(z) <= zstar else "refuted")
    if c.kind == "inequality":
        return Judged(z, res, rel, "refuted" if z < -zstar else "confirmed")
    raise ValueError(f"unknown kind {c.kind!r}")


def expected(kind):
    """The verdict a correct simulator should reach for a check of ``kind``."""
    return {"erratum": "refuted", "measurement": "measured"}.get(kind, "confirmed")


def acceptable(kind):
    """Verdicts that do not count as a failure: the expected one, and ``inconclusive`` for an erratum."""
    return {expected(kind), "inconclusive"} if kind == "erratum" else {expected(kind)}
