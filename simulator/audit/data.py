"""The audit's data: the user's file (.npy, .npz, .csv) or standard-normal inputs, cut into batches.

Rows (the first axis) are samples. Only full batches are used; the batches are
the same for gathering statistics, measuring and recalibrating.
"""
import os

import numpy as np

from ..errors import ParameterError, shown
from ..rng import stream_key


def load_data(spec):
    """Read ``FILE.npy``, ``FILE.npz`` (its first array) or ``FILE.npz:name``, or a numeric ``FILE.csv``.

    Parameters
    ----------
    spec : str

    Returns
    -------
    ndarray, float64, with at least 2 dimensions (rows are samples)
    """
    path, name = spec, None
    if not os.path.exists(spec) and ".npz:" in spec:
        path, _, name = spec.rpartition(":")
    if not os.path.isfile(path):
        raise ParameterError(f"--data {shown(spec)}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            x = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise ParameterError(f"--data {shown(spec)}: the archive holds no array")
                if name is not None and name not in z.files:
                    raise ParameterError(f"--data {shown(spec)}: no array {shown(name)}; it holds "
                                         + ", ".join(z.files))
                x = z[name if name is not None else z.files[0]]
        elif ext == ".csv":
            x = np.loadtxt(path, delimiter=",", ndmin=2)
        else:
            raise ParameterError(f"--data {shown(spec)}: expected .npy, .npz or .csv")
    except ParameterError:
        raise
    except (ValueError, OSError) as e:
        raise ParameterError(f"--data {shown(spec)}: cannot read it ({' '.join(str(e).split())})") from None
    if not np.issubdtype(x.dtype, np.number) or x.dtype == np.complex128:
        raise ParameterError(f"--data {shown(spec)}: not a real numeric array (dtype {x.dtype})")
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"--data {shown(spec)}: holds NaN or infinite values")
    return x


def batches_of(data, batch, batches):
    """The first ``min(batches, rows // batch)`` full batches of ``data``, shape (B, batch, ...)."""
    if batch < 2:
        raise ParameterError(f"--batch {batch}: need at least 2 samples a batch (BN needs them)")
    if batches < 2:
        raise ParameterError(f"--batches {batches}: need at least 2 batches (the MCSE comes from batch means)")
    full = min(batches, data.shape[0] // batch)
    if full < 2:
        raise ParameterError(f"the data has {data.shape[0]} rows: fewer than 2 full batches of {batch}")
    return data[:full * batch].reshape((full, batch) + data.shape[1:])


def normal_batches(seed, shape, batch, batches):
    """Standard-normal inputs of shape ``(batches, batch, *shape)`` from the stream (seed, "audit-inputs")."""
    if any(s < 1 for s in shape):
        raise ParameterError(f"--input-shape {','.join(map(str, shape))}: every size must be at least 1")
    batches_of(np.empty((batch * batches, 0)), batch, batches)  # same argument checks
    rng = np.random.default_rng(stream_key(seed, "audit-inputs", ",".join(map(str, shape))))
    return rng.standard_normal((batches, batch) + tuple(shape))


def parse_shape(text):
    """``"3,32,32"`` → (3, 32, 32)."""
    try:
        shape = tuple(int(s) for s in str(text).split(","))
    except ValueError:
        raise ParameterError(f"--input-shape {shown(text)}: expected sizes separated by commas, "
                             "e.g. 3,32,32") from None
    if not shape or any(s < 1 for s in shape):
        raise ParameterError(f"--input-shape {shown(text)}: every size must be at least 1")
    return shape
