"""From per-batch sums at each BatchNorm to the audit's numbers: ratio, prediction, MCSE, verdict.

Framework-free (numpy only): the PyTorch path (:mod:`.torch_model`) and the
layer-spec path (:mod:`.arch`) both fill a :class:`LayerRecord` per BN layer and
an :class:`OutputRecord`, batch by batch, and read the rows from here.

Notes
-----
Per BN channel c (axis 1; statistics over all other axes):

- measured ratio ``r_c = V_c / R_c``: V_c the variance of BN's input in eval
  mode over the data, R_c its running_var (Li et al. 2019 plot
  ``max(V/R, R/V)``, reported as its mean over channels);
- predicted running variance for a dropout → (Linear | Conv | nothing) → BN
  structure (docs/theory.md, C5): ``Var_train = V + T`` with
  ``T = s² Σ_(mask groups) E[(contribution of the group)²]``, s² = (1 − p)/p
  for inverted dropout of keep probability p, β²/3 for Uout. What running_var
  holds is ``a0·1 + (1 − a0)·E[unbiased batch variance]``, and for a batch of
  N samples of L positions (n = N L elements per channel)
  ``E[unbiased batch variance] = n/(n − 1) · (Var_train − Var_train(sample mean)/N)``
  (samples independent; positions within a sample need not be). For a Linear
  (L = 1) this is Var_train exactly. a0 is the weight left on the initial
  value 1 (``batchnorm.running_weights``); 0 for given weights.
- MCSE by batch means over the data batches (delta method for ratios), plus the
  noise of running_var itself when the audit gathered it:
  ``Var(R) ≈ Σ_k a_k² Var(batch variance)``. Using the same data for gathering
  and measuring correlates the two positively; ignoring that overstates the MCSE.
"""
from dataclasses import dataclass, field

import numpy as np

Z_STAR = 5.0
TOLERANCE = 0.01  # smallest relative shift called a shift, whatever the MCSE
CONVERGED = 0.01  # largest weight left on running_var's initial value for a verdict

REMEDY_DROPOUT = ("move the dropout after the last BN (just before the head), or re-estimate BN statistics "
                  "with dropout off after training (--fix recalibrate), or use Uout (beta ~ 0.1)")
PREDICTION_NOTE = ("The closed form uses the eval-mode moments of the dropped activations: exact when nothing "
                   "upstream of the dropout acts differently in train mode; below another shifted or unconverged "
                   "BN the shifts compound and it is approximate. nn.Dropout is taken as independent gates per "
                   "element; Dropout1d/2d/3d as one gate per sample and channel (exact same-channel term).")
FIX_NOTE = ("After the fix a BN fed by another BN can keep a residual of order 1/batch: while recalibrating, the "
            "upstream BN normalizes with batch statistics; --fix exact (BN by BN) removes it, a larger --batch "
            "shrinks it.")
REMEDY_EVAL = ("noise called with training=True stays on at inference: pass training=self.training (or use the "
               "nn module); recalibrating the statistics cannot remove it")
REMEDY_OTHER = ("re-estimate BN statistics with dropout off (--fix recalibrate); look upstream for "
                "functional dropout (F.dropout) or other code that behaves differently in train mode")
NOT_FINITE = "the statistics are not finite"
CONSTANT = "the input is constant on these data"
NO_MCSE = "the MCSE is zero (every batch gives the same statistics)"
ROUNDING = 64  # a channel whose standard deviation is within this many rounding units of its mean is constant


