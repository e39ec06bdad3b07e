"""The trainer's compiled passes: init, noise, forward, loss, backward, Adam/SGD, eval, BN moments, recalibration.

The work arrays travel grouped: :class:`Net` (the parameters, their gradient, the optimizer state and
the BN running statistics), :class:`Work` (one batch's activations and gradients) and :class:`Eval`
(the test rows' activations and the evaluated statistics); the scalars in a
:class:`simulator.nn.train.config.Spec`. Every sum runs over its index in order, as in the flat
kernels these replace, so the numbers do not depend on the grouping.
"""
from typing import NamedTuple

import numpy as np

from ...core.jit import inline, kernel
from ...core.rng import draw_uniform
from ..batchnorm import EPS, bn_backward, bn_eval, bn_train, update_running
from ..chain import linear_rows
from ..noise.dropout import dropout_multipliers
from ..noise.uout import uout_multipliers
from .config import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, K_DROPOUT, K_NONE, K_UOUT
from .layout import FIN, FOUT, OB, OBETA, OG, OW


class Net(NamedTuple):
    """``theta`` (flat parameters), ``Wt`` (every W transposed, same offsets), ``grad``, the optimizer state
    ``m1``, ``m2`` (Adam's moments; SGD's buffer is m1), the running mean ``rm`` and variance ``rv`` (L, width)."""

    theta: np.ndarray
    Wt: np.ndarray
    grad: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    rm: np.ndarray
    rv: np.ndarray


class Work(NamedTuple):
    """One batch: rows ``xb`` (batch, f), targets ``yb``; per hidden layer Z (Linear outputs), XH (normalised),
    H (post-noise), NM (noise multipliers), (L, batch, width); ``bmean``, ``bvar`` (L, width); the outputs
    ``out`` and their gradient ``dout`` (batch, n_out); ``dH``, ``dY``, ``dZ`` (batch, width)."""

    xb: np.ndarray
    yb: np.ndarray
    Z: np.ndarray
    XH: np.ndarray
    H: np.ndarray
    NM: np.ndarray
    bmean: np.ndarray
    bvar: np.ndarray
    out: np.ndarray
    dout: np.ndarray
    dH: np.ndarray
    dY: np.ndarray
    dZ: np.ndarray


class Eval(NamedTuple):
    """The test rows: ``Ze``, ``He`` (L, n_test, width), ``oute`` (n_test, n_out); the statistics evaluated
    ``rm2``, ``rv2`` (L, width); a generator copy ``s_copy``; per BN layer ``real``, ``running``,
    ``predicted``, ``li`` (L,); ``empty_noise`` (0, L, batch, width): a recalibration that records nothing."""

    Ze: np.ndarray
    He: np.ndarray
    oute: np.ndarray
    rm2: np.ndarray
    rv2: np.ndarray
    s_copy: np.ndarray
    real: np.ndarray
    running: np.ndarray
    predicted: np.ndarray
    li: np.ndarray
    empty_noise: np.ndarray


