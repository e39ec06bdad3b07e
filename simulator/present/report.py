"""The report: figures, a page and the data behind them, written to one folder.

This is an edge of the library, like ``cli.py``: it alone imports matplotlib and
seaborn, and it only draws from results it is given (``verify`` for the
outcomes, one :func:`~simulator.runs.sweep.sweep` per figure of
:data:`simulator.present.figures.FIGURES`). The page leads with one line per claim,
then one section per claim (what the document says, its formula as written, the
outcome, the numbers that carry it, the figure of the quantity it is about, the
derivation step by step), a glossary of every term it uses, and the full check
table folded and filterable (also as ``checks.csv``). It opens offline: no
external resource, every link a file of the folder or an anchor of the page.

The folder is written under a temporary name and renamed into place, so it is
never half-written; it replaces an existing folder only when that is a report
of this program (its ``manifest.json`` says so, :func:`is_report`). Finished
sweeps are checkpointed beside it (``DIR.checkpoint/``), so an interrupted
report resumes; an interrupted report leaves no temporary folder.
"""
import html
import json
import math
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..core.errors import OutputError, ParameterError  # noqa: E402
from ..core.files import check_folder, new_folder, remove_folder, replace_folder  # noqa: E402
from ..core.interrupts import sigint_ignored  # noqa: E402
from ..core.params import DEFAULT_SEED, check_samples, check_seed, versions  # noqa: E402
from ..experiments import CATALOG  # noqa: E402
from ..runs.sweep import sweep  # noqa: E402
from ..runs.verify import verify  # noqa: E402
from .figures import FIGURES  # noqa: E402
from .output import to_csv  # noqa: E402

try:  # the claim-level rule and its colours (simulator.theory.claims); the page has its own fallback
    from ..theory.claims import OUTCOME_COLOURS
except ImportError:  # pragma: no cover - only while claims.py is absent
    OUTCOME_COLOURS = {"confirmed": "green", "confirmed, with an erratum": "amber", "approximately": "amber",
                       "depends": "amber", "contradicted": "red", "inconclusive": "grey", "measured": "grey"}

DEFAULT_OUT = os.path.join("reports", "latest")

# Okabe & Ito (2008), the colour-blind-safe palette, ordered so that the first four are far apart
# (blue, vermillion, green, purple); its orange comes last, after black, so no two oranges meet.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#000000", "#E69F00")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
# A placement keeps its colour and marker in every figure.
PLACEMENT_STYLE = {
    "none": ("#000000", "P"), "before-bn": ("#D55E00", "s"), "hidden": ("#D55E00", "s"),
    "after-bn": ("#0072B2", "o"), "head": ("#0072B2", "o"), "recalibrated": ("#009E73", "^"),
    "uout": ("#CC79A7", "D"), "recalibrated-dropout-on": ("#56B4E9", "v"),
}
FIG_WIDTH, FIG_HEIGHT, DPI = 9.6, 5.0, 100  # 960 px wide: shown at its own size, fonts ≥ 10 pt as displayed
FONTS = {"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "xtick.labelsize": 11,
         "ytick.labelsize": 11, "legend.fontsize": 11, "legend.title_fontsize": 11}
PM = "Monte Carlo mean ±2 MCSE"


# ---------------------------------------------------------------------------------------------- figures

def _styles(labels):
    """Colour and marker of each series label: placements fixed, others in palette order."""
    out, free = {}, [(c, m) for c, m in zip(PALETTE, MARKERS)]
    for label in labels:
        if label in PLACEMENT_STYLE:
            out[label] = PLACEMENT_STYLE[label]
    used = {c for c, _ in out.values()}
    free = [cm for cm in free if cm[0] not in used] or list(zip(PALETTE, MARKERS))
    for k, label in enumerate(lb for lb in labels if lb not in out):
        out[label] = free[k % len(free)]
    return out


def _offsets(count, logx, xs):
    """x offsets (additive, or multiplicative on a log axis) that spread ``count`` series apart."""
    if count < 2:
        return [0.0] * count
    values = sorted({x for x in xs if x is not None})
    if logx:
        span = math.log10(values[-1] / values[0]) if len(values) > 1 and values[0] > 0 else 1.0
        step = 0.012 * max(span, 0.5)
    elif all(float(x).is_integer() for x in values) and (len(values) < 2 or min(
            b - a for a, b in zip(values, values[1:])) >= 1):
        step = 0.13
    else:
        step = 0.015 * ((values[-1] - values[0]) if len(values) > 1 else 1.0)
    return [(k - (count - 1) / 2) * step for k in range(count)]


def _shift(x, off, logx):
    return x * 10 ** off if logx else x + off


def _series(figure, rows):
    """Kept rows grouped by series label, each sorted by x: ``{label: [(x, row), ...]}``."""
    kept = [r for r in rows if figure.keep(r)]
    groups = {}
    for r in kept:
        groups.setdefault(figure.series(r), []).append((figure.x(r), r))
    return {label: sorted(pts, key=lambda t: t[0]) for label, pts in groups.items()}


def _finish(fig, ax, figure, handles=None, legend_title=None):
    if figure.logx:
        ax.set_xscale("log", base=2)
    if figure.logy:
        ax.set_yscale("log")
    ax.set(xlabel=figure.xlabel, ylabel=figure.ylabel)
    ax.set_title("\n".join(textwrap.wrap(figure.title, 80)))
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if handles:
        longest = max(len(h.get_label()) for h in handles)
        ncol = 1 if longest > 48 else 2 if longest > 26 else 3
        legend = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                           ncol=min(ncol, len(handles)), frameon=False, title=legend_title)
        legend.set_in_layout(False)  # the axes keep their size; the saved image grows to hold the legend


def _points(ax, pts, x_of, color, marker, k, label, filled=True, join=False):
    """Estimates ±2 MCSE of one series; later series get smaller markers drawn on top."""
    xs = [x_of(x) for x, _ in pts]
    ys = [r["estimate"] for _, r in pts]
    err = [2 * (r["mcse"] or 0.0) for _, r in pts]
    size = max(5.0, 8.5 - 0.9 * k)
    return ax.errorbar(xs, ys, yerr=err, fmt=marker, ls="-" if join else "none", lw=0.9, ms=size, color=color,
                       mfc=color if filled else "white", mec=color, mew=1.6, capsize=3, elinewidth=1.2,
                       zorder=3 + k, label=label)


