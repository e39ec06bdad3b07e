"""C5 (deep part) — the variance shift in a chain of Linear → BN → ReLU blocks (Li et al., CVPR 2019).

The chain of :mod:`simulator.nn.chain` runs ``steps`` training batches of size m
(noise on, BN batch statistics, running statistics accumulated), then eval mode
(noise off, running statistics) on fresh inputs. Per BN layer it measures the
real variance of the BN input in eval mode against ``running_var``, Li et al.'s
``max(real/moving, moving/real)``, and the change of the post-ReLU mean between
training and eval mode.

The Monte Carlo unit is one *training run*: each block of the engine draws its
own training sequence (so its running statistics are one independent
realization), then evaluates ``samples / blocks`` fresh inputs, and pushes one
value per quantity. Estimates are means over the independent runs (64 up to
about a million samples), so their MCSE covers the randomness of the running
statistics. All placements and the noise-free network run on the same inputs
(common random numbers), so differences between them are paired and exactly 0
where the networks coincide (p = 1, or a remedy that keeps noise from every BN).
"""
import numpy as np

from ..core.arrays import copy_into
from ..core.engine import run as run_engine
from ..core.errors import ParameterError
from ..core.jit import inline, kernel, threaded
from ..core.rng import block_state
from ..core.stats import ACC_WIDTH, finish_moments, mean_of, push_value
from ..nn import chain as net
from ..nn.batchnorm import EPS, MOMENTUM
from ..theory import closed_forms as cf
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, Param

# Per (network, layer): real variance of the BN input, running_var, Li et al.'s max ratio
# max(r, 1/r) with r = (real + eps)/(running_var + eps), post-ReLU mean in training mode and in
# eval mode (each averaged over units).
REAL, MOVING, LI, RELU_TRAIN, RELU_EVAL = range(5)
NQ = 5


@inline
def _eval_chain(s_eval, n_eval, W, c, a, b, eps, rm, rv, x, h, z, y, zstats, relu_eval):
    """Eval mode on n_eval inputs of ``s_eval``, in batches of the training batch size: each layer's
    pre-BN sums of z and z² per unit (``zstats``) and its post-ReLU total (``relu_eval``)."""
    m = x.shape[0]
    zstats[:, :, :] = 0.0
    relu_eval[:] = 0.0
    done = 0
    while done < n_eval:
        r = min(m, n_eval - done)
        net.draw_inputs(s_eval, x[:r], c, a, b)
        net.eval_rows(x[:r], W, eps, rm, rv, h[:r], z[:r], y[:r], zstats, relu_eval)
        done += r


@inline
def _push_layers(acc, i, zstats, rv, relu_train, relu_eval, n_eval, eps, rows):
    """Push network i's per-layer quantities (REAL, MOVING, LI, RELU_TRAIN, RELU_EVAL; unit means) into
    ``acc``; ``rows`` is the number of training rows (steps · m)."""
    depth, d = zstats.shape[0], zstats.shape[1]
    for layer in range(depth):
        real_sum = 0.0
        moving_sum = 0.0
        li_sum = 0.0
        for k in range(d):
            s1, s2 = zstats[layer, k, 0], zstats[layer, k, 1]
            real = max(s2 - s1 * s1 / n_eval, 0.0) / (n_eval - 1)
            moving = rv[layer, k]
            real_sum += real
            moving_sum += moving
            # eps as in BN keeps it finite when a unit is 0 on every eval input (d = 1, small p).
            r = (real + eps) / (moving + eps)
            li_sum += max(r, 1.0 / r)
        row = (i * depth + layer) * NQ
        push_value(acc, row + REAL, real_sum / d)
        push_value(acc, row + MOVING, moving_sum / d)
        push_value(acc, row + LI, li_sum / d)
        push_value(acc, row + RELU_TRAIN, relu_train[layer] / (rows * d))
        push_value(acc, row + RELU_EVAL, relu_eval[layer] / (n_eval * d))


