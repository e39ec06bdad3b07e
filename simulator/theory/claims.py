"""The document's claims, and the one rule that turns checks into a claim-level outcome.

Every check row names the (sub-)claim it tests (``subclaim``); this module says
what each (sub-)claim states, in plain words and as the document wrote it, and
derives its *outcome* from the rows that test it. The rule (:func:`outcome`),
written once:

- rows that test the claim are those of every kind but ``measurement``;
- a row *supports* it when its verdict is confirmed / holds / proven;
- a row goes *against* it when its verdict is refuted / contradicted (an
  exact identity refuted, an approximation beyond its tolerance, an effect
  significantly the other way, an equivalence margin significantly exceeded);
- a row is *undecided* when its verdict is inconclusive / no detectable effect /
  undecided (the budget could not tell);
- an *erratum* is the document's own formula refuted (kind ``erratum``) or a
  line of its derivation found false (kind ``derivation``).

Then: support and against → ``depends`` (naming where each holds);
against only → ``contradicted``; support next to undecided findings (an
effect, equivalence or derivation the budget could not decide) → ``depends``; support only → ``confirmed, with an
erratum`` if an erratum was found, ``approximately`` if an approximation
tests it (even an undecided one), else ``confirmed``; errata only → ``contradicted``; undecided only
→ ``inconclusive``; nothing but measurements → ``measured``. A claim-level word
never comes from the checks that merely happen to be exact.
"""
from dataclasses import dataclass

from ..core.numbers import number
from .verdict import FINDINGS

HEADLINE_P = 0.5  # the keep probability at which a run over a grid of p quotes its numbers
OUTCOMES = ("confirmed", "confirmed, with an erratum", "approximately", "depends", "contradicted", "inconclusive",
            "measured")
OUTCOME_COLOURS = {"confirmed": "green", "confirmed, with an erratum": "amber", "approximately": "amber",
                   "depends": "amber", "contradicted": "red", "inconclusive": "grey", "measured": "grey"}
SUPPORT = {"confirmed", "holds", "proven"}
AGAINST = {"refuted", "contradicted"}
UNDECIDED = {"inconclusive", "no detectable effect", "undecided"}
# Parameters that name a setting in "holds at …, not at …" (in this order, when they vary).
_SETTING_KEYS = ("task", "placement", "N", "p", "bn", "length", "epochs", "depth", "d", "m", "c", "v", "rho", "dist",
                 "noise")
_ALIASES = {"p": "p_cell"}  # a map cell's own keep probability (its command's p is not the cell's) shows as p


def _value(row, k):
    """The row's value of setting parameter ``k`` (or of its alias), None where it has neither."""
    params = row["params"]
    return params[k] if k in params else params.get(_ALIASES.get(k, k))


@dataclass(frozen=True)
class Claim:
    """One claim of the document, or one of its sub-claims.

    Attributes
    ----------
    id : str
        ``C1`` … ``C6``, or a sub-claim such as ``C6-regression``.
    claim : str
        The claim it belongs to (``C6`` for ``C6-regression``).
    title : str
        A few words.
    statement : str
        What the document claims, in plain English (the project's words).
    as_written : str
        The document's formula exactly as written, where a formula is under test.
    source : str
        Where the document says it (section), and the papers behind it.
    """

    id: str
    claim: str
    title: str
    statement: str
    as_written: str = ""
    source: str = ""


