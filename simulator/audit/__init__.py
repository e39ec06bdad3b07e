"""Audit a network for the variance shift (dropout before BatchNorm; Li et al., CVPR 2019) and fix it.

``audit_model`` takes a PyTorch model (PyTorch is an optional extra, imported only
there); ``audit_arch`` takes a layer spec and runs the project's own Numba layers.
Both return an :class:`AuditResult`: per BN layer the measured ratio
Var_eval / running_var, the noise sources that reach it, the closed-form prediction
where the path from the noise is linear, a verdict and the remedy. p is the KEEP
probability (PyTorch's nn.Dropout(p) takes the drop probability 1 − p).
"""
from .result import AuditResult

__all__ = ["AuditResult", "audit_arch", "audit_model", "audit_speed", "recalibrate", "recalibrate_exact"]

_HOME = {"audit_arch": "arch", "parse_arch": "arch", "arch_to_torch": "arch", "audit_model": "model",
         "recalibrate": "fix", "recalibrate_exact": "fix", "audit_speed": "speed"}


def __getattr__(name):
    if name in _HOME:
        from importlib import import_module

        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(name)
