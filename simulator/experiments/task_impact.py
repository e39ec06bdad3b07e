"""C6 — does dropout hurt regression more than classification? Measured on the chain of ``network-shift``.

Teacher: the noise-free chain itself (same weights, eval mode, BN statistics from
a long noise-free calibration) with a random readout A of shape (classes, d):
``t(x) = (A ψ(x) − μ)/σ``, standardized so each output has variance ≈ 1. It
does not depend on p, and the noise-free student can fit it almost exactly, so
what a placement loses is visible. Regression target: the vector t(x) (MSE
averaged over its components); classification label: ``argmax_c t_c(x)``.

The student runs ``steps`` training batches (noise on, BN batch statistics); on
those training-mode features ``φ̃`` (with a constant 1 appended) a linear head is
fit by least squares from the streamed float64 sums ``Σ φ̃ φ̃ᵀ`` and
``Σ φ̃ [t, onehot]ᵀ``: one solve gives the regression head and the least-squares
classifier (one-hot targets, predict the argmax). Eval mode (noise off, running
statistics) on fresh inputs then gives the MSE, the slope of prediction on
target, the classifier's accuracy and the accuracy of the regression head's own
argmax (the same predictions judged by argmax instead of loss). One Monte Carlo
sample is one training run with its fit and its eval set; every network sees the
same inputs, so ratios to the noise-free network ("none") are paired.

Also checks the exact identity of C6 for inverted dropout on the inputs of a
linear regression (Wager et al. 2013; Srivastava et al. 2014 §9.1),
``E‖y − X̃w‖² = ‖y − Xw‖² + ((1 − p)/p) wᵀ diag(XᵀX) w`` and its minimizer
``w* = (XᵀX + ((1 − p)/p) diag(XᵀX))⁻¹ Xᵀy``, by sampling masks and by
enumerating them.
"""
import numpy as np

from ..core.arrays import copy_into
from ..core.engine import run as run_engine
from ..core.errors import ParameterError
from ..core.jit import inline, kernel, threaded
from ..core.rng import block_state, keep_threshold, next_keep, stream_key
from ..core.stats import ACC_WIDTH, finish_moments, mean_of, push_value
from ..nn import chain as net
from ..theory import closed_forms as cf
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, Param
from .network_shift import chain_params

# Per network, block means over eval rows: MSE, accuracy of the least-squares classifier, accuracy of
# the argmax of the regression head, and Σ pred·t, Σ pred, Σ t, Σ t² per output (for the slope).
MSE, ACC, ARGMAX, PT, PRED, TGT, TT = range(7)
NQ = 7
TASKS = ("regression", "classification", "both")
ENUM_MAX_COLS = 16


@kernel
def teacher_batch(x, W, eps, rmT, rvT, A, mu, sd, T, labels, h, z, y, zstats, relu_sum):
    """Teacher targets of the rows of x: ``T[r] = (A ψ(x_r) − μ)/σ``, ``labels[r] = argmax T[r]``.

    ψ is the noise-free chain in eval mode with the teacher's BN statistics
    ``rmT``, ``rvT``; h, z, y, zstats, relu_sum are work arrays.
    """
    net.eval_rows(x, W, eps, rmT, rvT, h, z, y, zstats, relu_sum)
    C, d = A.shape
    for r in range(x.shape[0]):
        best = 0
        for c in range(C):
            s = 0.0
            for k in range(d):
                s += A[c, k] * h[r, k]
            T[r, c] = (s - mu[c]) / sd[c]
            if T[r, c] > T[r, best]:
                best = c
        labels[r] = best