def _draw_curve(fig, ax, figure, groups):
    """Closed form (or reference) as a line over continuous x, estimates as points.

    A line several series share is drawn once, in grey; points identical to another series' (the same
    samples judged against two formulas) are drawn once, in black.
    """
    styles = _styles(list(groups))
    lines = {label: tuple((x, r["closed_form"]) for x, r in pts if r.get("closed_form") is not None)
             for label, pts in groups.items()}
    if figure.hline is not None:  # a line that only repeats the reference line is not drawn
        lines = {k: (() if v and all(y == figure.hline for _, y in v) else v) for k, v in lines.items()}
    owners = {}
    for label, line in lines.items():
        if line:
            owners.setdefault(line, []).append(label)
    dots = {label: tuple((x, r["estimate"]) for x, r in pts) for label, pts in groups.items()}
    dot_owners = {}
    for label, d in dots.items():
        dot_owners.setdefault(d, []).append(label)
    handles = []
    if figure.hline is not None:
        ax.axhline(figure.hline, color="0.35", lw=1.3, ls="--", zorder=1)
        handles.append(Line2D([], [], color="0.35", ls="--", lw=1.3, label=figure.reference or figure.line))
    for line, who in owners.items():
        shared = len(who) > 1 or len(groups) == 1
        color = "0.25" if shared else styles[who[0]][0]
        ax.plot([x for x, _ in line], [y for _, y in line], "-", color=color, lw=1.6, zorder=2)
        if shared:
            text = figure.line if len(who) == len(groups) else f"{figure.line}, shared by " + ", ".join(who)
            handles.append(Line2D([], [], color=color, lw=1.6, label=text))
    offsets = _offsets(len(dot_owners), figure.logx, [x for pts in groups.values() for x, _ in pts])
    for k, (d, who) in enumerate(dot_owners.items()):
        label = who[0]
        color, marker = ("#000000", "o") if len(who) > 1 else styles[label]
        _points(ax, groups[label], lambda x, o=offsets[k]: _shift(x, o, figure.logx), color, marker, k, None,
                join=figure.join)
        if len(who) > 1:
            text = f"{PM} (the same samples for " + ("both lines" if len(who) == 2 else " and ".join(who)) + ")"
            handles.append(Line2D([], [], color=color, marker=marker, ls="none", ms=8, label=text))
    for label in groups:
        own = lines[label] and len(owners[lines[label]]) == 1 and len(groups) > 1
        if len(dot_owners[dots[label]]) > 1:
            if own:
                handles.append(Line2D([], [], color=styles[label][0], lw=1.6, label=label))
            continue
        color, marker = styles[label]
        handles.append(Line2D([], [], color=color, marker=marker, ms=8, ls="-" if own or figure.join else "none",
                              label=label if len(groups) > 1 else PM))
    own_lines = len(groups) > 1 and any(len(w) == 1 for w in owners.values())
    parts = ([f"coloured lines: {figure.line}"] if own_lines else []) + (
        [f"points: {PM}"] if len(dot_owners) == len(groups) else [])
    title = "; ".join(parts) if len(groups) > 1 and parts else None
    _finish(fig, ax, figure, handles, legend_title=title)


def _draw_per_index(fig, ax, figure, groups):
    """One value per separate index: the closed form as a short bar, estimates as points; nothing joined."""
    styles = _styles(list(groups))
    offsets = _offsets(len(groups), False, [x for pts in groups.values() for x, _ in pts])
    if figure.hline is not None:
        ax.axhline(figure.hline, color="0.35", lw=1.2, ls="--", zorder=1)
    handles = []
    bars = False
    for k, (label, pts) in enumerate(groups.items()):
        color, marker = styles[label]
        ref = [(x + offsets[k], r["closed_form"]) for x, r in pts
               if r.get("closed_form") is not None and r["closed_form"] != figure.hline]
        if ref:
            ax.plot([x for x, _ in ref], [y for _, y in ref], "_", ms=17, mew=2.6, color=color, alpha=0.55,
                    zorder=2)
            bars = True
        handles.append(_points(ax, pts, lambda x, o=offsets[k]: x + o, color, marker, k, label, join=figure.join))
    ax.set_xticks(sorted({x for pts in groups.values() for x, _ in pts}))
    if bars:
        handles.append(Line2D([], [], color="0.4", marker="_", ms=22, mew=2.6, ls="none",
                              label=f"bar: {figure.line}"))
    if figure.hline is not None:
        handles.append(Line2D([], [], color="0.35", ls="--", lw=1.2,
                              label=figure.line if not bars else "zero" if figure.hline == 0 else f"{figure.hline:g}"))
    _finish(fig, ax, figure, handles, legend_title=f"points: {PM}")


def _draw_effect(fig, ax, figure, groups):
    """A paired difference per series against x, with the zero line."""
    styles = _styles(list(groups))
    offsets = _offsets(len(groups), figure.logx, [x for pts in groups.values() for x, _ in pts])
    ax.axhline(0.0 if figure.hline is None else figure.hline, color="0.2", lw=1.4, zorder=1)
    handles = [Line2D([], [], color="0.2", lw=1.4, label=figure.line)]
    for k, (label, pts) in enumerate(groups.items()):
        color, marker = styles[label]
        handles.append(_points(ax, pts, lambda x, o=offsets[k]: _shift(x, o, figure.logx), color, marker, k, label,
                               join=figure.join))
    _finish(fig, ax, figure, handles, legend_title=f"placement: {PM}")


def _draw_scatter(fig, ax, figure, groups):
    """Measured against predicted, with the diagonal; each point labelled by its BN layer."""
    styles = _styles(list(groups))
    values = [v for pts in groups.values() for x, r in pts for v in (x, r["estimate"])]
    lo, hi = min(values), max(values)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="0.35", lw=1.3, zorder=1, label=figure.line)
    handles = [Line2D([], [], color="0.35", ls="--", lw=1.3, label=figure.line)]
    for k, (label, pts) in enumerate(groups.items()):
        color, marker = styles[label]
        handles.append(_points(ax, pts, lambda x: x, color, marker, k, label))
        for x, r in pts:
            layer = r["params"].get("layer")
            if layer is not None and abs(x - 1.0) > 0.02:  # at 1 (no shift predicted) labels would pile up
                ax.annotate(f"L{layer}", (x, r["estimate"]), textcoords="offset points",
                            xytext=(8, 2) if k % 2 == 0 else (-22, 2), fontsize=10, color=color)
    _finish(fig, ax, figure, handles, legend_title=f"placement: {PM}")


