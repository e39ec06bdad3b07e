import json

import pytest

import cli


def invoke(*args):
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    return code


@pytest.fixture
def run(capsys):
    def _run(*args):
        code = invoke(*args)
        out, err = capsys.readouterr()
        return code, out, err
    return _run


def test_simulate_table(run):
    code, out, err = run("simulate", "--p", "0.5", "--samples", "20_000", "--experiment", "inverted-dropout")
    assert code == 0
    assert "KEEP probability" in out and "CONFIRMED, WITH AN ERRATUM" in out
    code, out, err = run("simulate", "--p", "0.5", "--samples", "20_000", "--experiment", "inverted-dropout",
                         "--detail")
    assert code == 0 and "refuted (erratum)" in out


def test_simulate_json_and_out_file(run, tmp_path):
    target = tmp_path / "r.json"
    code, out, err = run("simulate", "--samples", "1e4", "--format", "json", "--out", str(target),
                         "--experiment", "inverted-dropout")
    assert code == 0 and out == ""
    data = json.loads(target.read_text())
    assert data["meta"]["samples"] == 10_000 and data["checks"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_csv(run):
    code, out, _ = run("simulate", "--samples", "1e4", "--format", "csv", "--experiment", "inverted-dropout")
    assert code == 0 and out.splitlines()[0].startswith("experiment,check")


@pytest.mark.parametrize("args", [
    ("simulate", "--p", "0"), ("simulate", "--p", "1.01"), ("simulate", "--p", "nan"), ("simulate", "--p", "x"),
    ("simulate", "--samples", "0"), ("simulate", "--samples", "-5"), ("simulate", "--samples", "ten"),
    ("simulate", "--samples", "inf"), ("simulate", "--experiment", "nope"), ("simulate", "--set", "zz=1"),
    ("simulate", "--set", "n=2.5"), ("simulate", "--set", "v=-1"), ("simulate", "--set", "c=nan"),
    ("simulate", "--set", "novalue"), ("simulate", "--set", "dist=cauchy"), ("simulate", "--seed", "-1"),
    ("simulate", "--threads", "0"), ("simulate", "--format", "xml"), ("simulate", "--out", "/nonexistent/x.json"),
    ("simulate", "--set", "p_units=0.5,0.5"), ("simulate", "--set", "p_units=0,1,1,1"), ("bogus",),
    ("simulate", "--samples", "1e30"), ("simulate", "--out", "/tmp"),
    ("simulate", "--experiment", "inverted-dropout", "--set", "c=1e200"),
])
def test_bad_input_one_line_exit_2(run, args):
    code, out, err = run(*args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_list(run):
    code, out, _ = run("list")
    assert code == 0 and "dropout-gradient" in out and "p_units" in out


def test_bench_cli_json(run):
    code, out, err = run("bench", "--samples", "1e4", "--workload", "W1F", "--format", "json")
    assert code == 0, err
    import json
    data = json.loads(out)
    (w,) = data["workloads"]
    assert w["name"] == "W1F" and w["agree"] and w["ratio"] > 0
    assert {"samples_per_s", "mask_elements_per_s", "peak_mb", "threads"} <= set(w["engine"])


def test_bench_bad_samples(run):
    code, out, err = run("bench", "--samples", "0")
    assert code == 2 and err.startswith("error: samples=")