@kernel
def shift_block(s_in0, s_mask0, s_eval0, n_eval, W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps,
                 momentum, out):
    """One block: train every network in ``codes`` on the same batches, evaluate on the same n_eval inputs.

    Parameters
    ----------
    s_in0, s_mask0, s_eval0 : ndarray of shape (4,), dtype uint64
        Start states of the input, mask and eval streams (left unchanged: every
        network restarts from them, so all see the same numbers).
    W : ndarray of shape (depth, d, d)
        The chain's weights (``network.he_weights``).
    codes : ndarray of int64
        Placement codes of the networks (``network.CODES``).
    threshold, inv_p : uint64, float
        Keep gate threshold and 1/p of the dropout.
    beta : float
        Uout half-width.
    c, a, b : float
        Inputs ``x = c + a g + b g₀`` (``network.input_scales``).
    m, steps : int
        Batch size and number of training batches.
    eps, momentum : float
        BN eps and momentum (negative: cumulative average).
    out : ndarray of shape (len(codes) * depth * NQ, 5)
        Moments of one value per variable: variable ``(i * depth + l) * NQ + q``
        is quantity q of layer l of network i.

    Notes
    -----
    Memory is allocated once here and depends neither on ``steps`` nor on n_eval.
    """
    depth, d = W.shape[0], W.shape[1]
    nnet = codes.size
    s_in, s_mask, s_eval = s_in0.copy(), s_mask0.copy(), s_eval0.copy()
    x, h, z, y = np.empty((m, d)), np.empty((m, d)), np.empty((m, d)), np.empty((m, d))
    bmean, bvar = np.empty(d), np.empty(d)
    rm, rv = np.empty((depth, d)), np.empty((depth, d))
    zstats = np.empty((depth, d, 2))
    relu_train, relu_eval, scratch = np.empty(depth), np.empty(depth), np.empty(depth)
    acc = np.zeros((nnet * depth * NQ, ACC_WIDTH))
    for i in range(nnet):
        code = codes[i]
        copy_into(s_in0, s_in)
        copy_into(s_mask0, s_mask)
        rm[:, :] = 0.0
        rv[:, :] = 1.0
        relu_train[:] = 0.0
        net.train_chain(s_in, s_mask, W, code, threshold, inv_p, beta, c, a, b, eps, momentum, steps, 0,
                         rm, rv, x, h, z, y, bmean, bvar, relu_train)
        if code == net.RECAL:
            net.recalibrate_chain(s_in, s_in0, s_mask, W, c, a, b, eps, momentum, steps, rm, rv,
                             x, h, z, y, bmean, bvar, scratch)
        copy_into(s_eval0, s_eval)
        _eval_chain(s_eval, n_eval, W, c, a, b, eps, rm, rv, x, h, z, y, zstats, relu_eval)
        _push_layers(acc, i, zstats, rv, relu_train, relu_eval, n_eval, eps, steps * m)
    finish_moments(acc, out)


@threaded
def shift_blocks(key, first, count, base, rem, W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps,
                  momentum, out, maxima):
    """Engine kernel: block b is one training run (streams ``3b``, ``3b + 1``, ``3b + 2`` of ``key``
    for inputs, masks and eval inputs) with ``base + (b < rem)`` eval inputs; see :func:`shift_block`."""
    for j in range(count):
        blk = first + j
        shift_block(block_state(key, 3 * blk), block_state(key, 3 * blk + 1), block_state(key, 3 * blk + 2),
                     base + (1 if blk < rem else 0), W, codes, threshold, inv_p, beta, c, a, b, m, steps, eps,
                     momentum, out[j])


