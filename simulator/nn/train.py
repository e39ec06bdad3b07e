"""Trained networks: one Monte Carlo sample is one full training run of an MLP.

The network is ``in → depth × [Linear(width) → (BN) → ReLU → (noise)] → Linear(out)``,
forward and backward written out in Numba in float64 with PyTorch's semantics
and defaults: ``nn.Linear`` init (weight and bias ~ U(−1/√fan_in, 1/√fan_in)),
``nn.BatchNorm1d(width, eps=1e-5, momentum=0.1)`` (γ = 1, β = 0), ``F.mse_loss``
or ``F.cross_entropy`` (means over the batch), ``torch.optim.Adam`` or
``torch.optim.SGD(momentum=μ)``. The *placement* says where the noise goes:

- ``none``: no noise;
- ``hidden``: inverted dropout ``h δ / p`` after every hidden ReLU (with BN, the
  dropout before the next BN: the harmful order of Li et al. 2019);
- ``head``: one dropout after the last hidden block, before the output Linear;
- ``recalibrated``: trained as ``hidden``; then every BN's running statistics
  are reset and re-estimated in training mode with dropout OFF, one pass over
  the training rows in their order (cumulative average, PyTorch
  ``momentum=None``): the third remedy of Li et al.;
- ``recalibrated-dropout-on``: the same pass with dropout ON, which is what
  ``torch.optim.swa_utils.update_bn`` does (it does not remove the shift);
- ``uout``: Uout noise ``h (1 + r)``, r ~ U(−β, β), at the hidden positions.

Runs are paired: run r draws its 80/20 split, its initial weights, its batch
order and its noise from blocks ``4r + 0, 1, 2, 3`` of the stream key; every
placement uses the same split, weights and order and restarts its noise from
the same state (common random numbers). The recalibrated placements are
evaluations of the ``hidden`` training (the very same parameters); their
recalibration pass draws its dropout from a copy of the noise stream at that
point, so training itself is never disturbed.

Draw order (what the tests replay): the split is a Fisher–Yates shuffle
``for i = n−1 .. 1: swap(i, ⌊u (i+1)⌋)`` of ``0..n−1`` with 53-bit uniforms u; the
first ``⌊n/5⌋`` rows are the test rows, the rest the training rows in that
order. Init: layer by layer, the weight (row-major, (out, in)) then the bias,
``(2u − 1)/√fan_in``. Every epoch shuffles ``0..n_train−1`` afresh from the
identity, the same way. Noise: per batch, hidden layer by hidden layer, row by
row: dropout takes ⌈width/64⌉ words of ``rng._draw_mask`` (bit k of word q
gates unit 64q + k), Uout one ``rng._draw_uniform`` per unit.
"""
import math
from dataclasses import dataclass, field

import numba
import numpy as np

from ..core.arrays import _copy
from ..core.engine import thread_pool
from ..core.errors import ParameterError, shown
from ..core.jit import kernel, threaded
from ..core.rng import _block_state, _draw_mask, _draw_uniform, keep_threshold
from .batchnorm import EPS, MOMENTUM, _bn_backward, _bn_eval, _bn_train, _update_running
from .chain import _linear

PLACEMENTS = ("none", "hidden", "head", "recalibrated", "recalibrated-dropout-on", "uout")
OPTIMIZERS = ("adam", "sgd")
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
TEST_FRACTION_DIVISOR = 5  # n_test = ⌊n / 5⌋

# Training modes (what noise the network trains with) and evaluation variants.
_M_NONE, _M_HIDDEN, _M_HEAD, _M_UOUT = 0, 1, 2, 3
_V_PLAIN, _V_RECAL_OFF, _V_RECAL_ON = 0, 1, 2
_MODE_VARIANT = {"none": (_M_NONE, _V_PLAIN), "hidden": (_M_HIDDEN, _V_PLAIN), "head": (_M_HEAD, _V_PLAIN),
                 "recalibrated": (_M_HIDDEN, _V_RECAL_OFF),
                 "recalibrated-dropout-on": (_M_HIDDEN, _V_RECAL_ON), "uout": (_M_UOUT, _V_PLAIN)}
# Noise kind at one position.
_K_NONE, _K_DROPOUT, _K_UOUT = 0, 1, 2
# Columns of the layer table ``lay``.
_FIN, _FOUT, _OW, _OB, _OG, _OBETA = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class TrainConfig:
    """How a network is built and trained (defaults: the diabetes study).

    Attributes
    ----------
    depth, width : int
        Hidden blocks and units per block.
    bn : bool
        BatchNorm1d after every hidden Linear.
    epochs : int
    batch : int
        Batch size; a final batch of one row is dropped, any other short one kept.
    optimizer : str
        "adam" (``torch.optim.Adam(lr)``) or "sgd" (``torch.optim.SGD(lr, momentum)``).
    lr, momentum : float
    p : float
        Keep probability of dropout (PyTorch's ``nn.Dropout(1 − p)``).
    beta : float
        Half-width of the Uout noise.
    checkpoints : tuple of int
        Epochs after which the test metric is recorded; the last epoch is always added.
    """

    depth: int = 2
    width: int = 64
    bn: bool = True
    epochs: int = 100
    batch: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    p: float = 0.5
    beta: float = 0.1
    checkpoints: tuple = ()

    def epochs_checked(self):
        """The checkpoint epochs, sorted, with the last epoch included."""
        return tuple(sorted(set(int(e) for e in self.checkpoints) | {int(self.epochs)}))


