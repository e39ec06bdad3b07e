"""`cli.py audit` and simulator.audit: the variance shift measured on small models against its closed form."""
import json
import os
import sys

import numpy as np
import pytest

if os.environ.get("CI") != "true":
    torch = pytest.importorskip("torch")
else:  # in CI PyTorch is installed: a missing torch must fail, not skip
    import torch

from simulator.audit import audit_arch, audit_model, recalibrate
from simulator.core.errors import ParameterError

nn = torch.nn
F = torch.nn.functional
Z = 5.0


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # small batches: one torch thread is fastest


def mlp(where="before"):
    torch.manual_seed(1)
    if where == "before":
        return nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 1))
    if where == "first":  # nothing train-dependent upstream of the dropout: the closed form is exact
        return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.3),
                             nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 1))
    return nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64),
                         nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 1))


def cnn():
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.4),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def cnn_element():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 16, 1))


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.fc1, self.fc2, self.bn = nn.Linear(10, 32), nn.Linear(32, 32), nn.BatchNorm1d(32)

    def forward(self, x):
        h = F.dropout(F.relu(self.fc1(x)), p=0.5, training=self.training)
        return self.bn(self.fc2(h))


def assert_agrees(row):
    assert row["predicted_mean"] is not None, row["structure"]
    assert abs(row["z"]) < Z, row
    assert row["ratio_mean"] < 1 - 10 * row["ratio_mcse"]  # and there is a shift to agree with


@pytest.mark.parametrize("make, shape, layer", [(lambda: mlp("first"), (20,), "4"), (cnn, (3, 16, 16), "4"),
                                                (cnn_element, (3, 8, 8), "4")])
def test_measured_ratio_agrees_with_closed_form(make, shape, layer):
    r = audit_model(make(), input_shape=shape, batch=32, batches=40, seed=1)
    row = {x["layer"]: x for x in r.rows}[layer]
    assert_agrees(row)
    assert "dropout before BN" in row["verdict"]


def test_channel_dropout_needs_its_own_term():
    """Dropout2d: one gate per channel, so the same-channel terms W_u W_u' h h' count. With positive kernels they
    are large: the measured ratio agrees with the exact term and refutes the independent-mask formula."""
    def positive(model):
        with torch.no_grad():
            model[3].weight.abs_()
        return model

    r = audit_model(positive(cnn()), input_shape=(3, 16, 16), batches=30, seed=2)
    assert_agrees(r.rows[0])
    independent = positive(cnn())
    independent[2] = nn.Dropout(0.4)  # same weights and eval activations, independent masks
    wrong = audit_model(independent, input_shape=(3, 16, 16), batches=30, seed=2).rows[0]["predicted_mean"]
    assert abs(r.rows[0]["ratio_mean"] - wrong) > Z * r.rows[0]["ratio_mcse"]


def test_mlp_verdicts_and_fix():
    r = audit_model(mlp("before"), input_shape=(20,), batch=128, batches=60, seed=3, fix="recalibrate")
    before = {x["layer"]: x for x in r.stage("before")}
    assert before["1"]["verdict"] == "no shift"
    assert "dropout before BN" in before["5"]["verdict"] and "keep 0.5" in before["5"]["structure"]
    assert before["5"]["li_ratio"] > 1.5 and before["5"]["remedy"]
    for row in r.stage("after"):
        assert abs(row["ratio_mean"] - 1) < Z * row["ratio_mcse"], row
        assert row["verdict"] == "no shift"
    out = r.output["before"]
    assert out["mean_shift_mcse"] > 0 and out["var_shift_mcse"] > 0


def test_update_bn_style_recalibration_keeps_the_shift(tmp_path):
    """torch.optim.swa_utils.update_bn leaves dropout on: the statistics it learns keep the shift."""
    model = mlp("first")
    gen = torch.Generator().manual_seed(4)
    xs = [torch.randn(64, 20, generator=gen) for _ in range(20)]
    torch.optim.swa_utils.update_bn(xs, model)
    torch.save(model.state_dict(), tmp_path / "upd.pt")
    r = audit_model(mlp("first"), data=torch.cat(xs).numpy(), batch=64, weights=str(tmp_path / "upd.pt"), seed=4)
    (row,) = r.rows
    assert row["running_var_source"] == "as given"
    assert row["ratio_mean"] < 1 - Z * row["ratio_mcse"] and "shift" in row["verdict"]
    recalibrate(model, xs, dropout=False)  # the fix, on the same batches
    torch.save(model.state_dict(), tmp_path / "fixed.pt")
    r = audit_model(mlp("first"), data=torch.cat(xs).numpy(), batch=64, weights=str(tmp_path / "fixed.pt"), seed=4)
    assert abs(r.rows[0]["ratio_mean"] - 1) < Z * r.rows[0]["ratio_mcse"]


