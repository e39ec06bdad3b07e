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


def _p(row):
    return row["params"]["p"]


def _index(row):
    return int(row["check"].split("[")[1].rstrip("]"))


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
)