@dataclass(frozen=True)
class TrainResult:
    """Test metrics and BN statistics of R runs × P placements (L = depth, K = checkpoints).

    Attributes
    ----------
    placements : ndarray of shape (P,), str
    checkpoints : ndarray of shape (K,), int
    mse : ndarray of shape (R, P)
        Test MSE on the standardised target scale (NaN for classification).
    accuracy, ce : ndarray of shape (R, P)
        Test accuracy and mean cross-entropy (NaN for regression).
    curve : ndarray of shape (R, P, K)
        The primary test metric (MSE or accuracy) after each checkpoint epoch.
    bn_real : ndarray of shape (R, P, L)
        Σ_k of the variance (ddof = 1) over the test rows, eval mode, of BN input unit k.
    bn_running : ndarray of shape (R, P, L)
        Σ_k running_var_k.
    bn_predicted : ndarray of shape (R, P, L)
        Σ_k predicted Var_train(z_k) (see :func:`train_runs`).
    li_max : ndarray of shape (R, P, L)
        mean_k max(r, 1/r), r = (real_k + ε)/(running_k + ε).
    diverged : ndarray of shape (R, P), bool
        The training loss became non-finite; training stopped and metrics are NaN.
    n_train, n_test : int
    """

    placements: np.ndarray
    checkpoints: np.ndarray
    mse: np.ndarray
    accuracy: np.ndarray
    ce: np.ndarray
    curve: np.ndarray
    bn_real: np.ndarray
    bn_running: np.ndarray
    bn_predicted: np.ndarray
    li_max: np.ndarray
    diverged: np.ndarray
    n_train: int = 0
    n_test: int = 0


# ---------------------------------------------------------------------------
# Layout: one flat parameter vector, PyTorch's order and shapes.

def layer_table(n_in, n_out, depth, width, bn):
    """Sizes and offsets of each Linear (and BN) in the flat parameter vector.

    Returns
    -------
    lay : ndarray of shape (depth + 1, 6), int64
        Per Linear l: fan_in, fan_out, offset of W (shape (fan_out, fan_in),
        row-major), of b, of γ and of β (−1 without BN, and for the output layer).
    size : int
        Length of the parameter vector.
    """
    lay = np.full((depth + 1, 6), -1, dtype=np.int64)
    off = 0
    for layer in range(depth + 1):
        fin = n_in if layer == 0 else width
        fout = n_out if layer == depth else width
        lay[layer, _FIN], lay[layer, _FOUT] = fin, fout
        lay[layer, _OW] = off
        off += fin * fout
        lay[layer, _OB] = off
        off += fout
        if bn and layer < depth:
            lay[layer, _OG] = off
            off += fout
            lay[layer, _OBETA] = off
            off += fout
    return lay, off


def unpack(theta, lay):
    """The parameters as a list of per-layer dicts ``{"W", "b", ("gamma", "beta")}`` (copies)."""
    out = []
    for layer in range(lay.shape[0]):
        fin, fout, ow, ob, og, obeta = (int(v) for v in lay[layer])
        entry = {"W": theta[ow:ow + fin * fout].reshape(fout, fin).copy(), "b": theta[ob:ob + fout].copy()}
        if og >= 0:
            entry["gamma"] = theta[og:og + fout].copy()
            entry["beta"] = theta[obeta:obeta + fout].copy()
        out.append(entry)
    return out


# ---------------------------------------------------------------------------
# Data: split, standardisation, labels.

@kernel
def _shuffle(s, order):
    """Fisher–Yates in place with 53-bit uniforms: ``for i = n−1..1: swap(i, ⌊u (i+1)⌋)``."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(order.size - 1, 0, -1):
        u, s0, s1, s2, s3 = _draw_uniform(s0, s1, s2, s3)
        j = int(u * (i + 1))
        t = order[i]
        order[i] = order[j]
        order[j] = t
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@kernel
def _median(x):
    """``np.median(x)`` of a non-empty x without NaN: the middle value, or the mean ``(a + b) / 2`` of the two.

    An insertion sort of a copy (training targets are few; ``np.median``
    compiles a selection algorithm several times longer).
    """
    v = x.copy()
    n = v.size
    for i in range(1, n):
        t = v[i]
        j = i - 1
        while j >= 0 and v[j] > t:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = t
    half = n >> 1
    if n & 1 == 0:
        return (v[half - 1] + v[half]) / 2
    return v[half]


@kernel
def _prepare(key, run, X, y, target, n_test, Xtr, ytr, Xte, yte):
    """Split run ``run``'s rows, standardise with the training split, make its labels.

    Parameters
    ----------
    target : int
        0: regression (y standardised too), 1: class labels as given,
        2: ``1[y > median of the training y]``.
    Xtr, ytr, Xte, yte : ndarray
        Out: training rows (split order) and test rows.

    Notes
    -----
    Standardisation uses the training rows' mean and standard deviation
    (ddof = 0); a constant column keeps scale 1.
    """
    n, f = X.shape
    perm = np.empty(n, dtype=np.int64)
    for i in range(n):
        perm[i] = i
    s = _block_state(key, 4 * run)
    _shuffle(s, perm)
    n_train = n - n_test
    for j in range(f):
        mean = 0.0
        for i in range(n_train):
            mean += X[perm[n_test + i], j]
        mean /= n_train
        var = 0.0
        for i in range(n_train):
            var += (X[perm[n_test + i], j] - mean) ** 2
        sd = np.sqrt(var / n_train)
        sd = sd if sd > 0.0 else 1.0
        for i in range(n_train):
            Xtr[i, j] = (X[perm[n_test + i], j] - mean) / sd
        for i in range(n_test):
            Xte[i, j] = (X[perm[i], j] - mean) / sd
    raw_tr = np.empty(n_train)
    for i in range(n_train):
        raw_tr[i] = y[perm[n_test + i]]
    if target == 0:
        mean = 0.0
        for i in range(n_train):
            mean += raw_tr[i]
        mean /= n_train
        var = 0.0
        for i in range(n_train):
            var += (raw_tr[i] - mean) ** 2
        sd = np.sqrt(var / n_train)
        sd = sd if sd > 0.0 else 1.0
        for i in range(n_train):
            ytr[i] = (raw_tr[i] - mean) / sd
        for i in range(n_test):
            yte[i] = (y[perm[i]] - mean) / sd
    elif target == 1:
        for i in range(n_train):
            ytr[i] = raw_tr[i]
        for i in range(n_test):
            yte[i] = y[perm[i]]
    else:
        med = _median(raw_tr)
        for i in range(n_train):
            ytr[i] = 1.0 if raw_tr[i] > med else 0.0
        for i in range(n_test):
            yte[i] = 1.0 if y[perm[i]] > med else 0.0


@kernel
def _init_params(s, theta, lay):
    """PyTorch's ``nn.Linear`` init, layer by layer (W row-major, then b); γ = 1, β = 0."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for layer in range(lay.shape[0]):
        fin, fout, ow, ob = lay[layer, _FIN], lay[layer, _FOUT], lay[layer, _OW], lay[layer, _OB]
        bound = 1.0 / np.sqrt(fin)
        for q in range(ow, ob + fout):  # W then b are adjacent
            u, s0, s1, s2, s3 = _draw_uniform(s0, s1, s2, s3)
            theta[q] = (2.0 * u - 1.0) * bound
        if lay[layer, _OG] >= 0:
            for q in range(fout):
                theta[lay[layer, _OG] + q] = 1.0
                theta[lay[layer, _OBETA] + q] = 0.0
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@kernel
def _transpose(theta, lay, Wt):
    """``Wt`` (same offsets) holds every W transposed, (fan_in, fan_out): the forward pass runs along it."""
    for layer in range(lay.shape[0]):
        fin, fout, ow = lay[layer, _FIN], lay[layer, _FOUT], lay[layer, _OW]
        _transpose_into(theta[ow:ow + fin * fout].reshape((fout, fin)), Wt[ow:ow + fin * fout].reshape((fin, fout)))


