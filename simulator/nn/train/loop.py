"""One training run (:func:`run_task`, a block kernel) in steps, and the threaded driver :func:`train_chunk`.

Run r draws its split from block ``4r`` of the key, its initial weights from ``4r + 1``, its batch
order from ``4r + 2`` and its noise from ``4r + 3``. A run trains in one *mode* (the noise it trains
with) and evaluates up to three *variants* at each checkpoint: plain, recalibrated with dropout off,
recalibrated with dropout on; the recalibration passes draw from a copy of the noise stream, so
training itself stays paired with the other placements.
"""
import numpy as np

from ...core.arrays import copy_into
from ...core.engine import pool_of
from ...core.jit import inline, threaded
from ...core.rng import block_state
from ..batchnorm import MOMENTUM
from .config import K_DROPOUT, K_NONE, K_UOUT, M_HEAD, M_HIDDEN, M_UOUT, V_PLAIN, V_RECAL_ON, empty_recorder
from .data import prepare_run, shuffle_in_place
from .kernels import (
    Eval,
    Net,
    Work,
    backward,
    bn_moments,
    copy_rows,
    eval_metrics,
    forward_eval,
    forward_train,
    init_params,
    loss_and_grad,
    optimizer_step,
    recalibrate,
    transpose_weights,
)
from .layout import FOUT


@inline
def _new_net(key, run, lay, nparams):
    """The run's initial parameters (block ``4 run + 1``), their transposes, zero gradient and optimizer
    state, running mean 0 and variance 1."""
    depth = lay.shape[0] - 1
    width = lay[0, FOUT]
    theta = np.empty(nparams)
    init_params(block_state(key, 4 * run + 1), theta, lay)
    Wt = np.empty(nparams)
    transpose_weights(theta, lay, Wt)
    return Net(theta, Wt, np.zeros(nparams), np.zeros(nparams), np.zeros(nparams),
               np.zeros((depth, width)), np.ones((depth, width)))


@inline
def _new_work(f, lay, batch):
    """The batch work arrays of a network with layer table ``lay`` and ``f`` inputs."""
    depth = lay.shape[0] - 1
    width = lay[0, FOUT]
    n_out = lay[depth, FOUT]
    return Work(np.empty((batch, f)), np.empty(batch), np.empty((depth, batch, width)),
                np.empty((depth, batch, width)), np.empty((depth, batch, width)), np.empty((depth, batch, width)),
                np.empty((depth, width)), np.empty((depth, width)), np.empty((batch, n_out)),
                np.empty((batch, n_out)), np.empty((batch, width)), np.empty((batch, width)),
                np.empty((batch, width)))


@inline
def _new_eval(n_test, lay, batch):
    """The evaluation work arrays for ``n_test`` test rows."""
    depth = lay.shape[0] - 1
    width = lay[0, FOUT]
    n_out = lay[depth, FOUT]
    return Eval(np.empty((depth, n_test, width)), np.empty((depth, n_test, width)), np.empty((n_test, n_out)),
                np.empty((depth, width)), np.empty((depth, width)), np.empty(4, dtype=np.uint64),
                np.empty(depth), np.empty(depth), np.empty(depth), np.empty(depth),
                np.empty((0, depth, batch, width)))


@inline
def _mode_kinds(mode, depth):
    """The noise kind at each hidden position for training mode ``mode``."""
    kinds = np.zeros(depth, dtype=np.int64)
    if mode == M_HIDDEN:
        kinds[:] = K_DROPOUT
    elif mode == M_UOUT:
        kinds[:] = K_UOUT
    elif mode == M_HEAD:
        kinds[depth - 1] = K_DROPOUT
    return kinds


