"""C6 (and C5) on trained networks: does dropout hurt regression, spare classification, shift BN?

The document's bottom line is about networks that *learn* with the noise on.
This experiment trains MLPs ``in → depth × [Linear(width) → (BN) → ReLU] →
Linear(out)`` with PyTorch's semantics (:mod:`simulator.nn.train`) on offline
tasks (:mod:`simulator.data.tasks`): a regression task and its classification twin
(same inputs and target, labelled above the training median), or a
classification data set. One Monte Carlo sample is one training run, with its
own split, initial weights and batch order, shared by every placement of the
noise (paired runs: only the noise differs), so each placement's effect is a
paired difference with a small MCSE.

Checks, per task:

- test MSE (regression) or accuracy and cross-entropy (classification) of every
  placement: measurements;
- the document's claims as signed effects: ``ΔMSE`` = MSE with dropout − MSE
  without (an *effect*: holds when significantly > 0, contradicted when
  significantly < 0), and the accuracy drop = accuracy without − with (an
  *equivalence* with margin ``margin``: holds when significantly below it);
- the mechanism inside the trained network: per BN layer, the eval-mode
  variance of its input over the test rows divided by its running_var, next to
  the ratio C5's closed form predicts from that layer's own measured moments;
- the test metric after log-spaced epochs (how the effect depends on training
  length).

With R runs the paired differences are judged by Student's t with R − 1
degrees of freedom (mapped to the equivalent normal z), not by a normal
approximation that few runs would not justify.
"""
import numpy as np

from ..core.errors import ParameterError, SimulationError
from ..data.tasks import SIZED, TASK_NAMES, TEACHER_NOISE, TEACHER_ROWS, load
from ..nn import train as tr
from ..nn.train.loop import run_task
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, Param

NOISY = tuple(p for p in tr.PLACEMENTS if p != "none")
CHECKPOINTS = (1, 3, 10, 30, 100, 300, 1000, 3000)
BOOL = ("true", "false")


def _stat(x):
    """Mean and MCSE (s/√R) of the per-run values ``x`` (runs that diverged are refused earlier)."""
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0


def _tasks(q):
    """The tasks of a run: each named task, followed by its classification twin when ``twin`` is true."""
    names = []
    for name in q["task"]:
        names.append(name)
        twin = load(name, 0).twin
        if q["twin"] == "true" and twin:
            names.append(twin)
    return list(dict.fromkeys(names))


def _config(p, q):
    early = q["patience"] > 0
    return tr.TrainConfig(depth=q["depth"], width=q["width"], bn=q["bn"] == "true", epochs=q["epochs"],
                          batch=q["batch"], optimizer=q["optimizer"], lr=q["lr"], momentum=q["momentum"], p=p,
                          beta=q["beta"], final_batch=q["final_batch"], patience=q["patience"],
                          checkpoints=() if early else tuple(e for e in CHECKPOINTS if e < q["epochs"]))


def _placements(q):
    """``none`` (the reference) and the chosen noisy placements; BN remedies only where there is BN."""
    chosen = [p for p in q["placement"] if q["bn"] == "true" or not p.startswith("recalibrated")]
    return ("none", *chosen)


