"""The training experiment (C6, C5 on trained networks) through simulate and the command line."""
import numpy as np
import pytest

from simulator import simulate
from simulator.core.rng import stream_key
from simulator.data.tasks import load
from simulator.nn import train as tr
from tests.conftest import run_cli

SMALL = {"runs": 4, "epochs": 3, "width": 8}


@pytest.fixture(scope="module")
def small():
    return simulate(p=0.5, experiments=["training"], settings=SMALL, seed=5)


def _rows(result):
    return {r["check"]: r for r in result.checks}


def test_rows_per_task_and_placement(small):
    rows = _rows(small)
    for pl in tr.PLACEMENTS:
        assert f"test MSE ({pl}) [diabetes]" in rows and f"test accuracy ({pl}) [diabetes-class]" in rows
    for pl in tr.PLACEMENTS[1:]:
        assert rows[f"ΔMSE ({pl}) [diabetes]"]["kind"] == "effect"
        assert rows[f"accuracy drop ({pl}) [diabetes-class]"]["kind"] == "equivalence"
    assert rows["L2 ratio (hidden) [diabetes]"]["closed_form"] is not None  # C5's prediction as reference
    assert rows["test MSE (none) [diabetes]"]["closed_form"] is None  # no reference: none printed
    assert {r["unit"] for r in small.checks} == {"training runs"} and {r["samples"] for r in small.checks} == {4}
    subs = {r["subclaim"] for r in small.checks}
    assert subs == {"C5", "C6-regression", "C6-classification", "C6-shift"}
    assert {c["id"] for c in small.claims} == subs


def test_effects_are_the_paired_differences_of_the_runs(small):
    # The effect is the mean of per-run differences (= the difference of the means), its MCSE s/√R of the
    # differences: smaller than the MCSEs of the two means, because the runs are paired.
    rows = _rows(small)
    none, hidden = (rows[f"test MSE ({pl}) [diabetes]"] for pl in ("none", "hidden"))
    d = rows["ΔMSE (hidden) [diabetes]"]
    assert d["estimate"] == pytest.approx(hidden["estimate"] - none["estimate"], abs=1e-12)
    task = load("diabetes", 5)
    config = tr.TrainConfig(depth=2, width=8, epochs=3, p=0.5)
    result = tr.train_runs(task, config, ("none", "hidden"), 16, stream_key(5, "direct"))
    diff = result.mse[:, 1] - result.mse[:, 0]
    paired = np.std(diff, ddof=1)
    unpaired = np.sqrt(np.var(result.mse[:, 0], ddof=1) + np.var(result.mse[:, 1], ddof=1))
    assert 0 < paired < unpaired


def test_keep_probability_one_makes_every_dropout_placement_the_reference():
    r = simulate(p=1.0, experiments=["training"], settings={**SMALL, "placement": "hidden,head"}, seed=2)
    rows = _rows(r)
    for pl in ("hidden", "head"):
        d = rows[f"ΔMSE ({pl}) [diabetes]"]
        assert d["estimate"] == 0.0 and d["mcse"] == 0.0 and d["verdict"] == "no detectable effect"
        assert rows[f"accuracy drop ({pl}) [diabetes-class]"]["estimate"] == 0.0


def test_seed_fixes_every_number(small):
    again = simulate(p=0.5, experiments=["training"], settings=SMALL, seed=5, threads=1)
    assert [(r["estimate"], r["mcse"]) for r in again.checks] == [(r["estimate"], r["mcse"]) for r in small.checks]


def test_classification_task_without_twin_and_no_bn():
    r = simulate(p=0.8, experiments=["training"], seed=1,
                 settings={**SMALL, "task": "wine", "bn": "false", "placement": "hidden,recalibrated"})
    rows = _rows(r)
    assert "accuracy drop (hidden) [wine]" in rows
    assert not any("recalibrated" in k for k in rows)  # needs BN: dropped
    assert not any(" ratio " in k for k in rows)


@pytest.mark.parametrize("setting", ["task=mnist", "placement=everywhere", "depth=0", "depth=9", "width=1",
                                     "epochs=0", "lr=0", "lr=-1", "runs=1", "optimizer=rmsprop", "bn=maybe",
                                     "margin=2"])