@kernel
def _teacher_stats(s, W, A, c, a, b, eps, batches, m):
    """The teacher's BN statistics and output scale, from noise-free batches of the stream ``s``.

    BN statistics: cumulative average (PyTorch ``momentum=None``) over ``batches``
    training-mode batches of m rows; then μ and σ of ``A ψ(x)`` over as many
    fresh rows in eval mode. Returns ``(rm, rv, mu, sd)``.
    """
    depth, d = W.shape[0], W.shape[1]
    C = A.shape[0]
    x, h, z, y = np.empty((m, d)), np.empty((m, d)), np.empty((m, d)), np.empty((m, d))
    bmean, bvar = np.empty(d), np.empty(d)
    rm, rv = np.zeros((depth, d)), np.ones((depth, d))
    scratch = np.zeros(depth)
    net.train_chain(s, s, W, np.int64(net.NONE), np.uint64(0), 1.0, 0.0, c, a, b, eps, -1.0, batches, 0,
                     rm, rv, x, h, z, y, bmean, bvar, scratch)
    zstats = np.zeros((depth, d, 2))
    s1, s2 = np.zeros(C), np.zeros(C)
    for _ in range(batches):
        net.draw_inputs(s, x, c, a, b)
        net.eval_rows(x, W, eps, rm, rv, h, z, y, zstats, scratch)
        for r in range(m):
            for o in range(C):
                u = 0.0
                for k in range(d):
                    u += A[o, k] * h[r, k]
                s1[o] += u
                s2[o] += u * u
    n = batches * m
    mu = s1 / n
    sd = np.sqrt(np.maximum(s2 / n - mu * mu, 1e-300))
    return rm, rv, mu, sd


@kernel
def _accumulate_head(h, T, labels, G, B, f):
    """Add the rows of features h to the head's sums, ``f = [h_r, 1]``.

    ``G += f fᵀ`` (upper triangle only; mirrored after the last batch) and
    ``B += f [T_r, onehot(labels_r)]ᵀ``: the normal equations of least squares.
    """
    nf = f.size
    C = T.shape[1]
    for r in range(h.shape[0]):
        for k in range(nf - 1):
            f[k] = h[r, k]
        f[nf - 1] = 1.0
        for k1 in range(nf):
            fk = f[k1]
            if fk != 0.0:
                for k2 in range(k1, nf):
                    G[k1, k2] += fk * f[k2]
                for o in range(C):
                    B[k1, o] += fk * T[r, o]
                B[k1, C + labels[r]] += fk


@inline
def _fit_head(s_in, s_mask, chain, teach, code, rm, rv, G, B, work):
    """Train network ``code`` on ``steps`` batches (BN running statistics ``rm``, ``rv``) and sum the normal
    equations of its head (``G`` mirrored from its upper triangle), the teacher labelling each batch."""
    W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps, momentum = chain
    rmT, rvT, A, mu, sd = teach
    x, h, hT, z, y, T, labels, bmean, bvar, zstats, relu_sum, f, pred = work
    nf = G.shape[0]
    for step in range(steps):
        net.draw_inputs(s_in, x, c, a, b)
        teacher_batch(x, W, eps, rmT, rvT, A, mu, sd, T, labels, hT, z, y, zstats, relu_sum)
        net.train_batch(x, W, code, s_mask, threshold, inv_p, beta, eps, momentum, step + 1, rm, rv,
                         h, z, y, bmean, bvar, relu_sum)
        _accumulate_head(h, T, labels, G, B, f)
    for k1 in range(nf):
        for k2 in range(k1):
            G[k1, k2] = G[k2, k1]


@inline
def _score_rows(r, h, head, T, labels, pred, sums):
    """Add the first r eval rows' squared errors, accuracies and prediction–target moments to ``sums``
    (se, correct, agree, spt, sp, st, stt; a tuple, returned updated)."""
    se, correct, agree, spt, sp, st, stt = sums
    d, C = h.shape[1], T.shape[1]
    for row in range(r):
        for o in range(2 * C):
            s = head[d, o]
            for k in range(d):
                s += h[row, k] * head[k, o]
            pred[o] = s
        best = 0
        top = 0
        for o in range(C):
            t = T[row, o]
            e = pred[o] - t
            se += e * e
            spt += pred[o] * t
            sp += pred[o]
            st += t
            stt += t * t
            if pred[C + o] > pred[C + best]:
                best = o
            if pred[o] > pred[top]:
                top = o
        correct += 1.0 if best == labels[row] else 0.0
        agree += 1.0 if top == labels[row] else 0.0
    return se, correct, agree, spt, sp, st, stt


