"""The data sets of the trained-network experiments, all offline.

A :class:`Task` is a design matrix and a target: a regression (MSE, one output)
or a classification (cross-entropy, C logits). Four come with scikit-learn
(``load_diabetes``, ``load_digits``, ``load_breast_cancer``, ``load_wine``,
bundled in its wheel); ``teacher`` is synthetic. Each regression task has a
classification *twin* with the same X and the same continuous target, labelled
``1[y > median]``, the median taken over each run's training split (so a twin
differs from its regression task only in the head and the loss, and the test
rows never leak into the labels).

Notes
-----
``teacher``: n = 600 rows by default (``rows``), X ~ N(0, I_10) and a fixed random teacher network
10 → Linear(32) → ReLU → Linear(1) with PyTorch's default ``nn.Linear`` init
(weight and bias ~ U(−1/√fan_in, 1/√fan_in)); y = (t − mean t)/std t + N(0, 0.5²)
with t the teacher's output, so the noise is 20% of y's variance (the SD 0.5 is ``noise``). Everything is
drawn from ``np.random.default_rng(stream_key(seed, "teacher-task", ...))``.

``diamonds``: ggplot2's ``diamonds`` (53,940 round diamonds, 2008), as shipped inside the plotnine wheel
(``plotnine/data/diamonds.csv``; read as a file, plotnine is never imported, nothing is downloaded). The
target is log(price in US$); the 9 inputs are carat, depth, table, the three dimensions x, y, z, and
cut, colour and clarity coded by their ordered grades (cut Fair = 0 … Ideal = 4, colour J = 0 … D = 6,
clarity I1 = 0 … IF = 7). ``rows`` rows are drawn without replacement from
``np.random.default_rng(stream_key(seed, "diamonds-rows", rows))``, so one seed gives one sub-sample;
``rows`` = 53,940 takes every row (in file order).
"""
import contextlib
import functools
import importlib.metadata
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ParameterError, shown
from ..core.rng import stream_key

TASK_NAMES = ("diabetes", "diabetes-class", "teacher", "teacher-class", "diamonds", "diamonds-class", "digits",
              "breast-cancer", "wine")
SIZED = ("teacher", "teacher-class", "diamonds", "diamonds-class")  # the tasks whose ``rows`` is a setting
KINDS = ("regression", "classification")