def _draw_approximation(fig, axes, figure, groups):
    """Left: estimates (filled: tested; hollow: measured only) and the approximation; right: its error."""
    ax, ex = axes
    styles = _styles(list(groups))
    offsets = _offsets(len(groups), figure.logx, [x for pts in groups.values() for x, _ in pts])
    guide = []
    for k, (label, pts) in enumerate(groups.items()):
        color, marker = styles[label]
        at = lambda x, o=offsets[k]: _shift(x, o, figure.logx)  # noqa: E731
        ax.plot([at(x) for x, _ in pts], [r["closed_form"] for _, r in pts], "d", ms=10, mfc="none", mec=color,
                mew=1.4, zorder=2)
        for filled in (True, False):
            sub = [(x, r) for x, r in pts if (r["kind"] != "measurement") == filled]
            if sub:
                _points(ax, sub, at, color, marker, k, None, filled=filled)
        for x, r in pts:
            form = r.get("closed_form")
            if not form:
                continue
            rel, bar = abs(r["estimate"] - form) / abs(form), 2 * (r["mcse"] or 0.0) / abs(form)
            tested = r["kind"] != "measurement"
            shown = max(rel, 1e-4)
            ex.errorbar([at(x)], [shown], yerr=[[min(bar, shown * 0.9)], [bar]], fmt=marker, ms=max(5, 8 - k),
                        color=color, mfc=color if tested else "white", mec=color, mew=1.6, capsize=3, zorder=3 + k)
            if tested and r.get("tolerance"):
                ex.plot([at(x)], [r["tolerance"]], "_", ms=18, mew=2.4, color=color, alpha=0.6, zorder=2)
            p = r["params"].get("p")
            if p and 0 < p < 1 and x > 1 and rel > 0:
                guide.append(rel * x * p * (1 - p))
    xs = sorted({x for pts in groups.values() for x, _ in pts})
    if guide:  # one guide per value of p(1 − p): p and 1 − p share theirs
        scale = sorted(guide)[len(guide) // 2]
        ps = sorted({pts[0][1]["params"].get("p") for pts in groups.values()} - {None, 0, 1})
        for q in dict.fromkeys(round(p * (1 - p), 12) for p in ps):
            ex.plot(xs, [scale / (x * q) for x in xs], "--", color="0.45", lw=1.1, zorder=1)
            same = " and ".join(f"{p:g}" for p in ps if round(p * (1 - p), 12) == q)
            ex.annotate(f"p = {same}", (xs[-1], scale / (xs[-1] * q)), textcoords="offset points", xytext=(4, 0),
                        fontsize=10, color="0.3", va="center")
    for a in (ax, ex):
        a.set_xscale("log", base=2)
        a.set_xlabel(figure.xlabel)
    ax.set_ylabel(figure.ylabel)
    ex.set_yscale("log")
    ex.set_ylabel("relative error |MC − approx.| / approx.")
    ax.set_title("shift and its Gaussian approximation")
    ex.set_title("error of the approximation")
    handles = [Line2D([], [], color=styles[lb][0], marker=styles[lb][1], ls="none", ms=8, label=lb) for lb in groups]
    handles += [Line2D([], [], color="0.3", marker="o", ls="none", ms=8, label="filled: tested (approximation)"),
                Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", ms=8,
                       label="hollow: measured only (no claim)"),
                Line2D([], [], color="0.3", marker="d", mfc="none", ls="none", ms=10, label=figure.line),
                Line2D([], [], color="0.3", marker="_", ms=16, mew=2.4, ls="none", label="tolerance (tested points)"),
                Line2D([], [], color="0.45", ls="--", label="guide ∝ 1/(d p(1−p))")]
    fig.suptitle("\n".join(textwrap.wrap(figure.title, 95)), fontsize=12)
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout(rect=(0, 0.2, 1, 1))


DRAW = {"curve": _draw_curve, "per-index": _draw_per_index, "effect": _draw_effect, "scatter": _draw_scatter}


def draw(figure, rows, stem):
    """Draw ``figure`` from its sweep ``rows`` to ``stem``.png and ``stem``.svg."""
    sns.set_theme(style="whitegrid", context="notebook")
    with matplotlib.rc_context(FONTS):
        groups = _series(figure, rows)
        if figure.style == "approximation":
            fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH, FIG_HEIGHT + 0.8))
            _draw_approximation(fig, axes, figure, groups)
        else:
            fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_HEIGHT))
            if groups:
                DRAW[figure.style](fig, ax, figure, groups)
            else:
                ax.text(0.5, 0.5, "no rows to plot", ha="center", transform=ax.transAxes)
            fig.tight_layout()
        extra = fig.get_default_bbox_extra_artists() + [a.get_legend() for a in fig.axes if a.get_legend()]
        # The tight box once for both files (savefig's bbox_inches="tight" would lay out every text twice more).
        box = fig.get_tightbbox(fig.canvas.get_renderer(), bbox_extra_artists=extra).padded(
            matplotlib.rcParams["savefig.pad_inches"])
        fig.savefig(stem + ".png", dpi=DPI, bbox_inches=box)
        with matplotlib.rc_context({"svg.hashsalt": "dropout-bn"}):  # with no date: same data, same bytes
            fig.savefig(stem + ".svg", metadata={"Date": None}, bbox_inches=box)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------- the page