@kernel
def _transpose_into(a, out):
    """``out = aᵀ`` (out of shape (a.shape[1], a.shape[0])), written row by row."""
    r, c = a.shape
    for j in range(c):
        for i in range(r):
            out[j, i] = a[i, j]


@kernel
def _copy_rows(src, dst, m):
    """``dst[l, :m] = src[l, :m]`` for every l (arrays of shape (L, batch, width))."""
    for layer in range(src.shape[0]):
        for i in range(m):
            for k in range(src.shape[2]):
                dst[layer, i, k] = src[layer, i, k]


# ---------------------------------------------------------------------------
# Layers.

@kernel
def _noise(s, nm, m, kind, threshold, inv_p, beta):
    """Noise multipliers of m rows: ``δ/p`` (dropout), ``1 + r`` (Uout) or 1 (none)."""
    d = nm.shape[1]
    if kind == _K_NONE:
        for i in range(m):
            for k in range(d):
                nm[i, k] = 1.0
        return
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(m):
        if kind == _K_DROPOUT:
            for q in range(0, d, 64):
                word, s0, s1, s2, s3 = _draw_mask(s0, s1, s2, s3, threshold)
                for k in range(q, min(q + 64, d)):
                    nm[i, k] = inv_p if (word >> np.uint64(k - q)) & np.uint64(1) else 0.0
        else:
            for k in range(d):
                u, s0, s1, s2, s3 = _draw_uniform(s0, s1, s2, s3)
                nm[i, k] = 1.0 + beta * (2.0 * u - 1.0)
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@kernel
def _add_bias(z, m, b):
    """``z[i, k] += b_k`` for rows 0..m−1."""
    for i in range(m):
        for k in range(b.size):
            z[i, k] += b[k]


@kernel
def _bias_grad(dz, m, gb):
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
def _forward_train(xb, m, theta, Wt, lay, bn, kinds, s, threshold, inv_p, beta,
                   rm, rv, momentum, step, Z, XH, H, NM, bmean, bvar, out):
    """Training-mode forward of m rows; BN running statistics updated (update number ``step``).

    ``kinds[l]`` is the noise kind after hidden ReLU l. Keeps what the backward
    pass needs: Z (Linear outputs), XH (normalised), H (post-noise), NM (noise).
    """
    depth = lay.shape[0] - 1
    for layer in range(depth + 1):
        fin, fout, ow, ob = lay[layer, _FIN], lay[layer, _FOUT], lay[layer, _OW], lay[layer, _OB]
        a = xb if layer == 0 else H[layer - 1]
        wt = Wt[ow:ow + fin * fout].reshape((fin, fout))
        b = theta[ob:ob + fout]
        z = out if layer == depth else Z[layer]
        _linear(a[:m], wt, z[:m])  # the one call site of the product: the compiled code stays small
        _add_bias(z, m, b)
        if layer == depth:
            break
        _noise(s, NM[layer], m, kinds[layer], threshold, inv_p, beta)
        if bn:
            _bn_train(Z[layer][:m], EPS, XH[layer][:m], bmean[layer], bvar[layer])
            _update_running(rm[layer], rv[layer], bmean[layer], bvar[layer], m, momentum, step)
            og, obeta = lay[layer, _OG], lay[layer, _OBETA]
            _affine_relu_noise(XH[layer], m, theta[og:og + fout], theta[obeta:obeta + fout], NM[layer], H[layer])
        else:
            _relu_noise(Z[layer], m, NM[layer], H[layer])


@kernel
def _loss(out, yb, m, classes, dout):
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


