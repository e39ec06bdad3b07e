"""The drawing of the report's figures: seaborn's style, matplotlib, and the process that draws them.

This module alone of the package imports matplotlib and seaborn. :func:`draw` draws one figure of
:data:`simulator.present.figures.FIGURES` from its sweep's rows (the figure says which rows, what is
x and which series, :mod:`simulator.present.figures`); :func:`draw_figures` draws them all; :func:`start`
draws them in a separate process, while :func:`simulator.runs.verify.verify` runs. A placement keeps
its colour and marker in every figure (:data:`PLACEMENT_STYLE`).
"""
import math
import multiprocessing
import os
import signal
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..core.interrupts import sigint_ignored  # noqa: E402
from ..nn import placements  # noqa: E402
from .figures import FIGURES  # noqa: E402

SEABORN_VERSION = sns.__version__  # recorded in the report's manifest

# Okabe & Ito (2008), the colour-blind-safe palette, ordered so that the first four are far apart
# (blue, vermillion, green, purple); its orange comes last, after black, so no two oranges meet.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#000000", "#E69F00")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
# A placement keeps its colour and marker in every figure.
# Keyed by the one placement vocabulary (simulator.nn.placements): the trainer's hidden and head take
# the colours of their chain twins before-bn and after-bn.
PLACEMENT_STYLE = {
    "none": ("#000000", "P"), "before-bn": ("#D55E00", "s"), "after-bn": ("#0072B2", "o"),
    "recalibrated": ("#009E73", "^"), "uout": ("#CC79A7", "D"), "recalibrated-dropout-on": ("#56B4E9", "v"),
}


def placement_style(label):
    """The fixed colour and marker of a placement's series (None for a label that is not a placement)."""
    return PLACEMENT_STYLE.get(placements.canonical(label)) if label in placements.NAMES else None
FIG_WIDTH, FIG_HEIGHT, DPI = 9.6, 5.0, 100  # 960 px wide: shown at its own size, fonts ≥ 10 pt as displayed
FONTS = {"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "xtick.labelsize": 11,
         "ytick.labelsize": 11, "legend.fontsize": 11, "legend.title_fontsize": 11}
PM = "Monte Carlo mean ±2 MCSE"


def _styles(labels):
    """Colour and marker of each series label: placements fixed, others in palette order."""
    out, free = {}, [(c, m) for c, m in zip(PALETTE, MARKERS)]
    for label in labels:
        if placement_style(label) is not None:
            out[label] = placement_style(label)
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


def start(folder, figure_rows):
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
