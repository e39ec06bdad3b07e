"""The audit's speed as a ratio against plain forward passes of the same model, on the same data, in one run.

The audit's cost should be the forward passes it needs and little else. ``audit_speed`` counts the passes
the audit makes (a pre-hook on the model), times the audit, then times the same number of plain
``model(x)`` calls under ``no_grad`` over the same batches, back to back, so that a loaded machine slows
both sides alike. Target (issue 22): the whole audit with ``--fix recalibrate`` within 2× its passes.
"""
import time

from .load import torch_or_fail

TARGET = 2.0


def zoo_densenet(drop_rate=0.2):
    """A small torchvision DenseNet with dropout in every dense layer (``F.dropout`` in its forward)."""
    import torchvision

    return torchvision.models.DenseNet(growth_rate=12, block_config=(4, 4, 4), num_init_features=24, bn_size=2,
                                       drop_rate=drop_rate, num_classes=10)


def audit_speed(model=None, input_shape=(3, 32, 32), batch=32, batches=50, fix="recalibrate", threads=1, seed=0,
                **audit_args):
    """Time ``audit_model`` against as many plain forward passes.

    Parameters
    ----------
    model : torch.nn.Module, optional
        Default :func:`zoo_densenet` (needs torchvision).
    input_shape, batch, batches, fix, threads, seed
        As :func:`~simulator.audit.audit_model`.

    Returns
    -------
    dict
        ``audit_s``, ``passes`` (forward passes the audit made), ``plain_s`` (as many plain passes),
        ``ratio = audit_s / plain_s`` with ``target``, ``plain_50_s`` and ``ratio_50`` (against 50 passes),
        ``bn_layers``; or ``{"skipped": reason}`` without PyTorch or torchvision.
    """
    try:
        torch = torch_or_fail()
        if model is None:
            torch.manual_seed(seed)
            model = zoo_densenet()
    except Exception as e:  # no torch, or no torchvision for the default model
        return {"skipped": f"needs PyTorch and torchvision ({type(e).__name__}: {e})"}
    from .data import normal_batches
    from .model import audit_model

    count = [0]
    handle = model.register_forward_pre_hook(lambda mod, inputs: count.__setitem__(0, count[0] + 1))
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        t0 = time.perf_counter()
        result = audit_model(model, input_shape=input_shape, batch=batch, batches=batches, fix=fix, seed=seed,
                             **audit_args)
        audit_s = time.perf_counter() - t0
        handle.remove()
        xs = [torch.as_tensor(b, dtype=torch.float32) for b in normal_batches(seed, tuple(input_shape), batch, batches)]
        plain_s = _plain(torch, model, xs, count[0])
        plain_50 = _plain(torch, model, xs, 50)
    finally:
        handle.remove()
        torch.set_num_threads(before)
    return {"model": type(model).__name__, "bn_layers": len(result.stage("before")), "batch": batch,
            "batches": batches, "fix": fix, "threads": int(threads), "passes": count[0], "audit_s": audit_s,
            "plain_s": plain_s, "ratio": audit_s / plain_s, "target": TARGET, "plain_50_s": plain_50,
            "ratio_50": audit_s / plain_50}


def _plain(torch, model, xs, n):
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for k in range(n):
            model(xs[k % len(xs)])
    return time.perf_counter() - t0
