"""verify, sweep and report, through the library and through the command line."""
import os

import pytest

from simulator.runs.sweep import parse_range, sweep
from simulator.runs.verify import verify
from simulator.theory import closed_forms as cf
from tests.conftest import run_cli


def test_verify_quick_passes_and_names_every_claim(capsys):
    code, out, err = run_cli(capsys, "verify", "--quick", "--experiment", "dropout-gradient",
                             "--experiment", "inverted-dropout", "--no-progress")
    assert code == 0, err
    assert "C1 " in out and "— CONFIRMED" in out
    assert "C2 " in out and "CONFIRMED, WITH AN ERRATUM" in out and "Erratum: the document writes" in out
    assert len(out.splitlines()) < 20  # one screen: the claims, not the 2 × 5 × 30 checks


def test_verify_fails_on_an_injected_wrong_formula(monkeypatch, capsys):
    # The document's variance formula put in place of the corrected one: verify must refuse it.
    monkeypatch.setattr(cf, "inverted_variance", cf.inverted_variance_as_written)
    code, out, err = run_cli(capsys, "verify", "--quick", "--experiment", "inverted-dropout", "--no-progress")
    assert code == 1
    assert "verify FAILED" in err and "var (normal)" in err


def test_verify_json_contract():
    v = verify(quick=True, experiments=["inverted-dropout"])
    assert v.ok and v.meta["z_threshold"] > 3
    assert {c["claim"] for c in v.claims} == {"C2"}
    assert all("resolution_rel" in r for r in v.checks)


def test_verify_runs_at_once_give_the_sequential_result():
    # Two runs of the grid at a time, each on one thread, against one run at a time: the same rows,
    # in the plan's order, whichever run ends first.
    chosen = ["inverted-dropout", "batchnorm", "relu-shift"]
    one = verify(samples=2000, experiments=chosen, threads=1)
    two = verify(samples=2000, experiments=chosen, threads=2)
    assert one.checks == two.checks and one.claims == two.claims


def test_verify_runs_at_once_stop_on_an_error(monkeypatch):
    # A run that fails stops the others and its error reaches the caller (no hang, no half result).
    from simulator.core.errors import SimulationError
    from simulator.runs import verify as V

    real = V.measure

    def failing(p, chosen, values, seed, n, progress=None):
        if chosen[0].name == "batchnorm" and p == 0.5:
            raise SimulationError("batchnorm diverged (injected)")
        return real(p, chosen, values, seed, n, progress)

    monkeypatch.setattr(V, "measure", failing)
    with pytest.raises(SimulationError, match="injected"):
        verify(samples=2000, experiments=["inverted-dropout", "batchnorm"], threads=2)


def test_erratum_underpowered_is_inconclusive_not_confirmed():
    # At p = 0.1 the two formulas differ by 2 in a variance of 46: 1000 samples cannot tell them apart.
    v = verify(samples=1000, experiments=["inverted-dropout"])
    verdicts = {r["verdict"] for r in v.checks if r["kind"] == "erratum" and r["params"]["p"] == 0.1}
    assert verdicts <= {"inconclusive", "refuted"} and "confirmed" not in verdicts


@pytest.mark.parametrize("spec,want", [("16,64,256", ["16", "64", "256"]), ("0.1:1.0:10", None),
                                       ("1:1:1", ["1"])])
def test_parse_range(spec, want):
    got = parse_range(spec)
    if want is None:
        assert len(got) == 10 and got[0] == "0.1" and got[-1] == "1" and got[2] == "0.3"
    else:
        assert got == want


def test_sweep_rows_do_not_change_when_points_are_added():
    small = sweep("inverted-dropout", {"p": "0.3,0.9"}, samples=5000, settings={"dist": "normal"})
    large = sweep("inverted-dropout", {"p": "0.1,0.3,0.5,0.9", "c": "2"}, samples=5000,
                  settings={"dist": "normal"})
    key = lambda r: (r["params"]["p"], r["check"])  # noqa: E731
    big = {key(r): r for r in large.checks}
    for r in small.checks:
        other = big[key(r)]
        assert (r["estimate"], r["mcse"], r["verdict"]) == (other["estimate"], other["mcse"], other["verdict"])


def test_sweep_cli_csv_and_resume_is_byte_identical(capsys, tmp_path):
    out = tmp_path / "s.csv"
    args = ("sweep", "--experiment", "inverted-dropout", "--grid", "p=0.2,0.6", "--grid", "v=1,2",
            "--set", "dist=uniform", "--samples", "4000", "--no-progress", "--out", str(out))
    assert run_cli(capsys, *args)[0] == 0
    first = out.read_bytes()
    assert first.decode().splitlines()[0].startswith("p,v,experiment,check")
    # Simulate an interruption after two points: keep a partial checkpoint, rerun, compare.
    out.unlink()
    from simulator.runs.sweep import sweep as run_sweep
    run_sweep("inverted-dropout", {"p": "0.2", "v": "1,2"}, samples=4000, settings={"dist": "uniform"},
              checkpoint=str(out) + ".partial")
    with open(str(out) + ".partial", "a") as f:
        f.write('{"key": "torn')  # a line cut short by the interruption
    assert run_cli(capsys, *args)[0] == 0
    assert out.read_bytes() == first
    assert not os.path.exists(str(out) + ".partial")


@pytest.mark.parametrize("args", [
    ("sweep", "--experiment", "inverted-dropout", "--grid", "p=0.1:1"),
    ("sweep", "--experiment", "inverted-dropout", "--grid", "p=0.1,,0.2"),
    ("sweep", "--experiment", "inverted-dropout", "--grid", "p=0,0.5"),
    ("sweep", "--experiment", "inverted-dropout", "--grid", "q=1,2"),
    ("sweep", "--experiment", "inverted-dropout", "--grid", "p=0.5", "--out", "x.txt"),
    ("sweep", "--experiment", "nope", "--grid", "p=0.5"),
    ("verify", "--alpha", "2"), ("verify", "--samples", "0"),
    ("report", "--out", "/proc/no/such"),
])
def test_bad_usage_exits_2(capsys, args):
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