CLAIMS = {c.id: c for c in (
    Claim("C1", "C1", "Dropout acts as a regulariser",
          "For one linear unit trained with squared error, the expected gradient with dropout equals the gradient "
          "of the weight-scaled network (w' = p w) plus an extra term w_i p_i(1−p_i) I_i², so dropout acts like a "
          "regulariser.",
          "E[∂E_D/∂w_i] = ∂E_N/∂w_i + w_i Var(δ_i) I_i² = ∂E_N/∂w_i + w_i p_i(1 − p_i) I_i²",
          "document §1; Baldi & Sadowski 2013"),
    Claim("C2", "C2", "Inverted dropout keeps the mean, changes the variance",
          "Inverted dropout h' = d·h/p (d kept with probability p) leaves a unit's mean unchanged and changes its "
          "variance.",
          "E(h') = μ_h;  Var(h') = E(h'²) − E(h')² = (1/p²) E(d²) E(h²) − μ_h² = (1/p) E(h²) − μ_h",
          "document §1"),
    Claim("C3", "C3", "The variance change shifts the mean after a ReLU",
          "Because dropout changes the variance, the values after a ReLU shift between training (dropout on) and "
          "evaluation (dropout off): after a weighted sum the training-mode mean is larger. (Dropout straight into "
          "a ReLU, with nothing in between, shifts nothing.)",
          "", "document §1; Jensen's inequality"),
    Claim("C3-size", "C3", "How large the ReLU shift is",
          "The project's quantification of C3: the size of the shift, from a Gaussian approximation of the "
          "pre-activation (accurate for wide layers).",
          "", "Wang & Manning 2013 (fast dropout)"),
    Claim("C4", "C4", "What BatchNorm computes",
          "BatchNorm normalises each mini-batch with the batch mean and the biased batch variance, then scales by "
          "γ and shifts by β; at evaluation it uses running statistics (PyTorch's semantics).",
          "μ_B = (1/m) Σ x_i;  σ_B² = (1/m) Σ (x_i − μ_B)²;  x̂_i = (x_i − μ_B)/√(σ_B² + ε);  y_i = γ x̂_i + β",
          "document §2; Ioffe & Szegedy 2015"),
    Claim("C4-eval", "C4", "BatchNorm at evaluation",
          "The project's check of evaluation mode: on data like the training data, BN's output has mean about 0 "
          "and variance about σ²/(σ² + ε); with finite momentum the running statistics stay noisy, so this "
          "holds only approximately.",
          "", "PyTorch BatchNorm1d semantics; docs/theory.md (finite momentum)"),
    Claim("C5", "C5", "Dropout before BatchNorm: the variance shift",
          "With dropout before BatchNorm, BN's running variance is learned with dropout on, so at evaluation "
          "(dropout off) the variance BN sees differs from the one it normalises by: the two modes give "
          "different variances on the validation set.",
          "", "document's conclusion; Li et al., CVPR 2019"),
    Claim("C5-eval", "C5", "How large the shift is in BatchNorm's output",
          "The project's quantification of C5: BN trained with dropout and evaluated without it gives an output "
          "variance of about Δ·γ² instead of γ² (Δ = Var_test/Var_train), within a tolerance for the noise of "
          "finite-momentum running statistics.",
          "", "Li et al., CVPR 2019; docs/theory.md"),
    Claim("C6-regression", "C6", "Dropout hurts regression",
          "Regression is judged by its loss, so dropout does not suit it: with dropout the test error of a "
          "regression gets worse.",
          "", "document's conclusion (a heuristic); 'The magic of NO dropout'"),
    Claim("C6-classification", "C6", "Dropout barely affects classification",
          "Classification only needs the right class, so dropout barely affects it: test accuracy does not drop "
          "by more than a small margin.",
          "", "document's conclusion (a heuristic)"),
    Claim("C6-shift", "C6", "The variance shift costs a loss, not an argmax",
          "The document's mechanism for C6, measured apart from regularisation: the same trained weights "
          "(dropout before BN) evaluated with BN as trained (shifted) and with BN recalibrated with dropout off "
          "(unshifted). The document's reasoning predicts that the shift raises the test MSE of a regression and "
          "the cross-entropy of a classifier, while its accuracy stays within the margin (an argmax barely moves).",
          "", "document's conclusion; Li et al., CVPR 2019 (recalibration); docs/theory.md"),
    Claim("C6-chain", "C6", "A frozen random chain: a head fitted in train mode, evaluated in eval mode",
          "The project's measurement on untrained Linear → BN → ReLU chains (task-impact): the eval-mode error of "
          "a least-squares head fitted on train-mode features, relative to no dropout, per placement. Its units "
          "are those of the chain, not of a trained network, so it is reported apart from C6-regression and "
          "C6-classification.",
          "", "docs/theory.md"),
    Claim("C6-ridge", "C6", "Dropout on a linear regression is a ridge penalty",
          "The project's exact anchor for C6: for a linear regression, inverted dropout on the inputs adds, on "
          "average, the penalty ((1−p)/p) wᵀ diag(XᵀX) w, so its minimiser is a ridge-like estimate.",
          "", "Wager, Wang & Liang 2013; Srivastava et al. 2014 §9.1"),
)}


