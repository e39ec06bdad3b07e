"""Figure of an audit: Var_eval/running_var per BN layer, measured next to predicted, before and after the fix.

Imported only when a figure is asked for (matplotlib, Agg backend).
"""
import math
import os

from ..core.files import open_output

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
SERIES = (  # (stage, what, label, colour, marker, filled)
    ("before", "ratio_mean", "measured, as found", "#D55E00", "o", True),
    ("before", "predicted_mean", "closed form, as found", "#E69F00", "D", False),
    ("after", "ratio_mean", "measured, after recalibration", "#0072B2", "s", True),
    ("after", "predicted_mean", "closed form, after recalibration", "#56B4E9", "^", False),
)


def plot_ratios(result, path):
    """Draw the ratio per BN layer into ``path`` (.png or .svg), written atomically.

    Parameters
    ----------
    result : AuditResult
    path : str
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r["layer"] for r in result.rows))
    fig, ax = plt.subplots(figsize=(max(7.5, 1.2 * len(layers) + 5.0), 4.2), layout="constrained")
    ax.axhline(1.0, color="0.4", lw=1, ls="--", label="no shift", zorder=1)
    offsets = {0: -0.2, 1: -0.07, 2: 0.07, 3: 0.2}
    for k, (stage, what, label, colour, marker, filled) in enumerate(SERIES):
        xs, ys, es = [], [], []
        for r in result.stage(stage):
            if r[what] is None or r.get("undecided") or not math.isfinite(r[what]):
                continue  # no verdict, no point: the table says why
            xs.append(layers.index(r["layer"]) + offsets[k])
            ys.append(r[what])
            es.append(r["ratio_mcse" if what == "ratio_mean" else "predicted_mcse"] or 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=es, fmt=marker, ms=8, color=colour, capsize=3, label=label, zorder=3,
                        mfc=colour if filled else "white", mew=1.8)
    ax.set_xticks(range(len(layers)), layers, rotation=30 if len(layers) > 6 else 0,
                  ha="right" if len(layers) > 6 else "center", rotation_mode="anchor")
    ax.set_xlabel("BatchNorm layer (in the order they run)")
    ax.set_ylabel("Var_eval / running_var (mean over channels)")
    ax.set_title("Variance shift per BN layer (1 = none)", fontsize=11)
    ax.set_ylim(bottom=0.0, top=max(1.15, ax.get_ylim()[1]))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    ext = os.path.splitext(path)[1].lower()
    try:
        with open_output(path, binary=True) as f:  # never half-written, a user's link or device kept
            fig.savefig(f, format=ext[1:], dpi=150)
    finally:
        plt.close(fig)
