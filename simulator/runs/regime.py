"""C6's regime map: where dropout hurts regression, where it spares classification, and where neither holds.

The document's bottom line ("dropout hurts regression, barely affects classification") is a claim about
*trained* networks. The map trains the ``training`` experiment's MLPs over a grid of regimes — the data
size N (log-spaced), the keep probability p, the placement of the noise (``hidden``: after every hidden
ReLU, before the next BN; ``head``: one dropout before the output layer) and BN on or off — for a
regression task and its classification twin (the same inputs and target, labelled above the training
median): the synthetic ``teacher`` and ggplot2's ``diamonds``.

Every cell is trained as grid points of a sweep of the ``training`` experiment, its chunks (same seed →
same bits, on any number of threads or Dask workers, checkpointed). Per cell it reads

- the **total effect** of dropout: ΔMSE = MSE with dropout − without (regression; the document: > 0) and
  the accuracy drop = accuracy without − with (classification; the document: ≤ 1 point);
- the **shift's own cost** (``hidden`` with BN only): the same trained weights evaluated with BN as trained
  and with BN recalibrated with dropout off, paired: ΔMSE_shift, ΔCE_shift and the accuracy lost to it.

Run sizing (Morris, White & Crowther 2019, with Student's t): a pilot of :data:`PILOT` runs per cell
estimates the spread ``s`` of each paired difference. A cell's *resolution* is, as everywhere in the project,
the smallest difference its verdict would detect 90% of the time: ``(c + t₀.₉)·s/√R``, with ``c`` =
:func:`critical` (Student's t over R − 1 degrees of freedom at the tail of the family's z*) and t₀.₉ the
90% quantile of the same t. Its target is ``(z* + 1.28)·target``, the resolution of many runs at the
target MCSE (:data:`TARGETS`: 0.01 for ΔMSE on the standardised scale and at most 5% of the cell's
no-dropout MSE, :data:`RELATIVE`; 0.003 for an accuracy drop). A cell
short of it grows in chunks of doubling size (runs pilot, 2·pilot, 4·pilot, … up to the cap), each chunk on
streams of its own (the ``training`` experiment's ``chunk``), pooled, and ``s`` estimated again from all its
runs after each chunk. No run is trained twice. With few runs the t tail is heavy (at z* = 4.6: c = 12.8
with 8 runs, 7.0 with 16, 5.6 with 32, 5.0 with 64), so a cell whose MCSE met the target at its pilot may
still need more runs; a difference without spread over its runs (no error bar yet) grows too. A cell still
short of its resolution at the cap is named as such.

Verdicts are judged in one family per sub-claim over the map's cells (Bonferroni at ``alpha``), so a
verdict does not depend on how many other checks a command happens to run.
"""
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from ..core.errors import ParameterError, shown
from ..core.params import DEFAULT_ALPHA, MIN_P  # DEFAULT_ALPHA: one family per sub-claim
from ..data.c6map import MARGIN, SERIES
from ..theory.verdict import z_threshold

TWINS = {"teacher": "teacher-class", "diamonds": "diamonds-class"}
# Log-spaced sizes (a factor ≈ 4.3), each with a training split (80%) that is a whole number of batches of
# 32, so no cell has a short final batch: the map does not depend on a rule for one.
ROWS = (120, 520, 2200, 9400, 40_000)
KEEP = (0.5, 0.8, 0.9)
PLACEMENTS = ("hidden", "head")
BN = ("true", "false")
# Training length: "budget" trains the step budget's epochs (small N over-fits); "early" stops on a validation
# fifth of the training rows, at most the same epochs, ``patience_for`` epochs after the best (then restored).
LENGTHS = ("budget", "early")
TARGETS = {"dmse": 0.01, "drop": 0.003, "dmse_shift": 0.01, "dce_shift": 0.01, "dacc_shift": 0.003}
# And at most this fraction of the cell's no-dropout MSE: diamonds' log price is fitted to an MSE of 0.02–0.04
# (standardised), so an MCSE of 0.01 there would leave a +90% effect undecided.
RELATIVE = {"dmse": 0.05, "dmse_shift": 0.05}
# Each difference's no-dropout metric (its ``reference`` in the table, and the unit of its ``relative``).
REFERENCE = {"dmse": "mse_none", "dmse_shift": "mse_none", "drop": "accuracy_none", "dacc_shift": "accuracy_none",
             "dce_shift": "ce_none"}