def _tested(rows):
    return [r for r in rows if r["kind"] != "measurement"]


def _is_erratum(r):
    return ((r["kind"] == "erratum" and r["verdict"] == "refuted")
            or (r["kind"] == "derivation" and r["verdict"] == "false"))


def outcome(rows):
    """The outcome of one (sub-)claim from the rows that test it (the rule of the module docstring).

    Parameters
    ----------
    rows : list of dict
        Check rows (the JSON contract) of one sub-claim.

    Returns
    -------
    str
        One of :data:`OUTCOMES`.
    """
    tested = _tested(rows)
    if not tested:
        return "measured"
    errata = [r for r in tested if _is_erratum(r)]
    plain = [r for r in tested if r["kind"] not in ("erratum", "derivation") or r["verdict"] == "proven"]
    support = [r for r in plain if r["verdict"] in SUPPORT]
    against = [r for r in plain if r["verdict"] in AGAINST]
    undecided = [r for r in tested if r["kind"] != "erratum" and r["verdict"] in UNDECIDED]
    if against:
        return "depends" if support else "contradicted"
    if support and any(r["kind"] in FINDINGS for r in undecided):
        return "depends"
    if any(r.get("reason") for r in undecided):  # the run was too small to judge some of its checks
        return "inconclusive"
    if support:
        if errata:
            return "confirmed, with an erratum"
        return "approximately" if any(r["kind"] == "approximation" for r in tested) else "confirmed"
    if errata:
        return "contradicted"
    return "inconclusive"


def setting(row, keys):
    """The row's setting in words, over the parameters ``keys`` (e.g. ``diabetes, hidden, p=0.5``)."""
    parts = []
    for k in keys:
        v = _value(row, k)
        if v is None:
            continue  # a parameter of other rows (e.g. a map cell's N beside a training run's rows)
        if k in ("task", "placement", "dist", "noise"):
            parts.append(str(v))
        else:
            parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def varying(rows):
    """The setting parameters whose values differ among ``rows`` (scalars only, in a fixed order)."""
    keys = []
    for k in _SETTING_KEYS:
        values = {repr(_value(r, k)) for r in rows if not isinstance(_value(r, k), (list, dict))}
        if len(values) > 1:
            keys.append(k)
    return keys


def where(rows, verdicts):
    """Distinct settings (in words) of the rows whose verdict is in ``verdicts``."""
    tested = _tested(rows)
    keys = varying(tested)
    return list(dict.fromkeys(setting(r, keys) for r in tested if r["verdict"] in verdicts and keys))


def _g(x, digits=4):
    return number(x, digits, symbols=False)


def estimate_text(r):
    """A row's estimate ± MCSE (4 and 2 significant digits), or the estimate alone when it has no noise."""
    return f"{_g(r['estimate'])} ± {_g(r['mcse'], 2)}" if r["mcse"] else _g(r["estimate"], 8)


def _at(rows, p):
    """Rows at keep probability p when there are any, else all."""
    there = [r for r in rows if p is not None and r["params"].get("p") == p]
    return there or rows


