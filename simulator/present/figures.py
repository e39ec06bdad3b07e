"""What each figure of the report shows: a sweep to run and how to plot its rows.

A :class:`Figure` names an experiment, a grid, the rows to keep, what goes on
the x axis and what separates the series, and how to draw them (``style``):

- ``curve``: the closed form (or a reference) as a line over a continuous x, the
  Monte Carlo estimates as points with ±2·MCSE error bars;
- ``per-index``: one value per separate index (a weight, a layer): the closed
  form as a short bar at each index, estimates as points, nothing joined;
- ``approximation``: an approximation against a size parameter, tested points
  filled and measured-only points hollow, and beside it the approximation's
  relative error against its stated tolerance;
- ``effect``: a paired difference with ±2·MCSE bars and the zero line;
- ``scatter``: measured against predicted, with the line measured = predicted.

Rows are chosen, placed and labelled by the facts their check was made with (a row's ``facts``:
quantity, index, layer, width, setting; :class:`simulator.theory.verdict.Facts`), never by parsing the
check's name, so renaming a check cannot silently empty a figure. Drawing lives in
:mod:`simulator.present.report`; this module is only data. Figures of
an experiment that is not in the catalog (``optional``) are left out.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One figure of the report.

    Attributes
    ----------
    claim : str
        The claim or sub-claim it illustrates (``C1``, ``C3-size``, ``C6-regression``),
        or ``training`` for the trained-network section.
    name : str
        File stem of the figure.
    title, xlabel, ylabel : str
    experiment : str
    grid : dict
        Name → SPEC for :func:`simulator.runs.sweep.sweep`.
    keep : callable
        ``keep(row) -> bool``: the rows plotted.
    x : callable
        ``x(row) -> float``.
    series : callable
        ``series(row) -> str``: the legend entry of a row.
    settings : dict
        Fixed parameters (those the experiment does not declare are dropped).
    logx, logy : bool
        Logarithmic axes.
    samples : int or None
        Samples per stream (None: the experiment's default).
    line : str
        What the line (or bar) is: the closed form, or the reference a measurement is compared with.
    caption : str
        What a reader should see in it.
    style : str
        How it is drawn (see the module docstring).
    hline : float or None
        A horizontal reference line (1 for a ratio, 0 for a difference).
    join : bool
        Join the estimates of a series with a thin line (x is a progression, e.g. depth).
    reference : str
        What the horizontal reference line means (default: ``line``).
    quick : dict
        Settings that replace ``settings`` in a quick report.
    optional : bool
        Leave the figure out when its experiment is not in the catalog.
    """

    claim: str
    name: str
    title: str
    xlabel: str
    ylabel: str
    experiment: str
    grid: dict
    keep: object
    x: object
    series: object
    settings: dict = field(default_factory=dict)
    logx: bool = False
    logy: bool = False
    samples: int | None = None
    line: str = "closed form"
    caption: str = ""
    style: str = "curve"
    hline: float | None = None
    join: bool = False
    reference: str = ""
    quick: dict = field(default_factory=dict)
    optional: bool = False


def _p(row):
    return row["params"]["p"]


def _facts(row):
    """The facts the check was made with (:class:`simulator.theory.verdict.Facts`); never parsed from its name."""
    return row.get("facts") or {}


def _quantity(*quantities, setting=None):
    """``keep``: the rows of these quantities (and this setting)."""
    def keep(row):
        f = _facts(row)
        return f.get("quantity") in quantities and (setting is None or f.get("setting") == setting)
    return keep


def _index(row):
    return _facts(row)["index"]


def _setting(row):
    """The setting of the check (its placement, noise, case): ``"shift (uout)"`` → ``"uout"``."""
    return _facts(row)["setting"]


def _width(row):
    return _facts(row)["width"]


def _layer(row):
    return _facts(row)["layer"]


def _training(quantity, task=None):
    """Rows of the ``training`` experiment with this quantity (and task)."""
    def keep(row):
        q = row["params"]
        return q.get("quantity") == quantity and (task is None or q.get("task") == task)
    return keep


def _placement(row):
    return str(row["params"].get("placement", "?"))


