"""The audit's data: the user's file (.npy, .npz, .csv) or standard-normal inputs, cut into batches.

Rows (the first axis) are samples. Only full batches are used; the batches are
the same for gathering statistics, measuring and recalibrating.
"""
import math
import os

import numpy as np

from ..core.errors import ParameterError, shown
from ..core.rng import stream_key


def available_memory():
    """Bytes of memory available now (MemAvailable on Linux; else the physical size)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def check_bytes(need, what):
    """Refuse ``need`` bytes (``what`` says for what) when they would not fit in half the available memory."""
    limit = available_memory() / 2
    if need > limit:
        raise ParameterError(f"{what} need {need:.3g} bytes, more than half the available memory ({limit:.3g} "
                             "bytes); use fewer or smaller inputs")


def check_size(shape, rows, what, itemsize=8):
    """Refuse ``rows`` samples of ``shape`` when they would not fit in half the available memory."""
    check_bytes(float(rows) * float(math.prod(shape)) * itemsize,
                f"{what}: {rows} samples of {math.prod(shape):.4g} values")


def _real(x, spec):
    if x.dtype.kind not in "iuf":
        raise ParameterError(f"--data {shown(spec)}: not a real numeric array (dtype {x.dtype})")
    if x.ndim == 0:
        raise ParameterError(f"--data {shown(spec)}: a 0-d array (a single number); rows are samples")
    return x


def _npz_member(z, spec, name):
    if not z.files:
        raise ParameterError(f"--data {shown(spec)}: the archive holds no array")
    if name is not None and name not in z.files:
        raise ParameterError(f"--data {shown(spec)}: no array {shown(name)}; it holds " + ", ".join(z.files))
    key = name if name is not None else z.files[0]
    with z.zip.open(key + ".npy") as f:  # the header first: shape and dtype before any data is read
        fmt = np.lib.format
        version = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
    return key, shape, np.dtype(dtype)


def load_data(spec, rows=None):
    """Read ``FILE.npy``, ``FILE.npz`` (its first array) or ``FILE.npz:name``, or a numeric ``FILE.csv``.

    Parameters
    ----------
    spec : str
    rows : int, optional
        Only the first ``rows`` rows are needed (a .npy is memory-mapped and sliced).

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
    if ext not in (".npy", ".npz", ".csv"):
        raise ParameterError(f"--data {shown(spec)}: expected .npy, .npz or .csv")
    try:
        x = _read(spec, path, name, ext, rows)
    except ParameterError:
        raise
    except (Exception, EOFError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise ParameterError(f"--data {shown(spec)}: cannot read it ({text})") from None
    if x.ndim == 1:
        x = x[:, None]
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"--data {shown(spec)}: holds NaN or infinite values")
    return x


def _check_npy_length(spec, path):
    """The header's shape against the bytes the file holds, before anything is mapped or read."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
        start = f.tell()
    need = math.prod(shape) * np.dtype(dtype).itemsize
    have = os.path.getsize(path) - start
    if have < need:
        raise ParameterError(f"--data {shown(spec)}: the header declares shape {shape} ({need:.3g} bytes) but the "
                             f"file holds {have} bytes of data: truncated or damaged")


def _read(spec, path, name, ext, rows):
    if ext == ".npy":
        if os.path.getsize(path) == 0:
            raise ParameterError(f"--data {shown(spec)}: cannot read it (the file is empty)")
        _check_npy_length(spec, path)
        x = _real(np.load(path, mmap_mode="r", allow_pickle=False), spec)
        x = x[:rows] if rows is not None else x
        check_size(x.shape[1:], x.shape[0], f"--data {shown(spec)}")
        return np.array(x, dtype=float)
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            key, shape, dtype = _npz_member(z, spec, name)
            _real(np.empty((0,) * max(len(shape), 1) if shape else (), dtype=dtype), spec)
            if not shape:
                raise ParameterError(f"--data {shown(spec)}: a 0-d array (a single number); rows are samples")
            check_size(shape[1:], shape[0], f"--data {shown(spec)}")
            return np.asarray(_real(z[key], spec), dtype=float)
    check_size((1,), os.path.getsize(path), f"--data {shown(spec)}")
    return np.asarray(_real(np.loadtxt(path, delimiter=",", ndmin=2), spec), dtype=float)


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