@kernel
def init_params(s, theta, lay):
    """PyTorch's ``nn.Linear`` init, layer by layer (W row-major, then b); γ = 1, β = 0."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for layer in range(lay.shape[0]):
        fin, fout, ow, ob = lay[layer, FIN], lay[layer, FOUT], lay[layer, OW], lay[layer, OB]
        bound = 1.0 / np.sqrt(fin)
        for q in range(ow, ob + fout):  # W then b are adjacent
            u, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
            theta[q] = (2.0 * u - 1.0) * bound
        if lay[layer, OG] >= 0:
            for q in range(fout):
                theta[lay[layer, OG] + q] = 1.0
                theta[lay[layer, OBETA] + q] = 0.0
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@kernel
def transpose_weights(theta, lay, Wt):
    """``Wt`` (same offsets) holds every W transposed, (fan_in, fan_out): the forward pass runs along it."""
    for layer in range(lay.shape[0]):
        fin, fout, ow = lay[layer, FIN], lay[layer, FOUT], lay[layer, OW]
        transpose_into(theta[ow:ow + fin * fout].reshape((fout, fin)), Wt[ow:ow + fin * fout].reshape((fin, fout)))


@kernel
def transpose_into(a, out):
    """``out = aᵀ`` (out of shape (a.shape[1], a.shape[0])), written row by row."""
    r, c = a.shape
    for j in range(c):
        for i in range(r):
            out[j, i] = a[i, j]


@kernel
def copy_rows(src, dst, m):
    """``dst[l, :m] = src[l, :m]`` for every l (arrays of shape (L, batch, width))."""
    for layer in range(src.shape[0]):
        for i in range(m):
            for k in range(src.shape[2]):
                dst[layer, i, k] = src[layer, i, k]


# ---------------------------------------------------------------------------
# Layers.

@kernel
def noise_multipliers(s, nm, m, kind, threshold, inv_p, beta):
    """Noise multipliers of m rows: ``δ/p`` (dropout), ``1 + r`` (Uout) or 1 (none); the kernels of
    :mod:`simulator.nn.noise`."""
    d = nm.shape[1]
    if kind == K_NONE:
        for i in range(m):
            for k in range(d):
                nm[i, k] = 1.0
    elif kind == K_DROPOUT:
        dropout_multipliers(s, nm, m, threshold, inv_p)
    elif kind == K_UOUT:
        uout_multipliers(s, nm, m, beta)
    else:  # never another kind's branch: a code the trainer does not run is an error
        raise ValueError("the trainer runs noise codes 0 (none), 1 (dropout) and 2 (uout) only")


@kernel
def _add_bias(z, m, b):
    """``z[i, k] += b_k`` for rows 0..m−1."""
    for i in range(m):
        for k in range(b.size):
            z[i, k] += b[k]


@kernel
def bias_grad(dz, m, gb):
    """``gb = Σ_i dz_i`` over rows 0..m−1, in order."""
    for k in range(gb.size):
        gb[k] = 0.0
    for i in range(m):
        for k in range(gb.size):
            gb[k] += dz[i, k]


@kernel
def _affine_relu_noise(xh, m, gamma, beta, nm, h):
    """``h = ReLU(γ x̂ + β) · nm`` for rows 0..m−1."""
    d = h.shape[1]
    for i in range(m):
        for k in range(d):
            v = gamma[k] * xh[i, k] + beta[k]
            h[i, k] = (v if v > 0.0 else 0.0) * nm[i, k]


@kernel
def _relu_noise(z, m, nm, h):
    """``h = ReLU(z) · nm`` for rows 0..m−1 (no BN)."""
    d = h.shape[1]
    for i in range(m):
        for k in range(d):
            v = z[i, k]
            h[i, k] = (v if v > 0.0 else 0.0) * nm[i, k]


@kernel
def forward_train(w, m, net, lay, spec, kinds, s, momentum, step):
    """Training-mode forward of the first m rows of ``w.xb``; BN running statistics updated (update ``step``).

    ``kinds[l]`` is the noise kind after hidden ReLU l, drawn from ``s`` with ``spec``'s threshold, 1/p
    and β; BN when ``spec.bn``. Keeps what the backward pass needs in ``w``: Z (Linear outputs), XH
    (normalised), H (post-noise), NM (noise); the outputs in ``w.out``.
    """
    depth = lay.shape[0] - 1
    theta = net.theta
    for layer in range(depth + 1):
        fin, fout, ow, ob = lay[layer, FIN], lay[layer, FOUT], lay[layer, OW], lay[layer, OB]
        a = w.xb if layer == 0 else w.H[layer - 1]
        wt = net.Wt[ow:ow + fin * fout].reshape((fin, fout))
        b = theta[ob:ob + fout]
        z = w.out if layer == depth else w.Z[layer]
        linear_rows(a[:m], wt, z[:m])  # the one call site of the product: the compiled code stays small
        _add_bias(z, m, b)
        if layer == depth:
            break
        noise_multipliers(s, w.NM[layer], m, kinds[layer], spec.threshold, spec.inv_p, spec.beta)
        if spec.bn:
            bn_train(w.Z[layer][:m], EPS, w.XH[layer][:m], w.bmean[layer], w.bvar[layer])
            update_running(net.rm[layer], net.rv[layer], w.bmean[layer], w.bvar[layer], m, momentum, step)
            og, obeta = lay[layer, OG], lay[layer, OBETA]
            _affine_relu_noise(w.XH[layer], m, theta[og:og + fout], theta[obeta:obeta + fout], w.NM[layer],
                               w.H[layer])
        else:
            _relu_noise(w.Z[layer], m, w.NM[layer], w.H[layer])


@kernel
def loss_and_grad(out, yb, m, classes, dout):
    """Mean loss over m rows and its gradient with respect to the outputs.

    Notes
    -----
    MSE (one output): ``L = Σ_i (o_i − y_i)² / m``, ``∂o_i = 2 (o_i − y_i)/m``.
    Cross-entropy: ``L = Σ_i (logsumexp(o_i) − o_i[y_i]) / m``,
    ``∂o_ic = (softmax(o_i)_c − 1[c = y_i]) / m``.
    """
    total = 0.0
    if classes == 1:
        for i in range(m):
            e = out[i, 0] - yb[i]
            total += e * e
            dout[i, 0] = 2.0 * e / m
        return total / m
    for i in range(m):
        top = out[i, 0]
        for c in range(1, classes):
            top = max(top, out[i, c])
        se = 0.0
        for c in range(classes):
            se += np.exp(out[i, c] - top)
        label = int(yb[i])
        total += top + np.log(se) - out[i, label]
        for c in range(classes):
            dout[i, c] = (np.exp(out[i, c] - top) / se - (1.0 if c == label else 0.0)) / m
    return total / m


@inline
def _hidden_grad(w, m, layer, lay, bn, theta, grad):
    """``∂y = ∂h · nm · 1[h > 0]`` into ``w.dY``, then (with BN) through BN into ``w.dZ`` and γ, β's gradient."""
    fout = lay[layer, FOUT]
    h, nm, dH, dY = w.H[layer], w.NM[layer], w.dH, w.dY
    for i in range(m):
        for k in range(fout):
            dY[i, k] = dH[i, k] * nm[i, k] if h[i, k] > 0.0 else 0.0
    if bn:
        og, obeta = lay[layer, OG], lay[layer, OBETA]
        bn_backward(dY[:m], w.XH[layer][:m], theta[og:og + fout], w.bvar[layer], EPS, w.dZ[:m],
                     grad[og:og + fout], grad[obeta:obeta + fout])