def _task_checks(task, result, q, p, params):
    """The checks of one task (see the module docstring)."""
    regression = task.kind == "regression"
    R = result.mse.shape[0]
    checks = []
    names = list(result.placements)

    data = {"rows": q["rows"]} if task.name in SIZED else {}
    if task.name.startswith("teacher"):
        data["noise"] = q["noise"]

    def base(placement, **extra):
        return {**params, "task": task.name, **data, "placement": placement, **extra}

    sub = "C6-regression" if regression else "C6-classification"

    if regression:
        metrics = (("test MSE", result.mse, "mse", "mean over test rows of (prediction − y)², y standardised"),)
    else:
        metrics = (("test accuracy", result.accuracy, "accuracy", "fraction of test rows classified right"),
                   ("test CE", result.ce, "ce", "mean test cross-entropy (nats)"))
    for label, values, quantity, formula in metrics:
        for i, pl in enumerate(names):
            m, s = _stat(values[:, i])
            checks.append(Check(f"{label} ({pl}) [{task.name}]", "measurement", 0.0, m, s,
                                base(pl, quantity=quantity), formula=formula,
                                facts=Facts(sub, label, setting=pl, task=task.name)))
    for i, pl in enumerate(names[1:], start=1):
        if regression:
            m, s = _stat(result.mse[:, i] - result.mse[:, 0])
            checks.append(Check(f"ΔMSE ({pl}) [{task.name}]", "effect", 0.0, m, s, base(pl, quantity="dmse"),
                                formula="test MSE with this placement − without dropout, paired over runs; "
                                        "the document: > 0", dof=R - 1,
                                facts=Facts(sub, "ΔMSE", setting=pl, task=task.name)))
        else:
            m, s = _stat(result.accuracy[:, 0] - result.accuracy[:, i])
            checks.append(Check(f"accuracy drop ({pl}) [{task.name}]", "equivalence", 0.0, m, s,
                                base(pl, quantity="drop", margin=q["margin"]), margin=q["margin"],
                                formula=f"test accuracy without dropout − with this placement, paired; "
                                        f"the document: ≤ {q['margin']:g}", dof=R - 1,
                                facts=Facts(sub, "accuracy drop", setting=pl, task=task.name)))
    if "hidden" in names and "recalibrated" in names:
        checks += _shift_cost_checks(task, result, names, q, base)
    if q["bn"] == "true":
        checks += _ratio_checks(task, result, names, base)
    if q["patience"] > 0:
        checks += _stop_checks(task, result, names, base, sub)
    return checks + _curve_checks(task, result, names, base, sub)


def _stop_checks(task, result, names, base, sub):
    """With early stopping: the epoch whose parameters each placement was tested with (mean over runs)."""
    checks = []
    for i, pl in enumerate(names):
        m, s = _stat(result.best_epoch[:, i])
        checks.append(Check(f"best epoch ({pl}) [{task.name}]", "measurement", 0.0, m, s,
                            base(pl, quantity="best_epoch"), formula="the epoch early stopping restored: the "
                            "lowest validation loss", facts=Facts(sub, "best epoch", setting=pl, task=task.name)))
    return checks


def _ratio_checks(task, result, names, base):
    """Per placement and BN layer: eval variance / running_var, against C5's prediction (sub-claim C5)."""
    checks = []
    for i, pl in enumerate(names):
        for layer in range(result.bn_real.shape[2]):
            real, running = result.bn_real[:, i, layer], result.bn_running[:, i, layer]
            m, s = _stat(real / running)
            predicted, _ = _stat(real / result.bn_predicted[:, i, layer])
            checks.append(Check(f"L{layer + 1} ratio ({pl}) [{task.name}]", "measurement", predicted, m, s,
                                base(pl, quantity="ratio", layer=layer + 1), reference=True,
                                formula="Σ_k Var_eval(z_k) / Σ_k running_var_k at this BN; reference: the "
                                        "ratio C5 predicts, Var_eval/(Var_eval + s² Σ_j W_kj² E[h_j²])",
                                facts=Facts("C5", "ratio", layer=layer + 1, setting=pl, task=task.name)))
    return checks


def _curve_checks(task, result, names, base, sub):
    """The test metric of each placement at every checkpoint epoch before the last."""
    metric = "MSE" if task.kind == "regression" else "accuracy"
    checks = []
    for k, epoch in enumerate(result.checkpoints[:-1]):
        for i, pl in enumerate(names):
            m, s = _stat(result.curve[:, i, k])
            checks.append(Check(f"{metric} @ epoch {epoch} ({pl}) [{task.name}]", "measurement", 0.0, m, s,
                                base(pl, quantity="curve", epoch=int(epoch)),
                                formula=f"test {metric} after {epoch} epochs",
                                facts=Facts(sub, f"{metric} @ epoch", setting=pl, task=task.name)))
    return checks