EFFECTS = ("dmse", "drop")
SHIFT = ("dmse_shift", "dce_shift", "dacc_shift")
PILOT, CAP = 8, 64
BATCH = 32
STEPS, MIN_EPOCHS = 2000, 5  # the step budget: at least STEPS optimizer steps and at least MIN_EPOCHS epochs
# The small map `report` runs itself and `map --quick` (about two minutes on two cores): the teacher at three
# sizes, p = 0.5, both placements, BN on.
QUICK = {"tasks": ("teacher",), "rows": (120, 2200, 9400), "keep": (0.5,), "bn": ("true",),
         "lengths": ("budget",), "steps": 1000, "min_epochs": 3, "pilot": 4, "cap": 16}


@dataclass(frozen=True)
class Plan:
    """What a map covers and how each cell is trained and sized.

    Attributes
    ----------
    tasks : tuple of str
        Regression tasks (:data:`TWINS`); each brings its classification twin.
    rows, keep, placements, bn, lengths : tuple
        The axes: data size N, keep probability p, noise placement, BN (``"true"``/``"false"``), training
        length (:data:`LENGTHS`).
    steps, min_epochs : int
        The step budget: a cell trains ``max(min_epochs, ⌈steps / batches per epoch⌉)`` epochs, so that
        small N over-fits (many epochs) and large N still trains (at least ``min_epochs``).
    batch : int
    pilot, cap : int
        Runs of the pilot, and the most runs a cell may take.
    targets : dict
        Target MCSE per quantity (:data:`TARGETS`).
    relative : dict
        And at most this fraction of the cell's no-dropout metric (:data:`RELATIVE`; :func:`target_of`).
    alpha : float
        Family-wise error level of each sub-claim's family of cells.
    """

    tasks: tuple = tuple(TWINS)
    rows: tuple = ROWS
    keep: tuple = KEEP
    placements: tuple = PLACEMENTS
    bn: tuple = BN
    lengths: tuple = LENGTHS
    steps: int = STEPS
    min_epochs: int = MIN_EPOCHS
    batch: int = BATCH
    pilot: int = PILOT
    cap: int = CAP
    targets: dict = field(default_factory=lambda: dict(TARGETS))
    relative: dict = field(default_factory=lambda: dict(RELATIVE))
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self):
        for name in self.tasks:
            if name not in TWINS:
                raise ParameterError(f"task={shown(name)}: the map's tasks are {', '.join(TWINS)}")
        for n in self.rows:
            if not (isinstance(n, (int, np.integer)) and 100 <= n <= 53_940):
                raise ParameterError(f"rows={shown(n)}: N must be a whole number from 100 to 53,940")
        for p in self.keep:
            if not MIN_P <= float(p) < 1.0:  # the trainer's own range, checked before any cell trains
                raise ParameterError(f"p={shown(p)}: a keep probability in [{MIN_P:g}, 1) (p = 1 is the "
                                     "reference)")
        for pl in self.placements:
            if pl not in PLACEMENTS:
                raise ParameterError(f"placement={shown(pl)}: one of {', '.join(PLACEMENTS)}")
        for b in self.bn:
            if b not in BN:
                raise ParameterError(f"bn={shown(b)}: true or false")
        for length in self.lengths:
            if length not in LENGTHS:
                raise ParameterError(f"length={shown(length)}: one of {', '.join(LENGTHS)}")
        if not (1 <= self.steps <= 10_000_000 and 1 <= self.min_epochs <= 10_000):
            raise ParameterError(f"steps={shown(self.steps)}, min_epochs={shown(self.min_epochs)}: the step "
                                 "budget must be 1 to 10,000,000 steps and 1 to 10,000 epochs")
        if not 2 <= self.pilot <= self.cap:
            raise ParameterError(f"pilot={shown(self.pilot)}, cap={shown(self.cap)}: need 2 ≤ pilot ≤ cap")
        if schedule(self.cap, self)[-1] < 2:
            raise ParameterError(f"cap={shown(self.cap)}: with pilot={self.pilot} its last chunk would be one run "
                                 "(a chunk needs 2); choose another cap")
        for quantity, rel in self.relative.items():
            if quantity not in self.targets or not 0.0 < float(rel) <= 1.0:
                raise ParameterError(f"relative target {quantity}={shown(rel)}: a fraction in (0, 1] of a quantity "
                                     f"with a target ({', '.join(self.targets)})")
        if not 0.0 < self.alpha < 1.0:
            raise ParameterError(f"alpha={shown(self.alpha)}: must be in (0, 1)")