# Every term the page uses, defined once. (section, term, anchor, definition)
GLOSSARY = (
    ("Numbers", "p", "p", "the KEEP probability of dropout, as in the document: a unit is kept with probability p "
     "and dropped with probability 1 − p. PyTorch's nn.Dropout takes the DROP probability, so p = 0.8 here is "
     "nn.Dropout(0.2)."),
    ("Numbers", "MCSE", "mcse", "Monte Carlo standard error: how much an estimate from random samples would vary "
     "if the run were repeated with another seed (a standard deviation of the estimate). ±2 MCSE bars cover the "
     "truth about 95% of the time."),
    ("Numbers", "z", "z", "(estimate − closed form) / MCSE: how many standard errors the estimate is from what the "
     "formula predicts. For an approximation: the excess of the error over its tolerance, in MCSE."),
    ("Numbers", "z*", "zstar", "the threshold |z| must exceed for a check to fail, set so that over all z-tests "
     "together a false alarm has probability at most the family-wise α (Bonferroni)."),
    ("Numbers", "family-wise α", "alpha", "the chance, over the whole run, that at least one correct formula is "
     "wrongly reported as refuted."),
    ("Numbers", "resolution", "resolution", "the smallest deviation from the formula a check would detect 90% of "
     "the time, about (z* + 1.3) × MCSE: below it, a wrong formula could pass unnoticed."),
    ("Numbers", "Δ", "delta", "the variance shift Var_test / Var_train of a unit before BatchNorm: 1 means no "
     "shift; below 1, BN sees less variance at test time than it learned in training."),
    ("Numbers", "Var_train / Var_test", "var-train", "the variance of a unit with dropout on (training mode) and "
     "with dropout off (evaluation mode)."),
    ("Numbers", "running_var", "running-var", "BatchNorm's running estimate of the variance, updated at each "
     "training batch (PyTorch: momentum 0.1, unbiased) and used instead of the batch variance in eval mode."),
    ("Numbers", "E_N, E_D", "en-ed", "C1: the squared error of the weight-scaled network (weights p·w, no dropout) "
     "and of the network with dropout; I_i is the i-th input, w_i its weight."),
    ("Check kinds", "exact", "kind-exact", "a formula that should hold exactly, tested by z against the sampled "
     "estimate."),
    ("Check kinds", "enumeration", "kind-enumeration", "the same formula computed by summing over every possible "
     "dropout mask (no sampling noise): must agree to about 10⁻⁹."),
    ("Check kinds", "inequality", "kind-inequality", "a sign the theory guarantees (e.g. the ReLU shift ≥ 0, "
     "Jensen): fails only if significantly violated."),
    ("Check kinds", "approximation", "kind-approximation", "a formula that is only approximately right, tested "
     "within a stated relative tolerance."),
    ("Check kinds", "measurement", "kind-measurement", "a quantity measured with its MCSE but not tested against "
     "any claim (any reference value is shown for comparison only)."),
    ("Check kinds", "erratum", "kind-erratum", "the document's own formula, exactly as written, where the project "
     "holds it to be wrong: the check passes when the formula is refuted."),
    ("Check kinds", "effect", "kind-effect", "a signed, paired difference the document claims (e.g. test MSE with "
     "dropout minus without, positive = dropout hurts)."),
    ("Check kinds", "equivalence", "kind-equivalence", "a claim that an effect stays below a margin (e.g. accuracy "
     "drops by less than 0.01)."),
    ("Check kinds", "derivation", "kind-derivation", "one line of the document's derivation, checked symbolically "
     "(SymPy): proven equal to the line before, or false with the residual."),
    ("Verdicts (one check)", "confirmed", "verdict-confirmed", "the estimate agrees with the formula (|z| ≤ z*, or "
     "within the tolerance of an approximation)."),
    ("Verdicts (one check)", "refuted", "verdict-refuted", "the estimate disagrees with the formula by more than z* "
     "MCSE. For an erratum this is the expected outcome."),
    ("Verdicts (one check)", "inconclusive", "verdict-inconclusive", "the run could not tell: more samples needed "
     "(e.g. an erratum within the resolution of the truth)."),
    ("Verdicts (one check)", "measured", "verdict-measured", "a measurement: reported, not judged."),
    ("Verdicts (one check)", "holds", "verdict-holds", "an effect significantly in the claimed direction, or an "
     "equivalence significantly within its margin."),
    ("Verdicts (one check)", "contradicted", "verdict-contradicted", "an effect significantly in the opposite "
     "direction, or an equivalence margin significantly exceeded."),
    ("Verdicts (one check)", "no detectable effect", "verdict-no-detectable-effect", "an effect smaller than the "
     "check's resolution: not significant even as a test alone."),
    ("Verdicts (one check)", "undecided", "verdict-undecided", "an equivalence or derivation step the run could "
     "not decide, or an effect significant as a test alone but not after the correction for its sub-claim's "
     "family of findings."),
    ("Verdicts (one check)", "proven", "verdict-proven", "a derivation line proven equal to the previous one."),
    ("Verdicts (one check)", "false", "verdict-false", "a derivation line that does not follow; the residual is "
     "what is left of (this line − the previous one)."),
    ("Outcomes (one claim)", "confirmed", "outcome-confirmed", "every check that tests the claim supports it."),
    ("Outcomes (one claim)", "confirmed, with an erratum", "outcome-confirmed-with-an-erratum", "the claim holds, "
     "but a formula or line of the document is wrong as written (named in red)."),
    ("Outcomes (one claim)", "approximately", "outcome-approximately", "supported, with an approximation carrying "
     "part of it (within its stated tolerance)."),
    ("Outcomes (one claim)", "depends", "outcome-depends", "true in some settings and not in others (named)."),
    ("Outcomes (one claim)", "contradicted", "outcome-contradicted", "the checks go against the claim."),
    ("Outcomes (one claim)", "inconclusive", "outcome-inconclusive", "the checks could not decide at this budget."),
    ("Outcomes (one claim)", "measured", "outcome-measured", "only measurements, no test of the claim."),
    ("Networks", "L1 … L8", "layer", "the BatchNorm layers of a chain, counted from the input: L3 is the third "
     "Linear → BN → ReLU block."),
    ("Networks", "ratio/none", "ratio-none", "a BN layer's ratio eval variance / running_var in a network with "
     "dropout, divided by the same ratio in the same network without dropout (paired): 1 = dropout adds no shift."),
    ("Networks", "Li max", "li-max", "Li et al.'s (2019) measure of the shift of a BN layer: max(r, 1/r), r = eval "
     "variance / running_var, averaged over units; 1 = no shift."),
    ("Networks", "uout", "uout", "Uout noise (Li et al. 2019): multiply by 1 + r, r uniform in (−β, β), β = 0.1, "
     "instead of dropout: a much smaller variance shift."),
    ("Networks", "before-bn", "before-bn", "dropout placed before every BatchNorm (the harmful placement)."),
    ("Networks", "after-bn", "after-bn", "dropout only after the last BatchNorm, before the head: no BN sees "
     "dropout noise."),
    ("Networks", "recalibrated", "recalibrated", "dropout before BN during training, then BN's running statistics "
     "re-estimated in one pass with dropout off (Hendrycks & Gimpel)."),
    ("Networks", "hidden", "hidden", "trained networks: dropout after each hidden layer (before the next BN)."),
    ("Networks", "head", "head", "trained networks: dropout only before the output layer (after every BN)."),
    ("Networks", "recalibrated-dropout-on", "recalibrated-dropout-on", "trained networks: like recalibrated, but "
     "the re-estimation pass keeps dropout on (a control: it should not help)."),
    ("Networks", "none", "none", "the same network without dropout, the paired baseline."),
)
# Words of the page that name a glossary entry (anchor), for the check of the glossary.
TERMS = {"MCSE": "mcse", "z*": "zstar", "resolution": "resolution", "family-wise α": "alpha", "Δ": "delta",
         "running_var": "running-var", "Var_train": "var-train", "Var_test": "var-train",
         "ratio/none": "ratio-none", "Li max": "li-max", "uout": "uout", "before-bn": "before-bn",
         "after-bn": "after-bn", "recalibrated": "recalibrated", "recalibrated-dropout-on": "recalibrated-dropout-on",
         "L1": "layer", "L8": "layer", "E_N": "en-ed"}