@inline
def _evaluate(s_eval, n_eval, chain, teach, rm, rv, head, work):
    """Eval mode on n_eval inputs of ``s_eval`` (batches of m): the sums of :func:`_score_rows`."""
    W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps, momentum = chain
    rmT, rvT, A, mu, sd = teach
    x, h, hT, z, y, T, labels, bmean, bvar, zstats, relu_sum, f, pred = work
    sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    done = 0
    while done < n_eval:
        r = min(m, n_eval - done)
        net.draw_inputs(s_eval, x[:r], c, a, b)
        teacher_batch(x[:r], W, eps, rmT, rvT, A, mu, sd, T[:r], labels[:r], hT[:r], z[:r], y[:r],
                       zstats, relu_sum)
        net.eval_rows(x[:r], W, eps, rm, rv, h[:r], z[:r], y[:r], zstats, relu_sum)
        sums = _score_rows(r, h, head, T, labels, pred, sums)
        done += r
    return sums


@kernel
def task_block(s_in0, s_mask0, s_eval0, n_eval, chain, teach, out):
    """One block: for every network, train, fit the head, evaluate on the same n_eval inputs.

    Parameters
    ----------
    chain : tuple
        ``(W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps, momentum)`` as in
        ``network_shift.shift_block``.
    teach : tuple
        ``(rmT, rvT, A, mu, sd)``: the teacher's BN statistics (depth × d), its readout A (classes × d) and
        the mean and SD (classes) that standardize its outputs.
    out : ndarray of shape (len(codes) * NQ, 5)
        Moments of one value per variable: variable ``i * NQ + q`` is quantity q of network i.

    Notes
    -----
    The head's sums G (d+1 × d+1) and B (d+1 × 2 classes) are float64 and
    allocated once: memory depends neither on ``steps`` nor on n_eval.
    """
    W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps, momentum = chain
    depth, d, C = W.shape[0], W.shape[1], teach[2].shape[0]
    nf = d + 1
    s_in, s_mask, s_eval = s_in0.copy(), s_mask0.copy(), s_eval0.copy()
    work = (np.empty((m, d)), np.empty((m, d)), np.empty((m, d)), np.empty((m, d)), np.empty((m, d)),
            np.empty((m, C)), np.empty(m, dtype=np.int64), np.empty(d), np.empty(d), np.zeros((depth, d, 2)),
            np.zeros(depth), np.empty(nf), np.empty(2 * C))  # x, h, hT, z, y, T, labels, bmean, bvar, …, f, pred
    x, h, z, y, bmean, bvar, relu_sum = work[0], work[1], work[3], work[4], work[7], work[8], work[10]
    rm, rv = np.empty((depth, d)), np.empty((depth, d))
    G, B = np.empty((nf, nf)), np.empty((nf, 2 * C))
    acc = np.zeros((codes.size * NQ, ACC_WIDTH))
    for i in range(codes.size):
        code = codes[i]
        copy_into(s_in0, s_in)
        copy_into(s_mask0, s_mask)
        rm[:, :] = 0.0
        rv[:, :] = 1.0
        G[:, :] = 0.0
        B[:, :] = 0.0
        _fit_head(s_in, s_mask, chain, teach, code, rm, rv, G, B, work)
        if code == net.RECAL:
            net.recalibrate_chain(s_in, s_in0, s_mask, W, c, a, b, eps, momentum, steps, rm, rv,
                             x, h, z, y, bmean, bvar, relu_sum)
        # Minimum-norm least squares: a feature can be constant on every training row (d = 1, small p).
        head = np.linalg.lstsq(G, B)[0]
        copy_into(s_eval0, s_eval)
        se, correct, agree, spt, sp, st, stt = _evaluate(s_eval, n_eval, chain, teach, rm, rv, head, work)
        n = n_eval * C
        push_value(acc, i * NQ + MSE, se / n)
        push_value(acc, i * NQ + ACC, correct / n_eval)
        push_value(acc, i * NQ + ARGMAX, agree / n_eval)
        push_value(acc, i * NQ + PT, spt / n)
        push_value(acc, i * NQ + PRED, sp / n)
        push_value(acc, i * NQ + TGT, st / n)
        push_value(acc, i * NQ + TT, stt / n)
    finish_moments(acc, out)