@kernel
def _backward(xb, m, theta, lay, bn, Z, XH, H, NM, bvar, dout, grad, dH, dY, dZ):
    """Gradient of the loss with respect to every parameter into ``grad`` (same layout as theta).

    Notes
    -----
    Through ``h = ReLU(y) · nm``: ``∂y = ∂h · nm · 1[y > 0]`` (with nm > 0 where
    it matters, ``y > 0`` is ``h > 0``); BN as :func:`batchnorm._bn_backward`.
    Through ``z = a Wᵀ + b``: ``∂W[k, j] = Σ_i dz[i, k] a[i, j]`` (the product
    ``dzᵀ a``, from a transposed copy of dz so that its inner loops run along
    contiguous rows; for a layer with few inputs, ``(aᵀ dz)ᵀ`` instead, the same
    sums), ``∂b_k = Σ_i dz[i, k]``, ``∂a[i, j] = Σ_k dz[i, k] W[k, j]``
    (``dz W``); every sum runs over its index in order. Both products are
    :func:`chain._linear`.
    """
    depth = lay.shape[0] - 1
    for layer in range(depth, -1, -1):
        fin, fout, ow, ob = lay[layer, _FIN], lay[layer, _FOUT], lay[layer, _OW], lay[layer, _OB]
        a = xb if layer == 0 else H[layer - 1]
        W = theta[ow:ow + fin * fout].reshape((fout, fin))
        gW = grad[ow:ow + fin * fout].reshape((fout, fin))
        dz = dout
        if layer < depth:
            h, nm = H[layer], NM[layer]
            for i in range(m):
                for k in range(fout):
                    dY[i, k] = dH[i, k] * nm[i, k] if h[i, k] > 0.0 else 0.0
            if bn:
                og, obeta = lay[layer, _OG], lay[layer, _OBETA]
                _bn_backward(dY[:m], XH[layer][:m], theta[og:og + fout], bvar[layer], EPS, dZ[:m],
                             grad[og:og + fout], grad[obeta:obeta + fout])
                dz = dZ
            else:
                dz = dY
        # gW = dzᵀ a, or for a narrow input (fewer inputs than half the outputs, e.g. the first layer)
        # gWᵀ = aᵀ dz, whose rows are long; then (below the input layer) dH = dz W. The same sums either way.
        narrow = 2 * fin <= fout
        _bias_grad(dz, m, grad[ob:ob + fout])
        dzT = np.empty((0 if narrow else fout, m))
        aT, gWT = np.empty((fin if narrow else 0, m)), np.empty((fin if narrow else 0, fout))
        src, dst = (a[:m], aT) if narrow else (dz[:m], dzT)
        _transpose_into(src, dst)
        for part in range(2 if layer > 0 else 1):  # one call site of the product
            if part == 0:
                x, B, prod = (aT, dz[:m], gWT) if narrow else (dzT, a[:m], gW)
            else:
                x, B, prod = dz[:m], W, dH[:m]
            _linear(x, B, prod)
        if narrow:
            _transpose_into(gWT, gW)


@kernel
def _adam(theta, grad, m1, m2, t, lr):
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
def _sgd(theta, grad, buf, t, lr, mu):
    """``torch.optim.SGD(lr, momentum=μ)``: ``buf = g`` at t = 1, then ``buf ← μ buf + g``; ``θ ← θ − lr buf``."""
    for q in range(theta.size):
        buf[q] = grad[q] if t == 1 else mu * buf[q] + grad[q]
        theta[q] = theta[q] - lr * buf[q]


# ---------------------------------------------------------------------------
# Evaluation and recalibration.

@kernel
def _forward_eval(x, theta, Wt, lay, bn, rm, rv, Ze, He, out):
    """Eval mode (no noise, BN with running statistics) for all rows of ``x``; keeps Z and H per layer."""
    n = x.shape[0]
    depth = lay.shape[0] - 1
    for layer in range(depth + 1):
        fin, fout, ow, ob = lay[layer, _FIN], lay[layer, _FOUT], lay[layer, _OW], lay[layer, _OB]
        a = x if layer == 0 else He[layer - 1]
        wt = Wt[ow:ow + fin * fout].reshape((fin, fout))
        b = theta[ob:ob + fout]
        z = out if layer == depth else Ze[layer]
        _linear(a, wt, z)
        _add_bias(z, n, b)
        if layer == depth:
            break
        h = He[layer]
        if bn:
            _bn_eval(z, rm[layer], rv[layer], EPS, h)
            og, obeta = lay[layer, _OG], lay[layer, _OBETA]
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
def _metrics(out, yte, classes):
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


@kernel
def _bn_moments(lay, theta, rv, Ze, He, s2, real, running, predicted, li):
    """Per BN layer: Σ_k real, running and predicted variance of its input, and the mean max ratio.

    Notes
    -----
    ``real_k`` is the variance (ddof = 1) of ``z_k`` over the test rows in eval
    mode; ``predicted_k = real_k + s2 Σ_j W_kj² E[h_j²]`` with h the Linear's
    input over the same rows (layer 0: s2 = 0, the input is never noised);
    ``li = mean_k max(r, 1/r)``, ``r = (real_k + ε)/(running_k + ε)``.
    """
    depth = lay.shape[0] - 1
    n = Ze.shape[1]
    for layer in range(depth):
        fin, fout, ow = lay[layer, _FIN], lay[layer, _FOUT], lay[layer, _OW]
        z = Ze[layer]
        mean = np.zeros(fout)
        var = np.zeros(fout)
        for i in range(n):
            for k in range(fout):
                mean[k] += z[i, k]
        for k in range(fout):
            mean[k] /= n
        for i in range(n):
            for k in range(fout):
                var[k] += (z[i, k] - mean[k]) ** 2
        sq = np.zeros(fin)
        if layer > 0 and s2 != 0.0:
            h = He[layer - 1]
            for i in range(n):
                for j in range(fin):
                    sq[j] += h[i, j] * h[i, j]
            for j in range(fin):
                sq[j] /= n
        r_sum, v_sum, p_sum, li_sum = 0.0, 0.0, 0.0, 0.0
        for k in range(fout):
            real_k = var[k] / (n - 1)
            extra = 0.0
            if layer > 0 and s2 != 0.0:
                for j in range(fin):
                    w = theta[ow + k * fin + j]
                    extra += w * w * sq[j]
            ratio = (real_k + EPS) / (rv[layer, k] + EPS)
            r_sum += real_k
            v_sum += rv[layer, k]
            p_sum += real_k + s2 * extra
            li_sum += max(ratio, 1.0 / ratio)
        real[layer] = r_sum
        running[layer] = v_sum
        predicted[layer] = p_sum
        li[layer] = li_sum / fout