@inline
def _step(w, m, net, lay, spec, kinds, s_noise, t):
    """Optimizer step t on the batch in ``w``: forward, loss, backward, update. False: the loss is not finite."""
    forward_train(w, m, net, lay, spec, kinds, s_noise, MOMENTUM, t)
    loss = loss_and_grad(w.out, w.yb, m, spec.classes, w.dout)
    if not np.isfinite(loss):
        return False
    backward(w, m, net, lay, spec.bn)
    optimizer_step(net, t, spec, lay)
    return True


@inline
def _epoch(Xtr, ytr, net, w, lay, spec, kinds, s_order, s_noise, order, t, rec):
    """One epoch over a fresh shuffle of the training rows; returns ``(steps so far, failed)``.

    A final batch of one row is skipped (BN cannot train on it), and any short final batch when
    ``spec.drop_last``; with a recorder, training stops after ``rec.order.shape[0]`` steps and every
    step's rows and noise are recorded.
    """
    n_train, f = Xtr.shape
    batch = spec.batch
    tracing = rec.order.shape[0] > 0
    for i in range(n_train):
        order[i] = i
    shuffle_in_place(s_order, order)
    for start in range(0, n_train, batch):
        m = min(batch, n_train - start)
        if m == 1 or (spec.drop_last and m < batch):
            continue  # BN cannot train on one row; drop_last: no short batch at all
        if tracing and t == rec.order.shape[0]:
            break
        for i in range(m):
            for j in range(f):
                w.xb[i, j] = Xtr[order[start + i], j]
            w.yb[i] = ytr[order[start + i]]
        t += 1
        if not _step(w, m, net, lay, spec, kinds, s_noise, t):
            return t, True
        if tracing:
            for i in range(m):
                rec.order[t - 1, i] = order[start + i]
            copy_rows(w.NM, rec.noise[t - 1], m)
    return t, False


@inline
def _variant_statistics(v, mode, s2_noise, Xtr, net, w, ev, lay, spec, s_noise):
    """Put variant v's running statistics in ``ev.rm2``, ``ev.rv2``; return the s² its BNs last saw.

    Plain: the training's own statistics (s² of the noise for hidden and uout training, else 0).
    Recalibrated: re-estimated from a copy of the noise stream, dropout off (s² = 0) or on.
    """
    if v == V_PLAIN:
        copy_into(net.rm, ev.rm2)
        copy_into(net.rv, ev.rv2)
        return s2_noise if mode == M_HIDDEN or mode == M_UOUT else 0.0
    # The pass draws from a copy of the noise stream: training stays paired with hidden.
    copy_into(s_noise, ev.s_copy)
    kind = K_DROPOUT if v == V_RECAL_ON else K_NONE
    recalibrate(Xtr, net, lay, spec, kind, ev.s_copy, w, ev.rm2, ev.rv2, ev.empty_noise)
    return s2_noise if v == V_RECAL_ON else 0.0


@inline
def _write_final(run, col, ev, lay, net, s2, bn, out):
    """After the last epoch: variant ``col``'s BN statistics (:func:`kernels.bn_moments`) into ``out``."""
    if bn:
        bn_moments(lay, net.theta, ev, s2)
        copy_into(ev.real, out.bn_real[run, col])
        copy_into(ev.running, out.bn_running[run, col])
        copy_into(ev.predicted, out.bn_predicted[run, col])
        copy_into(ev.li, out.li_max[run, col])


@inline
def _checkpoint(run, mode, variants, s2_noise, k, final, sets, net, w, ev, lay, spec, s_noise, out):
    """Evaluate every requested variant on the test rows after checkpoint k; the metrics too when ``final``."""
    Xtr, ytr, Xte, yte = sets
    for v in range(3):
        col = variants[v]
        if col < 0:
            continue
        s2 = _variant_statistics(v, mode, s2_noise, Xtr, net, w, ev, lay, spec, s_noise)
        forward_eval(Xte, net, lay, spec.bn, ev)
        e_mse, e_acc, e_ce = eval_metrics(ev.oute, yte, spec.classes)
        out.curve[run, col, k] = e_mse if spec.classes == 1 else e_acc
        if final:
            out.mse[run, col], out.acc[run, col], out.ce[run, col] = e_mse, e_acc, e_ce
            _write_final(run, col, ev, lay, net, s2, spec.bn, out)