@threaded
def _task_blocks(key, first, count, base, rem, W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps,
                 momentum, rmT, rvT, A, mu, sd, out, maxima):
    """Engine kernel: block b is one training run, streams as in ``network_shift.shift_blocks``;
    see :func:`task_block`."""
    for j in range(count):
        blk = first + j
        task_block(block_state(key, 3 * blk), block_state(key, 3 * blk + 1), block_state(key, 3 * blk + 2),
                    base + (1 if blk < rem else 0), (W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps,
                                                     momentum), (rmT, rvT, A, mu, sd), out[j])


@threaded
def _ridge_blocks(key, first, count, base, rem, X, y, w, threshold, inv_p, out, maxima):
    """Moments of ``[‖y − X̃w‖², (X̃ᵀX̃)_{11}, (X̃ᵀX̃)_{12}, .., (X̃ᵀy)_1, ..]``, ``X̃ = X ∘ δ / p``, per block."""
    n, k = X.shape
    for j in range(count):
        blk = first + j
        s = block_state(key, blk)
        acc = np.zeros((1 + k * k + k, ACC_WIDTH))
        Xt = np.empty((n, k))
        for _ in range(base + (1 if blk < rem else 0)):
            loss = 0.0
            for r in range(n):
                o = 0.0
                for col in range(k):
                    Xt[r, col] = X[r, col] * next_keep(s, threshold) * inv_p
                    o += Xt[r, col] * w[col]
                e = y[r] - o
                loss += e * e
            push_value(acc, 0, loss)
            for c1 in range(k):
                for c2 in range(k):
                    g = 0.0
                    for r in range(n):
                        g += Xt[r, c1] * Xt[r, c2]
                    push_value(acc, 1 + c1 * k + c2, g)
            for col in range(k):
                g = 0.0
                for r in range(n):
                    g += Xt[r, col] * y[r]
                push_value(acc, 1 + k * k + col, g)
        finish_moments(acc, out[j])


@kernel
def ridge_enumerate(X, y, w, p):
    """Exact ``E‖y − X̃w‖²``, ``E[X̃ᵀX̃]`` and ``E[X̃ᵀy]`` summing, row by row, over all 2^k masks of a row.

    Rows have independent masks and every term is a sum over rows, so the
    expectation is exact with ``n 2^k`` terms instead of ``2^(n k)``.
    """
    n, k = X.shape
    loss = 0.0
    G = np.zeros((k, k))
    hv = np.zeros(k)
    xt = np.empty(k)
    for r in range(n):
        for mask in range(1 << k):
            prob = 1.0
            o = 0.0
            for col in range(k):
                if (mask >> col) & 1:
                    prob *= p
                    xt[col] = X[r, col] / p
                else:
                    prob *= 1.0 - p
                    xt[col] = 0.0
                o += xt[col] * w[col]
            e = y[r] - o
            loss += prob * e * e
            for c1 in range(k):
                hv[c1] += prob * xt[c1] * y[r]
                for c2 in range(k):
                    G[c1, c2] += prob * xt[c1] * xt[c2]
    return loss, G, hv


TEACHER_BATCHES, TEACHER_M = 64, 1024


def teacher(seed, W, classes, c, a, b, eps):
    """The teacher: readout A, BN statistics and output scale, fixed by the seed and the chain (not by p).

    Returns
    -------
    rm, rv : ndarray of shape (depth, d)
        BN statistics of the noise-free chain, cumulative average over
        ``TEACHER_BATCHES`` batches of ``TEACHER_M`` (large: its train/eval gap is small).
    A : ndarray of shape (classes, d)
        Gaussian rows scaled to unit norm.
    mu, sd : ndarray of shape (classes,)
        Mean and sd of ``A ψ(x)``, so that targets ``(A ψ(x) − μ)/σ`` have about mean 0 and variance 1.
    """
    depth, d = W.shape[0], W.shape[1]
    key = stream_key(seed, "task-teacher", d, depth, classes, c, a, b, eps)
    A = np.random.default_rng(key).normal(0.0, 1.0, (classes, d))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    rm, rv, mu, sd = _teacher_stats(block_state(key, 1), W, A, float(c), a, b, float(eps), TEACHER_BATCHES,
                                    TEACHER_M)
    return rm, rv, A, mu, sd


