"""The environment Numba reads at import, checked first: a bad setting is one line, never a traceback.

Numba parses its ``NUMBA_*`` variables when it is imported: ``NUMBA_NUM_THREADS=0`` raises deep inside
its import, a value it cannot parse (``NUMBA_NUM_THREADS=abc``) becomes a warning that carries a
traceback, and ``NUMBA_DISABLE_JIT=1`` turns every kernel into a plain Python function, which this
program's engine cannot drive (nor would it finish: the kernels are the simulation). :func:`check`
refuses these with :class:`~simulator.core.errors.ParameterError` before Numba is imported, and
:func:`import_numba` turns any other parse failure of Numba's into the same one-line refusal.
"""
import os
import warnings

from .errors import ParameterError, shown


def _integer(name):
    """The integer value of the environment variable ``name``, None when unset; refused when not an integer."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ParameterError(f"environment: {name}={shown(raw)} is not an integer") from None


def check():
    """Refuse the Numba settings this program cannot run with (one line each; see the module's text)."""
    threads = _integer("NUMBA_NUM_THREADS")
    if threads is not None and threads < 1:
        raise ParameterError(f"environment: NUMBA_NUM_THREADS={threads}: give a number of threads ≥ 1 "
                             "(or unset it: all cores)")
    if _integer("NUMBA_DISABLE_JIT"):
        raise ParameterError("environment: NUMBA_DISABLE_JIT is set: this program's kernels need compiling "
                             "(in plain Python they would not run, nor finish); unset it")


def import_numba():
    """Import Numba after :func:`check`; a variable Numba cannot parse is refused in one line."""
    check()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import numba
        except ValueError as e:  # a value Numba refuses while it imports
            raise ParameterError(f"environment: Numba refuses its settings: {e}") from None
    for w in caught:
        text = str(w.message)
        if text.startswith("Environment variable"):
            raise ParameterError("environment: " + text.splitlines()[0])
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return numba
