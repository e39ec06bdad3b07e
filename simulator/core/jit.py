"""The Numba options, set in one place: a kernel's role shows in its decorator.

- ``@kernel``: compiled code called from Python or from other kernels;
- ``@threaded``: a block kernel the engine runs on its thread pool (releases the GIL);
- ``@inline``: a small helper inlined into the kernels that call it (no call of its own).

Every one is cached on disk (:mod:`simulator.core.cache` chooses where) and uses numpy's error model
(``x / 0.0`` gives ``inf`` or ``nan`` as in numpy, without a ``ZeroDivisionError`` check in the loop).
A leading underscore means private to its module; a kernel another module calls is public and documented
where it is defined (``tests/test_api.py`` fails on a private name used across modules).
"""
from numba import njit

OPTIONS = {"cache": True, "error_model": "numpy"}


def kernel(fn):
    """Compile ``fn`` with the project's options."""
    return njit(**OPTIONS)(fn)


def threaded(fn):
    """Compile ``fn`` to run on the engine's threads: as :func:`kernel`, with the GIL released."""
    return njit(nogil=True, **OPTIONS)(fn)


def inline(fn):
    """Compile ``fn`` to be inlined (at Numba's IR level) into every kernel that calls it."""
    return njit(inline="always", **OPTIONS)(fn)
