"""simulator.audit.speed: the audit timed against as many plain forward passes (what `bench` reports).

No timing is asserted (speed lives in the benchmark); the test checks what is counted and returned.
"""
from conftest import require_torch

torch = require_torch()
nn = torch.nn


def test_audit_speed_counts_the_passes():
    from simulator.audit import audit_speed

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16),
                          nn.BatchNorm1d(16), nn.Linear(16, 1))
    r = audit_speed(model, input_shape=(6,), batch=16, batches=5, fix="recalibrate")
    # structure 1 + gather B + linearized B (+ 1 eval on the first batch) + 2 dropout-on per batch + fix B + again B
    assert r["passes"] == 1 + 5 + 5 + 1 + 2 * 5 + 5 + 5
    assert r["bn_layers"] == 2 and r["target"] == 2.0
    assert r["audit_s"] > 0 and r["plain_s"] > 0 and r["ratio"] == r["audit_s"] / r["plain_s"]
    assert r["ratio_50"] == r["audit_s"] / r["plain_50_s"]


def test_audit_speed_without_the_zoo(monkeypatch):
    import sys

    from simulator.audit import audit_speed

    monkeypatch.setitem(sys.modules, "torchvision", None)
    assert "torchvision" in audit_speed()["skipped"]