@kernel
def _recalibrate(Xtr, theta, Wt, lay, batch, kind, s, threshold, inv_p, beta, rm, rv,
                 xb, Z, XH, H, NM, bmean, bvar, out, rec_noise):
    """Reset the running statistics and re-estimate them: one pass over the training rows in order.

    BN in training mode, cumulative average (``momentum=None``), batches of
    ``batch`` rows, a final batch of one row dropped; noise ``kind`` at every
    hidden position (dropout or none), drawn from ``s``. The parameters do not
    change. With ``rec_noise`` non-empty, batch b's noise goes to ``rec_noise[b]``.
    """
    n = Xtr.shape[0]
    depth = lay.shape[0] - 1
    rm[:, :] = 0.0
    rv[:, :] = 1.0
    kinds = np.empty(depth, dtype=np.int64)
    for layer in range(depth):
        kinds[layer] = kind
    bn = lay[0, _OG] >= 0  # a bool variable, not the literal True: one signature of _forward_train
    step = 0
    for start in range(0, n, batch):
        m = min(batch, n - start)
        if m == 1:
            continue
        for i in range(m):
            for j in range(Xtr.shape[1]):
                xb[i, j] = Xtr[start + i, j]
        step += 1
        _forward_train(xb, m, theta, Wt, lay, bn, kinds, s, threshold, inv_p, beta, rm, rv, -1.0, step,
                       Z, XH, H, NM, bmean, bvar, out)
        if rec_noise.shape[0] > 0:
            _copy_rows(NM, rec_noise[step - 1], m)


# ---------------------------------------------------------------------------
# One training run and the parallel driver.

