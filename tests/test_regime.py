"""The C6 regime map: sizing, judging, crossovers, reproducibility, resumption, files and bad input."""
import json
import math
import os

import numpy as np
import pytest

import cli
from simulator.core.errors import ParameterError
from simulator.core.params import DEFAULT_ALPHA
from simulator.present import regime as present
from simulator.runs import regime as rg
from simulator.runs.sweep import run_point
from simulator.theory.verdict import z_threshold

TINY = rg.Plan(tasks=("teacher",), rows=(100, 200), keep=(0.5,), placements=("hidden",), bn=("true",),
               lengths=("budget",), steps=20, min_epochs=1, pilot=2, cap=8)


@pytest.fixture(scope="module")
def tiny():
    return rg.regime_map(TINY, seed=11, threads=1)


# ------------------------------------------------------------------------------------------ pure functions


def test_epochs_follow_the_step_budget():
    plan = rg.Plan(steps=3000, min_epochs=10, batch=32)
    # N = 100: 80 training rows, 3 batches (the final one of 16 rows kept) → 1000 epochs
    assert rg.epochs_for(100, plan) == 1000
    # N = 30,000: 24,000 rows, 750 batches → the minimum of 10 epochs (7,500 steps)
    assert rg.epochs_for(30_000, plan) == 10


