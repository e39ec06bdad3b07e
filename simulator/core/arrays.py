"""Array helpers for the Numba kernels.

A slice assignment between arrays (``dst[:] = src``) compiles a shape check
whose error message formatting costs seconds of compilation per array rank and
per process: on a first run, several seconds for every experiment. The kernels
copy with these loops instead.
"""
from .jit import kernel


@kernel
def copy_into(src, dst):
    """``dst[...] = src`` for C-contiguous arrays of the same size."""
    a, b = src.ravel(), dst.ravel()
    for q in range(a.size):
        b[q] = a[q]


@kernel
def copy_column(V, col, dst):
    """``dst[:] = V[:, col]``."""
    for k in range(dst.size):
        dst[k] = V[k, col]


@kernel
def set_column(V, col, src):
    """``V[:, col] = src``."""
    for k in range(src.size):
        V[k, col] = src[k]
