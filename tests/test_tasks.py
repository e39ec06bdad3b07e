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


@pytest.mark.parametrize("name", ["diabetes", "teacher", "diamonds"])
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
    tasks.sklearn_data.cache_clear()
    try:
        first = tasks.sklearn_data(name)  # through scikit-learn's loader; stores the arrays
        assert path.exists()
        tasks.sklearn_data.cache_clear()
        monkeypatch.setattr(tasks, "_from_sklearn", lambda n: pytest.fail("the stored copy was not used"))
        second = tasks.sklearn_data(name)
    finally:
        tasks.sklearn_data.cache_clear()
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
    tasks.sklearn_data.cache_clear()
    try:
        X, y = tasks.sklearn_data("wine")
    finally:
        tasks.sklearn_data.cache_clear()
    assert X.shape == (178, 13) and not list(tmp_path.glob("**/*.tmp.npz"))


def test_a_damaged_stored_copy_is_replaced(tmp_path, monkeypatch):
    path = tmp_path / "wine.npz"
    path.write_bytes(b"PK\x03\x04 not a zip file")
    monkeypatch.setattr(tasks, "_cache_file", lambda n: path)
    tasks.sklearn_data.cache_clear()
    try:
        X, _ = tasks.sklearn_data("wine")
    finally:
        tasks.sklearn_data.cache_clear()
    assert X.shape == (178, 13)
    with np.load(path) as stored:
        np.testing.assert_array_equal(stored["X"], X)


# ------------------------------------------------------------------------------------------- diamonds


def test_diamonds_is_ggplot2s_table_coded_by_grade():
    """The whole table, checked against the CSV read naively (csv module, no pandas)."""
    import csv

    X, y = tasks.diamonds_sample(0, tasks.DIAMONDS_ROWS)
    assert X.shape == (53_940, 9) and y.shape == (53_940,)
    with open(tasks.diamonds_file(), newline="") as f:
        rows = list(csv.DictReader(f))
    for i in (0, 1, 27_000, 53_939):
        r = rows[i]
        want = [float(r["carat"]), float(r["depth"]), float(r["table"]), float(r["x"]), float(r["y"]),
                float(r["z"]), tasks.DIAMONDS_GRADES["cut"].index(r["cut"]),
                tasks.DIAMONDS_GRADES["color"].index(r["color"]), tasks.DIAMONDS_GRADES["clarity"].index(r["clarity"])]
        assert list(X[i]) == want and y[i] == np.log(float(r["price"]))
    assert X[0].tolist()[6:] == [4.0, 5.0, 1.0]  # row 1: Ideal, E, SI2
    assert tasks.load("diamonds", 0, 53_940).X.shape == (53_940, 9)


def test_diamonds_subsample_is_a_function_of_seed_and_rows():
    a, b, c = tasks.load("diamonds", 5, 1000), tasks.load("diamonds", 5, 1000), tasks.load("diamonds", 6, 1000)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    X, y = tasks.diamonds_table()
    rng = np.random.default_rng(tasks.stream_key(5, "diamonds-rows", 1000))
    pick = np.sort(rng.choice(53_940, 1000, replace=False))
    np.testing.assert_array_equal(a.X, X[pick])
    np.testing.assert_array_equal(a.y, y[pick])
    assert len({tuple(r) for r in np.column_stack([a.X, a.y])}) > 990  # drawn without replacement


@pytest.mark.parametrize("rows", [0, 1, 53_941, 10**9])
def test_diamonds_rows_out_of_range_is_one_line(rows):
    with pytest.raises(ParameterError, match=r"rows=.*53,940"):
        tasks.load("diamonds", 0, rows)


def test_diamonds_without_plotnine_names_the_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    tasks.diamonds_table.cache_clear()
    tasks.diamonds_sample.cache_clear()
    try:
        with pytest.raises(ParameterError, match=r"plotnine.*pip install"):
            tasks.load("diamonds", 0, 100)
    finally:
        tasks.diamonds_table.cache_clear()
        tasks.diamonds_sample.cache_clear()


def test_a_foreign_diamonds_file_is_refused(tmp_path):
    bad = tmp_path / "diamonds.csv"
    bad.write_text('"carat","cut","color","clarity","depth","table","price","x","y","z"\n'
                   '0.23,"Ideal","E","XX",61.5,55,326,3.95,3.98,2.43\n')
    with pytest.raises(ParameterError, match="unknown clarity grade"):
        tasks.read_diamonds(bad)
    bad.write_text('"carat","cut","color","clarity","depth","table","price","x","y","z"\n'
                   '0.23,"Ideal","E","SI2",61.5,55,326,3.95,3.98,2.43\n')
    with pytest.raises(ParameterError, match="not ggplot2's diamonds"):
        tasks.read_diamonds(bad)