@kernel
def backward(w, m, net, lay, bn):
    """Gradient of the loss (``w.dout``) with respect to every parameter into ``net.grad`` (theta's layout).

    Notes
    -----
    Through ``h = ReLU(y) · nm``: ``∂y = ∂h · nm · 1[y > 0]`` (with nm > 0 where
    it matters, ``y > 0`` is ``h > 0``); BN as :func:`simulator.nn.batchnorm.bn_backward`.
    Through ``z = a Wᵀ + b``: ``∂W[k, j] = Σ_i dz[i, k] a[i, j]`` (the product
    ``dzᵀ a``, from a transposed copy of dz so that its inner loops run along
    contiguous rows; for a layer with few inputs, ``(aᵀ dz)ᵀ`` instead, the same
    sums), ``∂b_k = Σ_i dz[i, k]``, ``∂a[i, j] = Σ_k dz[i, k] W[k, j]``
    (``dz W``); every sum runs over its index in order. Both products are
    :func:`simulator.nn.chain.linear_rows`.
    """
    depth = lay.shape[0] - 1
    theta, grad = net.theta, net.grad
    for layer in range(depth, -1, -1):
        fin, fout, ow, ob = lay[layer, FIN], lay[layer, FOUT], lay[layer, OW], lay[layer, OB]
        a = w.xb if layer == 0 else w.H[layer - 1]
        W = theta[ow:ow + fin * fout].reshape((fout, fin))
        gW = grad[ow:ow + fin * fout].reshape((fout, fin))
        dz = w.dout
        if layer < depth:
            _hidden_grad(w, m, layer, lay, bn, theta, grad)
            dz = w.dZ if bn else w.dY
        # gW = dzᵀ a, or for a narrow input (fewer inputs than half the outputs, e.g. the first layer)
        # gWᵀ = aᵀ dz, whose rows are long; then (below the input layer) dH = dz W. The same sums either way.
        narrow = 2 * fin <= fout
        bias_grad(dz, m, grad[ob:ob + fout])
        dzT = np.empty((0 if narrow else fout, m))
        aT, gWT = np.empty((fin if narrow else 0, m)), np.empty((fin if narrow else 0, fout))
        src, dst = (a[:m], aT) if narrow else (dz[:m], dzT)
        transpose_into(src, dst)
        for part in range(2 if layer > 0 else 1):  # one call site of the product
            if part == 0:
                x, B, prod = (aT, dz[:m], gWT) if narrow else (dzT, a[:m], gW)
            else:
                x, B, prod = dz[:m], W, w.dH[:m]
            linear_rows(x, B, prod)
        if narrow:
            transpose_into(gWT, gW)


