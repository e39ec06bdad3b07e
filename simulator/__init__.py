"""Monte Carlo checks of the theory of Dropout and Batch Normalization.

``p`` is the **keep** probability throughout, as in the source document
(PyTorch's ``nn.Dropout(p)`` takes the drop probability, ``1 − p``).
"""
from .core.environment import import_numba

import_numba()  # NUMBA_* settings refused in one line before Numba itself would fail with a traceback

from .core.cache import use_kernel_cache  # noqa: E402
from .core.version import __version__  # noqa: E402

use_kernel_cache()  # before any kernel is defined: compiled code is keyed by every kernel module's source

from .core.errors import ParameterError, SimulationError  # noqa: E402
from .runs.simulate import Result, simulate  # noqa: E402

__all__ = ["ParameterError", "Result", "SimulationError", "__version__", "simulate"]