BADGE = {"green": ("#1e7b34", "#fff"), "amber": ("#f2b705", "#222"), "red": ("#b3261e", "#fff"),
         "grey": ("#6b7280", "#fff")}
_LONG = 3  # parameter lists longer than this are summarized in the table (all of them are in checks.csv)

CSS = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:auto;padding:1em 1.5em;line-height:1.45;color:#1b1b1b}
h1{font-size:1.7em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}
code,.formula{font-family:ui-monospace,monospace;background:#f4f4f4;padding:1px 4px;border-radius:3px}
.formula{display:block;padding:.5em .8em;margin:.4em 0;white-space:pre-wrap}
.badge{display:inline-block;padding:.2em .7em;border-radius:1em;font-weight:bold;font-size:.95em}
.erratum{color:#b3261e;font-weight:600}
.box{border:3px solid #b3261e;background:#fdecea;padding:.4em 1em;margin:1em 0}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.95em;color:#333;margin-top:.3em}
table{border-collapse:collapse;font-size:.9em}td,th{padding:3px 8px;text-align:left;vertical-align:top}
tr:nth-child(even){background:#f6f6f6}th{background:#e9eef3}
.summary td{padding:6px 8px}.summary td:first-child{white-space:nowrap}.num{font-family:ui-monospace,monospace;white-space:nowrap}
.steps td:first-child{font-size:1.2em;text-align:center}.ok{color:#1e7b34}.bad{color:#b3261e;font-weight:bold}
dl.gloss{display:grid;grid-template-columns:minmax(8em,max-content) 1fr;gap:.35em 1.2em}dl.gloss dt{font-weight:bold}dl.gloss dd{margin:0}.wide{overflow-x:auto}
details>summary{cursor:pointer;font-weight:600;margin:.5em 0}.filters{margin:.5em 0}.filters select{margin-right:1em}
.meta{color:#555;font-size:.9em}
"""

SCRIPT = """
function filterChecks(){
  var c=document.getElementById('f-claim').value, v=document.getElementById('f-verdict').value,
      k=document.getElementById('f-kind').value, n=0;
  document.querySelectorAll('#checks tbody tr').forEach(function(r){
    var show=(!c||r.dataset.claim===c)&&(!v||r.dataset.verdict===v)&&(!k||r.dataset.kind===k);
    r.style.display=show?'':'none'; if(show) n++;});
  document.getElementById('f-count').textContent=n+' shown';
}
function showChecks(claim){
  document.getElementById('f-claim').value=claim; document.getElementById('all-checks').open=true; filterChecks();
}
"""


def _esc(x):
    return html.escape(str(x), quote=True)


def _num(x, digits=4):
    if x is None:
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def _slug(text):
    return "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-").replace("--", "-")


def _claim_entry(c):
    """A claim entry with every field of the contract (older entries fall back to their own fields)."""
    text = c.get("verdict", "")
    if "outcome" in c:
        outcome = c["outcome"]
    elif not c.get("ok", True):
        outcome = "contradicted"
    elif "erratum" in text:
        outcome = "confirmed, with an erratum"
    elif "approximately" in text:
        outcome = "approximately"
    elif text.startswith("confirmed") and "measured" not in text:
        outcome = "confirmed"
    else:
        outcome = "measured"
    cid = c.get("id", c.get("claim", "?"))
    return {"claim": c.get("claim", cid), "id": cid, "title": c.get("title") or "",
            "statement": c.get("statement", c.get("document", "")), "as_written": c.get("as_written", ""),
            "outcome": outcome, "headline": c.get("headline", text), "evidence": c.get("evidence", ""),
            "erratum": c.get("erratum", ""), "ok": c.get("ok", True)}


def _badge(outcome):
    colour = OUTCOME_COLOURS.get(outcome, "grey")
    bg, fg = BADGE.get(colour, BADGE["grey"])
    return (f'<span class="badge" data-outcome="{_esc(outcome)}" style="background:{bg};color:{fg}">'
            f'{_esc(outcome)}</span>')


def _params_text(params):
    parts = []
    for k, v in params.items():
        if isinstance(v, (list, tuple)):
            v = f"[{len(v)} values]" if len(v) > _LONG else ", ".join(map(str, v))
        elif isinstance(v, dict):
            v = "{…}"
        parts.append(f"{k}={v}")
    return "; ".join(parts)


def _section_of(claim_id, sections):
    """The section a figure or derivation of ``claim_id`` goes in: itself, else its parent claim's first."""
    if claim_id in sections:
        return claim_id
    parent = claim_id.split("-")[0]
    return next((s for s, c in sections.items() if c["claim"] == parent), None)


def _figure_html(name, title, caption):
    return (f'<figure id="fig-{_esc(name)}"><img src="{_esc(name)}.png" alt="{_esc(title)}">'
            f"<figcaption><b>{_esc(title)}.</b> {_esc(caption)} "
            f'(<a href="{_esc(name)}.svg">SVG</a>)</figcaption></figure>')


def _derivation_html(rows, titles):
    """The derivation steps of one claim (rows of kind derivation), each marked."""
    marks = {"proven": ("✓", "ok"), "false": ("✗", "bad"), "undecided": ("?", ""), "needs-assumption": ("?", "")}
    out = []
    for chain in dict.fromkeys(r["params"].get("chain") for r in rows):
        steps = sorted((r for r in rows if r["params"].get("chain") == chain),
                       key=lambda r: r["params"].get("step", 0))
        false = [r for r in steps if r["verdict"] == "false"]
        head = f"Derivation “{titles.get(chain, chain)}”, line by line: {len(steps)} steps checked symbolically"
        head += f", {len(false)} false" if false else ", all proven" if all(
            r["verdict"] == "proven" for r in steps) else ""
        out.append(f'<details open><summary>{_esc(head)}</summary>'
                   '<table class="steps"><tr><th></th><th>step</th><th>line</th><th>residual</th></tr>')
        for r in steps:
            mark, cls = marks.get(r["verdict"], ("?", ""))
            label = r["check"].split(": ", 1)[-1]
            residual = r["params"].get("residual") or ""
            out.append(f'<tr><td class="{cls}" title="{_esc(r["verdict"])}">{mark}</td><td>{_esc(label)}</td>'
                       f'<td><code>{_esc(r.get("formula", ""))}</code></td>'
                       f'<td class="{cls}">{_esc(residual)}</td></tr>')
        out.append("</table><p class='meta'>✓ proven equal to the line before; ✗ false (the residual is what "
                   "remains of this line minus the one before); ? undecided. The document's premises are not "
                   "listed.</p></details>")
    return "\n".join(out)


def _chain_titles():
    try:
        from ..theory.derive import CHAINS
    except ImportError:
        return {}
    items = CHAINS.values() if isinstance(CHAINS, dict) else CHAINS
    return {getattr(c, "name", ""): getattr(c, "title", "") for c in items}


def _checks_table(rows):
    claims = list(dict.fromkeys(r.get("subclaim") or r["claim"] for r in rows))
    verdicts = list(dict.fromkeys(r["verdict"] for r in rows))
    kinds = list(dict.fromkeys(r["kind"] for r in rows))

    def select(ident, label, values):
        opts = "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)
        return (f'<label for="{ident}">{label}</label> <select id="{ident}" onchange="filterChecks()">'
                f'<option value="">all</option>{opts}</select>')

    out = [f'<details id="all-checks"><summary>All {len(rows)} checks (a table; also as '
           f'<a href="checks.csv">checks.csv</a>)</summary>',
           '<div class="filters">' + select("f-claim", "claim", claims) + select("f-verdict", "verdict", verdicts)
           + select("f-kind", "kind", kinds) + f'<span id="f-count">{len(rows)} shown</span></div>',
           '<div class="wide"><table id="checks"><thead><tr><th>claim</th><th>experiment</th><th>check</th><th>parameters</th>'
           '<th>kind</th><th>closed form</th><th>estimate ± MCSE</th><th>z</th><th>resolution</th>'
           '<th>verdict</th></tr></thead><tbody>']
    for r in rows:
        claim = r.get("subclaim") or r["claim"]
        est = _num(r["estimate"], 6) if not r["mcse"] else f"{_num(r['estimate'])} ± {_num(r['mcse'], 2)}"
        z = "—" if r["z"] is None else _num(r["z"], 3)
        out.append(f'<tr data-claim="{_esc(claim)}" data-verdict="{_esc(r["verdict"])}" data-kind="{_esc(r["kind"])}">'
                   f"<td>{_esc(claim)}</td><td>{_esc(r['experiment'])}</td><td>{_esc(r['check'])}</td>"
                   f"<td>{_esc(_params_text(r['params']))}</td><td>{_esc(r['kind'])}</td>"
                   f"<td class='num'>{_esc(_num(r['closed_form'], 6))}</td><td class='num'>{_esc(est)}</td>"
                   f"<td class='num'>{_esc(z)}</td><td class='num'>{_esc(_num(r.get('resolution'), 2))}</td>"
                   f"<td>{_esc(r['verdict'])}</td></tr>")
    out.append("</tbody></table></div></details>")
    return "\n".join(out)


def _glossary_html():
    out = ['<h2 id="glossary">Glossary</h2>']
    for section in dict.fromkeys(s for s, _, _, _ in GLOSSARY):
        out.append(f"<h3>{_esc(section)}</h3><dl class='gloss'>")
        for s, term, anchor, text in GLOSSARY:
            if s == section:
                out.append(f'<dt id="g-{_esc(anchor)}">{_esc(term)}</dt><dd>{_esc(text)}</dd>')
        out.append("</dl>")
    return "\n".join(out)


def _page(verification, figures_done, meta):
    """The HTML page (a string). ``figures_done``: ``[(claim id, name, title, caption), ...]`` in order."""
    claims = [_claim_entry(c) for c in verification.claims]
    sections = {c["id"]: c for c in claims}
    rows = verification.checks
    vmeta = verification.meta
    placed = {}
    for claim_id, name, title, caption in figures_done:
        placed.setdefault(_section_of(claim_id, sections) or claim_id, []).append((name, title, caption))
    titles = _chain_titles()
    errata = [c for c in claims if c["erratum"]]
    zstar = vmeta.get("z_threshold")
    p = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
         "<meta name='viewport' content='width=device-width, initial-scale=1'>",
         "<title>Dropout &amp; BatchNorm: the document's claims, checked</title>",
         f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>",
         "<h1>Dropout &amp; BatchNorm: the document's claims, checked by simulation</h1>",
         "<p>A blog post explains why Dropout followed by BatchNorm can make results worse. This page takes its "
         "claims one at a time, restates each in plain words, and checks it: by sampling (Monte Carlo, every "
         "estimate with its standard error), by exact enumeration where that is possible, and line by line for "
         "its derivations. Terms are defined in the <a href='#glossary'>glossary</a>; every single check is in "
         "the <a href='#all-checks'>table at the end</a>.</p>",
         f"<p><b>p is the keep probability</b> (<a href='#g-p'>p</a>): PyTorch's <code>nn.Dropout</code> takes "
         f"the drop probability 1 − p. Seed {_esc(meta.get('seed'))}; family-wise α = "
         f"{_esc(_num(vmeta.get('alpha')))} over the simulator's {_esc(_self_tests(vmeta))} self-tests, so one "
         f"fails when |z| &gt; z* = {_esc(_num(zstar, 3))}. The findings about the document (effects, "
         f"equivalences) are judged apart, each sub-claim a family at the same α: "
         f"{_esc(_families_text(vmeta))}.</p>",
         "<h2 id='answers'>The answers, claim by claim</h2><table class='summary'>"
         "<tr><th>claim</th><th>what the document says</th><th>outcome</th><th>the numbers</th></tr>"]
    for c in claims:
        p.append(f"<tr><td><a href='#{_esc(c['id'])}'>{_esc(c['id'])}</a></td><td>{_esc(c['title'] or c['statement'])}"
                 f"</td><td>{_badge(c['outcome'])}</td><td>{_esc(c['headline'])}</td></tr>")
    p.append("</table>")
    if errata:
        p.append("<div class='box'><b>Errata in the document.</b><ul>" + "".join(
            f"<li><a href='#{_esc(c['id'])}'>{_esc(c['id'])}</a>: <span class='erratum'>{_esc(c['erratum'])}</span>"
            "</li>" for c in errata) + "</ul></div>")
    derivations = [r for r in rows if r["kind"] == "derivation"]
    for c in claims:
        cid = c["id"]
        mine = [r for r in rows if (r.get("subclaim") or r["claim"]) == cid]
        if not c["title"]:  # an entry with no words of its own (e.g. only a derivation): name it by its chains
            chains = dict.fromkeys(r["params"].get("chain") for r in mine if r["kind"] == "derivation")
            c["title"] = "; ".join(titles.get(ch) or str(ch) for ch in chains) or cid
            c["statement"] = c["statement"] or "the document's derivation for this claim, checked line by line."
        p.append(f"<h2 id='{_esc(cid)}'>{_esc(cid)} — {_esc(c['title'])}</h2>")
        p.append(f"<p><b>The document claims:</b> {_esc(c['statement'])}</p>")
        if c["as_written"]:
            p.append(f"<p><b>Its formula, as written:</b></p><div class='formula'>{_esc(c['as_written'])}</div>")
        p.append(f"<p><b>Outcome:</b> {_badge(c['outcome'])}</p>")
        if c["erratum"]:
            text = c["erratum"] if c["erratum"].lower().startswith("erratum") else f"Erratum: {c['erratum']}"
            p.append(f"<p class='erratum'>{_esc(text)}</p>")
        p.append(f"<p><b>The numbers:</b> {_esc(c['headline'] or 'none: nothing in this run tests the claim')}</p>")
        for name, title, caption in placed.pop(cid, []):
            p.append(_figure_html(name, title, caption))
        steps = [r for r in derivations if (r.get("subclaim") or r["claim"]) == cid]
        if steps:
            p.append(_derivation_html(steps, titles))
        if c["evidence"]:
            p.append(f"<p class='meta'><b>Evidence:</b> {_esc(c['evidence'])}</p>")
        p.append(f"<p class='meta'>{len(mine)} checks test or measure this claim: "
                 f"<a href='#all-checks' onclick=\"showChecks('{_esc(cid)}')\">show them in the table</a>.</p>")
    training = placed.pop("training", [])
    p.append("<h2 id='training'>Trained networks</h2>")
    if training or any(f[0].startswith("C6") and f[1].startswith("training") for f in figures_done):
        p.append("<p>Small fully connected networks with BatchNorm, trained by SGD on a real regression data set "
                 "(diabetes) and on its classification twin (diabetes-class: above or below the training median), "
                 "with dropout placed in different ways (<a href='#g-hidden'>hidden</a>, <a href='#g-head'>head</a>, "
                 "<a href='#g-recalibrated'>recalibrated</a>, <a href='#g-recalibrated-dropout-on'>"
                 "recalibrated-dropout-on</a>, <a href='#g-uout'>uout</a>) and without (<a href='#g-none'>none</a>). "
                 "One training run is one Monte Carlo sample; runs with and without dropout share the data split, "
                 "the initialisation and the batch order, so their differences are paired. The effect of each "
                 "placement is shown under <a href='#C6-regression'>C6-regression</a> and "
                 "<a href='#C6-classification'>C6-classification</a>.</p>")
        for name, title, caption in training:
            p.append(_figure_html(name, title, caption))
    else:
        p.append("<p>The <code>training</code> experiment is not part of this build: no trained-network figures.</p>")
    for cid, figs in placed.items():  # figures of a claim without a section of its own
        p.append(f"<h2 id='extra-{_esc(cid)}'>Further figures ({_esc(cid)})</h2>")
        p += [_figure_html(*f) for f in figs]
    p.append(_glossary_html())
    p.append("<h2 id='checks-section'>Every check</h2>")
    p.append(_checks_table(rows))
    p.append("<h2 id='data'>Data</h2><p><a href='checks.csv'>checks.csv</a> (every check, all parameters), "
             "<a href='results.json'>results.json</a> (the same and every figure's rows), "
             "<a href='manifest.json'>manifest.json</a> (command, seed, versions, git commit, platform, timings). "
             "The page itself depends on the seed and the budget only.</p>")
    p.append("</body></html>")
    return "\n".join(p)


def _self_tests(meta):
    return meta.get("checks_tested", 0) - sum(f["tests"] for f in (meta.get("findings") or {}).values())


def _families_text(meta):
    families = meta.get("findings") or {}
    return "; ".join(f"{k}: {f['tests']} tests, z* = {_num(f['z_star'], 3)}" for k, f in families.items()) or "none"


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _figure_settings(figure, exp, quick=False):
    """The figure's fixed settings (its quick ones in a quick report) that the experiment declares."""
    names = {prm.name for prm in exp.params}
    wanted = {**figure.settings, **(figure.quick if quick else {})}
    return {k: v for k, v in wanted.items() if k in names or k == "p"}


def figures():
    """The figures to draw: those of :data:`FIGURES` whose experiment is in the catalog (an optional one may
    not be yet); a missing experiment of a required figure is an error."""
    out = []
    for f in FIGURES:
        if f.experiment in CATALOG:
            out.append(f)
        elif not f.optional:
            raise KeyError(f"figure {f.name}: no experiment {f.experiment!r}")
    return out


def draw_figures(folder, figure_rows):
    """Draw every figure of :data:`FIGURES` that has rows into ``folder``; return ``(claim, name, title,
    caption)`` of each, in order."""
    done = []
    for f in FIGURES:
        if f.name not in figure_rows:
            continue
        draw(f, figure_rows[f.name], os.path.join(folder, f.name))
        done.append((f.claim, f.name, f.title, f.caption))
    return done


def _draw_child(folder, figure_rows, conn):
    """The drawing process: :func:`draw_figures`, its result (or its exception) sent back on ``conn``.

    It ignores Ctrl-C (the terminal sends it to the whole process group): the parent decides, and stops it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        conn.send((True, draw_figures(folder, figure_rows)))
    except Exception as e:  # noqa: BLE001 - handed to the parent, which raises it
        conn.send((False, e))
    conn.close()


def _drawing(folder, figure_rows):
    """Start :func:`draw_figures` in a separate process, to run while ``verify`` computes.

    Returns ``(wait, stop)``: ``wait()`` waits for it and returns what :func:`draw_figures`
    returns (or raises what it raised), or None where no process could be started or it
    died (the caller then draws itself); ``stop()`` ends it at once (an interrupted or
    failed report). The process is a daemon and ignores Ctrl-C.
    """
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    try:
        process = context.Process(target=_draw_child, args=(folder, figure_rows, child), daemon=True)
        with sigint_ignored():  # an ignored signal stays ignored in the new interpreter, from its first line
            process.start()
    except OSError:
        return (lambda: None), (lambda: None)
    child.close()

    def wait():
        try:
            ok, value = parent.recv()
        except EOFError:  # the process died (e.g. out of memory)
            return None
        finally:
            process.join()
        if not ok:
            raise value
        return value

    def stop():
        if process.is_alive():
            process.terminate()
        process.join()

    return wait, stop


def write(folder, verification, figure_rows, manifest, drawn=None):
    """Write the page, the figures (unless ``drawn``, the result of :func:`draw_figures` for this folder,
    says they are there) and the data into ``folder`` (which exists)."""
    done = draw_figures(folder, figure_rows) if drawn is None else drawn
    with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as fh:
        data = json.loads(json.dumps({"meta": verification.meta, "claims": verification.claims,
                                      "checks": verification.checks}, ensure_ascii=False))  # as to_json writes it
        # Only what the seed determines: timings and threads live in the manifest.
        data["meta"] = {k: v for k, v in data["meta"].items() if k not in ("elapsed_s", "threads")}
        data["figures"] = figure_rows
        json.dump(data, fh, indent=1, ensure_ascii=False)
    with open(os.path.join(folder, "checks.csv"), "w", encoding="utf-8", newline="") as fh:
        fh.write(to_csv(verification))
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
    with open(os.path.join(folder, "index.html"), "w", encoding="utf-8") as fh:
        fh.write(_page(verification, done, manifest))


def report(out=DEFAULT_OUT, seed=DEFAULT_SEED, samples=None, quick=False, threads=None, progress=None,
           command=None):
    """Run ``verify`` and the figure sweeps and write the report folder ``out``.

    Parameters
    ----------
    out : str
        Folder to write (replaced as a whole when the new one is complete). An existing path is replaced
        only when it is an empty folder or a report of this program; anything else is refused.
    seed, samples, threads, progress
        As for :func:`simulator.runs.simulate`.
    quick : bool
        Small budgets everywhere (for a first look and for tests).
    command : list of str, optional
        The command line, recorded in the manifest.

    Returns
    -------
    str
        The path of ``index.html``.
    """
    seed = check_seed(seed)
    samples = None if samples is None else check_samples(samples)
    out = os.path.abspath(out)
    check_folder(out, is_report, what="a report of this program (its manifest.json, and only the files a "
                                     "report writes)")
    checkpoints = _checkpoint_folder(out)
    tmp = new_folder(out)
    stop = None
    try:
        start = time.perf_counter()
        figure_rows, timings = _figure_sweeps(checkpoints, seed, samples, quick, threads, progress)
        # The figures are drawn (one core, matplotlib) while verify runs, which leaves a core idle at times.
        wait, stop = _drawing(tmp, figure_rows)
        t0 = time.perf_counter()
        verification = verify(quick=quick, samples=samples, seed=seed, threads=threads, progress=progress,
                              checkpoint=os.path.join(checkpoints, "verify.jsonl"))
        timings["verify_s"] = round(time.perf_counter() - t0, 3)
        drawn = wait()
        timings["total_s"] = round(time.perf_counter() - start, 3)
        manifest = {"written_by": WRITTEN_BY, "command": command or sys.argv, "seed": seed, "samples": samples,
                    "quick": quick, "threads": verification.meta["threads"],
                    "versions": {**versions(), "seaborn": sns.__version__}, "platform": platform.platform(),
                    "git_commit": _git_commit(), "timings": timings}
        write(tmp, verification, figure_rows, manifest, drawn)
        with sigint_ignored():  # the two renames, and the cleanup below, are not cut in half by a Ctrl-C
            replace_folder(tmp, out, is_report)
    except BaseException as e:
        with sigint_ignored():
            if stop is not None:
                stop()
            remove_folder(tmp)
            _drop_empty_checkpoints(checkpoints)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write the report {out}: {e.strerror or e}") from None
        raise
    remove_folder(checkpoints)
    return os.path.join(out, "index.html")


def _figure_sweeps(checkpoints, seed, samples, quick, threads, progress):
    """The rows of every figure's sweep (figures drawing from the same sweep share one run), and timings."""
    timings, figure_rows, swept = {}, {}, {}
    for f in figures():
        t0 = time.perf_counter()
        n = samples or (max(1000, (f.samples or 0) // 20) if quick and f.samples else f.samples)
        settings = _figure_settings(f, CATALOG[f.experiment], quick)
        same = json.dumps([f.experiment, f.grid, settings, n], sort_keys=True)
        if same not in swept:
            swept[same] = sweep(f.experiment, f.grid, seed=seed, samples=n, settings=settings, threads=threads,
                                progress=progress, checkpoint=os.path.join(checkpoints, f.name + ".jsonl")).checks
        figure_rows[f.name] = [r for r in swept[same] if f.keep(r)]
        timings[f"figure_{f.name}_s"] = round(time.perf_counter() - t0, 3)
    return figure_rows, timings


WRITTEN_BY = "dropout-bn-simulator report"
_LEGACY_MANIFEST = {"command", "seed", "versions", "git_commit", "timings"}  # reports written before WRITTEN_BY
CHECKPOINT_MARK = "checkpoints-of-report.json"


REPORT_FILES = ("index.html", "manifest.json", "results.json", "checks.csv")


def is_report(folder):
    """Whether ``folder`` is a report this program wrote: its ``manifest.json`` says so, and it holds
    nothing but what a report writes (the page, the data, the figures). Only such a folder is ever
    replaced by a new report; one holding anything else (a file the user added) is refused."""
    try:
        with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        names = os.listdir(folder)
    except (OSError, ValueError):
        return False
    ours = isinstance(manifest, dict) and (manifest.get("written_by") == WRITTEN_BY
                                           or _LEGACY_MANIFEST <= set(manifest))
    figures_ = {f"{f.name}.{ext}" for f in FIGURES for ext in ("png", "svg")}
    return ours and all(n in REPORT_FILES or n in figures_ for n in names)


def _checkpoint_folder(out):
    """``out.checkpoint``, the report's finished sweeps: created with its mark, or refused when it exists and
    is not this program's."""
    folder = out + ".checkpoint"
    mark = os.path.join(folder, CHECKPOINT_MARK)
    if os.path.lexists(folder):
        if os.path.islink(folder) or not os.path.isfile(mark):
            raise ParameterError(f"{folder} exists and is not this program's report checkpoint; "
                                 "move it away to write the report")
        return folder
    try:
        os.makedirs(folder)
        with open(mark, "w", encoding="utf-8") as f:
            json.dump({"written_by": WRITTEN_BY, "holds": "finished sweeps of an unfinished report"}, f)
    except OSError as e:
        remove_folder(folder)
        raise OutputError(f"cannot write the report's checkpoints {folder}: {e.strerror or e}") from None
    return folder


def _drop_empty_checkpoints(folder):
    """An interrupted report keeps its checkpoints, unless it had finished nothing yet."""
    if os.path.isdir(folder) and os.listdir(folder) == [CHECKPOINT_MARK]:
        remove_folder(folder)