def test_dropout_after_last_bn_no_shift():
    r = audit_model(mlp("after"), input_shape=(20,), batches=60, seed=5)
    for row in r.rows:
        assert row["verdict"] == "no shift", row
        assert row["sources"] == "none"


def test_functional_dropout_found_and_predicted():
    """F.dropout called in forward (no module): found by the trace, named with its module, and predicted."""
    r = audit_model(Functional(), input_shape=(10,), batches=30, seed=6)
    (row,) = r.rows
    assert_agrees(row)
    assert "F.dropout in the model's forward, keep 0.5" in row["verdict"] and row["remedy"]


def test_no_bn_nothing_to_shift():
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))
    r = audit_model(model, input_shape=(5,), batches=4, seed=7)
    assert r.rows == [] and "Nothing to shift" in r.notes[0]


def test_frame_and_formats():
    r = audit_model(mlp("first"), input_shape=(20,), batches=5, seed=8)
    frame = r.to_frame()
    assert list(frame["layer"]) == ["4"] and "ratio_mean" in frame
    from simulator.audit.report import FORMATS

    data = json.loads(FORMATS["json"](r))
    assert data["rows"][0]["layer"] == "4" and "KEEP" in data["p"]
    assert FORMATS["csv"](r).splitlines()[0].startswith("stage,layer")
    assert "KEEP probability" in FORMATS["table"](r)


# --- the command line -------------------------------------------------------------------------------------

