"""``audit_arch`` (the project's own layers, no PyTorch): its data, its notes, its reproducibility."""
import numpy as np
import pytest

from simulator.audit import audit_arch
from simulator.audit.measure import FIX_NOTE, PREDICTION_NOTE
from simulator.core.errors import ParameterError

SPEC = "linear:16,bn,relu,dropout:0.5,linear:8,bn,relu,linear:1"


def rows_of(x):
    return np.random.default_rng(4).standard_normal((x, 6))


def test_an_array_and_the_same_rows_in_a_file_give_the_same_audit(tmp_path):
    x = rows_of(200)
    np.save(tmp_path / "x.npy", x)
    a = audit_arch(SPEC, data=x, batch=16, batches=10, seed=2)           # n_in from the columns
    b = audit_arch(SPEC, 6, data=str(tmp_path / "x.npy"), batch=16, batches=10, seed=2)
    assert a.rows == b.rows and a.output == b.output and a.notes == b.notes
    assert a.meta["data"] == "array" and b.meta["data"] == str(tmp_path / "x.npy") and a.meta["batches"] == 10


def test_the_same_seed_gives_the_same_audit_and_another_seed_another():
    a, b = (audit_arch(SPEC, 5, batch=16, batches=8, seed=7, fix="recalibrate") for _ in range(2))
    c = audit_arch(SPEC, 5, batch=16, batches=8, seed=8, fix="recalibrate")
    assert a.rows == b.rows and a.output == b.output
    assert a.rows != c.rows


def test_data_of_the_wrong_shape_is_refused():
    with pytest.raises(ParameterError, match="rows of features, got an array of shape"):
        audit_arch(SPEC, data=np.zeros((40, 6, 2)))
    with pytest.raises(ParameterError, match="--data has 6 columns but --in is 5"):
        audit_arch(SPEC, 5, data=rows_of(40))


def test_notes_in_order_and_stages():
    r = audit_arch(SPEC, 5, batch=16, batches=8, seed=3, fix="exact")
    assert r.notes == ["Running statistics gathered in train mode (noise on) over 8 batches of 16 as a cumulative "
                       "average (no weight left on the initial value).", PREDICTION_NOTE, FIX_NOTE]
    assert [(x["stage"], x["layer"]) for x in r.rows] == [("before", "1:bn"), ("before", "5:bn"), ("after", "1:bn"),
                                                          ("after", "5:bn")]
    assert r.meta["fix"] == "exact" and r.meta["mc"] == 8 and set(r.output) == {"before"}
    plain = audit_arch("linear:4,relu,linear:1", 3, batch=8, batches=4)
    assert plain.rows == [] and plain.notes == ["Nothing to shift: the spec has no bn layer."]
    assert plain.meta["data"] == "standard normal, 3 features"
