"""The user's model: built from a file or an installed package, its weights loaded and checked.

``--model path/to/net.py:make`` runs the file (it is the user's own code); ``--model package.module:factory``
imports it. Keyword arguments for the factory come as ``NAME=VALUE`` (VALUE a Python literal, else a
string). Whatever the user's code raises, ``SystemExit`` included, becomes one line.
"""
import ast
import importlib
import importlib.util
import os
import sys

from ..core.errors import ParameterError, shown

INSTALL = "PyTorch is not installed: pip install '.[torch]' (or audit a layer spec with --arch, no PyTorch needed)"


def torch_or_fail():
    """``import torch``, or a one-line error saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ParameterError(INSTALL) from None
    return torch


def one_line(e):
    """An exception as one short line: its type and its message."""
    text = " ".join(str(e).split())
    if isinstance(e, SystemExit):
        text = f"exit status {e.code}" if not isinstance(e.code, str) else text
    return f"{type(e).__name__}: {text[:300]}{'…' if len(text) > 300 else ''}"


def parse_kwargs(pairs):
    """``["drop_rate=0.2", "name=x"]`` → ``{"drop_rate": 0.2, "name": "x"}``."""
    out = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip().isidentifier():
            raise ParameterError(f"--model-arg {shown(pair)}: expected NAME=VALUE")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key.strip()] = value
    return out


def _module_from_file(spec, path):
    if not os.path.isfile(path):
        raise ParameterError(f"--model {shown(spec)}: no such file {shown(path)}")
    name = "_audit_user_model"
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None:
        raise ParameterError(f"--model {shown(spec)}: cannot load {shown(path)} as Python")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    try:
        loader.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        raise ParameterError(f"--model {shown(spec)}: running the file failed ({one_line(e)})") from None
    return module


def _module_from_package(spec, dotted):
    try:
        return importlib.import_module(dotted)
    except (Exception, SystemExit) as e:
        raise ParameterError(f"--model {shown(spec)}: cannot import {shown(dotted)} ({one_line(e)}); give "
                             "FILE.py:FACTORY or an installed package.module:FACTORY") from None


def load_factory(spec, kwargs=None):
    """Build the model from ``"path/to/file.py:factory"`` or ``"package.module:factory"``.

    Parameters
    ----------
    spec : str
    kwargs : dict, optional
        Keyword arguments for the factory.

    Returns
    -------
    torch.nn.Module
    """
    torch = torch_or_fail()
    path, sep, name = str(spec).rpartition(":")
    if not sep or not path or not name:
        raise ParameterError(f"--model {shown(spec)}: expected FILE.py:FACTORY or package.module:FACTORY")
    is_file = path.endswith(".py") or os.sep in path or os.path.exists(path)
    module = _module_from_file(spec, path) if is_file else _module_from_package(spec, path)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ParameterError(f"--model {shown(spec)}: {shown(path)} defines no function {shown(name)}")
    try:
        model = factory(**(kwargs or {}))
    except (Exception, SystemExit) as e:
        raise ParameterError(f"--model {shown(spec)}: {name}({_call_text(kwargs)}) failed ({one_line(e)})") from None
    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"--model {shown(spec)}: {name}() returned {type(model).__name__}, "
                             "not a torch.nn.Module")
    return model


def _call_text(kwargs):
    return ", ".join(f"{k}={v!r}" for k, v in (kwargs or {}).items())


def load_weights(model, path):
    """Load a state dict saved by ``torch.save(model.state_dict(), path)``; never unpickles other objects."""
    torch = torch_or_fail()
    if os.path.isdir(path) or not os.path.isfile(path):
        raise ParameterError(f"--weights {shown(path)}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ParameterError(f"--weights {shown(path)}: not a state dict torch.load(weights_only=True) "
                             f"can read ({one_line(e)})") from None
    if not isinstance(state, dict):
        raise ParameterError(f"--weights {shown(path)}: holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except Exception as e:
        raise ParameterError(f"--weights {shown(path)}: does not fit the model ({one_line(e)})") from None
    check_state(model, f"--weights {shown(path)}")


def check_state(model, where):
    """Refuse NaN or infinite parameters and buffers, and a BN running_var that is not positive."""
    torch = torch_or_fail()
    bn = torch.nn.modules.batchnorm._BatchNorm
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if isinstance(t, torch.nn.parameter.UninitializedTensorMixin) or not t.is_floating_point():
            continue
        if not bool(torch.isfinite(t).all()):
            raise ParameterError(f"{where}: {name} holds NaN or infinite values")
    for name, m in model.named_modules():
        rv = getattr(m, "running_var", None)
        if isinstance(m, bn) and isinstance(rv, torch.Tensor) and \
                not isinstance(rv, torch.nn.parameter.UninitializedTensorMixin) and rv.numel() and \
                not bool((rv > 0).all()):
            raise ParameterError(f"{where}: {name}.running_var has values ≤ 0 (minimum {float(rv.min()):g}); a "
                                 "variance must be positive")