@dataclass
class LayerRecord:
    """Everything measured at one BN layer; lists grow by one entry per data batch."""

    name: str
    kind: str
    running_var: np.ndarray
    ref: np.ndarray                      # shift for the sums (running_mean: close to the mean)
    s1: list = field(default_factory=list)   # Σ (x − ref) per channel
    s2: list = field(default_factory=list)   # Σ (x − ref)²
    n: list = field(default_factory=list)    # elements per channel
    m1: list = field(default_factory=list)   # Σ over samples of (sample mean − ref)
    m2: list = field(default_factory=list)
    N: list = field(default_factory=list)    # samples
    t: list = field(default_factory=list)    # Σ over elements of the dropout noise variance (s² included)
    tbar: list = field(default_factory=list)  # Σ over samples of the noise variance of the sample mean
    upstream: list = field(default_factory=list)  # labels of the noise sources that reach this BN
    eval_noise: list = field(default_factory=list)  # labels of those that stay on in eval mode
    structure: str = None                # e.g. "Dropout(keep 0.5) → Linear → BN"; None: no prediction
    why_not: str = ""                    # why there is no prediction
    train_var: np.ndarray = None         # (K, C) unbiased batch variances of the gathering pass
    weights: np.ndarray = None           # a_k of each gathering batch in running_var
    a0: float = 0.0
    train_N: int = None                  # samples per training batch
    train_L: int = 1                     # positions per sample
    resolution: float = float(np.finfo(float).eps)  # rounding unit of the BN input's dtype

    def add(self, x2d_per_sample):
        """Add one batch: ``x`` of shape (N, C, L) in float64 (L = 1 for BatchNorm1d on (N, C))."""
        x = x2d_per_sample - self.ref[None, :, None]
        self.s1.append(x.sum(axis=(0, 2)))
        self.s2.append((x * x).sum(axis=(0, 2)))
        self.n.append(x.shape[0] * x.shape[2])
        xm = x.mean(axis=2)
        self.m1.append(xm.sum(axis=0))
        self.m2.append((xm * xm).sum(axis=0))
        self.N.append(x.shape[0])
        if self.train_N is None:
            self.train_N, self.train_L = x.shape[0], x.shape[2]

    def add_sums(self, s1, s2, n, m1, m2, N, L):
        """Add one batch from its sums (about ``ref``): Σx, Σx², elements, Σ sample means, Σ their squares."""
        for name, value in zip(("s1", "s2", "n", "m1", "m2", "N"), (s1, s2, n, m1, m2, N)):
            getattr(self, name).append(value)
        if self.train_N is None:
            self.train_N, self.train_L = N, L


def _pooled(s1, s2, n):
    """Pooled mean shift d and per-batch variances about the pooled mean, shape (B, C)."""
    n = np.asarray(n, float)[:, None]
    d = s1.sum(0) / n.sum()
    v = s2 / n - 2.0 * d * s1 / n + d * d
    return d, v


def _se(values):
    """Batch-means standard error of the mean of ``values`` (first axis: batches)."""
    values = np.asarray(values, float)
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def summarize(rec, z_star=Z_STAR, tolerance=TOLERANCE):
    """The row of one BN layer.

    Parameters
    ----------
    rec : LayerRecord
    z_star : float
        A shift counts when |ratio − 1| exceeds z* MCSE ...
    tolerance : float
        ... and ``tolerance`` (relative).

    Returns
    -------
    dict
        See the module Notes; ``ratio_*`` are Var_eval/running_var per channel.
    """
    s1, s2 = np.array(rec.s1), np.array(rec.s2)
    B = len(s1)
    d, v = _pooled(s1, s2, rec.n)                  # (B, C)
    V = v.mean(0)
    R = np.asarray(rec.running_var, float)
    r = V / R
    li = np.maximum(r, 1.0 / r)
    ratio_mean = float(r.mean())
    u = (v / R).mean(1)
    se_eval = _se(u)
    se_train, ww = 0.0, None
    if rec.train_var is not None and len(rec.train_var) > 1:
        ww = np.asarray(rec.weights, float)
        w = (V * rec.train_var / R ** 2).mean(1)
        se_train = float(np.sqrt((ww ** 2).sum()) * np.std(w, ddof=1))
    se = float(np.hypot(se_eval, se_train))
    row = {
        "layer": rec.name, "kind": rec.kind, "channels": int(R.size),
        "ratio_median": float(np.median(r)), "ratio_min": float(r.min()), "ratio_max": float(r.max()),
        "ratio_mean": ratio_mean, "ratio_mcse": se,
        "li_ratio": float(li.mean()),
        "sources": "; ".join(rec.upstream) or "none", "n_sources": len(rec.upstream),
        "structure": rec.structure or f"no prediction: {rec.why_not}",
        "predicted_mean": None, "predicted_median": None, "predicted_mcse": None, "z": None,
        "running_var_source": "gathered by the audit" if rec.train_var is not None else "as given",
    }
    if rec.structure is not None and rec.t:
        row.update(_prediction(rec, v, R, ratio_mean, se_train))
    undecided = _undecided(V, R, li, rec.ref + d, rec.resolution, se)
    row.update(_verdict(rec, ratio_mean - 1.0, se, z_star, tolerance, undecided), batches=B, a0=float(rec.a0))
    return row