@kernel
def adam_step(theta, grad, m1, m2, t, lr):
    """``torch.optim.Adam`` step t (from 1) with betas (0.9, 0.999), eps 1e-8.

    Notes
    -----
    ``m ← m + (1 − β1)(g − m)``, ``v ← β2 v + (1 − β2) g²``,
    ``θ ← θ − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)``.
    """
    b1, b2 = ADAM_BETA1, ADAM_BETA2
    step_size = lr / (1.0 - b1 ** t)
    bc2 = np.sqrt(1.0 - b2 ** t)
    for q in range(theta.size):
        g = grad[q]
        m1[q] = m1[q] + (1.0 - b1) * (g - m1[q])
        m2[q] = b2 * m2[q] + (1.0 - b2) * g * g
        theta[q] = theta[q] - step_size * (m1[q] / (np.sqrt(m2[q]) / bc2 + ADAM_EPS))


@kernel
def sgd_step(theta, grad, buf, t, lr, mu):
    """``torch.optim.SGD(lr, momentum=μ)``: ``buf = g`` at t = 1, then ``buf ← μ buf + g``; ``θ ← θ − lr buf``."""
    for q in range(theta.size):
        buf[q] = grad[q] if t == 1 else mu * buf[q] + grad[q]
        theta[q] = theta[q] - lr * buf[q]


@inline
def optimizer_step(net, t, spec, lay):
    """Step t of the optimizer (Adam, or SGD with momentum ``spec.mu``), then ``net.Wt`` from the new theta."""
    if spec.adam:
        adam_step(net.theta, net.grad, net.m1, net.m2, t, spec.lr)
    else:
        sgd_step(net.theta, net.grad, net.m1, t, spec.lr, spec.mu)
    transpose_weights(net.theta, lay, net.Wt)


# ---------------------------------------------------------------------------
# Evaluation and recalibration.

@kernel
def forward_eval(x, net, lay, bn, ev):
    """Eval mode (no noise, BN with ``ev.rm2``, ``ev.rv2``) for all rows of ``x``; Z and H per layer in
    ``ev.Ze``, ``ev.He``, the outputs in ``ev.oute``."""
    n = x.shape[0]
    depth = lay.shape[0] - 1
    theta = net.theta
    for layer in range(depth + 1):
        fin, fout, ow, ob = lay[layer, FIN], lay[layer, FOUT], lay[layer, OW], lay[layer, OB]
        a = x if layer == 0 else ev.He[layer - 1]
        wt = net.Wt[ow:ow + fin * fout].reshape((fin, fout))
        b = theta[ob:ob + fout]
        z = ev.oute if layer == depth else ev.Ze[layer]
        linear_rows(a, wt, z)
        _add_bias(z, n, b)
        if layer == depth:
            break
        h = ev.He[layer]
        if bn:
            bn_eval(z, ev.rm2[layer], ev.rv2[layer], EPS, h)
            og, obeta = lay[layer, OG], lay[layer, OBETA]
            for i in range(n):
                for k in range(fout):
                    v = theta[og + k] * h[i, k] + theta[obeta + k]
                    h[i, k] = v if v > 0.0 else 0.0
        else:
            for i in range(n):
                for k in range(fout):
                    v = z[i, k]
                    h[i, k] = v if v > 0.0 else 0.0


@kernel
def eval_metrics(out, yte, classes):
    """``(mse, accuracy, ce)`` of the outputs on the test rows (NaN where not applicable)."""
    n = out.shape[0]
    if classes == 1:
        total = 0.0
        for i in range(n):
            total += (out[i, 0] - yte[i]) ** 2
        return total / n, np.nan, np.nan
    right = 0
    ce = 0.0
    for i in range(n):
        best = 0
        top = out[i, 0]
        for c in range(1, classes):
            if out[i, c] > top:
                top = out[i, c]
                best = c
        label = int(yte[i])
        right += 1 if best == label else 0
        se = 0.0
        for c in range(classes):
            se += np.exp(out[i, c] - top)
        ce += top + np.log(se) - out[i, label]
    return np.nan, right / n, ce / n