def _findings_text(rows, p):
    """Effects and equivalences quoted per task: the ``hidden`` placement (or the first) at p, and the tally."""
    rows = [r for r in rows if r["kind"] in ("effect", "equivalence")]
    picks = []
    for task in dict.fromkeys(r["params"].get("task") for r in rows):
        mine = _at([r for r in rows if r["params"].get("task") == task], p)
        picks.append(next((r for r in mine if r["params"].get("placement") == "hidden"), mine[0]))
    first = picks[0]

    def label(r):  # the quantity (a row without facts: its whole name, as text)
        return (r.get("facts") or {}).get("quantity", r["check"])

    mixed = len({label(r) for r in picks}) > 1  # e.g. C6-shift: ΔMSE for a regression, ΔCE for its twin
    margin = f", margin {first['params'].get('margin', 0):g}" if first["kind"] == "equivalence" and not mixed else ""
    quoted = ", ".join((f"{label(r)} " if mixed else "") + f"{r['params'].get('task') or r['experiment']} "
                       f"{estimate_text(r)}" + (f" (z {r['z']:+.1f})" if r["z"] is not None else "")
                       + f" {r['verdict']}" for r in picks[:6])
    tally = {}
    for r in rows:
        tally[r["verdict"]] = tally.get(r["verdict"], 0) + 1
    runs = f", {first['samples']} runs" if first.get("unit") == "training runs" else ""
    head = "" if mixed else f"{label(first)} "
    text = (f"{head}({first['params'].get('placement')}, p = {_g(first['params'].get('p'))}{margin}{runs}): "
            f"{quoted}{' …' if len(picks) > 6 else ''}; over all {len(rows)} settings: "
            + ", ".join(f"{n} {v}" for v, n in tally.items()))
    family = first.get("family")
    if family:
        alone = sum(r["kind"] == "effect" and r["verdict"] == "undecided" for r in rows)
        text += (f" (z* = {family['z_star']:.2f} over the {family['tests']} findings of this sub-claim"
                 + (f"; {alone} significant alone, not after that correction" if alone else "") + ")")
    return text


def _regime_text(cells):
    """A sub-claim over the committed map's cells, by data size N: how many cells hold, contradict or leave it
    undecided, and at which sizes (the regime, where one half of the document's C6 holds and where not)."""
    parts = []
    for verdict in ("holds", "contradicted", "no detectable effect", "undecided"):
        ns = sorted(r["params"]["N"] for r in cells if r["verdict"] == verdict)
        if ns:
            sizes = f"N = {ns[0]:,}" if ns[0] == ns[-1] else f"N {ns[0]:,}–{ns[-1]:,}"
            parts.append(f"{verdict} in {len(ns)} ({sizes}, median {ns[len(ns) // 2]:,})")
    family = cells[0].get("family")
    text = f"on the committed map ({len(cells)} cells: N × p × placement × BN × training length): " + ", ".join(parts)
    text += f" (z* = {family['z_star']:.2f} over the {family['tests']} findings of this sub-claim)" if family else ""
    series = list(dict.fromkeys(r["params"]["crossover"] for r in cells if r["params"].get("crossover")))
    if series:
        text += (f"; the sign changes along N in {len(series)} series: " + "; ".join(series[:3])
                 + ("; …" if len(series) > 3 else ""))
    elif any("crossover" in r["params"] for r in cells):  # sought (the total effects), none resolved
        text += "; no change of sign along N is resolved"
    return text


def _erratum_parts(tested, p):
    """The document's formula refuted (at p), and the first false line of a derivation."""
    parts = []
    errata = [r for r in tested if r["kind"] == "erratum" and r["verdict"] == "refuted"]
    if errata:
        r = _at(errata, p)[0]
        parts.append(f"the document's formula as written gives {_g(r['closed_form'])}, "
                     f"sampling gives {estimate_text(r)} "
                     f"({setting(r, [k for k in ('p', 'c', 'v', 'dist') if k in r['params']])}): refuted "
                     + (f"by {abs(r['z']):.0f} MCSE" if r["z"] is not None else "exactly (no sampling noise)"))
    false = [r for r in tested if r["kind"] == "derivation" and r["verdict"] == "false"]
    if false:
        r = false[0]
        parts.append(f"first wrong line: {r['check']} (residual {r['params'].get('residual', '?')})")
    return parts


