"""The committed C6 map cannot drift from the code: two of its cells trained again from their seed give the
same numbers, bit for bit (the cheapest teacher cell trained to the step budget, the cheapest diamonds cell
stopped early, and the cheapest teacher cell that grew past its pilot: several chunks, pooled)."""
import pytest

from simulator.data import c6map
from simulator.runs import regime as rg

COMMITTED = c6map.load()
pytestmark = pytest.mark.skipif(COMMITTED is None, reason="no committed map (reports/c6-map/map.json)")
FIELDS = ("estimate", "mcse", "runs", "reference", "epochs")


def _plan():
    plan = dict(COMMITTED["meta"]["plan"])
    return rg.Plan(**{**{k: tuple(v) if isinstance(v, list) else v for k, v in plan.items()},
                      "targets": plan["targets"]})


def _cheapest(task, length, grown=False):
    """The cell of ``task`` and ``length`` with the fewest runs × epochs × rows (a few seconds to train); with
    ``grown``, among the cells that grew past their pilot (several chunks, pooled)."""
    cells = [c for c in COMMITTED["cells"] if c["cell"]["task"] == task and c["cell"]["length"] == length
             and (not grown or c["runs"] > COMMITTED["meta"]["plan"]["pilot"])]
    return min(cells, key=lambda c: (c["runs"] * rg.epochs_for(c["cell"]["rows"], _plan()) * c["cell"]["rows"],
                                     c["cell"]["rows"]))


def _mismatches(cell, runs, table, plan):
    """Train ``cell`` again with ``runs`` runs (its chunks, pooled); the fields that differ from its rows in
    ``table``."""
    again = rg.table([(cell, rg.train_cell(cell, plan, runs, COMMITTED["meta"]["seed"]))], plan)
    committed = [r for r in table if all(r[k] == cell[k] for k in cell)]
    assert len(again) == len(committed) > 0
    return [(mine["quantity"], k, mine[k], theirs[k]) for mine, theirs in zip(again.to_dict("records"), committed)
            for k in ("quantity", *FIELDS) if mine[k] != theirs[k]]


@pytest.mark.parametrize("task, length, grown", [("teacher", "budget", False), ("diamonds", "early", False),
                                                 ("teacher", "early", True)])
def test_a_committed_cell_is_regenerated_bit_for_bit(task, length, grown):
    entry = _cheapest(task, length, grown)
    assert entry["cell"]["length"] == length
    assert _mismatches(entry["cell"], entry["runs"], COMMITTED["table"], _plan()) == []


def test_a_drifted_number_would_be_caught():
    """The check can fail: the last bit of one committed estimate changed is seen."""
    import copy
    import math

    entry = _cheapest("teacher", "budget")
    table = copy.deepcopy(COMMITTED["table"])
    row = next(r for r in table if all(r[k] == entry["cell"][k] for k in entry["cell"]))
    row["estimate"] = math.nextafter(row["estimate"], math.inf)
    assert [m[:2] for m in _mismatches(entry["cell"], entry["runs"], table, _plan())] == [(row["quantity"], "estimate")]


def test_the_committed_map_says_how_it_was_made():
    meta = COMMITTED["meta"]
    assert meta["command"] == "map" and meta["seed"] and meta.get("date") and meta.get("command_line")
    assert set(COMMITTED["sentences"]) >= {"C6-regression", "C6-classification"}


def test_verify_names_the_regime_of_each_sub_claim():
    """C6's outcome from the committed map gives its cells by N and each resolved change of sign along N."""
    from simulator.experiments.regime_map import crossover_text
    from simulator.runs.simulate import simulate

    claims = {c["id"]: c for c in simulate(experiments=["regime-map"]).claims}
    for sub, quantity in (("C6-regression", "dmse"), ("C6-classification", "drop")):
        text = claims[sub]["headline"]
        assert f"on the committed map ({COMMITTED['meta']['cells']} cells" in text
        resolved = [c for c in COMMITTED["crossovers"] if c["resolved"] and c["quantity"] == quantity]
        if resolved:
            assert crossover_text(resolved[0]) in text and f"in {len(resolved)} series" in text
        else:
            assert "no change of sign along N is resolved" in text
        assert all("N=" in s and "p=" in s for s in claims[sub]["holds_at"] + claims[sub]["undecided_at"])
