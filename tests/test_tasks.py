import numpy as np
import pytest

from simulator.core.errors import ParameterError
from simulator.data import tasks


@pytest.mark.parametrize("name", tasks.TASK_NAMES)
def test_every_task_loads_with_consistent_fields(name):
    task = tasks.load(name, 0)
    n, f = task.X.shape
    assert task.X.dtype == np.float64 and task.y.shape == (n,) and task.y.dtype == np.float64
    assert np.isfinite(task.X).all() and np.isfinite(task.y).all()
    assert task.kind in tasks.KINDS and task.name == name
    assert f"{n} × {f}" in task.description and "\n" not in task.description
    if task.kind == "regression":
        assert task.classes == 1 and not task.median_label and task.twin in tasks.TASK_NAMES
    elif task.median_label:
        assert task.classes == 2
    else:
        labels = np.unique(task.y)
        np.testing.assert_array_equal(labels, np.arange(task.classes))


@pytest.mark.parametrize("name", ["diabetes", "teacher"])
def test_twins_differ_only_in_head(name):
    reg = tasks.load(name, 3)
    twin = tasks.load(reg.twin, 3)
    np.testing.assert_array_equal(reg.X, twin.X)
    np.testing.assert_array_equal(reg.y, twin.y)
    assert twin.median_label and twin.kind == "classification" and twin.twin is None


def test_shapes_of_the_bundled_sets():
    assert tasks.load("diabetes").X.shape == (442, 10)
    assert tasks.load("digits").X.shape == (1797, 64) and tasks.load("digits").classes == 10
    assert tasks.load("breast-cancer").classes == 2
    assert tasks.load("wine").classes == 3


def test_teacher_is_a_function_of_the_seed():
    a, b, c = tasks.load("teacher", 1), tasks.load("teacher", 1), tasks.load("teacher", 2)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    assert a.X.shape == (tasks.TEACHER_ROWS, tasks.TEACHER_INPUTS)


def test_teacher_reference_numpy():
    """The teacher rebuilt in numpy from the documented recipe (PyTorch's nn.Linear init)."""
    from simulator.core.rng import stream_key
    seed = 5
    rng = np.random.default_rng(stream_key(seed, "teacher-task", 600, 10, 32))
    X = rng.standard_normal((600, 10))
    W1 = rng.uniform(-1 / np.sqrt(10), 1 / np.sqrt(10), (32, 10))
    b1 = rng.uniform(-1 / np.sqrt(10), 1 / np.sqrt(10), 32)
    W2 = rng.uniform(-1 / np.sqrt(32), 1 / np.sqrt(32), (1, 32))
    b2 = rng.uniform(-1 / np.sqrt(32), 1 / np.sqrt(32), 1)
    t = (np.maximum(X @ W1.T + b1, 0) @ W2.T + b2).ravel()
    y = (t - t.mean()) / t.std() + 0.5 * rng.standard_normal(600)
    task = tasks.load("teacher", seed)
    np.testing.assert_array_equal(task.X, X)
    np.testing.assert_allclose(task.y, y, rtol=1e-14)
    # The noise is a fifth of the variance: a teacher that is learnable but not exactly.
    assert 1.1 < task.y.var() < 1.5


def test_data_are_read_only():
    task = tasks.load("diabetes")
    with pytest.raises(ValueError):
        task.X[0, 0] = 1.0


@pytest.mark.parametrize("bad", ["mnist", "", "Diabetes", None])
def test_unknown_name_lists_the_valid_ones(bad):
    with pytest.raises(ParameterError) as info:
        tasks.load(bad, 0)
    message = str(info.value)
    assert "\n" not in message and all(name in message for name in tasks.TASK_NAMES)


@pytest.mark.parametrize("name", ["diabetes", "digits", "breast-cancer", "wine"])
def test_stored_copy_is_scikit_learns_data_bit_for_bit(name, tmp_path, monkeypatch):
    path = tmp_path / f"{name}.npz"
    monkeypatch.setattr(tasks, "_cache_file", lambda n: path)
    tasks._sklearn.cache_clear()
    try:
        first = tasks._sklearn(name)  # through scikit-learn's loader; stores the arrays
        assert path.exists()
        tasks._sklearn.cache_clear()
        monkeypatch.setattr(tasks, "_from_sklearn", lambda n: pytest.fail("the stored copy was not used"))
        second = tasks._sklearn(name)
    finally:
        tasks._sklearn.cache_clear()
    import sklearn.datasets as datasets
    bunch = getattr(datasets, "load_" + name.replace("-", "_"))()
    for got in (first, second):
        np.testing.assert_array_equal(got[0], bunch.data, strict=True)
        np.testing.assert_array_equal(got[1], bunch.target.astype(np.float64), strict=True)
        assert got[0].flags.c_contiguous and not got[0].flags.writeable


def test_an_unwritable_store_falls_back_to_the_loader(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(tasks, "_cache_file", lambda n: blocker / "sub" / "x.npz")  # parent is a file
    tasks._sklearn.cache_clear()
    try:
        X, y = tasks._sklearn("wine")
    finally:
        tasks._sklearn.cache_clear()
    assert X.shape == (178, 13) and not list(tmp_path.glob("**/*.tmp.npz"))


def test_a_damaged_stored_copy_is_replaced(tmp_path, monkeypatch):
    path = tmp_path / "wine.npz"
    path.write_bytes(b"PK\x03\x04 not a zip file")
    monkeypatch.setattr(tasks, "_cache_file", lambda n: path)
    tasks._sklearn.cache_clear()
    try:
        X, _ = tasks._sklearn("wine")
    finally:
        tasks._sklearn.cache_clear()
    assert X.shape == (178, 13)
    with np.load(path) as stored:
        np.testing.assert_array_equal(stored["X"], X)