def test_the_default_sizes_leave_no_short_final_batch():
    for n in rg.ROWS:
        assert (n - n // 5) % rg.BATCH == 0
    assert rg.ROWS[0] <= 120 and rg.ROWS[-1] >= 30_000
    # a final batch of one row is dropped: 33 training rows → 1 batch a epoch
    assert rg.epochs_for(41, rg.Plan(steps=7, min_epochs=1, batch=32)) == 7


def test_runs_needed_is_a_power_of_two_between_pilot_and_cap():
    plan = rg.Plan(pilot=8, cap=128)  # not the default cap
    assert rg.runs_needed(0.01, 0.01, plan) == 8  # var/target² = 1 → the pilot suffices
    assert rg.runs_needed(0.05, 0.01, plan) == 32  # 25 → 32
    assert rg.runs_needed(1.0, 0.01, plan) == 128  # 10⁴ → the cap
    assert rg.runs_needed(float("nan"), 0.01, plan) == 8
    for sd in (0.003, 0.02, 0.07, 0.2):
        r = rg.runs_needed(sd, 0.01, plan)
        assert r in (8, 16, 32, 64, 128) and (r == 128 or sd / math.sqrt(r) <= 0.01)


def test_runs_needed_pays_for_the_t_tail():
    """With z*: the smallest R of the doubling series whose resolution (t tail at z* + t's 90% quantile) · s/√R
    reaches (z* + 1.28) · target (scipy's t, naively)."""
    from scipy import stats

    plan, zs = rg.Plan(pilot=8, cap=64), 4.6
    tail = stats.norm.sf(zs)
    target = (zs + stats.norm.ppf(0.9)) * 0.01  # what the target MCSE resolves with many runs (90% power)
    for sd in (0.005, 0.01, 0.02, 0.03, 0.05, 0.2):
        want = next((r for r in (8, 16, 32, 64)
                     if (stats.t.isf(tail, r - 1) + stats.t.ppf(0.9, r - 1)) * sd / math.sqrt(r) <= target), 64)
        assert rg.runs_needed(sd, 0.01, plan, zs) == want
    assert rg.runs_needed(0.0, 0.01, plan, zs) == 64  # no spread in the pilot: no error bar yet, so it grows
    # an MCSE at its target with 8 runs is not enough: c(4.6, 8) ≈ 12.8 (and t₀.₉ = 1.4): 2.4× the target's
    assert rg.runs_needed(0.01 * math.sqrt(8), 0.01, plan) == 8
    assert rg.runs_needed(0.01 * math.sqrt(8), 0.01, plan, zs) > 8


def test_a_target_is_at_most_its_fraction_of_the_no_dropout_metric():
    plan = rg.Plan()
    assert rg.target_of("dmse", plan, 0.6) == 0.01  # the teacher: 5% of 0.6 is looser than 0.01
    assert rg.target_of("dmse", plan, 0.025) == pytest.approx(0.00125)  # diamonds: 5% of its MSE
    assert rg.target_of("dmse_shift", plan, 0.025) == pytest.approx(0.00125)
    assert rg.target_of("drop", plan, 0.7) == 0.003 and rg.target_of("dmse", plan, None) == 0.01


def test_a_schedule_doubles_from_the_pilot_and_stops_at_the_runs():
    plan = rg.Plan(pilot=8, cap=48)
    assert rg.schedule(8, plan) == [8]
    assert rg.schedule(32, plan) == [8, 8, 16]
    assert rg.schedule(48, plan) == [8, 8, 16, 16]  # the cap cuts the last chunk
    with pytest.raises(ParameterError, match="relative target dmse=2"):
        rg.Plan(relative={"dmse": 2})
    with pytest.raises(ParameterError, match="cap=33"):
        rg.Plan(pilot=8, cap=33)  # its last chunk would be one run


def test_pooled_chunks_are_the_statistics_of_all_their_runs():
    """Pooling chunk rows (mean, MCSE, runs) gives what the runs together give (numpy on the values)."""
    rng = np.random.default_rng(3)
    values = rng.normal(0.3, 1.7, 40)
    parts = np.split(values, [8, 16, 32])
    rows = [{"estimate": float(x.mean()), "mcse": float(x.std(ddof=1) / math.sqrt(x.size)), "samples": x.size,
             "params": {"runs": x.size}, "verdict": "stale", "z": 1.0} for x in parts]
    got = rg.pooled(rows)
    assert got["estimate"] == pytest.approx(values.mean(), rel=1e-13)
    assert got["mcse"] == pytest.approx(values.std(ddof=1) / math.sqrt(values.size), rel=1e-12)
    assert got["samples"] == got["params"]["runs"] == 40 and "verdict" not in got and "z" not in got
    one = rg.pooled(rows[:1])  # one chunk: its row as it is, without what was judged on it alone
    assert one["estimate"] == rows[0]["estimate"] and one["mcse"] == rows[0]["mcse"] and "verdict" not in one
    # the check can fail: pooling the MCSEs as if they were SDs is seen
    wrong = rg.pooled([{**r, "mcse": r["mcse"] * math.sqrt(r["samples"])} for r in rows])
    assert wrong["mcse"] != pytest.approx(values.std(ddof=1) / math.sqrt(values.size), rel=1e-3)


def test_a_chunk_trains_runs_of_its_own():
    """Chunk 0 is the point's own runs (no chunk setting: the same bits); chunk 1 other runs of the same cell."""
    cell = {"length": "budget", "task": "teacher", "bn": "true", "placement": "hidden", "p": 0.5, "rows": 100}
    plain = rg.cell_settings(cell, TINY, 2)
    assert "chunk" not in plain
    own = run_point("training", {"p": "0.5"}, "0.5", {k: v for k, v in plain.items() if k != "p"}, None, 11,
                    DEFAULT_ALPHA)
    zero = run_point("training", {"p": "0.5"}, "0.5", {**{k: v for k, v in plain.items() if k != "p"}, "chunk": "0"},
                     None, 11, DEFAULT_ALPHA)
    assert json.dumps(own) == json.dumps(zero)
    from simulator.experiments.training import EXPERIMENT

    assert "chunk" not in EXPERIMENT.keyed(EXPERIMENT.resolve({"chunk": "3"}))  # chunk 0's key: the same as before
    one = rg.cell_settings(cell, TINY, 2, chunk=1)
    other = run_point("training", {"p": "0.5"}, "0.5", {k: v for k, v in one.items() if k != "p"}, None, 11,
                      DEFAULT_ALPHA)
    assert [r["estimate"] for r in other] != [r["estimate"] for r in own]


@pytest.mark.parametrize("quantity, est, se, want", [
    ("dmse", 0.05, 0.01, "hurts"), ("dmse", -0.05, 0.01, "helps"), ("dmse", 0.01, 0.01, "no effect beyond ±b"),
    ("drop", 0.0, 0.001, "within the margin"), ("drop", 0.03, 0.002, "beyond the margin"),
    ("drop", 0.01, 0.005, "undecided"), ("dmse", 0.0, float("nan"), "undecided"), ("drop", 0.0, 0.0, "undecided")])
def test_words_follow_the_numbers(quantity, est, se, want):
    verdict, bound = rg.word(quantity, est, se, 3.0)
    assert verdict == want
    if want == "no effect beyond ±b":
        assert bound == pytest.approx(abs(est) + 3.0 * se)


def test_few_runs_need_a_larger_multiple_of_the_mcse():
    """As verify judges it: the t of 8 runs must be far beyond z* to count (Student's t, 7 degrees of freedom)."""
    from scipy import stats

    assert rg.critical(3.0, 0) == 3.0
    c = rg.critical(3.0, 8)
    assert c == pytest.approx(stats.t.isf(stats.norm.sf(3.0), 7)) and c > 4.5
    assert rg.word("dmse", 4.0, 1.0, 3.0)[0] == "hurts" and rg.word("dmse", 4.0, 1.0, 3.0, runs=8)[0] != "hurts"
    assert rg.z_of(4.0, 1.0, 8) == pytest.approx(stats.norm.isf(stats.t.sf(4.0, 7)))


def test_a_wrong_rule_would_be_caught():
    """The judging is not vacuous: a 6-σ effect is never 'no effect', a null one never 'hurts'."""
    assert rg.word("dmse", 0.06, 0.01, 4.4)[0] == "hurts"
    assert rg.word("dmse", 0.0, 0.01, 4.4)[0] != "hurts"


def test_z_star_is_bonferroni():
    from scipy.stats import norm

    assert z_threshold(0.05, 1) == pytest.approx(norm.isf(0.025))
    assert z_threshold(0.05, 48) == pytest.approx(norm.isf(0.05 / 96))


def test_root_interpolates_in_log_n():
    n = np.log([100.0, 1000.0])
    assert rg.crossing_n(n, np.array([-1.0, 1.0])) == pytest.approx(math.sqrt(100 * 1000))
    assert rg.crossing_n(n, np.array([1.0, 2.0])) is None


def test_crossover_needs_both_signs_decided():
    import pandas as pd

    rows = [{"length": "budget", "task": "teacher", "bn": "true", "placement": "hidden", "p": 0.5,
             "quantity": "dmse", "rows": n, "estimate": e, "mcse": 0.01, "z": e / 0.01, "z_star": 3.0}
            for n, e in ((100, -0.05), (1000, 0.05))]
    frame = pd.DataFrame(rows)
    (c,) = rg.crossover(frame, "dmse").itertuples()
    assert c.resolved and c.n_star == pytest.approx(math.sqrt(1e5)) and c.sign == "− then +"
    assert (c.low, c.high) == (100, 1000)
    frame.loc[0, ["estimate", "z"]] = -0.01, -1.0  # below the threshold: the sign change is noise
    assert not rg.crossover(frame, "dmse")["resolved"].iloc[0]
    # a non-significant size between two significant ones of opposite sign: bracketed by them
    more = pd.DataFrame([{**rows[0], "rows": n, "estimate": e, "z": e / 0.01}
                         for n, e in ((100, -0.05), (300, 0.01), (1000, 0.05))])
    (c,) = rg.crossover(more, "dmse").itertuples()
    assert c.resolved and (c.low, c.high) == (100, 1000) and 100 < c.n_star < 300


@pytest.mark.parametrize("bad, match", [
    ({"tasks": ("digits",)}, "map's tasks"), ({"rows": (50,)}, "rows=50"), ({"rows": (60_000,)}, "rows=60000"),
    ({"keep": (1.0,)}, "p=1.0"), ({"keep": (0.0,)}, "p=0.0"), ({"placements": ("uout",)}, "placement"),
    ({"bn": ("maybe",)}, "bn"), ({"steps": 0}, "step budget"), ({"pilot": 1}, "pilot"), ({"pilot": 9, "cap": 8},
                                                                                          "pilot"),
    ({"alpha": 1.5}, "alpha")])
def test_bad_plans_are_one_line(bad, match):
    with pytest.raises(ParameterError, match=match) as e:
        rg.Plan(**bad)
    assert "\n" not in str(e.value)


def test_plan_from_parses_and_refuses():
    plan = rg.plan_from(quick=True, rows="100,1_000", keep="0.5")
    assert plan.rows == (100, 1000) and plan.tasks == ("teacher",) and plan.pilot == rg.QUICK["pilot"]
    assert rg.plan_from().rows == rg.ROWS
    with pytest.raises(ParameterError, match="--rows"):
        rg.plan_from(rows="a,b")
    with pytest.raises(ParameterError, match="--keep"):
        rg.plan_from(keep="")


# ------------------------------------------------------------------------------------------------ the map


def test_the_tiny_map_has_every_cell_and_quantity(tiny):
    frame = tiny.table
    assert sorted(frame["rows"].unique()) == [100, 200]
    assert set(frame["quantity"]) == {"dmse", "drop", "dmse_shift", "dce_shift", "dacc_shift"}
    assert set(frame["family"]) == {"C6-regression", "C6-classification", "C6-shift"}
    assert (frame["runs"] >= TINY.pilot).all() and (frame["runs"] <= TINY.cap).all()
    from scipy import stats

    resolution = [(rg.critical(r.z_star, r.runs) + stats.t.ppf(0.9, r.runs - 1)) * r.mcse for r in frame.itertuples()]
    assert np.allclose(frame["resolution"], resolution)
    for r in frame.itertuples():  # ΔMSE's target: 0.01, and at most 5% of the cell's no-dropout MSE
        assert r.target == (min(TINY.targets[r.quantity], TINY.relative[r.quantity] * r.reference)
                            if r.quantity in TINY.relative else TINY.targets[r.quantity])
    want = (frame["z_star"] + stats.norm.ppf(0.9)) * frame["target"]
    assert ((frame["resolution"] <= want) == frame["reached"]).all()
    short = frame[~frame["reached"]]
    assert (short["runs"] == TINY.cap).all()  # a cell short of its resolution grew to the cap
    sizes = frame.groupby("family").size()
    sizing = rg.sizing_z(rg.cells(TINY), TINY)
    for r in frame.itertuples():
        assert r.z_star == pytest.approx(z_threshold(TINY.alpha, sizes[r.family]))
        assert r.z_star == sizing[r.quantity]  # the cells were sized at the z* they are judged at
    assert set(tiny.sentences) == {"C6-regression", "C6-classification", "C6-shift"}
    assert tiny.meta["runs"]["final"] == sum(tiny.table.drop_duplicates(["rows"])["runs"])


def _chunk(cell, runs, k):
    settings = rg.cell_settings(cell, TINY, runs, k)
    return run_point("training", {"p": str(cell["p"])}, str(cell["p"]), {k: v for k, v in settings.items() if k != "p"},
                     None, 11, DEFAULT_ALPHA)


def test_cells_grow_until_their_resolution_or_the_cap(tiny):
    """The runs of each cell replayed naively: chunks of doubling size while a difference's resolution
    (t tail at z* + t's 90% quantile)·s/√R (scipy) is short of (z* + 1.28) times the target, or it has no
    spread yet; the cap at most."""
    from scipy import stats

    sizes = rg.family_sizes(rg.cells(TINY))
    for cell, _ in tiny.cells:
        chunks, runs = [_chunk(cell, TINY.pilot, 0)], TINY.pilot
        while runs < TINY.cap:
            short = False
            found = rg.cell_quantities(cell, rg.pool(cell, chunks))
            for q, r in found.items():
                if q in TINY.targets:
                    zs = stats.norm.isf(TINY.alpha / (2 * sizes[rg.family_of(q)]))
                    c = stats.t.isf(stats.norm.sf(zs), runs - 1) + stats.t.ppf(0.9, runs - 1)
                    target = TINY.targets[q]
                    if q in TINY.relative:
                        target = min(target, TINY.relative[q] * found["mse_none"]["estimate"])
                    short |= not r["mcse"] or c * r["mcse"] > (zs + stats.norm.ppf(0.9)) * target
            if not short:
                break
            chunks.append(_chunk(cell, runs, len(chunks)))
            runs *= 2
        got = tiny.table[tiny.table["rows"] == cell["rows"]]["runs"].iloc[0]
        assert got == runs
    assert (tiny.table["runs"] > TINY.pilot).any()  # the tiny map does grow


def test_each_sentence_counts_what_its_table_says(tiny):
    """A sentence per sub-claim: every verdict's count of its quantities' cells, counted naively; C6-shift names
    all three of the shift's costs."""
    frame = tiny.table
    for family, quantities in (("C6-regression", ["dmse"]), ("C6-classification", ["drop"]),
                               ("C6-shift", ["dmse_shift", "dce_shift", "dacc_shift"])):
        text = tiny.sentences[family]
        for quantity in quantities:
            for verdict, n in frame[frame["quantity"] == quantity]["verdict"].value_counts().items():
                assert f"{verdict} in {n} (" in text, (family, quantity, verdict)
    assert "ΔCE_shift" in tiny.sentences["C6-shift"] and "accuracy lost to the shift" in tiny.sentences["C6-shift"]
    assert "change of sign" not in tiny.sentences["C6-shift"]  # not sought for the shift's costs


def test_a_cell_is_its_chunks_pooled_bit_for_bit(tiny):
    """What the committed map's test does: a cell regenerated from its seed and settings gives its rows."""
    cell, rows = tiny.cells[1]
    again = rg.train_cell(cell, TINY, rows[0]["samples"], 11)
    assert json.dumps(again, sort_keys=True) == json.dumps(rows, sort_keys=True)


def test_same_bits_on_other_threads_and_after_a_resume(tiny, tmp_path):
    ck = str(tmp_path / "map.partial")
    first = rg.regime_map(TINY, seed=11, threads=2, checkpoint=ck)
    resumed = rg.regime_map(TINY, seed=11, threads=1, checkpoint=ck)  # every cell from the checkpoint
    for other in (first, resumed):
        assert other.table.to_json() == tiny.table.to_json()
        assert json.dumps(other.cells) == json.dumps(tiny.cells)
    with open(ck, encoding="utf-8") as f:
        assert sum(1 for _ in f) == 1 + tiny.meta["runs"]["chunks"]  # header, then every chunk once


def test_another_seed_gives_other_numbers(tiny):
    other = rg.regime_map(TINY, seed=12, threads=1)
    assert other.table["estimate"].tolist() != tiny.table["estimate"].tolist()


# ---------------------------------------------------------------------------------------------------- files


def test_the_folder_and_its_rules(tiny, tmp_path):
    out = str(tmp_path / "map")
    names = present.write_map(tiny, out, command=["cli.py", "map"])
    assert {"map.csv", "crossovers.csv", "map.json", "teacher-budget-phase.png", "teacher-budget-effect.svg",
            "teacher-budget-shift.png"} <= set(names)
    assert present.is_map(out)
    payload = json.load(open(os.path.join(out, "map.json"), encoding="utf-8"))
    assert payload["meta"]["seed"] == 11 and len(payload["cells"]) == len(tiny.cells)
    assert [c["runs"] for c in payload["cells"]] == [rows[0]["samples"] for _, rows in tiny.cells]
    present.write_map(tiny, out)  # our own folder: replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ParameterError):
        present.write_map(tiny, str(foreign))
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_a_failure_while_writing_leaves_nothing_half_written(tiny, tmp_path, monkeypatch):
    out = tmp_path / "map"
    present.write_map(tiny, str(out))
    before = sorted(os.listdir(out))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(present, "effect_figure", broken)
    with pytest.raises(Exception, match="No space left"):
        present.write_map(tiny, str(out))
    assert sorted(os.listdir(out)) == before
    assert [n for n in os.listdir(tmp_path) if n != "map"] == []  # no temporary folder left


def _main(*args):
    try:
        cli.main(list(args))
    except SystemExit as e:
        return e.code
    return 0


def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    for args, word in ((["--rows", "10"], "rows"), (["--keep", "2"], "p=2"), (["--cap", "1"], "pilot"),
                       (["--rows", "x"], "--rows")):
        code = _main("map", "--out", str(tmp_path / "m"), *args)
        err = capsys.readouterr().err
        assert code == 2 and word in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "m").exists()
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x.txt").write_text("x")
    assert _main("map", "--quick", "--out", str(tmp_path / "f")) == 2
    assert (tmp_path / "f" / "x.txt").exists() and not (tmp_path / "f.partial").exists()


def test_an_early_stopped_cell_trains_the_same_runs_and_says_when_it_stopped():
    plan = rg.Plan(tasks=("teacher",), rows=(200,), keep=(0.5,), placements=("head",), bn=("false",),
                   lengths=("budget", "early"), steps=60, min_epochs=1, pilot=2, cap=2)
    res = rg.regime_map(plan, seed=3, threads=1)
    frame = res.table.set_index(["length", "quantity"])
    assert frame.loc[("budget", "dmse"), "best_epoch"] is None or np.isnan(frame.loc[("budget", "dmse"), "best_epoch"])
    stop = frame.loc[("early", "dmse"), "best_epoch"]
    assert 1 <= stop <= rg.epochs_for(200, plan)
    settings = rg.cell_settings(res.cells[1][0], plan, 2)
    assert settings["patience"] == str(rg.patience_for(200, plan)) and "patience" not in rg.cell_settings(
        res.cells[0][0], plan, 2)
    assert frame.loc[("early", "dmse"), "estimate"] != frame.loc[("budget", "dmse"), "estimate"]