def ridge_setup(seed, rows, cols):
    """Fixed design X ~ N(0.5, 1), target y = X a + N(0, 0.25) noise and evaluation point w ~ N(0, 1)."""
    rng = np.random.default_rng(stream_key(seed, "task-impact", "ridge", rows, cols))
    X = rng.normal(0.5, 1.0, (rows, cols))
    y = X @ rng.normal(0.0, 1.0, cols) + rng.normal(0.0, 0.5, rows)
    return X, y, rng.normal(0.0, 1.0, cols)


def _validate(values):
    if values["rows"] < values["cols"]:
        raise ParameterError(f"rows={values['rows']} < cols={values['cols']}: XᵀX would be singular at p = 1")
    if values["steps"] * values["m"] <= values["d"] + 1:
        raise ParameterError(f"steps*m = {values['steps'] * values['m']}: the head needs more training rows "
                             f"than features (d + 1 = {values['d'] + 1})")
    if values["d"] * values["d"] * values["depth"] > 2 ** 26:
        raise ParameterError(f"d={values['d']}, depth={values['depth']}: the weights would exceed 512 MiB")


def _ratio(i, q):
    return lambda mom: mean_of(mom, i * NQ + q) / mean_of(mom, q)


def _slope(i):
    """Pooled slope of prediction on target, ``cov(pred, t) / var(t)`` over eval rows and outputs."""
    def f(mom):
        pt, p_, t_, tt = (mean_of(mom, i * NQ + q) for q in (PT, PRED, TGT, TT))
        return (pt - p_ * t_) / (tt - t_ * t_)
    return f


def _network_checks(sample, placements, task, params):
    """Measurements of the noise-free network (index 0) and of each placement relative to it."""
    reg, cls = task in ("regression", "both"), task in ("classification", "both")
    checks = []

    def add(quantity, setting, task, est, reference, formula):
        # A reference is printed only where it means something (ratio 1 = no harm); "0" is none.
        checks.append(Check(f"{quantity} ({setting})", "measurement", reference, est.value, est.mcse, params,
                            formula=formula, reference=reference != 0.0,
                            facts=Facts("C6-chain", quantity, setting=setting, task=task)))

    if reg:
        add("MSE", "none", "regression", sample.mean(MSE), 0.0,
            "eval mean of (head(φ) − t)² over outputs; Var(t) ≈ 1")
        add("slope", "none", "regression", sample.derived(_slope(0)), 1.0,
            "cov(prediction, target)/var(target) in eval mode")
    if cls:
        add("accuracy", "none", "classification", sample.mean(ACC), 0.0,
            "eval fraction where the least-squares classifier's argmax is the label")
        add("argmax accuracy", "none", "classification", sample.mean(ARGMAX), 0.0,
            "eval fraction where the regression head's argmax is the label")
    for i, pl in enumerate(placements, start=1):
        if reg:
            add("MSE/none", pl, "regression", sample.derived(_ratio(i, MSE)), 1.0,
                "eval MSE over that of the noise-free network (paired)")
            add("slope", pl, "regression", sample.derived(_slope(i)), 1.0,
                "cov(prediction, target)/var(target) in eval mode")
        if cls:
            add("accuracy/none", pl, "classification", sample.derived(_ratio(i, ACC)), 1.0,
                "eval accuracy of the least-squares classifier over that of the noise-free network (paired)")
            add("argmax/none", pl, "classification", sample.derived(_ratio(i, ARGMAX)), 1.0,
                "eval accuracy of the regression head's argmax over that of the noise-free network (paired)")
    return checks