@inline
def _record_end(Xtr, net, w, ev, lay, spec, s_noise, rec):
    """For :func:`simulator.nn.train.trace`: the final parameters and statistics, and both recalibrations."""
    copy_into(net.theta, rec.theta[1])
    copy_into(net.rm, rec.stats[0, 0])
    copy_into(net.rv, rec.stats[0, 1])
    if spec.bn:
        for v in (1, 2):
            copy_into(s_noise, ev.s_copy)
            kind = K_DROPOUT if v == V_RECAL_ON else K_NONE
            recalibrate(Xtr, net, lay, spec, kind, ev.s_copy, w, ev.rm2, ev.rv2,
                        rec.recal_noise if v == 2 else ev.empty_noise)
            copy_into(ev.rm2, rec.stats[v, 0])
            copy_into(ev.rv2, rec.stats[v, 1])


@inline
def _split(key, run, task, spec):
    """Run ``run``'s ``(Xfit, yfit, Xte, yte)`` and validation ``(Xval, yval)`` (:func:`data.prepare_run`): the
    last ``spec.n_val`` training rows are the validation split (none without early stopping)."""
    n, f = task.X.shape
    n_train = n - spec.n_test
    Xtr, ytr = np.empty((n_train, f)), np.empty(n_train)
    Xte, yte = np.empty((spec.n_test, f)), np.empty(spec.n_test)
    prepare_run(key, run, task.X, task.y, spec.target, spec.n_test, Xtr, ytr, Xte, yte)
    n_fit = n_train - spec.n_val
    return (Xtr[:n_fit], ytr[:n_fit], Xte, yte), (Xtr[n_fit:], ytr[n_fit:])


@inline
def _validation_loss(val, net, lay, spec, ev):
    """The eval-mode loss on the validation rows: MSE, or cross-entropy for a classifier."""
    copy_into(net.rm, ev.rm2)
    copy_into(net.rv, ev.rv2)
    forward_eval(val[0], net, lay, spec.bn, ev)
    e_mse, e_acc, e_ce = eval_metrics(ev.oute, val[1], spec.classes)
    return e_mse if spec.classes == 1 else e_ce


@inline
def _keep_if_best(loss, epoch, best, net):
    """Keep the parameters and BN statistics when ``loss`` is the lowest yet; return the best epoch."""
    if loss < best[3][0]:
        best[3][0] = loss
        copy_into(net.theta, best[0])
        copy_into(net.rm, best[1])
        copy_into(net.rv, best[2])
        return epoch
    return -1


@inline
def _restore(best, net, lay):
    """Put the kept parameters and BN statistics back (and the transposed weights the passes use)."""
    copy_into(best[0], net.theta)
    copy_into(best[1], net.rm)
    copy_into(best[2], net.rv)
    transpose_weights(net.theta, lay, net.Wt)


@inline
def _early_stop(run, variants, epoch, best_epoch, val, net, lay, spec, ev_val, best, out):
    """After an epoch with early stopping: record the validation loss, keep the best; ``(best, stop)``."""
    loss = _validation_loss(val, net, lay, spec, ev_val)
    for v in range(3):
        if variants[v] >= 0:
            out.val_loss[run, variants[v], epoch - 1] = loss
    if _keep_if_best(loss, epoch, best, net) > 0:
        return epoch, False
    return best_epoch, epoch - best_epoch >= spec.patience


@inline
def _mark(out, run, variants, best_epoch):
    """The epoch whose parameters were tested, for every requested variant."""
    for v in range(3):
        if variants[v] >= 0:
            out.best_epoch[run, variants[v]] = best_epoch


