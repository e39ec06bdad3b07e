"""Layers with PyTorch's semantics, in Numba: BatchNorm, the Linear → BN → ReLU chain, the MLP trainer.

Everything here works on arrays and random streams (:mod:`simulator.core.rng`) and
knows nothing of experiments, checks or the command line.
"""