def _ridge_checks(sample, X, y, w, p, params):
    k = X.shape[1]
    loss_form = cf.dropout_regression_loss(X, y, w, p)
    w_form = cf.dropout_ridge_minimizer(X, y, p)
    scale = float(np.max(np.abs(w_form)))

    def minimizer(mom):
        G = np.array([[mean_of(mom, 1 + a * k + b) for b in range(k)] for a in range(k)])
        hv = np.array([mean_of(mom, 1 + k * k + a) for a in range(k)])
        return np.linalg.solve(G, hv)

    est = sample.mean(0)
    checks = [Check("ridge loss", "exact", loss_form, est.value, est.mcse, params,
                    formula="E‖y − X̃w‖² = ‖y − Xw‖² + ((1−p)/p) wᵀ diag(XᵀX) w",
                    facts=Facts("C6-ridge", "ridge loss"))]
    for a in range(k):
        est = sample.derived(lambda mom, a=a: minimizer(mom)[a])
        checks.append(Check(f"ridge w*[{a + 1}]", "exact", float(w_form[a]), est.value, est.mcse, params,
                            formula="argmin of the mask-averaged loss vs (XᵀX + ((1−p)/p) diag XᵀX)⁻¹ Xᵀy",
                            scale=scale, facts=Facts("C6-ridge", "ridge w*", index=a + 1)))
    loss, G, hv = ridge_enumerate(X, y, w, float(p))
    w_enum = np.linalg.solve(G, hv)
    checks.append(Check("enum ridge loss", "enumeration", loss_form, float(loss), 0.0, params,
                        formula="E‖y − X̃w‖² summed over all masks of each row",
                        facts=Facts("C6-ridge", "enum ridge loss")))
    for a in range(k):
        checks.append(Check(f"enum ridge w*[{a + 1}]", "enumeration", float(w_form[a]), float(w_enum[a]), 0.0,
                            params, formula="argmin of E‖y − X̃w‖² from the enumerated normal equations",
                            scale=scale, facts=Facts("C6-ridge", "enum ridge w*", index=a + 1)))
    return checks


def run(p, q, ctx):
    """Measure C6 in closed form and by sampling: the shifted BN chain's effect on a regression head's
    MSE and a classifier's accuracy, and dropout-as-ridge enumerated exactly.

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    Per setting, each task quantity (MSE, accuracy, …) of the shifted chain; dropout-as-ridge's
    ``ridge loss`` and ``ridge w*[i]``, sampled and enumerated exactly (``enum``).
    """
    placements = q["placement"]
    W, codes, a, b, args = net.chain(ctx.seed, p, q)
    args = (*args, *teacher(ctx.seed, W, q["classes"], q["c"], a, b, q["eps"]))
    sample = run_engine(_task_blocks, args, len(codes) * NQ, ctx.samples, ctx.key("chain"),
                        where=ctx.where(), progress=ctx.bar("chain"))
    params = {"p": p, **q, "placement": list(placements), "training_runs": sample.n,
              "teacher": "t = (A ψ(x) − μ)/σ, ψ the noise-free chain; label argmax t",
              "head": "least squares on training-mode features + intercept"}
    checks = _network_checks(sample, placements, q["task"], params)
    X, y, w = ridge_setup(ctx.seed, q["rows"], q["cols"])
    ridge = run_engine(_ridge_blocks, (X, y, w, keep_threshold(p), 1.0 / p), 1 + q["cols"] ** 2 + q["cols"],
                       ctx.samples, ctx.key("ridge"), where=ctx.where(), progress=ctx.bar("ridge"))
    ridge_params = {"p": p, "rows": q["rows"], "cols": q["cols"], "X": X.round(6).tolist(),
                    "y": y.round(6).tolist(), "w": w.round(6).tolist()}
    return checks + _ridge_checks(ridge, X, y, w, p, ridge_params)


_CHAIN = ("setting", "task")  # the placement (or none) and the task of the frozen chain's head
_REG, _CLS = "task regression or both", "task classification or both"
_NONE, _PL = ("none",), net.PLACEMENTS  # the noise-free network; a placement of the noise

