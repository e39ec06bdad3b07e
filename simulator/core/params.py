"""Settings every command shares: the default seed and error level, and the validators of p, samples,
alpha and seed (one line naming the setting, :class:`~simulator.core.errors.ParameterError`)."""
import math
import platform

import numba
import numpy as np
import scipy

from .engine import MIN_SAMPLES
from .errors import ParameterError, shown
from .version import __version__

DEFAULT_SEED = 20190610  # Li et al., CVPR 2019, opened on 16 June; any fixed value would do
DEFAULT_ALPHA = 0.001
MIN_P = 1e-9
MAX_SAMPLES = 10 ** 15  # about a year of the fastest kernel; keeps block arithmetic in int64
P_MEANING = "keep probability (PyTorch nn.Dropout takes 1 − p)"


def check_p(p):
    """Validate a keep probability: a number in (0, 1]."""
    try:
        x = float(p)
    except (TypeError, ValueError):
        x = math.nan
    if not (0.0 < x <= 1.0):
        raise ParameterError(f"p={shown(p)}: the keep probability must be a number in (0, 1]")
    if x < MIN_P:
        raise ParameterError(f"p={shown(p)}: below {MIN_P:g} no unit is ever kept in a feasible number of "
                             "samples (gates resolve 2**-53); use p in [1e-9, 1]")
    return x


def check_samples(samples):
    """Validate a sample count (int, or text such as ``1e7`` or ``10_000_000``)."""
    try:
        x = float(str(samples).strip().replace("_", ""))
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x.is_integer() and MIN_SAMPLES <= x <= MAX_SAMPLES):
        raise ParameterError(f"samples={shown(samples)}: must be a whole number from {MIN_SAMPLES} to "
                             f"{MAX_SAMPLES:.0e} (e.g. 1e6)")
    return int(x)


def check_alpha(alpha):
    """Validate a family-wise error level in (0, 1)."""
    try:
        x = float(alpha)
    except (TypeError, ValueError):
        x = math.nan
    if not (0.0 < x < 1.0):
        raise ParameterError(f"alpha={shown(alpha)}: must be a number in (0, 1)")
    return x


def check_seed(seed):
    """Validate a seed: a non-negative integer."""
    try:
        x = int(str(seed).strip())
    except ValueError:
        x = -1
    if x < 0:
        raise ParameterError(f"seed={shown(seed)}: must be a non-negative integer")
    return x


def versions():
    """The versions a result records in its meta: this program, Python, numpy, numba, scipy."""
    return {"simulator": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__}