def _curve(task, final):
    """The test metric of ``task`` at every checkpoint epoch and at the end (``final``: its quantity), p = 0.5."""
    def keep(row):
        q = row["params"]
        return q.get("task") == task and q.get("p") == 0.5 and q.get("quantity") in ("curve", final)
    return keep


def _epoch(row):
    q = row["params"]
    return q["epoch"] if q.get("quantity") == "curve" else q.get("epochs")


def _noise(row):
    """A legend entry for a row of variance-shift's ``shift`` checks: the noise, and for the width rows the
    width, the inputs' correlation and the weights."""
    f, q = _facts(row), row["params"]
    if "width" not in f:
        return f["setting"]
    weights = "" if not q["rho"] else ", random weights" if q["cos2"] is None else ", aligned weights"
    return f"{f['setting']}, d = {f['width']}, ρ = {q['rho']:g}{weights}"


P_AXIS = "keep probability p (PyTorch: nn.Dropout(1 − p))"
P_GRID = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"
# A small budget for the trained networks, one sweep shared by their four figures (the report runs a
# sweep once however many figures draw from it): the whole report stays within a few minutes on 2 cores.
TRAINING_SETTINGS = {"runs": "16", "epochs": "30"}
TRAINING_QUICK = {"runs": "4", "epochs": "10"}
TRAINING_GRID = {"p": "0.5,0.8"}

