"""Noise layers, one module per kind, and their registry :data:`KINDS`.

Each kind's module defines, once, its name, its kernel code, the variance factor ``Var ξ`` of its
mean-one multiplier ξ, its Numba kernels and its PyTorch counterpart (a :class:`NoiseKind`):

- :mod:`simulator.nn.noise.dropout`: inverted dropout, keep p, ``(1 − p)/p``;
- :mod:`simulator.nn.noise.uout`: Uout (Li et al. 2019), ``r ~ U(−β, β)``, ``β²/3``;
- :mod:`simulator.nn.noise.gaussian`: Gaussian dropout ``N(1, (1 − p)/p)``, variance-matched to dropout;
- :mod:`simulator.nn.noise.channel`: channel dropout, one gate per (sample, channel), ``(1 − p)/p``.

A new kind is its own module plus one line in :data:`KINDS`. The kernel code 0 means no noise.
"""
from ...core.errors import ParameterError, shown
from . import channel, dropout, gaussian, uout
from .kind import NoiseKind

NONE = 0
KINDS = {k.name: k for k in (
    dropout.KIND,
    uout.KIND,
    gaussian.KIND,
    channel.KIND,
)}
BY_CODE = {k.code: k for k in KINDS.values()}


def get(name):
    """The :class:`NoiseKind` called ``name``; ParameterError for an unknown one."""
    try:
        return KINDS[name]
    except KeyError:
        raise ParameterError(f"unknown noise {shown(name)}; valid: {', '.join(KINDS)}") from None


def variance(name, value):
    """``Var ξ`` of kind ``name`` at its parameter ``value`` (p or β)."""
    return get(name).variance(value)


__all__ = ["KINDS", "BY_CODE", "NONE", "NoiseKind", "get", "variance", "dropout", "uout", "gaussian", "channel"]