@threaded
def run_task(key, run, mode, variants, s2_noise, task, spec, out, rec):
    """Train run ``run`` in training mode ``mode``; write the requested evaluation variants.

    Parameters
    ----------
    variants : ndarray of shape (3,), int64
        Output column (placement index) of the plain, recalibrated (dropout
        off) and recalibrated (dropout on) evaluations; −1: not requested.
    s2_noise : float
        s² of the training noise at the hidden positions ((1−p)/p or β²/3).
    task : config.TaskArrays
    spec : config.Spec
    out : config.Outputs
        Only the columns named in ``variants``, row ``run``, are written.
    rec : config.Recorder
        For :func:`simulator.nn.train.trace`; empty arrays otherwise.
    """
    lay = task.lay
    sets, val = _split(key, run, task, spec)
    Xtr = sets[0]
    net = _new_net(key, run, lay, spec.nparams)
    s_order = block_state(key, 4 * run + 2)
    s_noise = block_state(key, 4 * run + 3)
    kinds = _mode_kinds(mode, lay.shape[0] - 1)
    w = _new_work(task.X.shape[1], lay, spec.batch)
    ev = _new_eval(spec.n_test, lay, spec.batch)
    tracing = rec.order.shape[0] > 0
    if tracing:
        copy_into(net.theta, rec.theta[0])
    order = np.empty(Xtr.shape[0], dtype=np.int64)
    t = 0
    k_next = 0
    best = (net.theta.copy(), net.rm.copy(), net.rv.copy(), np.full(1, np.inf))
    ev_val = _new_eval(spec.n_val, lay, spec.batch)
    best_epoch = 0 if spec.patience > 0 else spec.epochs
    for epoch in range(1, spec.epochs + 1):
        t, failed = _epoch(Xtr, sets[1], net, w, lay, spec, kinds, s_order, s_noise, order, t, rec)
        if failed:
            for v in range(3):
                if variants[v] >= 0:
                    out.diverged[run, variants[v]] = True
            return
        if tracing:
            if t == rec.order.shape[0] or epoch == spec.epochs:
                break
            continue
        if spec.patience > 0:
            best_epoch, stop = _early_stop(run, variants, epoch, best_epoch, val, net, lay, spec, ev_val, best, out)
            if stop:
                break
            continue
        if epoch != task.checkpoints[k_next]:
            continue
        _checkpoint(run, mode, variants, s2_noise, k_next, epoch == spec.epochs, sets, net, w, ev, lay, spec,
                    s_noise, out)
        k_next += 1
    if spec.patience > 0 and not tracing:
        _restore(best, net, lay)
        _checkpoint(run, mode, variants, s2_noise, 0, True, sets, net, w, ev, lay, spec, s_noise, out)
    _mark(out, run, variants, best_epoch)
    if tracing:
        _record_end(Xtr, net, w, ev, lay, spec, s_noise, rec)


def train_chunk(first, count, threads, key, modes, variants, s2, task, spec, out):
    """Tasks ``first .. first+count−1`` on ``threads`` threads; task q is run ``q // T`` in mode ``modes[q % T]``.

    :func:`run_task` releases the GIL, so Python threads run it in parallel
    (a ``prange`` kernel would have LLVM optimise the whole training code a
    second time on first use: about 35 s of compilation). Each task writes
    only its own (run, placement) slots, so the result does not depend on the
    thread count or the scheduling.
    """
    T = modes.size
    lay = task.lay
    rec = empty_recorder(lay.shape[0] - 1, int(lay[0, FOUT]), spec.batch, spec.nparams)

    def one(q):
        run, j = q // T, q % T
        run_task(key, run, modes[j], variants[j], s2[j], task, spec, out, rec)

    if threads <= 1 or count <= 1:
        for q in range(first, first + count):
            one(q)
        return
    with pool_of(min(threads, count)) as pool:
        for _ in pool.map(one, range(first, first + count)):
            pass