def _shift_cost_checks(task, result, names, q, base):
    """The variance shift's own cost (C6-shift): the ``hidden`` training evaluated with BN as trained against
    the very same weights with BN recalibrated with dropout off, paired within each run."""
    shifted, unshifted = names.index("hidden"), names.index("recalibrated")
    R = result.mse.shape[0]
    same = "the same trained weights, BN as trained (shifted) − BN recalibrated with dropout off, paired"
    if task.kind == "regression":
        m, s = _stat(result.mse[:, shifted] - result.mse[:, unshifted])
        return [Check(f"ΔMSE shift [{task.name}]", "effect", 0.0, m, s, base("hidden", quantity="dmse_shift"),
                      formula=f"test MSE, {same}; the document: > 0", dof=R - 1,
                      facts=Facts("C6-shift", "ΔMSE shift", task=task.name))]
    m, s = _stat(result.ce[:, shifted] - result.ce[:, unshifted])
    ce = Check(f"ΔCE shift [{task.name}]", "effect", 0.0, m, s, base("hidden", quantity="dce_shift"),
               formula=f"test cross-entropy, {same}; the document: > 0", dof=R - 1,
               facts=Facts("C6-shift", "ΔCE shift", task=task.name))
    m, s = _stat(result.accuracy[:, unshifted] - result.accuracy[:, shifted])
    acc = Check(f"accuracy lost to the shift [{task.name}]", "equivalence", 0.0, m, s,
                base("hidden", quantity="dacc_shift", margin=q["margin"]), margin=q["margin"], dof=R - 1,
                formula=f"test accuracy, BN recalibrated − BN as trained (the same weights), paired; the document: "
                        f"≤ {q['margin']:g} (an argmax barely moves)",
                facts=Facts("C6-shift", "accuracy lost to the shift", task=task.name))
    return [ce, acc]