def layer_one_forms(W0, placement, p, beta, c, v, rho, momentum, steps):
    """Closed forms of the first BN layer, averaged over its d units.

    Returns
    -------
    real : float
        Mean over units of ``Var_test`` of the BN input (eval mode: no noise).
    moving : float
        Mean over units of ``E[running_var]`` after training (or recalibration).

    Notes
    -----
    Per unit k with weights ``w_k`` (column k of ``W0``), the weighted-sum case
    of C5: ``Var_train = ((1 + s²)(c² + v) − c²)‖w‖² + ρ v ‖w‖² (d cos²θ − 1)``,
    ``Var_test = v‖w‖² + ρ v ‖w‖² (d cos²θ − 1)`` with s² = (1 − p)/p for
    dropout, β²/3 for Uout and 0 for no noise (``closed_forms.weighted_sum_variances``).
    Rows of a training batch are i.i.d., so the unbiased batch variance has
    expectation ``Var_train`` and the running variance
    ``E[rv] = (1 − f)^steps + (1 − (1 − f)^steps) Var_train`` (C4,
    ``closed_forms.running_var_expectation``; f the momentum; the cumulative
    average gives ``Var_train``). ``recalibrated`` re-estimates with no noise.
    """
    if placement == "before-bn":
        s2 = cf.noise_variance("dropout", p)
    elif placement == "uout":
        s2 = cf.noise_variance("uout", p, beta)
    else:
        s2 = 0.0
    train, test = zip(*(cf.weighted_sum_variances(c, v, s2, rho, W0[:, k]) for k in range(W0.shape[1])))
    moving = [cf.running_var_expectation(t, momentum, steps) for t in train]
    return float(np.mean(test)), float(np.mean(moving))


def _validate(values):
    if values["d"] * values["d"] * values["depth"] > 2 ** 26:
        raise ParameterError(f"d={values['d']}, depth={values['depth']}: the weights would exceed 512 MiB")


def _ratio(i, depth, layer):
    row = (i * depth + layer) * NQ
    return lambda mom: mean_of(mom, row + REAL) / mean_of(mom, row + MOVING)


def _relu_shift(i, depth, layer):
    """(eval − train) post-ReLU mean of network i, minus the same for the noise-free network 0."""
    row, row0 = (i * depth + layer) * NQ, layer * NQ
    return lambda mom: ((mean_of(mom, row + RELU_EVAL) - mean_of(mom, row + RELU_TRAIN))
                        - (mean_of(mom, row0 + RELU_EVAL) - mean_of(mom, row0 + RELU_TRAIN)))


def chain_params(depth):
    """The parameters of the chain, shared by the experiments that run one; ``depth`` is the default depth."""
    return (
        Param("d", "int", 16, "width of every block (and of the input)", low=1, high=4096),
        Param("depth", "int", depth, "number of Linear → BN → ReLU blocks", low=1, high=64),
        Param("m", "int", 32, "batch size (training)", low=2, high=65536),
        Param("steps", "int", 60, "training batches (running statistics, and the head fit in task-impact)",
              low=1, high=10_000_000),
        Param("placement", "choices", net.PLACEMENTS,
              "where the noise goes (the noise-free network is always run too)", choices=net.PLACEMENTS),
        Param("beta", "float", 0.1, "Uout half-width β (placement uout; independent of p)", low=0.0, high=1.0),
        Param("momentum", "float", MOMENTUM, "BN momentum (PyTorch); none: cumulative average", low=0.0,
              high=1.0, low_open=True, none=True),
        Param("eps", "float", EPS, "BN eps", low=0.0, low_open=True),
        Param("c", "float", 0.0, "mean of the inputs"),
        Param("v", "float", 1.0, "variance of the inputs", low=0.0, low_open=True),
        Param("rho", "float", 0.0, "pairwise correlation of the inputs", low=0.0, high=1.0, high_open=True),
    )


def _facts(quantity, layer, placement):
    """The facts of a check of BN layer ``layer`` (0-based) with the noise at ``placement``."""
    return Facts(quantity=quantity, layer=layer + 1, setting=placement)