MODEL_FILE = """
import torch.nn as nn

def make():
    nn.init  # the user's own code runs
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))

def other():
    return nn.Sequential(nn.Linear(7, 3), nn.BatchNorm1d(3))

def not_a_module():
    return 42
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(MODEL_FILE)
    return str(path)


@pytest.fixture
def run(cli_run):
    return cli_run


def test_cli_fix_and_save(run, model_file, tmp_path):
    saved, report = tmp_path / "fixed.pt", tmp_path / "audit.json"
    code, out, err = run("audit", "--model", f"{model_file}:make", "--input-shape", "6", "--batches", "10",
                         "--fix", "recalibrate", "--save", str(saved), "--format", "json", "--out", str(report),
                         "--threads", "1")
    assert code == 0, err
    data = json.loads(report.read_text())
    assert {r["stage"] for r in data["rows"]} == {"before", "after"}
    state = torch.load(saved, weights_only=True)
    assert "4.weight" in state and "5.running_var" in state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json", "fixed.pt", "net.py"]


def test_cli_table_data_file(run, model_file, tmp_path):
    data = tmp_path / "x.npz"
    np.savez(data, first=np.random.default_rng(0).standard_normal((200, 6)), second=np.zeros((3, 2)))
    code, out, err = run("audit", "--model", f"{model_file}:make", "--data", f"{data}:first", "--batches", "5",
                         "--threads", "1")
    assert code == 0, err
    assert "KEEP probability" in out and "dropout before BN" in out


@pytest.mark.parametrize("args", [
    ("--model", "{d}/missing.py:make", "--input-shape", "6"),
    ("--model", "{f}:nothere", "--input-shape", "6"),
    ("--model", "{f}:not_a_module", "--input-shape", "6"),
    ("--model", "{f}:make", "--input-shape", "6", "--weights", "{d}/other.pt"),
    ("--model", "{f}:make", "--input-shape", "6", "--weights", "{d}/missing.pt"),
    ("--model", "{f}:make", "--input-shape", "5"),
    ("--model", "{f}:make", "--input-shape", "x"),
    ("--model", "{f}:make", "--data", "{d}/missing.npy"),
    ("--model", "{f}:make"),
    ("--model", "{f}", "--input-shape", "6"),
    ("--arch", "linear:8,bn,frobnicate,linear:1", "--in", "4"),
    ("--arch", "linear:8,bn,dropout:1.5", "--in", "4"),
    ("--arch", "linear:8,bn", "--in", "0"),
    ("--model", "{f}:make", "--arch", "linear:4", "--input-shape", "6"),
])
def test_cli_bad_input(run, model_file, tmp_path, args):
    other = nn.Sequential(nn.Linear(7, 3), nn.BatchNorm1d(3))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    target = tmp_path / "never.json"
    args = [a.format(d=tmp_path, f=model_file) for a in args]
    code, out, err = run("audit", *args, "--batches", "3", "--out", str(target), "--fix", "recalibrate",
                         "--save" if "--model" in args and "--arch" not in args else "--format",
                         str(tmp_path / "never.pt") if "--model" in args and "--arch" not in args else "json")
    assert code == 2, (args, out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not target.exists() and not (tmp_path / "never.pt").exists()


def test_without_torch_says_how_to_install(run, model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    code, out, err = run("audit", "--model", f"{model_file}:make", "--input-shape", "6")
    assert code == 2 and "pip install '.[torch]'" in err


def test_parameter_error_from_library():
    with pytest.raises(ParameterError, match="--input-shape"):
        audit_model(mlp(), batches=3)


# --- the layer-spec path (no PyTorch in the library code it runs) -------------------------------------------

SPEC = "linear:32,bn,relu,dropout:0.5,linear:32,bn,relu,linear:1"


def test_arch_agrees_with_torch_in_distribution():
    from simulator.audit import arch_to_torch

    a = audit_arch(SPEC, 12, batch=64, batches=60, seed=9)
    t = audit_model(arch_to_torch(SPEC, 12, seed=9), input_shape=(12,), batch=64, batches=60, seed=9)
    assert [r["layer"] for r in a.rows] == ["1:bn", "5:bn"] and [r["layer"] for r in t.rows] == ["1", "5"]
    for x, y in zip(a.rows, t.rows):
        se = np.hypot(x["ratio_mcse"], y["ratio_mcse"])
        assert abs(x["ratio_mean"] - y["ratio_mean"]) < Z * se, (x, y)
    assert_agrees(a.rows[1])
    assert "dropout before BN" in a.rows[1]["verdict"] and a.rows[0]["verdict"] == "no shift"


def test_arch_uout_and_fix():
    r = audit_arch("linear:32,relu,uout:0.5,linear:32,bn", 8, batches=60, seed=10, fix="recalibrate")
    before, after = r.stage("before")[0], r.stage("after")[0]
    assert "uout(beta 0.5) → linear → bn" == before["structure"]
    assert abs(before["z"]) < Z and before["ratio_mean"] < 1 - 5 * before["ratio_mcse"]
    assert abs(after["ratio_mean"] - 1) < Z * after["ratio_mcse"] and after["verdict"] == "no shift"


def test_arch_dropout_straight_into_bn_matches_single_unit_formula():
    """dropout → bn: Δ = v / ((1/p)(c² + v) − c²) per unit (docs/theory.md, C5), here with measured c and v."""
    r = audit_arch("linear:16,dropout:0.25,bn", 4, batches=60, seed=11)
    assert_agrees(r.rows[0])


def test_arch_no_bn_and_data(tmp_path):
    x = np.random.default_rng(1).standard_normal((100, 3))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    r = audit_arch("linear:4,relu,dropout:0.5,linear:1", data=str(tmp_path / "x.csv"), batch=10, batches=5)
    assert r.rows == [] and "Nothing to shift" in r.notes[0]


def test_layer_kernels_against_torch():
    from simulator.core.rng import block_state, keep_threshold, stream_key
    from simulator.nn.layers import linear_bias
    from simulator.nn.layers import relu as relu_kernel
    from simulator.nn.noise.dropout import dropout as _dropout
    from simulator.nn.noise.uout import uout as _uout

    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    out = np.empty((5, 3))
    linear_bias(x, W, b, out)
    ref = F.linear(torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    h = np.empty_like(x)
    relu_kernel(x, h)
    np.testing.assert_array_equal(h, F.relu(torch.from_numpy(x)).numpy())
    big = np.ones((400, 250))
    s = block_state(stream_key(0, "test-layers"), 0)
    d = np.empty_like(big)
    _dropout(s, big, keep_threshold(0.3), 1 / 0.3, d)
    kept = (d != 0).mean()
    assert set(np.unique(d)) <= {0.0, 1 / 0.3} and abs(kept - 0.3) < 5 * np.sqrt(0.3 * 0.7 / big.size)
    _uout(s, big, 0.5, d)
    assert abs(d.mean() - 1) < 5 * np.sqrt(0.25 / 3 / big.size) and abs(d.var() - 0.25 / 3) < 0.005


def test_plot(run, model_file, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, err = run("audit", "--model", f"{model_file}:make", "--input-shape", "6", "--batches", "4",
                         "--fix", "recalibrate", "--plot", str(tmp_path / "a.svg"), "--threads", "1")
    assert code == 0, err
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    code, out, err = run("audit", "--arch", "linear:4,bn", "--in", "3", "--plot", str(tmp_path / "a.pdf"))
    assert code == 2 and "must end in .png or .svg" in err
