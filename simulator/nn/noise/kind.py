"""The record every noise kind fills in once: :class:`NoiseKind`.

A kind's module (:mod:`simulator.nn.noise.dropout`, ...) defines its Numba kernels and one
``KIND = NoiseKind(...)``; :mod:`simulator.nn.noise` lists the kinds in its registry.
"""
from typing import Callable, NamedTuple


class NoiseKind(NamedTuple):
    """One multiplicative, mean-one noise: ``h̃ = h ξ`` with ``E ξ = 1``.

    Attributes
    ----------
    name : str
        The name in outputs and on the command line (``"dropout"``, ``"uout"``, ...).
    code : int
        The kernels' code for it (0 is no noise): the integer the trainer and the chain branch on.
    parameter : str
        What its one number means: ``"p"`` (the KEEP probability) or ``"beta"`` (a half-width).
    variance : callable
        ``variance(value)``: ``Var ξ`` at that parameter value, the s² of docs/theory.md (C5).
    torch : callable
        ``torch(value)``: the PyTorch module with the same law (torch imported only when called).
    gate : str
        What shares one draw: ``"element"`` (each entry its own) or ``"channel"`` (a sample's whole channel).
    """

    name: str
    code: int
    parameter: str
    variance: Callable
    torch: Callable
    gate: str = "element"