def run(p, q, ctx):
    """Measure C6 on trained networks: paired runs of the placement against no dropout on a regression
    task and its classification twin, their ΔMSE, ΔCE and accuracy with MCSE.

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    Per placement and task: the test metrics, ``ΔMSE`` (regression) and ``accuracy drop`` (its
    classification twin) against no dropout, the ``best epoch``, the BN layers' variance ``ratio`` and
    the metrics per epoch.
    """
    config = _config(p, q)
    placements = _placements(q)
    params = {"p": p, "epochs": q["epochs"], "bn": q["bn"] == "true", "depth": q["depth"], "width": q["width"],
              "optimizer": q["optimizer"], "lr": q["lr"], "runs": q["runs"], "batch": q["batch"]}
    checks = []
    for name in _tasks(q):
        task = load(name, ctx.seed, q["rows"], q["noise"])
        key = ctx.key("training", task=name, **({"chunk": q["chunk"]} if q["chunk"] else {}))
        bar = ctx.bar(f"training {name}")
        result = tr.train_runs(task, config, placements, q["runs"], key,
                               progress=None if bar is None else lambda done, total: bar(done * ctx.samples
                                                                                           // total))
        bad = np.argwhere(result.diverged)
        if bad.size:
            run_, col = bad[0]
            raise SimulationError(f"training diverged (non-finite loss) in run {run_} of task {name}, placement "
                                  f"{placements[col]}, at p={p:g}, lr={q['lr']:g}, optimizer={q['optimizer']}, "
                                  f"epochs={q['epochs']}: lower lr")
        checks += _task_checks(task, result, q, p, {**params, "n_train": result.n_train, "n_test": result.n_test})
    return checks


def _validate(values):
    if not any(t in SIZED for t in values["task"]) and values["rows"] != TEACHER_ROWS:
        raise ParameterError("rows sets the sized tasks (teacher, diamonds): add task=teacher or task=diamonds")
    if not any(t.startswith("teacher") for t in values["task"]) and values["noise"] != TEACHER_NOISE:
        raise ParameterError("rows and noise set the synthetic teacher tasks: add task=teacher")
    if values["patience"] > values["epochs"]:
        raise ParameterError(f"patience={values['patience']}: at most epochs ({values['epochs']})")
    if values["bn"] == "false" and all(p.startswith("recalibrated") for p in values["placement"]):
        raise ParameterError("placement: the recalibrated placements need bn=true; add hidden, head or uout")


def _quick(values):
    """``verify --quick``: fewer runs and epochs."""
    return {"runs": min(values["runs"], 8), "epochs": min(values["epochs"], 20)}


_PT = ("setting", "task")  # the placement (none: the reference) and the task
_REG, _CLS = "a regression task", "a classification task (a regression's twin)"
_SHIFT = ", with placements hidden and recalibrated (bn=true)"

EXPERIMENT = Experiment(
    name="training",
    gated=False,
    claim_id="C6",
    claim="Trained networks: dropout makes regression worse (signed, paired effect on the test MSE) but barely "
          "affects classification (accuracy drop within a margin); with dropout before BN the trained network's "
          "BN layers show the variance shift C5 predicts, and the remedies remove it.",
    source="document's conclusion; Li et al., CVPR 2019; 'The magic of NO dropout'",
    params=(
        Param("task", "choices", ("diabetes",), "tasks (a regression task brings its classification twin)",
              choices=TASK_NAMES),
        Param("twin", "choice", "true", "also run each regression task's classification twin", choices=BOOL),
        Param("placement", "choices", NOISY, "where the noise goes ('none' is always run as the reference)",
              choices=NOISY),
        Param("bn", "choice", "true", "BatchNorm1d after every hidden Linear", choices=BOOL),
        Param("depth", "int", 2, "hidden blocks", low=1, high=8),
        Param("width", "int", 64, "units per hidden block", low=2, high=1024),
        Param("epochs", "int", 30, "training epochs (verify trains 100)", low=1, high=10_000),
        Param("batch", "int", 32, "batch size", low=2, high=4096),
        Param("final_batch", "choice", "drop", "a final batch shorter than the batch size: dropped (as "
              "DataLoader(drop_last=True)), or kept unless it is one row", choices=tr.FINAL_BATCH, keyed=False),
        Param("patience", "int", 0, "0: train all epochs; else early stopping on a validation fifth of the "
              "training rows, stopping this many epochs after the best (then restored)", low=0, high=10_000,
              keyed=False),
        Param("optimizer", "choice", "adam", "torch.optim.Adam or SGD with momentum", choices=tr.OPTIMIZERS),
        Param("lr", "float", 1e-3, "learning rate", low=0.0, high=10.0, low_open=True),
        Param("momentum", "float", 0.9, "SGD momentum", low=0.0, high=1.0, high_open=True),
        Param("beta", "float", 0.1, "Uout half-width β", low=0.0, high=1.0, high_open=True),
        Param("rows", "int", TEACHER_ROWS, "rows of the sized tasks: the teacher's, or a diamonds sub-sample "
              "(the data-size axis of C6: sweep it, e.g. --grid rows=100,1000,10000)", low=50, high=200_000,
              keyed=False),
        Param("noise", "float", TEACHER_NOISE, "noise SD of the teacher tasks' target (0.5: 20% of its variance)",
              low=0.0, high=10.0, keyed=False),
        Param("runs", "int", 16, "training runs (the Monte Carlo samples; each trains every placement)",
              low=2, high=100_000),
        Param("chunk", "int", 0, "a further set of runs of the same point on streams of its own (0: the point's "
              "own runs); the C6 map grows a cell in chunks and pools them", low=0, high=1_000, keyed=False),
        Param("margin", "float", 0.01, "largest accuracy drop that counts as 'barely affected'", low=0.0,
              high=1.0),
    ),
    checks=(
        CheckSpec("test MSE (pl) [task]", "measurement", "test MSE of a regression, y standardised", ("test MSE",),
                  _PT, subclaim="C6-regression", only=_REG),
        CheckSpec("test accuracy|CE (pl) [task]", "measurement", "test accuracy and cross-entropy",
                  ("test accuracy", "test CE"), _PT, subclaim="C6-classification", only=_CLS),
        CheckSpec("ΔMSE (pl) [task]", "effect", "MSE with dropout − without, paired: the document says > 0",
                  ("ΔMSE",), _PT, subclaim="C6-regression", only=_REG),
        CheckSpec("accuracy drop (pl) [task]", "equivalence", "accuracy without − with, paired: the document "
                  "says ≤ margin", ("accuracy drop",), _PT, subclaim="C6-classification", only=_CLS),
        CheckSpec("ΔMSE shift [task]", "effect", "the hidden training with BN as trained − BN recalibrated, the "
                  "same weights, paired: the document's mechanism says > 0", ("ΔMSE shift",), ("task",),
                  subclaim="C6-shift", only=_REG + _SHIFT),
        CheckSpec("ΔCE shift [task]", "effect", "the same for the test cross-entropy of a classifier: > 0",
                  ("ΔCE shift",), ("task",), subclaim="C6-shift", only=_CLS + _SHIFT),
        CheckSpec("accuracy lost to the shift [task]", "equivalence", "accuracy recalibrated − as trained, the "
                  "same weights: ≤ margin", ("accuracy lost to the shift",), ("task",), subclaim="C6-shift",
                  only=_CLS + _SHIFT),
        CheckSpec("Ll ratio (pl) [task]", "measurement", "BN layer l: eval variance / running_var, reference: "
                  "C5's prediction from the layer's moments", ("ratio",), ("layer", *_PT), subclaim="C5",
                  only="bn=true"),
        CheckSpec("best epoch (pl) [task]", "measurement", "with early stopping: the epoch restored",
                  ("best epoch",), _PT, subclaim=("C6-regression", "C6-classification"), only="patience > 0"),
        CheckSpec("metric @ epoch e (pl) [task]", "measurement", "test metric after e epochs",
                  ("MSE @ epoch", "accuracy @ epoch"), _PT, subclaim=("C6-regression", "C6-classification"),
                  only="epochs > 1 (a checkpoint epoch before the last)"),
    ),
    run=run,
    samples=1000,
    notes="One Monte Carlo sample = one training run (--set runs=N; --samples does not apply): its own 80/20 "
          "split, PyTorch-default initial weights and batch order, shared by every placement (paired). X (and a "
          "regression's y) standardised with training statistics; MSE on that scale. Adam lr 1e-3, batch 32, BN "
          "momentum 0.1, eps 1e-5. Placements: hidden = dropout after every hidden ReLU (before the next BN); "
          "head = one dropout before the output Linear; recalibrated = hidden, then BN statistics re-estimated "
          "with dropout off (cumulative average); recalibrated-dropout-on = the same with dropout on (what "
          "torch.optim.swa_utils.update_bn does); uout = 1 + U(−β, β) noise at the hidden positions.",
    validate=_validate,
    # simulate's default (30 epochs, as the report's figures) keeps the default run within seconds; verify
    # trains the full study.
    verify_points=({"epochs": 100}, {"epochs": 100, "bn": "false"}, {"epochs": 100, "task": "teacher"},
                   {"epochs": 100, "task": "teacher", "bn": "false"},
                   {"epochs": 100, "task": "digits,breast-cancer,wine"}),
    headline=(),
    warm={"runs": 2, "epochs": 1, "task": "diabetes", "twin": "true"},
    subclaims=("C5", "C6-regression", "C6-classification", "C6-shift"),
    quick=_quick,
    p_grid=(0.5,),
    runs_param="runs",
    kernels=(run_task,),
)