def test_bad_settings_exit_2_with_one_line(capsys, setting):
    code, out, err = run_cli(capsys, "simulate", "--experiment", "training", "--set", setting, "--no-progress")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and setting.split("=")[0] in err


def test_divergence_exits_1_naming_the_run(capsys, tmp_path):
    target = tmp_path / "out.json"
    code, out, err = run_cli(capsys, "simulate", "--experiment", "training", "--set", "optimizer=sgd",
                             "--set", "lr=10", "--set", "bn=false", "--set", "runs=2", "--set", "epochs=3",
                             "--no-progress", "--format", "json", "--out", str(target))
    assert code == 1 and err.startswith("error: training diverged") and "run " in err and "lr=10" in err
    assert err.count("\n") == 1 and not target.exists()


def test_verify_counts_training_runs_and_quotes_them():
    from simulator.runs.verify import verify
    v = verify(quick=True, experiments=["training"])
    assert {(r["samples"], r["unit"]) for r in v.checks} == {(8, "training runs")}
    (regression,) = [c for c in v.claims if c["id"] == "C6-regression"]
    assert "8 runs" in regression["headline"] and "teacher" in regression["headline"]


def test_the_shift_cost_compares_the_same_weights_with_bn_as_trained_and_recalibrated(small):
    # C6-shift: the hidden training against its recalibrated evaluation (the very same parameters), paired.
    rows = {r["check"]: r for r in small.checks}
    for task, name, kind in (("diabetes", "ΔMSE shift [diabetes]", "effect"),
                             ("diabetes-class", "ΔCE shift [diabetes-class]", "effect"),
                             ("diabetes-class", "accuracy lost to the shift [diabetes-class]", "equivalence")):
        row = rows[name]
        assert row["kind"] == kind and row["subclaim"] == "C6-shift" and row["family"]["subclaim"] == "C6-shift"
    shifted, unshifted = rows["test MSE (hidden) [diabetes]"], rows["test MSE (recalibrated) [diabetes]"]
    assert abs(rows["ΔMSE shift [diabetes]"]["estimate"] - (shifted["estimate"] - unshifted["estimate"])) < 1e-12


def test_findings_are_a_family_per_subclaim_and_never_undetectable_beyond_the_test_alone(small):
    from simulator.theory.verdict import z_threshold
    families = {}
    for r in small.checks:
        if r["kind"] in ("effect", "equivalence"):
            families.setdefault(r["subclaim"], []).append(r)
    for sub, rows in families.items():
        (family,) = {(r["family"]["tests"], r["family"]["z_star"]) for r in rows}
        assert family == (len(rows), z_threshold(small.meta["alpha"], len(rows)))
        for r in rows:
            if r["kind"] == "effect" and r["verdict"] == "no detectable effect":
                assert abs(r["z"]) <= r["family"]["z_alone"]


def test_the_teacher_size_and_noise_are_parameters_outside_the_stream_key():
    from simulator.data.tasks import TEACHER_ROWS, load
    small, big = load("teacher", 3, rows=200), load("teacher", 3, rows=2000, noise=1.0)
    assert small.X.shape == (200, 10) and big.X.shape == (2000, 10)
    assert load("teacher", 3).X.shape == (TEACHER_ROWS, 10)
    assert np.array_equal(load("teacher", 3).y, load("teacher", 3, rows=TEACHER_ROWS, noise=0.5).y)
    # rows and noise choose the data, not the training streams: settings are paired, defaults unchanged.
    from simulator.experiments import CATALOG
    exp = CATALOG["training"]
    values = exp.resolve({"task": "teacher", "rows": "5000", "noise": "2"})
    assert exp.keyed(values) == exp.keyed(exp.resolve({"task": "teacher"}))


def test_rows_without_a_teacher_task_is_one_line(cli_run):
    code, _, err = cli_run("simulate", "--experiment", "training", "--set", "rows=1000")
    assert code == 2 and err == ("error: rows sets the sized tasks (teacher, diamonds): add task=teacher or "
                                 "task=diamonds\n")
    code, _, err = cli_run("simulate", "--experiment", "training", "--set", "task=diamonds", "--set", "noise=1")
    assert code == 2 and err == "error: rows and noise set the synthetic teacher tasks: add task=teacher\n"
