"""A run's data: its 80/20 split, the standardisation by the training rows, the labels; the epoch shuffle.

The split is a Fisher–Yates shuffle (:func:`shuffle_in_place`) of ``0..n−1`` drawn from block ``4 r`` of the
stream key; the first ``n_test`` rows are the test rows, the rest the training rows in that order.
"""
import numpy as np

from ...core.jit import inline, kernel
from ...core.rng import block_state, draw_uniform


@kernel
def shuffle_in_place(s, order):
    """Fisher–Yates in place with 53-bit uniforms: ``for i = n−1..1: swap(i, ⌊u (i+1)⌋)``."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(order.size - 1, 0, -1):
        u, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
        j = int(u * (i + 1))
        t = order[i]
        order[i] = order[j]
        order[j] = t
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@kernel
def median(x):
    """``np.median(x)`` of a non-empty x without NaN: the middle value, or the mean ``(a + b) / 2`` of the two.

    An insertion sort of a copy (training targets are few; ``np.median``
    compiles a selection algorithm several times longer).
    """
    v = x.copy()
    n = v.size
    for i in range(1, n):
        t = v[i]
        j = i - 1
        while j >= 0 and v[j] > t:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = t
    half = n >> 1
    if n & 1 == 0:
        return (v[half - 1] + v[half]) / 2
    return v[half]


@inline
def _mean_sd(values):
    """``(mean, sd)`` with ddof = 0, two passes in order; a zero sd becomes 1."""
    n = values.size
    mean = 0.0
    for i in range(n):
        mean += values[i]
    mean /= n
    var = 0.0
    for i in range(n):
        var += (values[i] - mean) ** 2
    sd = np.sqrt(var / n)
    return mean, (sd if sd > 0.0 else 1.0)


@inline
def _standardise_columns(X, perm, n_test, Xtr, Xte):
    """``Xtr``, ``Xte``: the rows of the split, every column standardised with the training rows' mean and sd."""
    f = X.shape[1]
    n_train = Xtr.shape[0]
    col = np.empty(n_train)
    for j in range(f):
        for i in range(n_train):
            col[i] = X[perm[n_test + i], j]
        mean, sd = _mean_sd(col)
        for i in range(n_train):
            Xtr[i, j] = (X[perm[n_test + i], j] - mean) / sd
        for i in range(n_test):
            Xte[i, j] = (X[perm[i], j] - mean) / sd


@inline
def _targets(y, perm, n_test, target, ytr, yte):
    """``ytr``, ``yte``: standardised (target 0), as given (1) or ``1[y > median of the training y]`` (2)."""
    n_train = ytr.size
    raw_tr = np.empty(n_train)
    for i in range(n_train):
        raw_tr[i] = y[perm[n_test + i]]
    if target == 0:
        mean, sd = _mean_sd(raw_tr)
        for i in range(n_train):
            ytr[i] = (raw_tr[i] - mean) / sd
        for i in range(n_test):
            yte[i] = (y[perm[i]] - mean) / sd
    elif target == 1:
        for i in range(n_train):
            ytr[i] = raw_tr[i]
        for i in range(n_test):
            yte[i] = y[perm[i]]
    else:
        med = median(raw_tr)
        for i in range(n_train):
            ytr[i] = 1.0 if raw_tr[i] > med else 0.0
        for i in range(n_test):
            yte[i] = 1.0 if y[perm[i]] > med else 0.0


@kernel
def prepare_run(key, run, X, y, target, n_test, Xtr, ytr, Xte, yte):
    """Split run ``run``'s rows, standardise with the training split, make its labels.

    Parameters
    ----------
    target : int
        0: regression (y standardised too), 1: class labels as given,
        2: ``1[y > median of the training y]``.
    Xtr, ytr, Xte, yte : ndarray
        Out: training rows (split order) and test rows.

    Notes
    -----
    Standardisation uses the training rows' mean and standard deviation
    (ddof = 0); a constant column keeps scale 1.
    """
    n = X.shape[0]
    perm = np.empty(n, dtype=np.int64)
    for i in range(n):
        perm[i] = i
    shuffle_in_place(block_state(key, 4 * run), perm)
    _standardise_columns(X, perm, n_test, Xtr, Xte)
    _targets(y, perm, n_test, target, ytr, yte)
