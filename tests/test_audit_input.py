"""`cli.py audit` on bad input and on the models and layers users actually have: one line, exit 2, nothing left.

Each bad input is one stderr line "error: ...", exit status 2 (never a traceback, never the user code's own
exit status), and no output file. Then: models named as users name them (a package, keyword arguments), BN
kinds beyond BatchNorm1d/2d, functional dropout hard-coded on in eval mode.
"""
import numpy as np
import pytest
from conftest import require_torch

torch = require_torch()
nn = torch.nn

MODELS = '''
import sys
import torch
import torch.nn as nn
import torch.nn.functional as F


def make(width=8):
    return nn.Sequential(nn.Linear(6, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(width, width), nn.BatchNorm1d(width), nn.Linear(width, 1))


class Moody(nn.Module):
    def __init__(self, fails_in):
        super().__init__()
        self.fails_in, self.fc, self.bn = fails_in, nn.Linear(6, 4), nn.BatchNorm1d(4)

    def forward(self, x):
        if self.training == (self.fails_in == "train"):
            raise RuntimeError(f"broken in {self.fails_in}")
        return self.bn(self.fc(x))


def train_fails():
    return Moody("train")


def eval_fails():
    return Moody("eval")


def exits():
    sys.exit(3)


class AlwaysOn(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.bn = nn.Linear(6, 16), nn.Linear(16, 16), nn.BatchNorm1d(16)

    def forward(self, x):
        return self.bn(self.fc2(F.dropout(F.relu(self.fc1(x)), 0.5, training=True)))


def always_on():
    return AlwaysOn()


def kinds():
    return nn.Sequential(nn.Linear(6, 8), nn.LazyBatchNorm1d(), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 8),
                         nn.SyncBatchNorm(8), nn.Linear(8, 1))


def no_bn():
    return nn.Sequential(nn.Linear(6, 4), nn.Dropout(0.5), nn.Linear(4, 1))
'''


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # small batches: one torch thread is fastest


@pytest.fixture
def files(tmp_path):
    (tmp_path / "nets.py").write_text(MODELS)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(4)\n")
    np.save(tmp_path / "zero_d.npy", np.array(3.0))
    np.save(tmp_path / "complex64.npy", np.ones((100, 6), dtype=np.complex64))
    np.save(tmp_path / "complex128.npy", np.ones((100, 6), dtype=np.complex128))
    (tmp_path / "empty.npy").write_bytes(b"")
    with open(tmp_path / "huge.npy", "wb") as f:  # the header declares 5·10¹⁰ rows; no data follows
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (50_000_000_000, 6)})
    np.save(tmp_path / "rank3.npy", np.ones((100, 2, 3)))
    torch.manual_seed(0)
    base = {"nets.py:make": None}
    for name, change in (("nan", lambda s: s["1.weight"].fill_(float("nan"))),
                         ("negvar", lambda s: s["1.running_var"].fill_(-1.0)),
                         ("zerovar", lambda s: s["5.running_var"].fill_(0.0))):
        state = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 8),
                              nn.BatchNorm1d(8), nn.Linear(8, 1)).state_dict()
        change(state)
        torch.save(state, tmp_path / f"{name}.pt")
    (tmp_path / "folder").mkdir()
    return tmp_path, base


BAD = [
    (("--input-shape", "100000,100000,100000"), "available memory"),
    (("--data", "{d}/zero_d.npy"), "0-d"),
    (("--data", "{d}/complex64.npy"), "not a real numeric array"),
    (("--data", "{d}/complex128.npy"), "not a real numeric array"),
    (("--data", "{d}/empty.npy"), "cannot read it"),
    (("--data", "{d}/huge.npy"), "the header declares shape (50000000000, 6)"),
    (("--data", "{d}/rank3.npy"), "fails in eval mode on inputs of shape (32, 2, 3)"),
    (("--input-shape", "6", "--weights", "{d}/nan.pt"), "1.weight holds NaN"),
    (("--input-shape", "6", "--weights", "{d}/negvar.pt"), "1.running_var has values ≤ 0"),
    (("--input-shape", "6", "--weights", "{d}/zerovar.pt"), "5.running_var has values ≤ 0"),
    (("--input-shape", "6", "--model-arg", "depth=3"), "unexpected keyword argument 'depth'"),
    (("--input-shape", "6", "--model-arg", "3"), "--model-arg 3: expected NAME=VALUE"),
    (("--input-shape", "6", "--save", "{d}/folder"), "--save {d}/folder: is a folder"),
    (("--input-shape", "6", "--plot", "{d}/folder.svg/"), "--plot"),
]


