"""The audit on small configurations of model-zoo architectures, against an independent hook-based reference.

- torchvision's DenseNet with ``drop_rate``: ``F.dropout`` called in each dense layer's ``forward``, its output
  concatenated into the next layer's input (Li et al. 2019's DenseNet result, in small).
- timm's EfficientNet: ``BatchNormAct2d`` (a BatchNorm2d subclass with child modules) and stochastic depth
  (DropPath: ``Tensor.bernoulli_`` masks) on residual blocks.
- a conv net with ``nn.Dropout2d`` before BN, and a deep BatchNorm1d chain for the two fixes.

Each test checks the measured ratio against the reference (eval-mode forward pre-hooks, written here),
the sources named, and the fix bringing every ratio to 1 within its MCSE. In CI both packages are installed
(the ``test`` extra): a missing one fails there instead of skipping.
"""
import os

import numpy as np
import pytest
from conftest import require_torch

torch = require_torch()
nn = torch.nn
Z = 5.0


def _zoo(name):
    if os.environ.get("CI", "").lower() == "true":
        return __import__(name)
    return pytest.importorskip(name)


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # small batches: one torch thread is fastest


def inputs(shape, batch, batches, seed):
    return np.random.default_rng(seed).standard_normal((batch * batches,) + shape)


def hook_ratios(model, data, batch):
    """Reference: per BN (any _BatchNorm), mean over channels of Var_eval(input) / running_var, eval mode."""
    sums = {}
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def hook(name):
        def f(mod, inputs):
            x = inputs[0].detach().double().transpose(0, 1).reshape(inputs[0].shape[1], -1)
            s = sums.setdefault(name, [0.0, 0.0, 0])
            s[0], s[1], s[2] = s[0] + x.sum(1), s[1] + (x * x).sum(1), s[2] + x.shape[1]
        return f

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in bns]
    model.eval()
    with torch.no_grad():
        for k in range(len(data) // batch):
            model(torch.as_tensor(data[k * batch:(k + 1) * batch], dtype=torch.float32))
    for h in handles:
        h.remove()
    out = {}
    for n, m in bns:
        s1, s2, cnt = sums[n]
        var = s2 / cnt - (s1 / cnt) ** 2
        out[n] = float((var / m.running_var.double()).mean())
    return out


def check_against_reference(model, rows, data, batch):
    ref = hook_ratios(model, data, batch)
    assert set(ref) == {r["layer"] for r in rows}, "every BN is audited"
    for r in rows:
        assert abs(r["ratio_mean"] - ref[r["layer"]]) < 1e-4 * ref[r["layer"]], (r["layer"], r["ratio_mean"])


def check_fixed(rows):
    for r in rows:
        assert abs(r["ratio_mean"] - 1.0) < Z * r["ratio_mcse"], r
        assert r["verdict"] == "no shift", r


def densenet():
    tv = _zoo("torchvision")
    torch.manual_seed(0)
    return tv.models.DenseNet(growth_rate=8, block_config=(3, 3), num_init_features=16, bn_size=2, drop_rate=0.2,
                              num_classes=10)


def test_densenet_functional_dropout_named_and_fixed():
    from simulator.audit import audit_model

    data, batch = inputs((3, 16, 16), 32, 16, 1), 32
    model = densenet()
    r = audit_model(model, data=data, batch=batch, seed=1)
    check_against_reference(model, r.rows, data, batch)
    rows = {x["layer"]: x for x in r.rows}
    first = rows["features.denseblock1.denselayer2.norm1"]
    assert first["sources"] == "F.dropout in features.denseblock1.denselayer1, keep 0.8"
    assert "dropout before BN (F.dropout in features.denseblock1.denselayer1" in first["verdict"]
    assert abs(first["z"]) < Z and first["ratio_mean"] < 1 - Z * first["ratio_mcse"]  # concat → BN: exact
    for name in ("features.norm0", "features.denseblock1.denselayer1.norm1", "features.denseblock1.denselayer1.norm2"):
        assert rows[name]["sources"] == "none" and rows[name]["verdict"] == "no shift"
    reached = [x for x in r.rows if x["n_sources"]]
    assert len(reached) == len(r.rows) - 3 and sum(x["shifted"] for x in reached) >= len(reached) - 1
    assert len(r.meta["noise_sources"]) == 6 and all(s.startswith("F.dropout in features.denseblock")
                                                     for s in r.meta["noise_sources"])
    model = densenet()
    fixed = audit_model(model, data=data, batch=batch, seed=1, fix="recalibrate")
    check_fixed(fixed.stage("after"))
    check_against_reference(model, fixed.stage("after"), data, batch)


def efficientnet():
    _zoo("torchvision")
    timm = _zoo("timm")
    from timm.models._efficientnet_builder import decode_arch_def

    torch.manual_seed(0)
    arch = [["ds_r1_k3_s1_e1_c8"], ["ir_r2_k3_s2_e4_c16"], ["ir_r2_k3_s2_e4_c24"]]
    return timm.models.efficientnet.EfficientNet(decode_arch_def(arch), num_features=64, stem_size=8, drop_rate=0.2,
                                                 drop_path_rate=0.3, num_classes=10)


def test_fused_bn_act_and_stochastic_depth():
    """timm's BatchNormAct2d has children (act, drop): each is audited; DropPath's bernoulli_ masks are found."""
    from simulator.audit import audit_model

    data, batch = inputs((3, 32, 32), 32, 12, 2), 32
    model = efficientnet()
    n_bn = sum(type(m).__name__ == "BatchNormAct2d" for m in model.modules())
    r = audit_model(model, data=data, batch=batch, seed=2, fix=None)
    assert len(r.rows) == n_bn == 16 and {x["kind"] for x in r.rows} == {"BatchNormAct2d"}
    check_against_reference(model, r.rows, data, batch)
    assert r.meta["noise_sources"][:2] == ["Tensor.bernoulli_ in blocks.1.1.drop_path, keep 0.88",
                                           "Tensor.bernoulli_ in blocks.2.1.drop_path, keep 0.76"]
    row = {x["layer"]: x for x in r.rows}["blocks.2.0.bn1"]  # DropPath → residual sum → 1×1 conv → BN: exact
    assert row["sources"] == "Tensor.bernoulli_ in blocks.1.1.drop_path, keep 0.88"
    assert row["predicted_mean"] is not None and abs(row["z"]) < Z and row["shifted"]
    model = efficientnet()
    fixed = audit_model(model, data=data, batch=batch, seed=2, fix="recalibrate")
    check_fixed(fixed.stage("after"))


def test_dropout2d_conv_net():
    from simulator.audit import audit_model

    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.3),
                          nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout2d(0.3), nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    data, batch = inputs((3, 16, 16), 32, 20, 3), 32
    r = audit_model(model, data=data, batch=batch, seed=3)
    check_against_reference(model, r.rows, data, batch)
    rows = {x["layer"]: x for x in r.rows}
    assert rows["5"]["sources"] == "nn.Dropout2d 3, keep 0.7" and abs(rows["5"]["z"]) < Z
    assert rows["10"]["sources"] == "nn.Dropout2d 3, keep 0.7; nn.Dropout2d 8, keep 0.7"
    assert rows["1"]["verdict"] == "no shift"
    fixed = audit_model(model, data=data, batch=batch, seed=3, fix="exact")
    check_fixed(fixed.stage("after"))


def deep_chain():
    torch.manual_seed(7)
    layers = [nn.Linear(8, 32)]
    for _ in range(6):
        layers += [nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 32)]
    return nn.Sequential(*layers, nn.BatchNorm1d(32))


def test_exact_fix_removes_the_cascade_residual():
    """BN1d chain, batch 8: the one-pass fix leaves the O(1/batch) residual below the first BN; the exact one not."""
    from simulator.audit import audit_model

    data = inputs((8,), 8, 200, 4)
    one = audit_model(deep_chain(), data=data, batch=8, batches=200, seed=4, fix="recalibrate").stage("after")
    exact = audit_model(deep_chain(), data=data, batch=8, batches=200, seed=4, fix="exact").stage("after")
    check_fixed(exact)
    residual = [r["ratio_mean"] - 1 for r in one[1:]]
    assert np.mean(np.abs(residual)) > 0.05 and max(abs(r["ratio_mean"] - 1) for r in exact) < 0.03