TEACHER_ROWS, TEACHER_INPUTS, TEACHER_HIDDEN, TEACHER_NOISE = 600, 10, 32, 0.5
DIAMONDS_ROWS = 53_940
DIAMONDS_GRADES = {"cut": ("Fair", "Good", "Very Good", "Premium", "Ideal"),
                   "color": ("J", "I", "H", "G", "F", "E", "D"),
                   "clarity": ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF")}
DIAMONDS_INPUTS = ("carat", "depth", "table", "x", "y", "z", "cut", "color", "clarity")


@dataclass(frozen=True, eq=False)
class Task:
    """A data set ready to train on.

    Attributes
    ----------
    name : str
    kind : str
        "regression" or "classification".
    X : ndarray of shape (n, f), float64
    y : ndarray of shape (n,), float64
        The regression target; class labels 0..C−1 as floats; or, for a median
        twin, the continuous target.
    classes : int
        1 for regression, C for classification.
    median_label : bool
        The labels are ``1[y > median of the run's training split]``, made per run.
    twin : str or None
        Name of the classification twin of a regression task.
    description : str
        One line: source, n × f, what the label is.
    """

    name: str
    kind: str
    X: np.ndarray
    y: np.ndarray
    classes: int
    median_label: bool
    twin: object
    description: str


def _from_sklearn(name):
    """``(X, y)`` as float64 from scikit-learn's own loader."""
    import sklearn.datasets as datasets  # lazily: importing it costs about two seconds
    loader = {"diabetes": datasets.load_diabetes, "digits": datasets.load_digits,
              "breast-cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name]
    bunch = loader()
    return (np.ascontiguousarray(bunch.data, dtype=np.float64),
            np.ascontiguousarray(bunch.target, dtype=np.float64))


def _cache_file(name):
    """Where the arrays of ``name`` are kept between runs: next to Numba's cache of this package, keyed by
    the scikit-learn version (None when it is not installed)."""
    try:
        version = importlib.metadata.version("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(__file__).parent / "__pycache__" / f"tasks.{name}.sklearn-{version}.npz"


@functools.lru_cache(maxsize=None)
def sklearn_data(name):
    """``(X, y)`` of a scikit-learn bundled data set as float64 (read-only, cached).

    The first load goes through scikit-learn's loader and stores the arrays
    (an ``.npz`` under ``simulator/__pycache__``); later processes read them
    back bit for bit without importing scikit-learn. Where that folder cannot
    be written, every process uses the loader.
    """
    path = _cache_file(name)
    try:
        with np.load(path) as stored:
            X, y = stored["X"], stored["y"]
    except (OSError, TypeError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # none yet, or damaged
        X, y = _from_sklearn(name)
        if path is not None:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
            try:
                path.parent.mkdir(exist_ok=True)
                np.savez(tmp, X=X, y=y)
                os.replace(tmp, path)
            except OSError:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def diamonds_file():
    """The path of ``diamonds.csv`` inside the installed plotnine (found without importing plotnine)."""
    import importlib.util

    spec = importlib.util.find_spec("plotnine")
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / "data" / "diamonds.csv"
    if path is None or not path.is_file():
        raise ParameterError("task diamonds: its data ship inside the plotnine package, which is not installed; "
                             "pip install '.[data]' (or pip install plotnine)")
    return path


def read_diamonds(path):
    """``(X, y)`` of the whole file: the 9 inputs of :data:`DIAMONDS_INPUTS` and log(price), float64."""
    import pandas as pd

    frame = pd.read_csv(path)
    columns = []
    for name in DIAMONDS_INPUTS:
        if name in DIAMONDS_GRADES:
            codes = frame[name].map({g: k for k, g in enumerate(DIAMONDS_GRADES[name])})
            if codes.isna().any():
                raise ParameterError(f"task diamonds: {shown(str(path))} has an unknown {name} grade")
            columns.append(codes.to_numpy(dtype=np.float64))
        else:
            columns.append(frame[name].to_numpy(dtype=np.float64))
    X = np.ascontiguousarray(np.column_stack(columns))
    y = np.log(frame["price"].to_numpy(dtype=np.float64))
    if X.shape != (DIAMONDS_ROWS, len(DIAMONDS_INPUTS)) or not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ParameterError(f"task diamonds: {shown(str(path))} is not ggplot2's diamonds table "
                             f"({DIAMONDS_ROWS:,} finite rows)")
    return X, y


@functools.lru_cache(maxsize=1)
def diamonds_table():
    """The whole diamonds table (read once per process; about 0.1 s)."""
    X, y = read_diamonds(diamonds_file())
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


@functools.lru_cache(maxsize=16)
def diamonds_sample(seed, rows):
    """``rows`` rows of the diamonds table, drawn without replacement by ``seed`` (all of them, in order,
    for the full table)."""
    if not 2 <= rows <= DIAMONDS_ROWS:
        raise ParameterError(f"rows={shown(rows)}: the diamonds table has {DIAMONDS_ROWS:,} rows; "
                             f"choose 2 to {DIAMONDS_ROWS:,}")
    X, y = diamonds_table()
    if rows < DIAMONDS_ROWS:
        rng = np.random.default_rng(stream_key(seed, "diamonds-rows", rows))
        pick = np.sort(rng.choice(DIAMONDS_ROWS, size=rows, replace=False))
        X, y = X[pick], y[pick]
        X.flags.writeable = False
        y.flags.writeable = False
    return X, y


def _torch_linear_init(rng, fan_in, fan_out):
    """``nn.Linear(fan_in, fan_out)`` default init: W (out, in) and b ~ U(−1/√fan_in, 1/√fan_in)."""
    bound = 1.0 / np.sqrt(fan_in)
    W = rng.uniform(-bound, bound, (fan_out, fan_in))
    b = rng.uniform(-bound, bound, fan_out)
    return W, b


@functools.lru_cache(maxsize=16)
def teacher_data(seed, rows=TEACHER_ROWS, noise=TEACHER_NOISE):
    """``(X, y)`` of the teacher task with ``rows`` rows and noise SD ``noise`` (see the module Notes)."""
    rng = np.random.default_rng(stream_key(seed, "teacher-task", rows, TEACHER_INPUTS, TEACHER_HIDDEN))
    X = rng.standard_normal((rows, TEACHER_INPUTS))
    W1, b1 = _torch_linear_init(rng, TEACHER_INPUTS, TEACHER_HIDDEN)
    W2, b2 = _torch_linear_init(rng, TEACHER_HIDDEN, 1)
    t = (np.maximum(X @ W1.T + b1, 0.0) @ W2.T + b2)[:, 0]
    y = (t - t.mean()) / t.std() + noise * rng.standard_normal(rows)
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


# Each regression task and its median twin: (X, y) from (seed, rows, noise), the source, the target, the label.
_TWINS = {
    "diabetes": (lambda seed, rows, noise: sklearn_data("diabetes"), "scikit-learn load_diabetes, {n} × {f}",
                 "disease progression after one year", "progression"),
    "teacher": (lambda seed, rows, noise: teacher_data(int(seed), int(rows), float(noise)),
                "synthetic, {n} × {f}", "a random ReLU teacher 10-32-1 plus N(0, {noise:g}²) noise", "teacher output"),
    "diamonds": (lambda seed, rows, noise: diamonds_sample(int(seed), int(rows)),
                 "ggplot2's diamonds (plotnine), {n} × {f}", "log price", "log price"),
}


def load(name, seed=0, rows=TEACHER_ROWS, noise=TEACHER_NOISE):
    """The :class:`Task` called ``name``.

    Parameters
    ----------
    name : str
        One of :data:`TASK_NAMES`.
    seed : int
        Seeds the synthetic ``teacher`` tasks; the scikit-learn data ignore it.
    rows, noise : int, float
        The size (``teacher`` and ``diamonds``) and the noise SD (``teacher``) of the sized tasks
        (:data:`SIZED`: the data-size axis of C6's regime); the scikit-learn data ignore them.

    Returns
    -------
    Task

    Raises
    ------
    ParameterError
        For an unknown name, a ``rows`` the table does not have, or diamonds without plotnine.
    """
    if name not in TASK_NAMES:
        raise ParameterError(f"unknown task {shown(name)}; valid: {', '.join(TASK_NAMES)}")
    for base, (data, source, target, label) in _TWINS.items():
        if name in (base, base + "-class"):
            X, y = data(seed, rows, noise)
            n, f = X.shape
            source = source.format(n=n, f=f, noise=noise)
            if name == base:
                return Task(name, "regression", X, y, 1, False, base + "-class",
                            f"{source}: {target.format(noise=noise)}")
            return Task(name, "classification", X, y, 2, True, None, f"{source}: {label} above the training median")
    X, y = sklearn_data(name)
    n, f = X.shape
    classes = int(y.max()) + 1
    what = {"digits": "the digit 0-9 of an 8 × 8 image",
            "breast-cancer": "malignant (0) or benign (1)",
            "wine": "one of three cultivars"}[name]
    source = "load_" + name.replace("-", "_")
    return Task(name, "classification", X, y, classes, False, None,
                f"scikit-learn {source}, {n} × {f}: {what}")
