"""What each figure of the report shows: a sweep to run and how to plot its rows.

A :class:`Figure` names an experiment, a grid, the rows to keep, what goes on
the x axis and what separates the series. Every figure draws the same way
(:mod:`simulator.report`): the closed form as a line, the Monte Carlo estimates
as points with ±2·MCSE error bars.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One figure of the report.

    Attributes
    ----------
    claim : str
        The claim it illustrates (``C1`` … ``C6``).
    name : str
        File stem of the figure.
    title, xlabel, ylabel : str
    experiment : str
    grid : dict
        Name → SPEC for :func:`simulator.sweep.sweep`.
    settings : dict
        Fixed parameters.
    keep : callable
        ``keep(row) -> bool``: the rows plotted.
    x : callable
        ``x(row) -> float``.
    series : callable
        ``series(row) -> str``: the legend entry of a row.
    logx, logy : bool
        Logarithmic axes.
    samples : int or None
        Samples per stream (None: the experiment's default).
    line : str
        What the line is: the closed form, or the reference a measurement is compared with.
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


def _p(row):
    return row["params"]["p"]


def _index(row):
    return int(row["check"].split("[")[1].rstrip("]"))


def _inside(row):
    """The text between the parentheses of a check name: ``"shift (uout)"`` → ``"uout"``."""
    return row["check"].split("(", 1)[1].rstrip(")")


def _width(row):
    return int(row["check"].split("d=")[1].rstrip(")"))


def _layer(row):
    return int(row["check"].split(" ")[0][1:])


P_AXIS = "keep probability p (PyTorch: 1 − dropout rate)"
P_GRID = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"

FIGURES = (
    Figure("C1", "c1-gradient", "Expected dropout gradient per weight: ∂E_N/∂w_i + w_i p(1−p) I_i²",
           "weight index i", "E[∂E_D/∂w_i]", "dropout-gradient", {"p": "0.2,0.5,0.8"},
           keep=lambda r: r["check"].startswith("grad["), x=_index, series=lambda r: f"p = {_p(r):g}",
           settings={"n": "8"}, samples=400_000),
    Figure("C2", "c2-variance", "Inverted dropout: Var(h') against p (c = 2, v = 1, normal input)",
           P_AXIS, "Var(h')", "inverted-dropout", {"p": P_GRID},
           keep=lambda r: r["check"].startswith(("var (", "var-as-written")), x=_p,
           series=lambda r: "document, as written: E(h²)/p − μ" if "as-written" in r["check"]
           else "corrected: σ²/p + (1−p)μ²/p",
           settings={"dist": "normal"}, logy=True, samples=400_000),
    Figure("C3", "c3-relu-shift", "Post-ReLU mean shift E_train − E_test after a weighted sum of width d, "
           "random inputs, against the Gaussian approximation",
           "width d", "mean shift after ReLU", "relu-shift", {"p": "0.2,0.5,0.8"},
           keep=lambda r: r["check"].startswith("gauss shift (inputs"), x=_width,
           series=lambda r: f"p = {_p(r):g}", logx=True, samples=200_000,
           line="Gaussian approximation"),
    Figure("C4", "c4-batch-variance", "BatchNorm: mean of the biased batch variance against the batch size m "
           "(v = 4)", "batch size m", "E[σ_B²]", "batchnorm", {"m": "2,3,4,8,16,32"},
           keep=lambda r: r["check"] == "batch-var", x=lambda r: r["params"]["m"], series=lambda r: "(m−1)/m · v",
           logx=True, samples=100_000),
    Figure("C4", "c4-running-var", "BatchNorm running_var (PyTorch: momentum 0.1, unbiased, starts at 1) "
           "against training steps (v = 4)", "training steps", "E[running_var]", "batchnorm",
           {"steps": "1,2,5,10,20,50,100"}, keep=lambda r: r["check"] == "running-var",
           x=lambda r: r["params"]["steps"], series=lambda r: "(1−0.1)^k + (1 − (1−0.1)^k) v", logx=True,
           samples=100_000),
    Figure("C5", "c5-shift", "Variance shift Δ = Var_test / Var_train before BN, by noise and width",
           P_AXIS, "Δ (ratio)", "variance-shift", {"p": "0.1,0.2,0.3,0.5,0.7,0.9,1"},
           keep=lambda r: r["check"].startswith("shift"), x=_p,
           series=lambda r: _inside(r) if "(" in r["check"] else r["check"].replace("shift", "bernoulli "),
           samples=200_000),
    Figure("C5", "c5-depth", "Eval variance / running_var per BN layer, relative to the same chain without "
           "dropout (p = 0.5)", "BN layer", "ratio (1 = no shift)", "network-shift", {"p": "0.5"},
           keep=lambda r: "ratio/none" in r["check"], x=_layer, series=_inside, logy=True,
           line="no shift (ratio 1)"),
    Figure("C6", "c6-regression", "Regression: eval-mode MSE relative to the network without dropout",
           P_AXIS, "MSE / MSE without dropout (ratio)", "task-impact", {"p": "0.3,0.5,0.7,0.9,1"},
           keep=lambda r: r["check"].startswith("MSE/none"), x=_p, series=_inside, logy=True,
           line="no harm (ratio 1)"),
    Figure("C6", "c6-classification", "Classification: eval-mode accuracy relative to the network without "
           "dropout", P_AXIS, "accuracy / accuracy without dropout (ratio)", "task-impact",
           {"p": "0.3,0.5,0.7,0.9,1"}, keep=lambda r: r["check"].startswith("accuracy/none"), x=_p,
           series=_inside, line="no harm (ratio 1)"),
)