@threaded
def _run_task(key, run, mode, variants, X, y, target, classes, n_test, lay, nparams, bn, epochs, batch,
              adam, lr, mu, threshold, inv_p, beta, s2_noise, checkpoints,
              mse, acc, ce, curve, bn_real, bn_running, bn_predicted, li_max, diverged,
              rec_order, rec_noise, rec_theta, rec_stats, rec_recal_noise):
    """Train run ``run`` in training mode ``mode``; write the requested evaluation variants.

    Parameters
    ----------
    variants : ndarray of shape (3,), int64
        Output column (placement index) of the plain, recalibrated (dropout
        off) and recalibrated (dropout on) evaluations; −1: not requested.
    s2_noise : float
        s² of the training noise at the hidden positions ((1−p)/p or β²/3).
    mse, acc, ce, diverged : ndarray of shape (R, P)
    curve : ndarray of shape (R, P, K)
    bn_real, bn_running, bn_predicted, li_max : ndarray of shape (R, P, L)
        Out: only the columns named in ``variants``, row ``run``.
    rec_order, rec_noise, rec_theta, rec_stats, rec_recal_noise : ndarray
        For :func:`trace` (empty otherwise): ``rec_order`` of shape (S, batch)
        limits training to S steps and receives each step's training rows
        (−1: none); ``rec_noise`` (S, L, batch, width) the noise multipliers;
        ``rec_theta`` (2, nparams) the initial and final parameters;
        ``rec_stats`` (3, 2, L, width) running mean and variance of the plain,
        recalibrated-off and recalibrated-on networks; ``rec_recal_noise``
        (batches, L, batch, width) the noise of the dropout-on pass.
    """
    n, f = X.shape
    n_train = n - n_test
    depth = lay.shape[0] - 1
    width = lay[0, _FOUT]
    n_out = lay[depth, _FOUT]
    Xtr, ytr = np.empty((n_train, f)), np.empty(n_train)
    Xte, yte = np.empty((n_test, f)), np.empty(n_test)
    _prepare(key, run, X, y, target, n_test, Xtr, ytr, Xte, yte)

    theta = np.empty(nparams)
    _init_params(_block_state(key, 4 * run + 1), theta, lay)
    Wt = np.empty(nparams)
    _transpose(theta, lay, Wt)
    grad = np.zeros(nparams)
    m1 = np.zeros(nparams)
    m2 = np.zeros(nparams)
    s_order = _block_state(key, 4 * run + 2)
    s_noise = _block_state(key, 4 * run + 3)

    kinds = np.zeros(depth, dtype=np.int64)
    if mode == _M_HIDDEN:
        kinds[:] = _K_DROPOUT
    elif mode == _M_UOUT:
        kinds[:] = _K_UOUT
    elif mode == _M_HEAD:
        kinds[depth - 1] = _K_DROPOUT

    rm, rv = np.zeros((depth, width)), np.ones((depth, width))
    xb, yb = np.empty((batch, f)), np.empty(batch)
    Z, XH = np.empty((depth, batch, width)), np.empty((depth, batch, width))
    H, NM = np.empty((depth, batch, width)), np.empty((depth, batch, width))
    bmean, bvar = np.empty((depth, width)), np.empty((depth, width))
    out, dout = np.empty((batch, n_out)), np.empty((batch, n_out))
    dH, dY, dZ = np.empty((batch, width)), np.empty((batch, width)), np.empty((batch, width))
    Ze, He, oute = np.empty((depth, n_test, width)), np.empty((depth, n_test, width)), np.empty((n_test, n_out))
    rm2, rv2 = np.empty((depth, width)), np.empty((depth, width))
    s_copy = np.empty(4, dtype=np.uint64)
    real, running, predicted, li = np.empty(depth), np.empty(depth), np.empty(depth), np.empty(depth)
    empty_noise = np.empty((0, depth, batch, width))

    tracing = rec_order.shape[0] > 0
    if tracing:
        _copy(theta, rec_theta[0])
    order = np.empty(n_train, dtype=np.int64)
    t = 0
    k_next = 0
    failed = False
    for epoch in range(1, epochs + 1):
        for i in range(n_train):
            order[i] = i
        _shuffle(s_order, order)
        for start in range(0, n_train, batch):
            m = min(batch, n_train - start)
            if m == 1:
                continue  # BN cannot train on one row
            if tracing and t == rec_order.shape[0]:
                break
            for i in range(m):
                for j in range(f):
                    xb[i, j] = Xtr[order[start + i], j]
                yb[i] = ytr[order[start + i]]
            t += 1
            _forward_train(xb, m, theta, Wt, lay, bn, kinds, s_noise, threshold, inv_p, beta,
                           rm, rv, MOMENTUM, t, Z, XH, H, NM, bmean, bvar, out)
            loss = _loss(out, yb, m, classes, dout)
            if not np.isfinite(loss):
                failed = True
                break
            _backward(xb, m, theta, lay, bn, Z, XH, H, NM, bvar, dout, grad, dH, dY, dZ)
            if adam:
                _adam(theta, grad, m1, m2, t, lr)
            else:
                _sgd(theta, grad, m1, t, lr, mu)
            _transpose(theta, lay, Wt)
            if tracing:
                for i in range(m):
                    rec_order[t - 1, i] = order[start + i]
                _copy_rows(NM, rec_noise[t - 1], m)
        if failed:
            for v in range(3):
                if variants[v] >= 0:
                    diverged[run, variants[v]] = True
            return
        if tracing:
            if t == rec_order.shape[0] or epoch == epochs:
                break
            continue
        if epoch != checkpoints[k_next]:
            continue
        final = epoch == epochs
        for v in range(3):
            col = variants[v]
            if col < 0:
                continue
            s2 = 0.0
            if v == _V_PLAIN:
                _copy(rm, rm2)
                _copy(rv, rv2)
                if mode == _M_HIDDEN or mode == _M_UOUT:
                    s2 = s2_noise
            else:
                # The pass draws from a copy of the noise stream: training stays paired with hidden.
                _copy(s_noise, s_copy)
                kind = _K_DROPOUT if v == _V_RECAL_ON else _K_NONE
                _recalibrate(Xtr, theta, Wt, lay, batch, kind, s_copy, threshold, inv_p, beta, rm2, rv2,
                             xb, Z, XH, H, NM, bmean, bvar, out, empty_noise)
                if v == _V_RECAL_ON:
                    s2 = s2_noise
            _forward_eval(Xte, theta, Wt, lay, bn, rm2, rv2, Ze, He, oute)
            e_mse, e_acc, e_ce = _metrics(oute, yte, classes)
            curve[run, col, k_next] = e_mse if classes == 1 else e_acc
            if final:
                mse[run, col], acc[run, col], ce[run, col] = e_mse, e_acc, e_ce
                if bn:
                    _bn_moments(lay, theta, rv2, Ze, He, s2, real, running, predicted, li)
                    _copy(real, bn_real[run, col])
                    _copy(running, bn_running[run, col])
                    _copy(predicted, bn_predicted[run, col])
                    _copy(li, li_max[run, col])
        k_next += 1
    if tracing:
        _copy(theta, rec_theta[1])
        _copy(rm, rec_stats[0, 0])
        _copy(rv, rec_stats[0, 1])
        if bn:
            for v in (1, 2):
                _copy(s_noise, s_copy)
                kind = _K_DROPOUT if v == _V_RECAL_ON else _K_NONE
                _recalibrate(Xtr, theta, Wt, lay, batch, kind, s_copy, threshold, inv_p, beta, rm2, rv2,
                             xb, Z, XH, H, NM, bmean, bvar, out, rec_recal_noise if v == 2 else empty_noise)
                _copy(rm2, rec_stats[v, 0])
                _copy(rv2, rec_stats[v, 1])


def _train_chunk(key, first, count, threads, modes, variants, X, y, target, classes, n_test, lay, nparams, bn,
                 epochs, batch, adam, lr, mu, threshold, inv_p, beta, s2, checkpoints,
                 mse, acc, ce, curve, bn_real, bn_running, bn_predicted, li_max, diverged):
    """Tasks ``first .. first+count−1`` on ``threads`` threads; task q is run ``q // T`` in mode ``modes[q % T]``.

    :func:`_run_task` releases the GIL, so Python threads run it in parallel
    (a ``prange`` kernel would have LLVM optimise the whole training code a
    second time on first use: about 35 s of compilation). Each task writes
    only its own (run, placement) slots, so the result does not depend on the
    thread count or the scheduling.
    """
    T = modes.size
    depth = lay.shape[0] - 1
    width = lay[0, _FOUT]
    empty = (np.empty((0, batch), dtype=np.int64), np.empty((0, depth, batch, width)),
             np.empty((0, nparams)), np.empty((0, 2, depth, width)), np.empty((0, depth, batch, width)))

    def task(q):
        run, j = q // T, q % T
        _run_task(key, run, modes[j], variants[j], X, y, target, classes, n_test, lay, nparams, bn, epochs,
                  batch, adam, lr, mu, threshold, inv_p, beta, s2[j], checkpoints,
                  mse, acc, ce, curve, bn_real, bn_running, bn_predicted, li_max, diverged, *empty)

    if threads <= 1 or count <= 1:
        for q in range(first, first + count):
            task(q)
        return
    for done in thread_pool(min(threads, count)).map(task, range(first, first + count)):
        pass


# ---------------------------------------------------------------------------
# Public functions.