@inline
def _column_variances(z):
    """Per column of ``z`` (n, d): ``Σ_i (z_ik − mean_k)²``, the mean and the sum in order over i."""
    n, d = z.shape
    mean = np.zeros(d)
    var = np.zeros(d)
    for i in range(n):
        for k in range(d):
            mean[k] += z[i, k]
    for k in range(d):
        mean[k] /= n
    for i in range(n):
        for k in range(d):
            var[k] += (z[i, k] - mean[k]) ** 2
    return var


@inline
def _mean_squares(h, fin, on):
    """``E[h_j²]`` over the rows of ``h`` per column (zeros when not ``on``)."""
    n = h.shape[0]
    sq = np.zeros(fin)
    if on:
        for i in range(n):
            for j in range(fin):
                sq[j] += h[i, j] * h[i, j]
        for j in range(fin):
            sq[j] /= n
    return sq


@kernel
def bn_moments(lay, theta, ev, s2):
    """Per BN layer: Σ_k real, running (``ev.rv2``) and predicted variance of its input, and the mean max
    ratio, into ``ev.real``, ``ev.running``, ``ev.predicted``, ``ev.li``.

    Notes
    -----
    ``real_k`` is the variance (ddof = 1) of ``z_k`` over the test rows in eval
    mode; ``predicted_k = real_k + s2 Σ_j W_kj² E[h_j²]`` with h the Linear's
    input over the same rows (layer 0: s2 = 0, the input is never noised);
    ``li = mean_k max(r, 1/r)``, ``r = (real_k + ε)/(running_k + ε)``.
    """
    depth = lay.shape[0] - 1
    n = ev.Ze.shape[1]
    rv = ev.rv2
    for layer in range(depth):
        fin, fout, ow = lay[layer, FIN], lay[layer, FOUT], lay[layer, OW]
        var = _column_variances(ev.Ze[layer])
        noisy = layer > 0 and s2 != 0.0
        sq = _mean_squares(ev.He[layer - 1 if layer > 0 else 0], fin, noisy)
        r_sum, v_sum, p_sum, li_sum = 0.0, 0.0, 0.0, 0.0
        for k in range(fout):
            real_k = var[k] / (n - 1)
            extra = 0.0
            if noisy:
                for j in range(fin):
                    wv = theta[ow + k * fin + j]
                    extra += wv * wv * sq[j]
            ratio = (real_k + EPS) / (rv[layer, k] + EPS)
            r_sum += real_k
            v_sum += rv[layer, k]
            p_sum += real_k + s2 * extra
            li_sum += max(ratio, 1.0 / ratio)
        ev.real[layer] = r_sum
        ev.running[layer] = v_sum
        ev.predicted[layer] = p_sum
        ev.li[layer] = li_sum / fout


@kernel
def recalibrate(Xtr, net, lay, spec, kind, s, w, rm, rv, rec_noise):
    """Reset the running statistics ``rm``, ``rv`` and re-estimate them: one pass over the training rows in order.

    BN in training mode, cumulative average (``momentum=None``), batches of
    ``spec.batch`` rows, a final batch dropped by the training's rule (one row always; any short one with
    ``spec.drop_last``); noise ``kind`` at every
    hidden position (dropout or none), drawn from ``s``. The parameters do not
    change. With ``rec_noise`` non-empty, batch b's noise goes to ``rec_noise[b]``.
    """
    n = Xtr.shape[0]
    depth = lay.shape[0] - 1
    batch = spec.batch
    rm[:, :] = 0.0
    rv[:, :] = 1.0
    kinds = np.empty(depth, dtype=np.int64)
    for layer in range(depth):
        kinds[layer] = kind
    pass_net = Net(net.theta, net.Wt, net.grad, net.m1, net.m2, rm, rv)
    step = 0
    for start in range(0, n, batch):
        m = min(batch, n - start)
        if m == 1 or (spec.drop_last and m < batch):
            continue
        for i in range(m):
            for j in range(Xtr.shape[1]):
                w.xb[i, j] = Xtr[start + i, j]
        step += 1
        forward_train(w, m, pass_net, lay, spec, kinds, s, -1.0, step)
        if rec_noise.shape[0] > 0:
            copy_rows(w.NM, rec_noise[step - 1], m)