FIGURES = (
    Figure("C1", "c1-regularizer", "The regularizer term per weight: E[∂E_D/∂w_i] − ∂E_N/∂w_i (n = 8 inputs)",
           "weight index i (separate weights: not joined)", "E[∂E_D/∂w_i] − ∂E_N/∂w_i", "dropout-gradient",
           {"p": "0.2,0.5,0.8"}, keep=_quantity("reg"), x=_index,
           series=lambda r: f"p = {_p(r):g}", settings={"n": "8"}, samples=400_000, style="per-index",
           hline=0.0, line="document's term w_i p_i(1−p_i) I_i²",
           caption="Each bar is the document's extra term w_i p_i(1−p_i) I_i² for one weight; each point is the "
                   "sampled dropout gradient minus the weight-scaled network's gradient, with ±2 MCSE. Every point "
                   "sits on its bar: the extra term is exactly the document's. Its sign follows w_i; it is largest "
                   "at p = 0.5, where p(1−p) is largest, the same at p = 0.2 and p = 0.8 (p(1−p) = 0.16 for both) "
                   "and 0 at p = 1. The weights are separate, so nothing is joined across i."),
    Figure("C2", "c2-variance", "Inverted dropout: Var(h') against p (c = 2, v = 1, normal input)",
           P_AXIS, "Var(h')", "inverted-dropout", {"p": P_GRID},
           keep=_quantity("var", "var-as-written"), x=_p,
           series=lambda r: "document, as written: E(h²)/p − μ" if _facts(r)["quantity"] == "var-as-written"
           else "corrected: σ²/p + (1−p)μ²/p",
           settings={"dist": "normal"}, logy=True, samples=400_000,
           caption="The sampled variance (points) follows the corrected formula σ²/p + (1−p)μ²/p and misses the "
                   "document's last line, E(h²)/p − μ_h, which is off by μ_h² − μ_h = 2 here at every p (the gap "
                   "looks small at small p only because the variance is large there, on this log scale). The "
                   "document's formula is wrong (an erratum); its claim that the mean stays and the variance "
                   "changes holds. The same samples are drawn against both lines."),
    Figure("C3-size", "c3-relu-shift", "Post-ReLU mean shift E_train − E_test after a weighted sum of width d "
           "(random inputs) against the Gaussian approximation",
           "width d", "mean shift after ReLU", "relu-shift", {"p": "0.2,0.5,0.8"},
           keep=_quantity("gauss shift", setting="inputs"), x=_width,
           series=lambda r: f"p = {_p(r):g}", logx=True, samples=200_000, style="approximation",
           line="Gaussian approximation",
           caption="Left: the shift is positive at every width, as Jensen's inequality says. Filled points are "
                   "tested against the Gaussian approximation (kind approximation, within a stated tolerance); "
                   "hollow points are only measured, because there the stated error bound is as large as the "
                   "shift itself (small d, p near 0 or 1). The approximation (open diamonds) is not a smooth curve "
                   "in d: the weights w ~ N(0, 1/d) are drawn afresh from the seed at each width, so each d is a "
                   "different random network. Right: the approximation's relative error. It is not monotone in "
                   "d for the same reason, but it falls about as 1/(d p(1−p)) (dashed guides, scaled to the "
                   "points), like the skewness and kurtosis of the pre-activation that it ignores; bars mark the "
                   "tolerance of each tested point."),
    Figure("C4", "c4-batch-variance", "BatchNorm: mean of the biased batch variance against the batch size m "
           "(v = 4)", "batch size m", "E[σ_B²]", "batchnorm", {"m": "2,3,4,8,16,32"},
           keep=_quantity("batch-var"), x=lambda r: r["params"]["m"], series=lambda r: "(m−1)/m · v",
           logx=True, samples=100_000, settings={"steps": "10"},  # 10⁶ batches per m: bars of ±0.006 at most
           caption="BatchNorm normalises with the biased batch variance, whose mean is (m−1)/m times the true "
                   "variance: small batches see a smaller variance. The points lie on the line."),
    Figure("C4", "c4-running-var", "BatchNorm running_var (PyTorch: momentum 0.1, unbiased, starts at 1) "
           "against training steps (v = 4)", "training steps", "E[running_var]", "batchnorm",
           {"steps": "1,2,5,10,20,50,100"}, keep=_quantity("running-var"),
           x=lambda r: r["params"]["steps"], series=lambda r: "(1−0.1)^k + (1 − (1−0.1)^k) v", logx=True,
           samples=100_000,
           caption="PyTorch's running_var starts at 1 and moves towards the (unbiased) variance 4 by 10% a "
                   "step; after about 50 steps it has converged. This is the statistic BN uses in eval mode."),
    Figure("C5", "c5-shift", "Variance shift Δ = Var_test / Var_train before BN, by noise and width",
           P_AXIS, "Δ (ratio)", "variance-shift", {"p": "0.1,0.2,0.3,0.5,0.7,0.9,1"},
           keep=_quantity("shift"), x=_p,
           series=_noise,
           samples=200_000, hline=1.0, reference="no shift (Δ = 1)",
           caption="Δ < 1 means that in eval mode BN sees a smaller variance than it learned with dropout on. "
                   "Bernoulli and Gaussian dropout shift alike (Δ = p at c = 0); Uout (β = 0.1) barely shifts; "
                   "width helps only with correlated inputs and aligned weights."),
    Figure("C5", "c5-depth", "Eval variance / running_var per BN layer, relative to the same chain without "
           "dropout (p = 0.5)", "BN layer (L1 … L8)", "ratio/none (1 = no shift)", "network-shift", {"p": "0.5"},
           keep=_quantity("ratio/none"), x=_layer, series=_setting, logy=True, style="per-index",
           hline=1.0, join=True, line="no shift (ratio 1)",
           caption="Dropout before every BN (before-bn) shifts the variance at the first layer and the shift "
                   "compounds with depth. Uout shifts far less. Dropout after the last BN (after-bn) and BN "
                   "statistics re-estimated with dropout off (recalibrated) sit exactly on 1: no BN sees the "
                   "noise. The series are offset slightly left and right so that none hides another."),
    Figure("C6-regression", "training-effect-regression", "Trained network, regression (diabetes): "
           "ΔMSE = test MSE with dropout − without (paired)", P_AXIS, "ΔMSE (> 0: dropout hurts)", "training",
           TRAINING_GRID, keep=_training("dmse", "diabetes"), x=_p, series=_placement,
           settings=TRAINING_SETTINGS, quick=TRAINING_QUICK, style="effect", hline=0.0, join=True, optional=True,
           line="no effect (0)",
           caption="Each point is the mean over training runs of the paired difference in test MSE (same split, "
                   "initialisation and batch order with and without dropout), with ±2 MCSE. Above the zero line "
                   "dropout hurt the regression; bars crossing zero mean no detectable effect at this budget."),
    Figure("C6-classification", "training-effect-classification", "Trained network, classification "
           "(diabetes-class): accuracy drop = accuracy without dropout − with (paired)", P_AXIS,
           "accuracy drop (> 0: dropout hurts)", "training", TRAINING_GRID,
           keep=_training("drop", "diabetes-class"), x=_p, series=_placement,
           settings=TRAINING_SETTINGS, quick=TRAINING_QUICK,
           style="effect", hline=0.0, join=True, optional=True, line="no effect (0)",
           caption="The classification twin of the regression task (labels: above or below the training "
                   "median). Above zero dropout cost accuracy; the claim allows a drop of at most 0.01."),
    Figure("C6-chain", "c6-regression", "Regression (frozen random chain, least-squares head): eval MSE "
           "relative to the network without dropout",
           P_AXIS, "MSE / MSE without dropout (ratio)", "task-impact", {"p": "0.3,0.5,0.7,0.9,1"},
           keep=_quantity("MSE/none"), x=_p, series=_setting, logy=True, hline=1.0,
           join=True, line="no harm (ratio 1)",
           caption="Above 1, dropout made the regression worse. In this frozen chain every placement but Uout "
                   "raises the MSE as p falls, after-bn and recalibrated included: the least-squares head is fit "
                   "on features carrying dropout noise, so the harm is not BN's variance shift alone. The chain "
                   "is not trained (random weights, a least-squares head); trained networks are in their own "
                   "section."),
    Figure("C6-chain", "c6-classification", "Classification (frozen random chain, least-squares "
           "classifier): eval accuracy relative to the network without dropout", P_AXIS,
           "accuracy / accuracy without dropout (ratio)", "task-impact",
           {"p": "0.3,0.5,0.7,0.9,1"}, keep=_quantity("accuracy/none"), x=_p,
           series=_setting, hline=1.0, join=True, line="no harm (ratio 1)",
           caption="Below 1, dropout cost accuracy. In this frozen chain classification is not immune: with "
                   "dropout before BN a large part of the accuracy is lost at small p; after-bn loses less and "
                   "Uout nothing visible. Compare with the regression figure above."),
    Figure("training", "training-curves", "Trained network, regression (diabetes): test MSE against epochs, "
           "per dropout placement (p = 0.5)", "epoch", "test MSE", "training", TRAINING_GRID,
           keep=_curve("diabetes", "mse"), x=_epoch, series=_placement, settings=TRAINING_SETTINGS,
           quick=TRAINING_QUICK, logx=True, join=True, optional=True,
           caption="How the test error evolves during training for each placement (mean over runs, ±2 MCSE). "
                   "The gap between placements at the last epoch is the effect shown in C6."),
    Figure("training", "training-bn-ratio", "Trained network, regression (diabetes): measured "
           "against predicted BN variance ratio, per BN layer (p = 0.5)",
           "predicted ratio (C5's formula on the layer's measured moments)",
           "measured ratio: eval variance / running_var", "training", TRAINING_GRID,
           keep=lambda r: (r["params"].get("quantity") == "ratio" and r["params"].get("task") == "diabetes"
                           and r["params"].get("p") == 0.5 and r.get("closed_form") is not None),
           x=lambda r: r["closed_form"], series=_placement, settings=TRAINING_SETTINGS,
           quick=TRAINING_QUICK, style="scatter",
           optional=True, line="measured = predicted",
           caption="Each point is one BN layer (labelled L1, L2, …) of the trained network: the ratio of the "
                   "variance BN sees in eval mode to its running_var, against C5's prediction from that layer's "
                   "own input moments. Points on the diagonal: the formula of C5 predicts the shift inside a "
                   "trained network. Where dropout sits before a BN (hidden, recalibrated-dropout-on) the "
                   "predicted ratio is below 1 and the points are labelled by layer; where no BN sees dropout "
                   "the prediction is 1, and a measured ratio a little below 1 is BN's own train/eval gap "
                   "(finite batches, running average), which the network without dropout (none) shows too."),
)