def _ztest_parts(tested, zstar, alone):
    """The z-tests (their largest |z|; ``alone``: nothing else is quoted) and the closest inequality."""
    parts = []
    ztests = [r for r in tested if r["kind"] == "exact" and r["z"] is not None and abs(r["z"]) != float("inf")]
    inequalities = [r for r in tested if r["kind"] == "inequality" and r["z"] is not None and r["mcse"]]
    if ztests and alone:
        worst = max(ztests, key=lambda r: abs(r["z"]))
        limit = zstar.get(worst["experiment"], max(zstar.values())) if isinstance(zstar, dict) else zstar
        parts.append(f"{len(ztests)} z-tests, largest |z| = {abs(worst['z']):.2f} ({worst['check']}) "
                     f"against z* = {limit:.2f}")
    elif ztests:
        parts.append(f"corrected formulas: largest |z| = {max(abs(r['z']) for r in ztests):.2f} "
                     f"over {len(ztests)} z-tests")
    if inequalities:
        closest = min(inequalities, key=lambda r: r["z"])
        parts.append(f"{len(inequalities)} inequalities, the closest to failing at z = {closest['z']:+.2f} "
                     f"({closest['check']})")
    return parts


def _exact_parts(tested, alone):
    """Approximations against their tolerance; enumerations (``alone``: nothing else is quoted); proven steps."""
    parts = []
    approx = [r for r in tested if r["kind"] == "approximation"]
    if approx:
        within = sum(r["verdict"] == "confirmed" for r in approx)
        used = max(((r["rel_error"] or 0.0) / r["tolerance"] for r in approx if r["tolerance"]), default=0.0)
        parts.append(f"{within} of {len(approx)} approximations within their tolerance; the largest error is "
                     f"{used:.0%} of its tolerance")
    enums = [r for r in tested if r["kind"] == "enumeration"]
    if enums and alone and not parts:
        parts.append(f"{len(enums)} exact enumerations, largest relative error "
                     f"{max(r['rel_error'] or 0.0 for r in enums):.1e}")
    proven = [r for r in tested if r["kind"] == "derivation" and r["verdict"] == "proven"]
    false = any(r["kind"] == "derivation" and r["verdict"] == "false" for r in tested)
    if proven and not false:
        parts.append(f"{len(proven)} derivation steps proven")
    return parts


def _references(rows):
    """Nothing but measurements: those shown against a reference, the hidden placement first."""
    ref = [r for r in rows if r["kind"] == "measurement" and r["closed_form"] is not None]
    ref.sort(key=lambda r: (r["params"].get("placement") != "hidden", -(r["params"].get("layer") or 0)))
    return "; ".join(f"{r['check']} = {estimate_text(r)} (reference {_g(r['closed_form'])})" for r in ref[:2])


def headline(rows, zstar, p=None, quote=()):
    """The one or two numbers that carry a sub-claim's outcome, in words.

    Parameters
    ----------
    rows : list of dict
        The sub-claim's check rows.
    zstar : float or dict
        The run's z threshold, or each experiment's (experiment name → z*).
    p : float, optional
        The keep probability to quote at (the run's, or verify's headline p).
    quote : sequence of dict
        Measurement rows the experiment names as its headline.
    """
    tested = _tested(rows)
    parts = []
    degenerate = [r for r in rows if r.get("reason") and r["verdict"] in ("inconclusive", "undecided",
                                                                        "no detectable effect")]
    if degenerate:
        parts.append(f"{len(degenerate)} of {len(rows)} checks cannot be judged: {degenerate[0]['reason']}")
        tested = [r for r in tested if r not in degenerate]
    cells = [r for r in tested if r["kind"] in ("effect", "equivalence") and r["experiment"] == "regime-map"]
    if cells:
        parts.append(_regime_text(cells))
        tested = [r for r in tested if r not in cells]
    if any(r["kind"] in ("effect", "equivalence") for r in tested):
        parts.append(_findings_text(tested, p))
    parts += _erratum_parts(tested, p)
    parts += _ztest_parts(tested, zstar, alone=not parts)
    parts += _exact_parts(tested, alone=not parts)
    quoted = list(quote)[:2]
    if not parts and not quoted:
        return _references(rows)
    if quoted:
        parts.append("measured: " + ", ".join(f"{r['check']} = {estimate_text(r)}" for r in quoted)
                     + (f" at p = {_g(quoted[0]['params'].get('p'))}" if quoted[0]["params"].get("p") else ""))
    return "; ".join(parts[:3])