def run(p, q, ctx):
    """Measure C5 in a trained chain: per layer, the variance shift between the running statistics and
    the test-time activations for the placement, against Li et al.'s bound.

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    Per layer and placement: the variance ``ratio`` and ``running_var`` against Li et al.'s closed form,
    ``Li max`` and the ``ReLU shift``; the ``none`` placement's ratios as the control.
    """
    depth, steps = q["depth"], q["steps"]
    c, v, rho, beta, momentum = q["c"], q["v"], q["rho"], q["beta"], q["momentum"]
    placements = q["placement"]
    W, codes, _, _, args = net.chain(ctx.seed, p, q)
    sample = run_engine(shift_blocks, args, len(codes) * depth * NQ, ctx.samples, ctx.key("chain"),
                        where=ctx.where(), progress=ctx.bar("chain"))
    params = {"p": p, **q, "placement": list(placements), "init": "He normal N(0, 2/d), seed-fixed",
              "training_runs": sample.n}
    checks = []
    real_form, _ = layer_one_forms(W[0], "before-bn", p, beta, c, v, rho, momentum, steps)
    est = sample.mean(REAL)
    checks.append(Check("L1 real var", "exact", real_form, est.value, est.mcse, params,
                        formula="mean_k Var_test = v‖w_k‖² + ρv‖w_k‖²(d cos²θ_k − 1)",
                        facts=Facts(quantity="real var", layer=1)))
    for i, pl in enumerate(placements, start=1):
        _, moving_form = layer_one_forms(W[0], pl, p, beta, c, v, rho, momentum, steps)
        est = sample.mean(i * depth * NQ + MOVING)
        checks.append(Check(f"L1 running_var ({pl})", "exact", moving_form, est.value, est.mcse, params,
                            formula="mean_k E[rv_k] = (1−f)^steps + (1−(1−f)^steps) Var_train,k (C4 + C5)",
                            facts=_facts("running_var", 0, pl)))
        est = sample.derived(_ratio(i, depth, 0))
        checks.append(Check(f"L1 ratio ({pl})", "exact", real_form / moving_form, est.value, est.mcse,
                            params, formula="Σ_k Var_test,k / Σ_k E[rv_k] (→ Δ(p, d) as steps grow)",
                            facts=_facts("ratio", 0, pl)))
    for layer in range(depth):
        est = sample.derived(_ratio(0, depth, layer))
        checks.append(Check(f"L{layer + 1} ratio (none)", "measurement", 1.0, est.value, est.mcse,
                            params, formula="Σ_k real_k / Σ_k running_var_k, noise-free network", reference=True,
                            facts=_facts("ratio", layer, "none")))
    for i, pl in enumerate(placements, start=1):
        row = i * depth * NQ
        remedy = pl in ("after-bn", "recalibrated")
        for layer in range(depth):
            base, this = _ratio(0, depth, layer), _ratio(i, depth, layer)
            est = sample.derived(lambda mom, this=this, base=base: this(mom) / base(mom))
            name = f"L{layer + 1} ratio/none ({pl})"
            formula = "real/moving of this network over that of the noise-free one (paired)"
            if remedy:
                checks.append(Check(name, "exact", 1.0, est.value, est.mcse, params,
                                    formula=formula + ": 1, no BN sees noise",
                                    facts=_facts("ratio/none", layer, pl)))
                continue
            li = sample.mean(row + layer * NQ + LI)
            shift = sample.derived(_relu_shift(i, depth, layer))
            checks += [
                Check(name, "measurement", 1.0, est.value, est.mcse, params, formula=formula, reference=True,
                      facts=_facts("ratio/none", layer, pl)),
                Check(f"L{layer + 1} Li max ({pl})", "measurement", 1.0, li.value, li.mcse, params,
                      formula="mean_k max(r, 1/r), r = (real + eps)/(moving + eps) (Li et al. 2019)", reference=True,
                      facts=_facts("Li max", layer, pl)),
                Check(f"L{layer + 1} ReLU shift ({pl})", "measurement", 0.0, shift.value, shift.mcse, params,
                      formula="(eval − train) post-ReLU mean, minus that of the noise-free network", reference=True,
                      facts=_facts("ReLU shift", layer, pl)),
            ]
    return checks


