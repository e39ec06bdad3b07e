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
    ``z > z*``; confirmed when the error is within the tolerance; and
    ``inconclusive`` when the error is beyond the tolerance but not
    significantly so (never "confirmed" at 120% of the tolerance).
measurement
    a quantity reported with its MCSE and no claim attached: verdict ``measured``.
    Its ``closed_form`` is a *reference* value (or None when there is none).
effect
    a signed effect the document claims, oriented so that positive is the
    claimed direction (e.g. test MSE with dropout minus without, paired):
    ``z = estimate / MCSE``; ``holds`` when ``z > z*``, ``contradicted`` when
    ``z < −z*``, ``undecided`` when ``|z|`` is beyond the threshold of the test
    alone but not beyond ``z*`` (significant alone, not after the correction),
    else ``no detectable effect`` (smaller than the resolution).
equivalence
    the claim that an effect stays below a stated ``margin`` (e.g. "accuracy
    does not drop by more than one point"): ``z = (estimate − margin) / MCSE``;
    ``holds`` when ``z < −z*``, ``contradicted`` when ``z > z*``, else
    ``undecided``. One-sided: an improvement never contradicts it.
derivation
    one step of a derivation, decided symbolically (no noise): the verdict is
    the checker's ``proven``, ``false`` or ``undecided`` (``outcome``).

Effects, equivalences and derivations are findings about the document, not
self-tests of the simulator: every verdict of theirs is acceptable, and the
claim-level outcome (:mod:`simulator.theory.claims`) reads them.

The threshold ``z*`` controls the family-wise error rate over a family of
checks (Bonferroni): ``z* = Φ⁻¹(1 − α / (2 m))``. The self-tests of a run form
one family (in ``simulate``, one per experiment at α / E); the findings about the
document (effects, equivalences) form one family per sub-claim, at α
(:func:`simulator.runs.simulate.judge_all`). A check can only detect a
deviation larger than its *resolution*, about ``(z* + 1.3) · MCSE`` (90% power).
"""
import math
from dataclasses import dataclass, field, fields

from scipy.special import ndtr, ndtri, stdtr, stdtrit  # what scipy.stats' norm and t call, without its import time

KINDS = ("exact", "erratum", "enumeration", "inequality", "approximation", "measurement", "effect", "equivalence",
         "derivation")
FINDINGS = ("effect", "equivalence", "derivation")
ENUM_RTOL = 1e-9
# Relative size below which an MCSE counts as zero: the estimate is then exact
# arithmetic (e.g. p = 1, no randomness left) and is compared at ENUM_RTOL.
_ZERO_MCSE = 1e-13
_POWER_Z = 1.2816  # one-sided 90% power


def z_threshold(alpha, m):
    """Two-sided Bonferroni threshold for ``m`` checks at family-wise level ``alpha``."""
    return float(-ndtri(alpha / (2 * max(int(m), 1))))


@dataclass(frozen=True)
class Facts:
    """What a check is about, set where the check is made (never parsed back from its name).

    A row carries them as ``"facts"`` (:meth:`row`): only those that apply, ``subclaim`` left out (the row
    has its own ``subclaim`` key). Figures and sub-claims read them.

    Attributes
    ----------
    subclaim : str or None
        The sub-claim the check tests (a key of :data:`simulator.theory.claims.CLAIMS`); None: the
        experiment's claim.
    quantity : str or None
        What is measured: the stem of the check's name (``"reg"``, ``"shift"``, ``"ratio/none"``).
    index : int or None
        1-based component (a weight ``reg[3]``, a minimiser's coordinate).
    layer : int or None
        1-based BN layer (``L3``).
    width : int or None
        Width d of the weighted sum.
    setting : str or None
        The setting the name shows in parentheses: a placement, a noise, an input distribution, a case.
    task : str or None
        The task of a trained network or a frozen chain.
    line : str or None
        The line of the document's derivation that a derivation step checks.
    """

    subclaim: str | None = None
    quantity: str | None = None
    index: int | None = None
    layer: int | None = None
    width: int | None = None
    setting: str | None = None
    task: str | None = None
    line: str | None = None

    def row(self):
        """The facts a check row carries: those that are set, except ``subclaim``."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "subclaim" and getattr(self, f.name) is not None}


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
    truth : float or None
        For an erratum: the corrected value (to tell an underpowered check).
    margin : float
        For an equivalence: the largest effect the claim allows.
    outcome : str or None
        For a derivation: the symbolic checker's verdict.
    reference : bool
        For a measurement: ``closed_form`` is a reference value worth printing (e.g. a prediction
        it is compared with); otherwise a measurement's ``closed_form`` is dropped from the output.
    dof : int
        For an effect or equivalence estimated from few independent runs: the degrees of freedom of
        its MCSE (runs − 1). Its t statistic is then mapped to the normal z of the same tail
        probability, so that z* keeps its family-wise meaning; 0 means normal.
    degenerate : str or None
        Why this sampled check has no estimable MCSE (e.g. no gate was kept): it is then ``inconclusive``,
        never refuted or confirmed.
    scale : float
        Size of the quantity being checked, where the closed form itself can be
        near zero (e.g. the largest component of a vector): exact comparisons
        are relative to ``max(|closed_form|, scale)``.
    samples : int or None
        The check's own sample count where it differs from its experiment's (a committed map cell's runs).
    facts : Facts
        What the check is about (sub-claim, quantity, index, layer, width, setting, task); a dict (as
        :func:`dataclasses.asdict` writes it in a checkpoint) is turned back into :class:`Facts`.
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
    margin: float = 0.0
    outcome: str | None = None
    reference: bool = False
    dof: int = 0
    degenerate: str | None = None
    facts: Facts = field(default_factory=Facts)
    samples: int | None = None

    def __post_init__(self):
        if isinstance(self.facts, dict):
            object.__setattr__(self, "facts", Facts(**self.facts))


@dataclass(frozen=True)
class Judged:
    """A check with its z-score, resolution and verdict."""

    z: float | None
    resolution: float
    rel_error: float | None
    verdict: str


def _scale(x):
    return max(abs(x), 1e-300)


def judge(c, zstar, zalone=None):
    """Judge a :class:`Check` at threshold ``zstar``; returns a :class:`Judged`.

    ``zalone`` is the threshold of the check tested alone (no correction for its family): an effect
    beyond it but within ``zstar`` is ``undecided`` (significant alone, not after the correction), never
    "no detectable effect".
    """
    diff = c.estimate - c.closed_form
    rel = abs(diff) / _scale(c.closed_form) if c.closed_form != 0 else None
    size = max(abs(c.closed_form), c.scale)
    noiseless = c.mcse <= _ZERO_MCSE * max(1.0, abs(c.closed_form), abs(c.estimate))
    res = (zstar + _POWER_Z) * c.mcse
    if c.kind == "measurement":
        return Judged(None, res, rel, "measured")
    if c.degenerate and c.kind != "derivation" and (c.kind != "enumeration" or not math.isfinite(c.estimate)):
        return Judged(None, math.inf, None, "undecided" if c.kind in FINDINGS else "inconclusive")
    if c.kind == "derivation":
        return Judged(None, 0.0, None, c.outcome or "undecided")
    if c.kind in ("effect", "equivalence"):
        offset = c.margin if c.kind == "equivalence" else 0.0
        if noiseless and c.dof and c.params.get("p", 1.0) < 1:
            # Runs that agree exactly although their noise differs: a zero standard error is not estimable.
            return Judged(None, math.inf, None, "undecided")
        if noiseless:
            z = 0.0 if c.estimate == offset else math.copysign(math.inf, c.estimate - offset)
        else:
            z = (c.estimate - offset) / c.mcse
            if c.dof:
                # Student's t with dof degrees of freedom → the normal z with the same tail.
                z = math.copysign(float(-ndtri(stdtr(c.dof, -abs(z)))), z)
                res = (float(-stdtrit(c.dof, ndtr(-zstar))) + _POWER_Z) * c.mcse
        if c.kind == "effect":
            alone = zalone is not None and abs(z) > zalone
            verdict = ("holds" if z > zstar else "contradicted" if z < -zstar else
                       "undecided" if alone else "no detectable effect")
        else:
            verdict = "holds" if z < -zstar else "contradicted" if z > zstar else "undecided"
        return Judged(z, res, None, verdict)
    if c.kind == "approximation":
        allowed = c.tolerance * abs(c.closed_form)
        excess = abs(diff) - allowed
        if noiseless:
            return Judged(None, allowed, rel, "refuted" if excess > ENUM_RTOL * size else "confirmed")
        zex = excess / c.mcse
        verdict = "refuted" if zex > zstar else "confirmed" if excess <= 0 else "inconclusive"
        return Judged(zex, allowed + res, rel, verdict)
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


FINDING_VERDICTS = {"effect": ("holds", "contradicted", "no detectable effect", "undecided"),
                    "equivalence": ("holds", "contradicted", "undecided"),
                    "derivation": ("proven", "false", "undecided")}


def expected(kind):
    """The verdict a correct simulator should reach for a check of ``kind`` (a finding: any of its verdicts)."""
    if kind in FINDING_VERDICTS:
        return " / ".join(FINDING_VERDICTS[kind])
    return {"erratum": "refuted", "measurement": "measured"}.get(kind, "confirmed")


def acceptable(kind):
    """Verdicts that do not count as a failure of the simulator.

    The expected one; ``inconclusive`` too for an erratum or an approximation
    (an underpowered check, counted as such), and for any check of a run too small to estimate its
    MCSE (a row with a ``reason``); any verdict of a finding. ``kind`` is a kind, or a check's row.
    """
    if isinstance(kind, dict):
        extra = {"inconclusive"} if kind.get("reason") else set()
        return acceptable(kind["kind"]) | extra
    if kind in FINDING_VERDICTS:
        return set(FINDING_VERDICTS[kind])
    return {expected(kind), "inconclusive"} if kind in ("erratum", "approximation") else {expected(kind)}