def _undecided(V, R, li, mean, resolution, se):
    """Why a layer's statistics carry no verdict, as ``(reason, detail)``, or None.

    Not finite: a variance or ratio of some channel is NaN or infinite (inputs that overflow or hold NaN, or
    running_var 0). Constant: a channel whose eval-mode input varies by no more than rounding. Zero MCSE: the
    batches agree exactly, so the batch means estimate no error (CONVENTIONS: undecided, never significant).
    """
    C = V.size
    bad = ~(np.isfinite(V) & np.isfinite(R) & np.isfinite(li))
    if bad.any() or not np.isfinite(se):
        if not bad.any():
            cause = "its MCSE is not finite"
        elif not (np.isfinite(V) & np.isfinite(R)).all():
            cause = "Var_eval or running_var NaN or infinite: the BN's input overflows or holds NaN"
        elif (R[bad] == 0).any():
            cause = "running_var 0: the BN's input is constant"
        else:
            cause = "Var_eval 0: the BN's input is constant in eval mode"
        return NOT_FINITE, f"{int(bad.sum())} of {C} channels; {cause}"
    constant = V <= (ROUNDING * resolution * np.abs(mean)) ** 2
    if constant.any():
        return CONSTANT, f"{int(constant.sum())} of {C} channels"
    if se == 0.0:
        return NO_MCSE, ""
    return None


def _prediction(rec, v, R, ratio_mean, se_train):
    """The closed form's ratio (module Notes) of a layer with a prediction, its MCSE and the z of the measured one.

    ``v`` are the per-batch eval variances (B, C), ``R`` running_var, ``se_train`` the MCSE part of running_var.
    """
    V = v.mean(0)
    n_el = np.asarray(rec.n, float)
    t_b = np.array(rec.t) / n_el[:, None]                      # (B, C) noise variance per element
    T = t_b.mean(0)
    _, vm = _pooled(np.array(rec.m1), np.array(rec.m2), rec.N)
    Vbar = vm.mean(0)
    Tbar = np.array(rec.tbar).sum(0) / float(np.sum(rec.N))
    Nt, nt = rec.train_N, rec.train_N * rec.train_L
    kappa = nt / (nt - 1.0)
    a1 = 1.0 - rec.a0
    Rhat = rec.a0 + a1 * kappa * (V + T - (Vbar + Tbar) / Nt)
    pred = V / Rhat
    g = V * a1 * kappa / Rhat ** 2              # ∂(V/R̂)/∂T, and −∂/∂V through R̂
    infl_pred = ((v - V) * (1.0 / Rhat - g) - (t_b - T) * g).mean(1)
    infl_diff = ((v - V) / R).mean(1) - infl_pred
    se_diff = float(np.hypot(_se(infl_diff), se_train))
    return {"predicted_mean": float(pred.mean()), "predicted_median": float(np.median(pred)),
            "predicted_mcse": _se(infl_pred),
            "z": float((ratio_mean - pred.mean()) / se_diff) if se_diff > 0 else None}


def _verdict(rec, shift, se, z_star, tolerance, undecided=None):
    """The verdict of one layer: never a percentage on statistics that have not converged or are undecided."""
    shifted = undecided is None and abs(shift) > max(z_star * se, tolerance)
    drops = rec.upstream
    if undecided is not None:
        verdict, remedy = f"undecided: {undecided[0]}" + (f" ({undecided[1]})" if undecided[1] else ""), ""
    elif rec.a0 > CONVERGED:
        verdict, remedy = (f"not converged: more batches (weight {rec.a0:.2f} still on the initial value 1 of "
                           "running_var)"), ""
    elif not shifted:
        verdict, remedy = "no shift", ""
    elif drops:
        more = f", +{len(drops) - 1} more" if len(drops) > 1 else ""
        verdict = f"shift of {100 * shift:+.1f}%: dropout before BN ({drops[-1]}{more})"
        remedy = REMEDY_DROPOUT
    else:
        verdict = f"shift of {100 * shift:+.1f}%: no noise source reaches it"
        remedy = REMEDY_OTHER
    if rec.eval_noise:
        verdict += f"; {rec.eval_noise[0]} stays on in eval mode (a bug in the model: recalibration cannot remove it)"
        remedy = REMEDY_EVAL
    return {"shift": shift, "shifted": bool(shifted and rec.a0 <= CONVERGED), "verdict": verdict, "remedy": remedy,
            "undecided": None if undecided is None else undecided[0]}


def mark_after(rows):
    """Label rows measured after the fix: a remaining shift is not the dropout's (its noise was off)."""
    for r in rows:
        r["stage"] = "after"
        if r["verdict"] != "no shift" and not r["verdict"].startswith("not converged") and not r["undecided"]:
            r["verdict"] = (f"residual of {100 * r['shift']:+.1f}% after recalibration (BN upstream on batch "
                            "statistics while recalibrating; try a larger --batch)")
            r["remedy"] = ""
    return rows