def epochs_for(rows, plan):
    """Epochs of a cell of N = ``rows``: the step budget over the batches of one epoch (80% train split)."""
    n_train = rows - rows // 5
    batches = n_train // plan.batch + (1 if n_train % plan.batch > 1 else 0)  # a final batch of one is dropped
    return max(plan.min_epochs, math.ceil(plan.steps / batches))


def patience_for(rows, plan):
    """Early stopping's patience at N = ``rows``: a tenth of the budget's epochs, at least 3."""
    return max(3, epochs_for(rows, plan) // 10)


def cell_settings(cell, plan, runs, chunk=0):
    """The ``training`` experiment's settings of one cell (a sweep point), trained with ``runs`` runs (of
    chunk ``chunk``: chunk 0 is the pilot, :func:`schedule`).

    The length's settings (``patience``) are not part of the streams' key: a cell trained to the budget and
    the same cell stopped early train the same runs (split, initial weights, batch order, noise).
    """
    placements = ["hidden", "recalibrated"] if cell["placement"] == "hidden" and cell["bn"] == "true" \
        else [cell["placement"]]
    settings = {"task": cell["task"], "rows": str(cell["rows"]), "p": str(cell["p"]), "bn": cell["bn"],
                "placement": ",".join(placements), "epochs": str(epochs_for(cell["rows"], plan)),
                "batch": str(plan.batch), "runs": str(runs), "margin": str(MARGIN)}
    if cell.get("length", "budget") == "early":
        settings["patience"] = str(patience_for(cell["rows"], plan))
    if chunk:
        settings["chunk"] = str(chunk)
    return settings


def cells(plan):
    """Every cell of the plan, in map order (length, task, BN, placement, p, N)."""
    return [{"length": length, "task": t, "bn": b, "placement": pl, "p": float(p), "rows": int(n)}
            for length in plan.lengths for t in plan.tasks for b in plan.bn for pl in plan.placements
            for p in plan.keep for n in plan.rows]


def runs_needed(sd, target, plan, zs=None):
    """Runs for a resolution :func:`resolution` (sd/√R, zs, R) ≤ :func:`resolution` (target, zs): the smallest
    of pilot, 2·pilot, 4·pilot, … (and the cap) that reaches it, the cap if none does. Without ``zs``: ``sd/√R``
    ≤ ``target`` (the MCSE alone). No spread (``sd`` 0 or not finite: no error bar yet): the cap."""
    if sd is None or not np.isfinite(sd) or sd <= 0.0:
        return plan.cap if zs is not None else plan.pilot
    runs = plan.pilot
    while runs < plan.cap and (sd / math.sqrt(runs) > target if zs is None
                               else resolution(sd / math.sqrt(runs), zs, runs) > resolution(target, zs)):
        runs = min(2 * runs, plan.cap)
    return runs


def resolution(mcse, zs, runs=0):
    """The smallest difference a verdict at ``zs`` would detect 90% of the time: ``(c + t₀.₉)·MCSE`` over
    Student's t with ``runs`` − 1 degrees of freedom (``(z* + 1.28)·MCSE`` for many runs, as
    :mod:`simulator.theory.verdict` states it); NaN without an error bar."""
    if mcse is None or not np.isfinite(mcse) or mcse <= 0.0:
        return float("nan")
    power = float(stdtrit(runs - 1, 0.9)) if runs and runs > 1 else float(ndtri(0.9))
    return (critical(zs, runs) + power) * mcse


def next_chunk(total, limit, plan):
    """Runs of a cell's next chunk when it has ``total`` runs: the pilot first, then as many runs as it has
    (doubling it), cut at ``limit``."""
    return plan.pilot if total == 0 else min(total, limit - total)


def schedule(runs, plan):
    """The chunk sizes of a cell of ``runs`` runs (:func:`next_chunk` until it has them)."""
    sizes, total = [], 0
    while total < runs:
        sizes.append(next_chunk(total, runs, plan))
        total += sizes[-1]
    return sizes


# ------------------------------------------------------------------------------------------------ reading


def _of(rows, quantity, task, placement=None):
    """The one row of ``quantity`` for ``task`` (and ``placement``) among a cell's check rows, or None."""
    for r in rows:
        q = r["params"]
        if q.get("quantity") == quantity and q.get("task") == task and (placement is None
                                                                          or q.get("placement") == placement):
            return r
    return None


def cell_quantities(cell, rows):
    """``{quantity: row}`` of the map's quantities in one cell's rows (absent ones left out)."""
    reg, cls = cell["task"], TWINS[cell["task"]]
    found = {"dmse": _of(rows, "dmse", reg, cell["placement"]), "drop": _of(rows, "drop", cls, cell["placement"]),
             "mse_none": _of(rows, "mse", reg, "none"), "accuracy_none": _of(rows, "accuracy", cls, "none"),
             "ce_none": _of(rows, "ce", cls, "none"),
             "best_epoch": _of(rows, "best_epoch", reg, cell["placement"])}
    if cell["placement"] == "hidden" and cell["bn"] == "true":
        found.update(dmse_shift=_of(rows, "dmse_shift", reg), dce_shift=_of(rows, "dce_shift", cls),
                     dacc_shift=_of(rows, "dacc_shift", cls))
    return {k: v for k, v in found.items() if v is not None}


def target_of(quantity, plan, reference=None):
    """The target MCSE of ``quantity`` in a cell whose no-dropout metric is ``reference``: the plan's target,
    and at most its ``relative`` fraction of the reference (where the plan gives one)."""
    target = plan.targets[quantity]
    rel = plan.relative.get(quantity)
    if rel is not None and reference is not None and np.isfinite(reference) and reference > 0.0:
        target = min(target, rel * float(reference))
    return target


def required_runs(cell, rows, plan, zs=None):
    """Runs the cell needs, from its rows so far: the most any of its differences needs (``zs``: quantity →
    its family's z*, :func:`sizing_z`; without it, the MCSE alone)."""
    runs = plan.pilot
    found = cell_quantities(cell, rows)
    reference = found["mse_none"]["estimate"] if "mse_none" in found else None
    for quantity, r in found.items():
        if quantity in plan.targets:
            sd = None if r["mcse"] is None else r["mcse"] * math.sqrt(r["samples"])
            runs = max(runs, runs_needed(sd, target_of(quantity, plan, reference), plan,
                                         None if zs is None else zs[quantity]))
    return runs


STALE = ("family", "verdict", "z", "tolerance", "resolution", "resolution_rel", "rel_error")  # judged per chunk


def pooled(rows):
    """One quantity's row from its rows in a cell's chunks: the mean and MCSE (s/√R, s with R − 1) of all
    their runs together (Chan et al.'s pooled sums of squares); a single chunk's row as it is. Either way
    without the fields judged on one chunk alone (:data:`STALE`)."""
    if len(rows) == 1:
        return {k: v for k, v in rows[0].items() if k not in STALE}
    n = np.array([r["samples"] for r in rows], dtype=float)
    m = np.array([r["estimate"] for r in rows], dtype=float)
    total = float(n.sum())
    mean = float(np.dot(n, m) / total)
    if any(r["mcse"] is None for r in rows):
        mcse = None
    else:
        s = np.array([r["mcse"] for r in rows], dtype=float) * np.sqrt(n)
        ss = float(np.dot(n - 1.0, s * s) + np.dot(n, (m - mean) ** 2))
        mcse = math.sqrt(ss / (total - 1.0) / total)
    first = {k: v for k, v in rows[0].items() if k not in STALE}
    return {**first, "estimate": mean, "mcse": mcse, "samples": int(total),
            "params": {**first["params"], "runs": int(total)}}


def pool(cell, chunks):
    """The map's rows of ``cell`` from the check rows of its chunks (a list per chunk), pooled per quantity."""
    found = [cell_quantities(cell, rows) for rows in chunks]
    return [pooled([f[q] for f in found]) for q in found[0] if all(q in f for f in found)]


def family_of(quantity):
    """The sub-claim whose family judges ``quantity``."""
    return {"dmse": "C6-regression", "drop": "C6-classification"}.get(quantity, "C6-shift")


def family_sizes(grid):
    """Cells per family over ``grid``: every cell has ΔMSE and a drop; hidden-with-BN cells the 3 shift costs."""
    shift = sum(1 for c in grid if c["placement"] == "hidden" and c["bn"] == "true")
    return {"C6-regression": len(grid), "C6-classification": len(grid), "C6-shift": len(SHIFT) * shift}


def sizing_z(grid, plan):
    """Quantity → the z* of its family over ``grid`` (what :func:`table` will judge it at)."""
    sizes = family_sizes(grid)
    return {q: z_threshold(plan.alpha, sizes[family_of(q)]) for q in EFFECTS + SHIFT}


# ------------------------------------------------------------------------------------------------ judging


def critical(zs, runs):
    """The multiple of the MCSE a difference over ``runs`` paired runs must pass: Student's t with runs − 1
    degrees of freedom at the tail of the normal z* (z* itself for many runs), as ``verify`` judges it."""
    return float(-stdtrit(runs - 1, ndtr(-zs))) if runs and runs > 1 else zs


def word(quantity, estimate, mcse, zs, margin=MARGIN, runs=0):
    """The verdict of one cell's difference, and the bound that goes with it.

    With ``c`` = :func:`critical` (z* mapped to Student's t over the cell's ``runs`` − 1 degrees of freedom):
    effects (ΔMSE, ΔCE_shift) ``hurts`` (estimate > c·MCSE), ``helps`` (< −c·MCSE), else ``no effect beyond
    ±b`` with ``b = |estimate| + c·MCSE`` (the smallest effect the cell could have missed). A difference with
    no spread over its runs has no error bar: ``undecided``. Accuracy drops against the margin: ``within the
    margin`` (estimate + c·MCSE < margin), ``beyond the margin`` (estimate − c·MCSE > margin), else
    ``undecided``.
    """
    if mcse is None or not np.isfinite(mcse) or mcse <= 0.0:
        return "undecided", None  # no spread over the runs (e.g. the same accuracy in every run): no error bar
    c = critical(zs, runs)
    bound = abs(estimate) + c * mcse
    if quantity in ("drop", "dacc_shift"):
        if estimate + c * mcse < margin:
            return "within the margin", estimate + c * mcse
        if estimate - c * mcse > margin:
            return "beyond the margin", estimate - c * mcse
        return "undecided", bound
    if estimate > c * mcse:
        return "hurts", estimate - c * mcse
    if estimate < -c * mcse:
        return "helps", estimate + c * mcse
    return "no effect beyond ±b", bound


def z_of(estimate, mcse, runs):
    """The normal z with the tail of the cell's t = estimate/MCSE over runs − 1 degrees of freedom."""
    if not mcse or not np.isfinite(mcse):
        return None
    t = estimate / mcse
    return float(np.copysign(-ndtri(stdtr(runs - 1, -abs(t))), t)) if runs and runs > 1 else t


def table(results, plan):
    """The tidy map: one row per cell and quantity (a pandas DataFrame).

    ``results`` is a list of ``(cell, rows)`` pairs: a cell and its rows (:func:`pool`: its chunks pooled). Columns:
    the cell's axes, ``quantity``, ``estimate``, ``mcse``, ``runs``, ``target`` (the target MCSE),
    ``reference`` (the no-dropout metric of the cell, for effects in its units), ``relative``
    (estimate / reference), ``z``, ``family`` (its sub-claim), ``z_star`` of that family, ``resolution``
    (:func:`resolution`: the smallest difference the cell would detect 90% of the time; NaN without an error
    bar) and ``reached`` (resolution ≤ that of the target MCSE with many runs), ``verdict`` and ``bound``.
    """
    import pandas as pd

    found = []
    for cell, rows in results:
        q = cell_quantities(cell, rows)
        for quantity in EFFECTS + SHIFT:
            if quantity not in q:
                continue
            r = q[quantity]
            ref = q.get(REFERENCE[quantity])
            family = family_of(quantity)
            stop = q.get("best_epoch")
            found.append({**cell, "epochs": epochs_for(cell["rows"], plan), "quantity": quantity,
                          "best_epoch": None if stop is None else stop["estimate"],
                          "estimate": r["estimate"], "mcse": r["mcse"], "runs": r["samples"],
                          "target": target_of(quantity, plan, None if ref is None else ref["estimate"]),
                          "reference": None if ref is None else ref["estimate"],
                          "relative": None if not ref or not ref["estimate"] else r["estimate"] / ref["estimate"],
                          "z": z_of(r["estimate"], r["mcse"], r["samples"]), "family": family})
    frame = pd.DataFrame(found)
    if frame.empty:
        return frame
    sizes = frame.groupby("family")["quantity"].transform("size")
    frame["z_star"] = [z_threshold(plan.alpha, m) for m in sizes]
    frame["resolution"] = [resolution(r.mcse, r.z_star, r.runs) for r in frame.itertuples()]
    frame["reached"] = [bool(res <= resolution(target, zs)) for res, target, zs
                        in zip(frame["resolution"], frame["target"], frame["z_star"])]
    judged = [word(r.quantity, r.estimate, r.mcse, r.z_star, runs=r.runs) for r in frame.itertuples()]
    frame["verdict"] = [w for w, _ in judged]
    frame["bound"] = [b for _, b in judged]
    return frame


# ---------------------------------------------------------------------------------------------- crossover




def crossover(frame, quantity):
    """Where the total effect changes sign along N, per series (length, task, BN, placement, p): a DataFrame.

    A change of sign is a finding only between two sizes where the effect is significant with opposite
    signs (|z| > its family's z*): ``low`` and ``high`` are the first such pair of sizes (the bracket),
    ``n_star`` the size where the estimate, interpolated linearly in log N between them, crosses 0, and
    ``sign`` ``"− then +"`` or ``"+ then −"``; ``resolved`` is False (and the rest None) when no series
    point pair brackets a change.
    """
    import pandas as pd

    out = []
    part = frame[frame["quantity"] == quantity]
    for axes, s in part.groupby(list(SERIES), sort=False):
        s = s.sort_values("rows")
        n = s["rows"].to_numpy(float)
        est = s["estimate"].to_numpy(float)
        z = np.array([np.nan if v is None else v for v in s["z"]], dtype=float)
        row = {**dict(zip(SERIES, axes)), "quantity": quantity, "n_star": None, "low": None, "high": None,
               "sign": None, "resolved": False}
        found = _bracket(n, z, s["z_star"].to_numpy(float))
        if found is not None:
            a, b = found
            inside = slice(a, b + 1)
            row.update(n_star=crossing_n(np.log(n[inside]), est[inside]), low=float(n[a]), high=float(n[b]),
                       sign="− then +" if est[a] < 0 else "+ then −", resolved=True)
        out.append(row)
    return pd.DataFrame(out)


def _bracket(n, z, zs):
    """Indices ``(a, b)`` of the first two sizes, in order, that are significant with opposite signs."""
    sig = [i for i in range(len(n)) if abs(z[i]) > zs[i]]
    for a, b in zip(sig, sig[1:]):
        if np.sign(z[a]) != np.sign(z[b]):
            return a, b
    return None


def crossing_n(logn, y):
    """N where the piecewise-linear curve (log N, y) first crosses 0 (None if it does not)."""
    for i in range(len(y) - 1):
        if y[i] == 0.0:
            return float(np.exp(logn[i]))
        if y[i] * y[i + 1] < 0.0:
            t = y[i] / (y[i] - y[i + 1])
            return float(np.exp(logn[i] + t * (logn[i + 1] - logn[i])))
    return None


# ------------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class MapResult:
    """A finished map.

    Attributes
    ----------
    meta : dict
        The plan, seed and versions (no timings: the result depends on the plan and the seed only).
    cells : list of (dict, list)
        Each cell and the rows it was judged on (its chunks pooled per quantity, :func:`pool`).
    table : pandas.DataFrame
        :func:`table`: one row per cell and quantity.
    crossovers : pandas.DataFrame
        :func:`crossover` of ΔMSE and of the accuracy drop.
    sentences : dict
        :func:`sentences`: one per sub-claim.
    """

    meta: dict
    cells: list
    table: object
    crossovers: object
    sentences: dict = field(default_factory=dict)


def _point_key(cell, runs, chunk=0):
    return {"map-cell": cell, "runs": runs, **({"chunk": chunk} if chunk else {})}


def _train(cell, plan, runs, chunk, seed, threads=None):
    """The check rows of one chunk of ``cell``: a point of a ``training`` sweep."""
    from .sweep import run_point

    s = cell_settings(cell, plan, runs, chunk)
    return run_point("training", {"p": s["p"]}, s["p"], {k: v for k, v in s.items() if k != "p"}, None, seed,
                     DEFAULT_ALPHA, threads=threads)


def train_cell(cell, plan, runs, seed, threads=None):
    """``cell`` trained as the map trains it with ``runs`` runs: its chunks (:func:`schedule`), pooled."""
    return pool(cell, [_train(cell, plan, size, k, seed, threads) for k, size in enumerate(schedule(runs, plan))])


def _run_all(todo, seed, threads, done, workers, scheduler, progress, label):
    """Train the chunks of ``todo`` (checkpoint key → (cell, plan, runs, chunk)) not yet in checkpoint ``done``;
    save each as it ends."""
    tasks = {k: (*args, seed) for k, args in todo.items() if k not in done}
    if not tasks:
        finished = iter(())
    elif workers or scheduler:
        from .cluster import on_cluster

        finished = on_cluster(tasks, _train, workers, scheduler, threads)
    else:
        finished = ((k, _train(*args, threads=threads)) for k, args in tasks.items())
    count = len(todo) - len(tasks)
    for k, rows in finished:
        done.save(k, rows)
        count += 1
        if progress is not None:
            progress(label, count, len(todo))


def regime_map(plan=None, seed=None, threads=None, checkpoint=None, workers=None, scheduler=None, progress=None):
    """Train every cell of ``plan``: a pilot, then chunks of doubling size while a cell needs them; judge.

    Parameters
    ----------
    plan : Plan, optional
        The map (default: the full map, :class:`Plan` ()).
    seed : int, optional
        Default: the project's seed.
    threads, workers, scheduler, progress
        As for :func:`simulator.runs.sweep.sweep`: the engine's threads here, or chunks on a local Dask
        cluster of ``workers`` processes, or on the cluster at ``scheduler``.
    checkpoint : str, optional
        A checkpoint file (:mod:`simulator.runs.checkpoint`): finished chunks are kept there and not trained
        again by a rerun of the same map.

    Returns
    -------
    MapResult
    """
    from ..core.params import DEFAULT_SEED, check_seed, versions
    from .checkpoint import Checkpoint, key

    plan = Plan() if plan is None else plan
    seed = check_seed(DEFAULT_SEED if seed is None else seed)
    grid = cells(plan)
    zs = sizing_z(grid, plan)
    done = Checkpoint(checkpoint, {"command": "map", "plan": _plan_dict(plan), "seed": seed})
    chunks = [[] for _ in grid]  # the checkpoint keys of each cell's chunks so far
    sizes = [0] * len(grid)
    grow = list(range(len(grid)))
    while grow:
        k = len(chunks[grow[0]])
        todo = {}
        for i in grow:
            runs = next_chunk(sizes[i], plan.cap, plan)
            chunks[i].append(key(**_point_key(grid[i], runs, k)))
            todo[chunks[i][-1]] = (grid[i], plan, runs, k)
            sizes[i] += runs
        _run_all(todo, seed, threads, done, workers, scheduler, progress,
                 "map pilot cells" if k == 0 else f"map cells, chunk {k} ({len(todo)} cells)")
        grow = [i for i in grow if sizes[i] < plan.cap
                and required_runs(grid[i], pool(grid[i], [done[c] for c in chunks[i]]), plan, zs) > sizes[i]]
    results = [(c, pool(c, [done[k] for k in ks])) for c, ks in zip(grid, chunks)]
    frame = table(results, plan)
    import pandas as pd

    cross = pd.concat([crossover(frame, q) for q in EFFECTS], ignore_index=True) if len(frame) else frame
    meta = {"command": "map", "plan": _plan_dict(plan), "seed": seed, "cells": len(grid),
            "runs": {"pilot": plan.pilot * len(grid), "final": int(sum(sizes)),
                     "chunks": int(sum(len(ks) for ks in chunks))},
            "families": {f: {"cells": int(n), "z_star": z_threshold(plan.alpha, n)}
                         for f, n in (frame.groupby("family").size().items() if len(frame) else [])},
            "versions": versions()}
    return MapResult(meta, results, frame, cross, sentences(frame, cross))


def _plan_dict(plan):
    return {"tasks": list(plan.tasks), "rows": [int(n) for n in plan.rows], "keep": [float(p) for p in plan.keep],
            "placements": list(plan.placements), "bn": list(plan.bn), "lengths": list(plan.lengths),
            "steps": plan.steps,
            "min_epochs": plan.min_epochs, "batch": plan.batch, "pilot": plan.pilot, "cap": plan.cap,
            "targets": dict(plan.targets), "relative": dict(plan.relative), "alpha": plan.alpha}


# ---------------------------------------------------------------------------------------------- sentences


def _sizes(cells):
    """``N = 120`` or ``N 120–2,200`` for the sizes of ``cells``."""
    lo, hi = int(cells["rows"].min()), int(cells["rows"].max())
    return f"N = {lo:,}" if lo == hi else f"N {lo:,}–{hi:,}"


VERDICTS = ("hurts", "helps", "beyond the margin", "within the margin", "no effect beyond ±b", "undecided")


def _where(part, verdict):
    """``hurts in 39 (N 520–40,000, median 9,400; 33 with dropout before BN)`` for the cells of ``part`` (the
    count with dropout before BN left out where every cell has it: the shift's costs)."""
    cells = part[part["verdict"] == verdict]
    ns = sorted(int(n) for n in cells["rows"])
    if not ns:
        return ""
    before = int(((cells["placement"] == "hidden") & (cells["bn"] == "true")).sum())
    every = bool(((part["placement"] == "hidden") & (part["bn"] == "true")).all())
    return (f"{verdict} in {len(ns)} ({_sizes(cells)}, median {ns[len(ns) // 2]:,}"
            + ("" if every else f"; {before} with dropout before BN") + ")")


def _verdicts(part):
    return ", ".join(_where(part, v) for v in VERDICTS if (part["verdict"] == v).any())


def _name(axes):
    length, task, bn, placement, p = axes
    return f"{task} {placement} BN {'on' if bn == 'true' else 'off'} p = {p:g} ({length})"


def sentences(frame, crossovers):
    """One sentence per sub-claim: where the document's C6 holds on the map and where it does not."""
    if frame is None or not len(frame):
        return {}
    out = {}
    what = {"C6-regression": ("dmse", "the document says dropout hurts regression (ΔMSE > 0)"),
            "C6-classification": ("drop", "the document says classification barely suffers (drop ≤ 1 point)"),
            "C6-shift": ("dmse_shift", "the document's mechanism says the shift itself costs loss but not accuracy; "
                                       "ΔMSE_shift (> 0)")}
    for family, (quantity, claim) in what.items():
        part = frame[frame["quantity"] == quantity]
        if not len(part):
            continue
        tests = int((frame["family"] == part["family"].iloc[0]).sum())
        short = part[~part["reached"]]
        text = (f"{claim}; over {len(part)} cells (z* = {part['z_star'].iloc[0]:.2f} for the {tests} tests of its "
                f"family): " + _verdicts(part) + f"; {len(short)} cell"
                + ("s" if len(short) != 1 else "") + " short of the target resolution at the cap"
                + (f" ({_sizes(short)})." if len(short) else "."))
        if family == "C6-shift":
            for other, words in (("dce_shift", "ΔCE_shift (the document: > 0)"),
                                 ("dacc_shift", "the accuracy lost to the shift (the document: ≤ 1 point)")):
                rest = frame[frame["quantity"] == other]
                if len(rest):
                    text += f" {words[0].upper() + words[1:]}: {_verdicts(rest)}."
        if quantity not in EFFECTS:  # crossovers are sought for the total effects only
            out[family] = text
            continue
        cross = crossovers[(crossovers["quantity"] == quantity)] if len(crossovers) else crossovers
        found = [] if not len(cross) else [r for r in cross.itertuples() if r.resolved]
        if not found:
            text += " No change of sign along N is resolved (no series is significantly above 0 at one size and "\
                    "below at another)."
        else:
            text += " The sign changes along N at " + "; ".join(
                f"{_name((r.length, r.task, r.bn, r.placement, r.p))}: {r.sign} between N = {r.low:,.0f} and "
                f"{r.high:,.0f} (N* ≈ {r.n_star:,.0f})" for r in found[:6]) + ("; …" if len(found) > 6 else "") + "."
        out[family] = text
    return out


def _numbers(text, name, kind):
    """``"100,300"`` (or a list) as a tuple of ints or floats; one line naming the option otherwise."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    try:
        return tuple(kind(str(v).strip().replace("_", "")) for v in items if str(v).strip())
    except ValueError:
        raise ParameterError(f"--{name} {shown(text)}: expected comma-separated numbers, e.g. "
                             f"{'100,1000' if kind is int else '0.5,0.9'}") from None


def plan_from(quick=False, tasks=(), rows=None, keep=None, placements=(), bn=(), lengths=(), steps=None,
              min_epochs=None, pilot=None, cap=None, alpha=None):
    """A :class:`Plan` from command-line texts: the full map (or :data:`QUICK`) with the options given."""
    base = {**(QUICK if quick else {})}
    given = {"tasks": tuple(tasks) or None, "rows": None if rows is None else _numbers(rows, "rows", int),
             "keep": None if keep is None else _numbers(keep, "keep", float),
             "placements": tuple(placements) or None, "bn": tuple(bn) or None,
             "lengths": tuple(lengths) or None, "steps": steps,
             "min_epochs": min_epochs, "pilot": pilot, "cap": cap}
    if alpha is not None:
        given["alpha"] = _numbers([alpha], "alpha", float)[0]
    base.update({k: v for k, v in given.items() if v is not None})
    for name in ("rows", "keep"):
        if name in base and not base[name]:
            raise ParameterError(f"--{name}: give at least one value")
    return Plan(**base)
