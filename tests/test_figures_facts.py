"""The report's figures choose, place and label rows by their facts exactly as the old rules by name did.

The old rules parsed check names (``startswith("reg[")``, the text between parentheses, ``d=…``, ``L…``);
they are written here as the reference. For each figure of a simulated experiment a tiny sweep (two points of
its grid, 1,000 samples) must give a non-empty selection, the same set of rows as the old rule, and the same
x and legend (the variance-shift width rows excepted: their old legend read ``ρ = =0.5``).
"""
import pytest

from simulator.experiments import CATALOG
from simulator.present.figures import FIGURES
from simulator.runs.sweep import run_point


def _inside(r):
    return r["check"].split("(", 1)[1].split(")")[0]


OLD = {  # figure name → (keep, x, series) by the check's name, as figures.py had them
    "c1-regularizer": (lambda r: r["check"].startswith("reg["),
                       lambda r: int(r["check"].split("[")[1].rstrip("]")), None),
    "c2-variance": (lambda r: r["check"].startswith(("var (", "var-as-written")), None,
                    lambda r: "document, as written: E(h²)/p − μ" if "as-written" in r["check"]
                    else "corrected: σ²/p + (1−p)μ²/p"),
    "c3-relu-shift": (lambda r: r["check"].startswith("gauss shift (inputs"),
                      lambda r: int(r["check"].split("d=")[1].rstrip(")")), None),
    "c4-batch-variance": (lambda r: r["check"] == "batch-var", None, None),
    "c4-running-var": (lambda r: r["check"] == "running-var", None, None),
    "c5-shift": (lambda r: r["check"].startswith("shift"), None, lambda r: _inside(r) if "(" in r["check"] else None),
    "c5-depth": (lambda r: "ratio/none" in r["check"], lambda r: int(r["check"].split(" ")[0][1:]), _inside),
    "c6-regression": (lambda r: r["check"].startswith("MSE/none"), None, _inside),
    "c6-classification": (lambda r: r["check"].startswith("accuracy/none"), None, _inside),
}
WIDTH_LEGENDS = {"bernoulli, d = 64, ρ = 0", "bernoulli, d = 64, ρ = 0.5, aligned weights",
                 "bernoulli, d = 64, ρ = 0.5, random weights"}


def _rows(figure):
    """The rows of two points of the figure's grid (its first and last values), as the report's sweep gives."""
    exp = CATALOG[figure.experiment]
    names = {q.name for q in exp.params}
    settings = {k: v for k, v in figure.settings.items() if k in names}
    rows = []
    for name, spec in figure.grid.items():
        values = spec.split(",")
        for v in dict.fromkeys((values[0], values[-1])):
            point = {name: float(v) if name == "p" else v}
            rows += run_point(figure.experiment, point, 0.5, settings, 1000, 20240607, 0.05)
    return rows


@pytest.mark.parametrize("figure", [f for f in FIGURES if not f.optional], ids=lambda f: f.name)
def test_a_figure_keeps_the_rows_the_names_gave(figure):
    assert set(OLD) == {f.name for f in FIGURES if not f.optional}
    keep, x, series = OLD[figure.name]
    rows = _rows(figure)
    kept = [i for i, r in enumerate(rows) if figure.keep(r)]
    assert kept and kept == [i for i, r in enumerate(rows) if keep(r)]
    assert len(kept) < len(rows) or figure.name.startswith("c4")  # the rule does choose
    for i in kept:
        r = rows[i]
        if x is not None:
            assert figure.x(r) == x(r)
        if series is not None and series(r) is not None:
            assert figure.series(r) == series(r)
    if figure.name == "c5-shift":
        assert {figure.series(rows[i]) for i in kept if "[" in rows[i]["check"]} == WIDTH_LEGENDS


def test_a_renamed_check_keeps_its_figure_row():
    """The facts, not the name, decide: a row renamed stays in its figure; a row of another quantity is left."""
    figure = next(f for f in FIGURES if f.name == "c1-regularizer")
    row = {"check": "regularizer term of weight 3", "params": {"p": 0.5}, "facts": {"quantity": "reg", "index": 3}}
    assert figure.keep(row) and figure.x(row) == 3
    assert not figure.keep({**row, "check": "reg[3]", "facts": {"quantity": "grad", "index": 3}})
    assert not figure.keep({"check": "reg[3]", "params": {}})  # no facts: never parsed from the name


def test_rows_carry_the_facts_of_their_checks():
    """``simulate`` hands each check's facts on in its row (``facts``: only those that apply)."""
    from simulator.runs.simulate import simulate
    rows = simulate(p=0.5, experiments=["inverted-dropout"], samples=1000, seed=1).checks
    assert [r["facts"]["quantity"] for r in rows[:4]] == ["mean", "var", "var-as-written", "mask-var"]
    assert all(r["facts"] == {"quantity": r["facts"]["quantity"], "setting": r["params"]["dist"]} for r in rows)
