"""Audit a network for the variance shift (dropout before BatchNorm; Li et al., CVPR 2019) and fix it.

``audit_model`` takes a PyTorch model (PyTorch is an optional extra, imported only
there); ``audit_arch`` takes a layer spec and runs the project's own Numba layers.
Both return an :class:`AuditResult`: per BN layer the measured ratio
Var_eval / running_var, the closed-form prediction where the structure allows one,
a verdict and the remedy. p is the KEEP probability (PyTorch's nn.Dropout(p) takes
the drop probability 1 − p).
"""
from .result import AuditResult
from .torch_model import audit_model, recalibrate

__all__ = ["AuditResult", "audit_arch", "audit_model", "recalibrate"]


def __getattr__(name):
    if name in ("audit_arch", "parse_arch", "arch_to_torch"):
        from . import arch

        return getattr(arch, name)
    raise AttributeError(name)