EXPERIMENT = Experiment(
    name="task-impact",
    claim_id="C6",
    claim="Regression, judged by its loss, suffers from dropout; classification, judged by the argmax, "
          "barely does (a heuristic of the document, measured here). Exact part: dropout on the inputs of "
          "least squares adds ((1−p)/p) wᵀ diag(XᵀX) w, a ridge-like penalty.",
    source="document's conclusion; Wager et al. 2013; Srivastava et al. 2014 §9.1",
    params=(
        *chain_params(depth=4),
        Param("task", "choice", "both", "which task's results to report", choices=TASKS),
        Param("classes", "int", 4, "teacher outputs: regression targets and classes", low=2, high=1024),
        Param("rows", "int", 8, "rows of the fixed design X of the ridge identity", low=1, high=256),
        Param("cols", "int", 4, "columns of X (masks enumerated per row: 2^cols)", low=1, high=ENUM_MAX_COLS),
    ),
    checks=(
        CheckSpec("MSE (none)", "measurement", "eval MSE of the noise-free network (targets have variance ≈ 1)",
                  ("MSE",), _CHAIN, settings=_NONE, subclaim="C6-chain", only=_REG),
        CheckSpec("slope (none)", "measurement", "cov(prediction, target)/var(target), noise-free network",
                  ("slope",), _CHAIN, settings=_NONE, subclaim="C6-chain", only=_REG),
        CheckSpec("accuracy (none)", "measurement", "eval accuracy of the least-squares one-hot classifier",
                  ("accuracy",), _CHAIN, settings=_NONE, subclaim="C6-chain", only=_CLS),
        CheckSpec("argmax accuracy (none)", "measurement", "eval accuracy of the regression head's argmax",
                  ("argmax accuracy",), _CHAIN, settings=_NONE, subclaim="C6-chain", only=_CLS),
        CheckSpec("MSE/none (pl)", "measurement", "eval MSE over the noise-free network's (paired)", ("MSE/none",),
                  _CHAIN, settings=_PL, subclaim="C6-chain", only=_REG),
        CheckSpec("slope (pl)", "measurement", "cov(prediction, target)/var(target): < 1 is shrinkage", ("slope",),
                  _CHAIN, settings=_PL, subclaim="C6-chain", only=_REG),
        CheckSpec("accuracy/none (pl)", "measurement", "classifier accuracy over the noise-free network's",
                  ("accuracy/none",), _CHAIN, settings=_PL, subclaim="C6-chain", only=_CLS),
        CheckSpec("argmax/none (pl)", "measurement", "regression argmax accuracy over the noise-free network's",
                  ("argmax/none",), _CHAIN, settings=_PL, subclaim="C6-chain", only=_CLS),
        CheckSpec("ridge loss", "exact", "mask-averaged ‖y − X̃w‖² vs ‖y − Xw‖² + ((1−p)/p) wᵀ diag(XᵀX) w",
                  ("ridge loss",), subclaim="C6-ridge"),
        CheckSpec("ridge w*[i]", "exact", "minimizer of the mask-averaged loss vs (XᵀX + ((1−p)/p) diag XᵀX)⁻¹ Xᵀy",
                  ("ridge w*",), ("index",), subclaim="C6-ridge"),
        CheckSpec("enum ridge *", "enumeration", "the same, summing over every mask of each row",
                  ("enum ridge loss", "enum ridge w*"), maybe=("index",), subclaim="C6-ridge"),
    ),
    run=run,
    subclaims=("C6-chain", "C6-ridge"),
    samples=65_536,
    notes="Chain: the first depth blocks of network-shift's (He weights fixed by seed and d; inputs N(c, v), "
          "correlation rho). Teacher: the noise-free chain in eval mode with BN statistics from a noise-free "
          "calibration (64 batches of 1024, cumulative average) and a readout A (classes × d, unit-norm "
          "Gaussian rows), all fixed by the seed, not by p; targets t = (A ψ(x) − μ)/σ (variance ≈ 1), label "
          "argmax_c t_c. Fitting rule: one least-squares head with intercept on the training-mode features "
          "(noise on, BN batch statistics) of the steps·m training rows, targets [t, onehot(label)]; the "
          "classifier predicts the argmax of the one-hot head; 'argmax' also judges the regression head by its "
          "argmax. Eval mode (noise off, running statistics) on samples/64 fresh inputs per run. One Monte "
          "Carlo sample = one training run + fit + eval set; 'none' = the same network without noise, run on "
          "the same inputs (ratios paired; exactly 1 at p = 1 except uout, whose noise does not depend on p). "
          "Ridge identity: fixed X (rows × cols) ~ N(0.5, 1), y = X a + noise, w ~ N(0, 1), from the seed.",
    validate=_validate,
    verify_points=({}, {"depth": 1}, {"depth": 8}, {"classes": 2, "rows": 12, "cols": 6}),
    headline=("MSE/none (before-bn)", "accuracy/none (before-bn)", "MSE/none (after-bn)",
              "accuracy/none (after-bn)", "MSE/none (uout)", "accuracy/none (uout)"),
)