def _check(task, config, placements):
    """Validate; return the placement tuple."""
    c = config
    if not isinstance(c, TrainConfig):
        raise ParameterError("config must be a TrainConfig")
    for name in ("depth", "width", "epochs", "batch"):
        value = getattr(c, name)
        if int(value) != value or value < (2 if name == "batch" else 1):
            raise ParameterError(f"{name}={shown(value)}: must be an integer ≥ {2 if name == 'batch' else 1}")
    if c.optimizer not in OPTIMIZERS:
        raise ParameterError(f"optimizer={shown(c.optimizer)}: valid: {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise ParameterError(f"lr={shown(c.lr)}: must be a positive number")
    if not 0.0 <= c.momentum < 1.0:
        raise ParameterError(f"momentum={shown(c.momentum)}: must be in [0, 1)")
    if not 1e-9 <= c.p <= 1.0:
        raise ParameterError(f"p={shown(c.p)}: the keep probability must be in [1e-9, 1]")
    if not 0.0 <= c.beta < 1.0:
        raise ParameterError(f"beta={shown(c.beta)}: must be in [0, 1)")
    bad = [e for e in c.checkpoints if int(e) != e or not 1 <= e <= c.epochs]
    if bad:
        raise ParameterError(f"checkpoints: {shown(bad[0])} is not an epoch in 1..{c.epochs}")
    placements = (placements,) if isinstance(placements, str) else tuple(placements)
    if not placements:
        raise ParameterError(f"no placement given; valid: {', '.join(PLACEMENTS)}")
    for name in placements:
        if name not in PLACEMENTS:
            raise ParameterError(f"unknown placement {shown(name)}; valid: {', '.join(PLACEMENTS)}")
    if len(set(placements)) != len(placements):
        raise ParameterError("placements: each may appear once")
    if not c.bn and any(name.startswith("recalibrated") for name in placements):
        raise ParameterError("recalibrated placements re-estimate BN statistics: they need bn=True")
    if task.kind not in ("regression", "classification"):
        raise ParameterError(f"task kind {shown(task.kind)}: valid: regression, classification")
    n = task.X.shape[0]
    if n // TEST_FRACTION_DIVISOR < 2 or n - n // TEST_FRACTION_DIVISOR < 2:
        raise ParameterError(f"task {task.name}: {n} rows are too few for an 80/20 split")
    return placements


def _setup(task, config, placements):
    """Kernel arguments shared by :func:`train_runs` and :func:`trace`."""
    c = config
    X = np.ascontiguousarray(task.X, dtype=np.float64)
    y = np.ascontiguousarray(task.y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ParameterError("task: X must be (n, f) and y (n,)")
    classes = 1 if task.kind == "regression" else int(task.classes)
    target = 0 if task.kind == "regression" else (2 if task.median_label else 1)
    lay, nparams = layer_table(X.shape[1], classes, int(c.depth), int(c.width), bool(c.bn))
    modes, variants = [], []
    for col, name in enumerate(placements):
        mode, variant = _MODE_VARIANT[name]
        if mode not in modes:
            modes.append(mode)
            variants.append([-1, -1, -1])
        variants[modes.index(mode)][variant] = col
    s2 = [((1.0 - c.p) / c.p) if mode == _M_HIDDEN else (c.beta ** 2 / 3.0 if mode == _M_UOUT else 0.0)
          for mode in modes]
    return dict(X=X, y=y, target=target, classes=classes, n_test=X.shape[0] // TEST_FRACTION_DIVISOR,
                lay=lay, nparams=nparams, modes=np.array(modes, dtype=np.int64),
                variants=np.array(variants, dtype=np.int64), s2=np.array(s2),
                scalars=(bool(c.bn), int(c.epochs), int(c.batch), c.optimizer == "adam", float(c.lr),
                         float(c.momentum), keep_threshold(c.p), 1.0 / float(c.p), float(c.beta)))


def train_runs(task, config, placements, runs, key, progress=None):
    """Train ``runs`` paired runs of every placement and measure them on the test split.

    Parameters
    ----------
    task : simulator.data.tasks.Task
    config : TrainConfig
    placements : sequence of str
        Names from :data:`PLACEMENTS`.
    runs : int
    key : ndarray of shape (2,), dtype uint64
        The stream key (``rng.stream_key``); run r uses blocks 4r .. 4r+3.
    progress : callable or None
        Called as ``progress(runs_done, runs)`` between chunks of runs.

    Returns
    -------
    TrainResult

    Notes
    -----
    The split keeps ⌊n/5⌋ rows for the test. X is standardised with the
    training split's mean and standard deviation (ddof = 0), and so is y for a
    regression; the test MSE is on that scale.

    ``bn_predicted / bn_real`` is the closed-form Δ of C5 (Li et al. 2019)
    applied to each layer's own measured moments: for BN input
    ``z_k = Σ_j W_kj h̃_j + b_k`` with noise ``h̃_j = h_j ξ_j`` of independent
    masks (E ξ = 1, Var ξ = s²),
    ``Var_train(z_k) = Var_eval(z_k) + s² Σ_j W_kj² E[h_j²]``;
    s² = (1 − p)/p for dropout, β²/3 for Uout, and 0 where that BN saw no noise
    while its running statistics were last accumulated (layer 1 always; the
    placements none, head, recalibrated). The moments are measured on the test
    rows in eval mode. ``li_max`` near 1 says the running statistics fit the
    eval data; Li et al.'s variance shift makes it exceed 1.

    Each (run, training mode) is one task, run on ``numba.get_num_threads()`` threads; the recalibrated
    placements share the training of ``hidden``. The result depends on the
    key, the task and the config alone: not on the thread count.
    """
    placements = _check(task, config, placements)
    runs = int(runs)
    if runs < 1:
        raise ParameterError(f"runs={runs}: must be at least 1")
    key = np.asarray(key, dtype=np.uint64)
    a = _setup(task, config, placements)
    checkpoints = np.array(config.epochs_checked(), dtype=np.int64)
    P, K, L = len(placements), checkpoints.size, int(config.depth)
    mse, acc, ce = np.full((runs, P), np.nan), np.full((runs, P), np.nan), np.full((runs, P), np.nan)
    curve = np.full((runs, P, K), np.nan)
    bn_real, bn_running = np.zeros((runs, P, L)), np.zeros((runs, P, L))
    bn_predicted, li_max = np.zeros((runs, P, L)), np.zeros((runs, P, L))
    diverged = np.zeros((runs, P), dtype=np.bool_)
    T = a["modes"].size
    threads = max(1, numba.get_num_threads())
    done = 0
    while done < runs:
        count = min(threads, runs - done)
        _train_chunk(key, done * T, count * T, threads, a["modes"], a["variants"], a["X"], a["y"], a["target"],
                     a["classes"], a["n_test"], a["lay"], a["nparams"], *a["scalars"], a["s2"], checkpoints,
                     mse, acc, ce, curve, bn_real, bn_running, bn_predicted, li_max, diverged)
        done += count
        if progress is not None:
            progress(done, runs)
    for arr in (bn_real, bn_running, bn_predicted, li_max):
        arr[diverged] = np.nan
    n_test = a["n_test"]
    return TrainResult(np.array(placements), checkpoints, mse, acc, ce, curve, bn_real, bn_running,
                       bn_predicted, li_max, diverged, task.X.shape[0] - n_test, n_test)


@dataclass(frozen=True)
class Trace:
    """What one run did in its first steps, for an oracle to replay (see :func:`trace`).

    Attributes
    ----------
    Xtr, ytr, Xte, yte : ndarray
        Standardised training and test rows; targets (standardised) or labels.
    init, final : list of dict
        Per Linear: ``W`` (out, in), ``b`` and, with BN, ``gamma``, ``beta``
        (:func:`unpack`): before the first and after the last step.
    batches : list of ndarray
        Step t's rows of ``Xtr``.
    noise : list of ndarray
        Step t's noise multipliers, shape (depth, m, width) (1 where none).
    running_mean, running_var : ndarray of shape (depth, width)
        After the steps.
    recal_mean, recal_var : ndarray of shape (2, depth, width)
        Running statistics re-estimated with dropout off (0) and on (1).
    recal_noise : list of ndarray
        The dropout-on pass's multipliers per batch, shape (depth, m, width).
    """

    Xtr: np.ndarray
    ytr: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    init: list
    final: list
    batches: list
    noise: list
    running_mean: np.ndarray
    running_var: np.ndarray
    recal_mean: np.ndarray
    recal_var: np.ndarray
    recal_noise: list = field(default_factory=list)


def trace(task, config, placement, run, key, steps):
    """Run ``steps`` optimizer steps of run ``run`` with the training kernel and record them.

    The same compiled code as :func:`train_runs`, stopped after ``steps``
    steps (or at the last epoch), then recalibrated both ways (with BN).

    Returns
    -------
    Trace
    """
    placements = _check(task, config, (placement,))
    key = np.asarray(key, dtype=np.uint64)
    a = _setup(task, config, placements)
    c = config
    depth, width, batch = int(c.depth), int(c.width), int(c.batch)
    steps = int(steps)
    if steps < 1:
        raise ParameterError(f"steps={steps}: must be at least 1")
    n = a["X"].shape[0]
    n_test = a["n_test"]
    n_train = n - n_test
    nrecal = sum(1 for start in range(0, n_train, batch) if min(batch, n_train - start) > 1)
    rec_order = np.full((steps, batch), -1, dtype=np.int64)
    rec_noise = np.zeros((steps, depth, batch, width))
    rec_theta = np.zeros((2, a["nparams"]))
    rec_stats = np.zeros((3, 2, depth, width))
    rec_recal = np.zeros((nrecal, depth, batch, width))
    dummy = np.zeros((int(run) + 1, 1))
    curve = np.zeros((int(run) + 1, 1, 1))
    bns = np.zeros((int(run) + 1, 1, depth))
    div = np.zeros((int(run) + 1, 1), dtype=np.bool_)
    _run_task(key, int(run), a["modes"][0], a["variants"][0], a["X"], a["y"], a["target"], a["classes"],
              n_test, a["lay"], a["nparams"], *a["scalars"], a["s2"][0],
              np.array(c.epochs_checked(), dtype=np.int64), dummy, dummy.copy(), dummy.copy(), curve,
              bns, bns.copy(), bns.copy(), bns.copy(), div, rec_order, rec_noise, rec_theta, rec_stats, rec_recal)
    Xtr, ytr = np.empty((n_train, a["X"].shape[1])), np.empty(n_train)
    Xte, yte = np.empty((n_test, a["X"].shape[1])), np.empty(n_test)
    _prepare(key, int(run), a["X"], a["y"], a["target"], n_test, Xtr, ytr, Xte, yte)
    done = int((rec_order[:, 0] >= 0).sum())
    batches = [rec_order[t][rec_order[t] >= 0] for t in range(done)]
    noise = [rec_noise[t][:, :len(batches[t])] for t in range(done)]
    sizes = [min(batch, n_train - s) for s in range(0, n_train, batch) if min(batch, n_train - s) > 1]
    recal_noise = [rec_recal[b][:, :sizes[b]] for b in range(nrecal)]
    return Trace(Xtr, ytr, Xte, yte, unpack(rec_theta[0], a["lay"]), unpack(rec_theta[1], a["lay"]), batches,
                 noise, rec_stats[0, 0], rec_stats[0, 1], rec_stats[1:, 0], rec_stats[1:, 1], recal_noise)