@dataclass
class OutputRecord:
    """Eval-mode output against the Monte Carlo average of train-mode outputs, per data batch.

    Train mode here means dropout on and every BN in eval mode (running statistics):
    the noise a trained model adds, not the batch statistics.
    """

    ref: float = None
    e1: list = field(default_factory=list)   # Σ (y_eval − ref)
    e2: list = field(default_factory=list)
    a1: list = field(default_factory=list)   # Σ (ȳ − ref), ȳ the MC average over S samples
    a2: list = field(default_factory=list)
    within: list = field(default_factory=list)  # Σ over elements of the unbiased mask variance / S
    d1: list = field(default_factory=list)   # Σ (ȳ − y_eval)
    d2: list = field(default_factory=list)
    n: list = field(default_factory=list)
    samples: int = 0

    def add(self, y_eval, y_train):
        """``y_eval`` of shape (N, D), ``y_train`` of shape (S, N, D), float64."""
        if self.ref is None:
            self.ref = float(y_eval.mean())
        S = y_train.shape[0]
        self.samples = S
        ybar = y_train.mean(0)
        e, a = y_eval - self.ref, ybar - self.ref
        self.e1.append(e.sum())
        self.e2.append((e * e).sum())
        self.a1.append(a.sum())
        self.a2.append((a * a).sum())
        self.within.append((y_train.var(0, ddof=1).sum() / S) if S > 1 else 0.0)
        d = ybar - y_eval
        self.d1.append(d.sum())
        self.d2.append((d * d).sum())
        self.n.append(y_eval.size)


def output_effect(rec):
    """Mean and variance shift at the output, in the output's units, each with its MCSE.

    Returns
    -------
    dict
        ``mean_shift = E[ȳ − y_eval]``; ``var_shift = Var_x(E_mask y) − Var_x(y_eval)``
        (the finite-S mask noise ``E[s²_mask]/S`` subtracted from ``Var(ȳ)``);
        ``rms_diff = √E[(ȳ − y_eval)²]``; pooled over data and output units.
    """
    n = np.asarray(rec.n, float)
    if len(n) == 0:
        return None
    md = np.asarray(rec.d1) / n
    _, ve = _pooled(np.array(rec.e1)[:, None], np.array(rec.e2)[:, None], rec.n)
    _, va = _pooled(np.array(rec.a1)[:, None], np.array(rec.a2)[:, None], rec.n)
    vs = va[:, 0] - np.asarray(rec.within) / n - ve[:, 0]
    var_eval = float(ve.mean())
    out = {"mean_shift": float(md.mean()), "mean_shift_mcse": _se(md),
           "var_shift": float(vs.mean()), "var_shift_mcse": _se(vs),
           "var_eval": var_eval, "rms_diff": float(np.sqrt(np.sum(rec.d2) / n.sum())),
           "mc_samples": rec.samples, "batches": len(n), "undecided": None}
    if not all(np.isfinite(out[k]) for k in ("mean_shift", "mean_shift_mcse", "var_shift", "var_shift_mcse",
                                              "var_eval", "rms_diff")):
        out["undecided"] = NOT_FINITE
    return out


def mark_output(rows, output):
    """The output effect is undecided too where a BN's statistics are not finite: a BN that divides by an
    infinite variance makes the output look constant (a shift of 0 ± 0), which says nothing."""
    if any(r["undecided"] == NOT_FINITE for r in rows):
        for o in output.values():
            if o is not None and not o.get("undecided"):
                o["undecided"] = NOT_FINITE
    return output


def undecided_notes(rows, output):
    """The notes that say why rows (and the output effect) carry no verdict."""
    notes = []
    reasons = {r["undecided"] for r in rows if r["undecided"]}
    if NOT_FINITE in reasons:
        notes.append("Undecided where the statistics are not finite (NaN or infinite: inputs that overflow, a "
                     "forward that makes NaN, or running_var 0 on a constant input): such a layer is neither "
                     "shifted nor without shift, and is left out of the counts and the median.")
    if CONSTANT in reasons:
        notes.append("Undecided where a BN's input is constant on these data (it varies by no more than "
                     "rounding): its ratio says nothing about the noise.")
    if NO_MCSE in reasons:
        notes.append("Undecided where every batch gives the same statistics: the batch means estimate no MCSE.")
    if any(o and o.get("undecided") for o in (output or {}).values()):
        notes.append("The output effect is undecided: the model's output, or the statistics of a BN it passes "
                     "through, are not finite (NaN or infinite) on these data.")
    return notes