def _evidence(rows, zstar):
    """The longer account: what was run and how each kind of check came out."""
    ps = sorted({r["params"].get("p") for r in rows if isinstance(r["params"].get("p"), float)})
    out = [f"{len(rows)} checks" + (f" at p ∈ {{{', '.join(f'{p:g}' for p in ps)}}}" if ps else "")]
    by_kind = {}
    for r in rows:
        by_kind.setdefault(r["kind"], {}).setdefault(r["verdict"], 0)
        by_kind[r["kind"]][r["verdict"]] += 1
    for kind, verdicts in by_kind.items():
        out.append(f"{kind}: " + ", ".join(f"{n} {v}" for v, n in verdicts.items()))
    return "; ".join(out)


def _line(row):
    """The line of the document a derivation step checks: its ``line`` fact, else the name after its chain's
    (the derivation checker names a step ``chain: line`` and does not set the fact yet)."""
    line = (row.get("facts") or {}).get("line")
    return line if line is not None else row["check"].removeprefix(f"{row['params'].get('chain')}: ")


def summarize(sub_id, rows, zstar, p=None, quote=(), acceptable=None):
    """The claim-level entry of one sub-claim (the JSON contract of ``claims``).

    Parameters
    ----------
    sub_id : str
        A key of :data:`CLAIMS` (an unknown id gets a bare entry).
    rows : list of dict
        Its check rows.
    zstar : float
    p : float, optional
        Keep probability at which numbers are quoted.
    quote : sequence of dict
        Headline measurements to quote.
    acceptable : callable, optional
        ``acceptable(kind) -> set`` of verdicts that are not a failure of the simulator.

    Returns
    -------
    dict
        ``claim, id, title, statement, as_written, source, outcome, colour, headline, evidence, erratum,
        holds_at, against_at, undecided_at (settings, for ``depends``), checks, ok``.
    """
    c = CLAIMS.get(sub_id) or Claim(sub_id, sub_id.split("-")[0], sub_id, "")
    result = outcome(rows)
    errata = [r for r in rows if _is_erratum(r)]
    erratum = ""
    if errata:
        r = next((e for e in errata if e["kind"] == "derivation"), errata[0])
        written = r["formula"].removeprefix("document: ")
        if r["kind"] == "derivation":
            erratum = (f"Erratum: the line {_line(r)} of the document, “{written}”, is false "
                       f"(left − right = {r['params'].get('residual')}).")
        else:
            erratum = f"Erratum: the document writes {written}; sampling refutes it ({r['check']})."
    failed = [r for r in rows if acceptable is not None and r["verdict"] not in acceptable(r)]
    return {"claim": c.claim, "id": sub_id, "title": c.title, "statement": c.statement, "as_written": c.as_written,
            "source": c.source, "outcome": result, "colour": OUTCOME_COLOURS[result],
            "headline": headline(rows, zstar, p, quote), "evidence": _evidence(rows, zstar), "erratum": erratum,
            "holds_at": where(rows, SUPPORT) if result == "depends" else [],
            "against_at": where(rows, AGAINST) if result == "depends" else [],
            "undecided_at": where(rows, UNDECIDED) if result == "depends" else [],
            "checks": len(rows), "ok": not failed}


def summarize_all(rows, zstar, p=None, quotes=None, acceptable=None):
    """One entry per sub-claim present in ``rows``, in the order of :data:`CLAIMS` (others after).

    ``quotes`` maps a sub-claim id to the headline measurement rows to quote.
    """
    present = list(dict.fromkeys(r["subclaim"] for r in rows))
    order = [k for k in CLAIMS if k in present] + [k for k in present if k not in CLAIMS]
    return [summarize(k, [r for r in rows if r["subclaim"] == k], zstar, p, (quotes or {}).get(k, ()), acceptable)
            for k in order]