def run_bad(cli_run, tmp, model, args):
    target = tmp / "never.json"
    args = [a.format(d=tmp) for a in args]
    if "--save" not in args:
        args += ["--save", str(tmp / "never.pt")]
    code, out, err = cli_run("audit", "--model", model, *args, "--batches", "3", "--fix", "recalibrate",
                             "--format", "json", "--out", str(target), "--no-progress")
    assert code == 2, (args, out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not target.exists() and not (tmp / "never.pt").exists()
    return err


@pytest.mark.parametrize("args, says", BAD)
def test_bad_input_one_line(cli_run, files, args, says):
    tmp, _ = files
    (tmp / "folder.svg").mkdir(exist_ok=True)
    err = run_bad(cli_run, tmp, f"{tmp}/nets.py:make", args)
    assert says.format(d=tmp) in err, err


@pytest.mark.parametrize("model, says", [
    ("nets.py:train_fails", "fails in train mode"),
    ("nets.py:eval_fails", "fails in eval mode"),
    ("nets.py:exits", "exits() failed (SystemExit: exit status 3)"),
    ("exits.py:make", "running the file failed (SystemExit: exit status 4)"),
    ("no_such_package_xyz.nets:make", "cannot import no_such_package_xyz.nets (ModuleNotFoundError"),
])
def test_user_code_that_fails(cli_run, files, model, says):
    tmp, _ = files
    name = model if model.startswith("no_such") else f"{tmp}/{model}"
    err = run_bad(cli_run, tmp, name, ("--input-shape", "6"))
    assert says in err, err
    if "mode" in says:
        assert f"RuntimeError: broken in {says.split()[-2]}" in err


def test_arch_too_large(cli_run, tmp_path):
    code, out, err = cli_run("audit", "--arch", "linear:1e12,bn", "--in", "4", "--out", str(tmp_path / "x"))
    assert code == 2 and "available memory" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_package_model_with_arguments(cli_run, files, monkeypatch):
    tmp, _ = files
    pkg = tmp / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp))
    code, out, err = cli_run("audit", "--model", "userpkg.nets:make", "--model-arg", "width=12", "--input-shape", "6",
                             "--batches", "6", "--format", "json", "--no-progress")
    assert code == 0, err
    import json

    rows = json.loads(out)["rows"]
    assert [r["channels"] for r in rows] == [12, 12] and rows[1]["sources"] == "nn.Dropout 3, keep 0.5"


def test_noise_on_in_eval_mode_is_reported(files):
    from simulator.audit import audit_model

    tmp, _ = files
    r = audit_model(f"{tmp}/nets.py:always_on", input_shape=(6,), batches=10, seed=1)
    (row,) = r.rows
    assert r.meta["eval_noise"] == ["F.dropout in the model's forward, keep 0.5"]
    assert "stays on in eval mode" in row["verdict"] and "training=self.training" in row["remedy"]
    from simulator.audit.report import table

    assert "ON IN EVAL MODE: F.dropout in the model's forward" in table(r)


def test_lazy_and_sync_batchnorm_found(files):
    from simulator.audit import audit_model

    tmp, _ = files
    r = audit_model(f"{tmp}/nets.py:kinds", input_shape=(6,), batches=20, seed=2, fix="recalibrate")
    before = r.stage("before")
    assert [x["layer"] for x in before] == ["1", "5"]
    assert before[1]["sources"] == "nn.Dropout 3, keep 0.5" and before[1]["shifted"]
    assert all(abs(x["ratio_mean"] - 1) < 5 * x["ratio_mcse"] for x in r.stage("after"))


def test_no_bn_one_line(cli_run, files):
    tmp, _ = files
    code, out, err = cli_run("audit", "--model", f"{tmp}/nets.py:no_bn", "--input-shape", "6", "--batches", "3",
                             "--no-progress")
    assert code == 0 and "Nothing to shift" in out and "BatchNorm layers:" not in out and "layer  kind" not in out


def test_progress_on_stderr(cli_run, files):
    tmp, _ = files
    code, out, err = cli_run("audit", "--model", f"{tmp}/nets.py:make", "--input-shape", "6", "--batches", "3",
                             "--fix", "recalibrate", "--progress")
    assert code == 0 and "audit: statistics" in err and "audit: recalibrating" in err


def test_never_updated_statistics_get_no_percentage(files, tmp_path):
    """Given weights whose BN never updated (num_batches_tracked = 0): "not converged", never a shift in %."""
    from simulator.audit import audit_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 8),
                          nn.BatchNorm1d(8), nn.Linear(8, 1))
    torch.save(model.state_dict(), tmp_path / "fresh.pt")
    tmp, _ = files
    r = audit_model(f"{tmp}/nets.py:make", input_shape=(6,), batches=5, weights=str(tmp_path / "fresh.pt"))
    for row in r.rows:
        assert row["verdict"].startswith("not converged: more batches") and "%" not in row["verdict"]
        assert not row["shifted"]


class TrainShift(nn.Module):
    """Differs between train and eval beyond its noise: the linearized pass is not the eval pass."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.fc, self.bn = nn.Linear(6, 8), nn.BatchNorm1d(8)

    def forward(self, x):
        h = self.fc(x)
        return self.bn(2.0 * h if self.training else h)


def test_train_eval_difference_measured_in_eval_passes():
    from simulator.audit import audit_model

    r = audit_model(TrainShift(), input_shape=(6,), batches=10, seed=4)
    assert r.meta["measured_in"] == "eval passes"
    (row,) = r.rows
    assert abs(row["ratio_mean"] - 0.25) < 5 * row["ratio_mcse"] and row["sources"] == "none"
    assert "no noise source reaches it" in row["verdict"]


def test_detail_columns_fit_the_longest_name_and_files_keep_every_row(cli_run, files):
    tmp, _ = files
    code, out, err = cli_run("audit", "--model", f"{tmp}/nets.py:make", "--input-shape", "6", "--batches", "3",
                             "--detail", "--no-progress")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("  layer")]
    assert table and table[0].index("kind") > len("layer")
    code, out, err = cli_run("audit", "--model", f"{tmp}/nets.py:make", "--input-shape", "6", "--batches", "3",
                             "--fix", "exact", "--format", "csv", "--no-progress")
    assert code == 0 and len(out.strip().splitlines()) == 1 + 4
