"""The fix: BN statistics re-estimated with every noise off (Hendrycks & Gimpel 2016), in one pass or exactly.

``recalibrate`` runs the model in eval mode with only the BN layers in train mode, so module dropout,
functional dropout (``training=self.training``) and DropPath are all off, and takes the cumulative average
of the batch statistics (momentum=None; each module's momentum is restored). While it runs, a BN fed by
another BN sees that one normalising with batch statistics, so it keeps a residual of order 1/batch.
``recalibrate_exact`` removes it: BN by BN in the order they run, each upstream BN already in eval mode on
its new statistics, each pass stopped at the BN being estimated. It costs one partial pass over the data
per BN layer. ``torch.optim.swa_utils.update_bn`` keeps the whole model in train mode, dropout included,
and so re-learns the shift.
"""
from .torch_model import Stop, batchnorms, call, gather, set_mode

FIXES = ("recalibrate", "exact")


def recalibrate(model, batches, dropout=False, progress=None):
    """Re-estimate every BN's running statistics: BN in train mode, cumulative average over ``batches``.

    Parameters
    ----------
    model : torch.nn.Module
        Changed in place (running statistics only); each BN's momentum is restored.
    batches : iterable of Tensor
    dropout : bool
        False (the fix): the rest of the model in eval mode. True reproduces
        ``torch.optim.swa_utils.update_bn``, which keeps dropout on and re-learns the shift.

    Returns
    -------
    dict
        BN name → unbiased batch variances, ndarray of shape (K, C).
    """
    import torch

    return gather(torch, model, batchnorms(model), list(batches), noise=dropout, progress=progress)


def recalibrate_exact(model, batches, order=None, progress=None):
    """BN by BN in execution order, each upstream BN in eval mode: the cascade's O(1/batch) residual removed.

    Parameters
    ----------
    order : list of str, optional
        BN names in the order they run (default: definition order).

    Returns
    -------
    dict
        BN name → unbiased batch variances, ndarray of shape (K, C).
    """
    import torch

    xs = list(batches)
    bns = dict(batchnorms(model))
    names = [n for n in (order or list(bns)) if n in bns] + [n for n in bns if n not in (order or [])]
    info = {}
    set_mode(model, list(bns.items()), False, False)
    for k, name in enumerate(names):
        info[name] = _one_layer(torch, model, bns[name], xs)
        if progress:
            progress(k + 1, len(names))
    model.eval()
    return info


def _one_layer(torch, model, m, xs):
    """The cumulative batch mean and unbiased variance of one BN's eval-mode input, set as its statistics."""
    seen, means = [], []

    def hook(mod, inputs):
        x = inputs[0].detach()
        x = x.reshape(x.shape[0], x.shape[1], -1).transpose(0, 1).reshape(x.shape[1], -1).double()
        seen.append(x.var(1, unbiased=True))
        means.append(x.mean(1))
        raise Stop

    handle = m.register_forward_pre_hook(hook)
    try:
        for x in xs:
            try:
                call(model, x, "eval mode")
            except Stop:
                pass
    finally:
        handle.remove()
    with torch.no_grad():
        if seen:
            m.running_mean.copy_(torch.stack(means).mean(0).to(m.running_mean.dtype))
            m.running_var.copy_(torch.stack(seen).mean(0).to(m.running_var.dtype))
            m.num_batches_tracked.fill_(len(seen)) if m.num_batches_tracked is not None else None
    import numpy as np

    return np.array([v.cpu().numpy() for v in seen])
