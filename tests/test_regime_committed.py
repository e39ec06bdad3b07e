"""The committed C6 map cannot drift from the code: two of its cells trained again from their seed give the
same numbers, bit for bit (the cheapest regression cell, and the cheapest cell of the other twin's task)."""
import pytest

from simulator.data import c6map
from simulator.runs import regime as rg
from simulator.runs.sweep import run_point

COMMITTED = c6map.load()
pytestmark = pytest.mark.skipif(COMMITTED is None, reason="no committed map (reports/c6-map/map.json)")
FIELDS = ("estimate", "mcse", "runs", "reference", "epochs")


def _plan():
    plan = dict(COMMITTED["meta"]["plan"])
    return rg.Plan(**{**{k: tuple(v) if isinstance(v, list) else v for k, v in plan.items()},
                      "targets": plan["targets"]})


def _cheapest(task):
    """The cell of ``task`` with the fewest runs × epochs × rows (a few seconds to train)."""
    cells = [c for c in COMMITTED["cells"] if c["cell"]["task"] == task]
    return min(cells, key=lambda c: (c["runs"] * rg.epochs_for(c["cell"]["rows"], _plan()) * c["cell"]["rows"],
                                     c["cell"]["rows"]))


@pytest.mark.parametrize("task", sorted({c["cell"]["task"] for c in (COMMITTED or {"cells": []})["cells"]}))
def test_a_committed_cell_is_regenerated_bit_for_bit(task):
    plan = _plan()
    entry = _cheapest(task)
    cell, runs = entry["cell"], entry["runs"]
    settings = rg.cell_settings(cell, plan, runs)
    rows = run_point("training", {"p": settings["p"]}, settings["p"], {k: v for k, v in settings.items() if k != "p"},
                     None, COMMITTED["meta"]["seed"], rg.DEFAULT_ALPHA)
    again = rg.table([(cell, rows)], plan)
    committed = [r for r in COMMITTED["table"] if all(r[k] == cell[k] for k in cell)]
    assert len(again) == len(committed) > 0
    for mine, theirs in zip(again.to_dict("records"), committed):
        assert mine["quantity"] == theirs["quantity"]
        for k in FIELDS:
            assert mine[k] == theirs[k], (cell, mine["quantity"], k, mine[k], theirs[k])


def test_the_committed_map_says_how_it_was_made():
    meta = COMMITTED["meta"]
    assert meta["command"] == "map" and meta["seed"] and meta.get("date") and meta.get("command_line")
    assert set(COMMITTED["sentences"]) >= {"C6-regression", "C6-classification"}