_LAYER = ("layer", "setting")  # a BN layer and the noise's placement (or none)
_PL = net.PLACEMENTS
_NOISED = "placement before-bn or uout (a BN sees the noise)"

EXPERIMENT = Experiment(
    name="network-shift",
    claim_id="C5",
    claim="Dropout before BN makes BN's running variance (learned with noise) larger than the real "
          "variance at inference; the shift is Δ(p) at the first layer and compounds with depth. "
          "Dropout after the last BN, re-estimated BN statistics and Uout noise remove or shrink it.",
    source="document's conclusion; Li et al., CVPR 2019",
    params=(
        *chain_params(depth=8),
    ),
    checks=(
        CheckSpec("L1 real var", "exact", "first BN input: eval variance vs v‖w‖² (+ρ term), mean over units",
                  ("real var",), ("layer",)),
        CheckSpec("L1 running_var (pl)", "exact", "first BN running_var vs the C4 expectation of Var_train (C5)",
                  ("running_var",), _LAYER, settings=_PL),
        CheckSpec("L1 ratio (pl)", "exact", "first BN real/moving, Σ_k real / Σ_k running_var, vs "
                  "Σ Var_test / Σ E[rv] (→ Δ(p))", ("ratio",), _LAYER, settings=_PL),
        CheckSpec("Ll ratio (none)", "measurement", "layer l: real/moving of the noise-free network "
                  "(BN's own train/eval gap)", ("ratio",), _LAYER, settings=("none",)),
        CheckSpec("Ll ratio/none (pl)", "measurement", "before-bn, uout: ratio over the noise-free network's "
                  "(paired): how the shift compounds with depth", ("ratio/none",), _LAYER, settings=_PL,
                  only=_NOISED),
        CheckSpec("Ll Li max (pl)", "measurement", "before-bn, uout: mean_k max(r, 1/r), r = (real + eps)/"
                  "(moving + eps) (Li et al.)", ("Li max",), _LAYER, settings=_PL, only=_NOISED),
        CheckSpec("Ll ReLU shift (pl)", "measurement", "before-bn, uout: (eval − train) post-ReLU mean minus "
                  "the noise-free network's", ("ReLU shift",), _LAYER, settings=_PL, only=_NOISED),
        CheckSpec("Ll ratio/none (pl)", "exact", "after-bn, recalibrated: 1 (paired; no BN sees noise)",
                  ("ratio/none",), _LAYER, settings=_PL, only="placement after-bn or recalibrated"),
    ),
    run=run,
    samples=16_384,
    notes="Weights W_l ~ N(0, 2/d) (He, fan-in), no Linear bias, BN γ = 1, β = 0, fixed by (seed, d) and "
          "shared with task-impact; inputs N(c, v) with correlation rho. Dropout is inverted, p = KEEP "
          "probability; Uout ignores p. One Monte Carlo sample = one independent training run (steps "
          "batches of m) followed by samples/64 eval inputs, so the MCSE covers the randomness of the "
          "running statistics (64 runs up to ~1M samples). ratio = real/moving pooled over units; 'none' = "
          "the same chain without noise. Every network sees the same inputs and masks: "
          "remedies that keep noise from BN reproduce the noise-free statistics exactly (frozen weights). "
          "recalibrated = reset running stats, then one pass in training mode with dropout off over the "
          "same training batches, same momentum. Layer l of a deep chain is the last layer of a chain of "
          "depth l (same weights), so one run shows depths 1..depth.",
    validate=_validate,
    verify_points=({}, {"d": 1, "depth": 2}, {"c": 0.5, "rho": 0.3, "momentum": None, "depth": 3},
                   {"m": 128, "steps": 100, "depth": 4}),
    headline=("L1 ratio/none (before-bn)", "L8 ratio/none (before-bn)", "L8 ratio/none (uout)"),
)
