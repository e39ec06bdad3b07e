"""C6 judged on the regime map: every cell of the committed map as a finding of its sub-claim.

The map (:mod:`simulator.runs.regime`, ``cli.py map``) trains the ``training`` experiment's networks over
data size N × keep p × placement × BN for a regression task and its classification twin, each cell grown
until its resolution reaches its target (or the cap). Training it again takes about an hour, so ``simulate``
and ``verify`` read the map committed in the repository (:mod:`simulator.data.c6map`), whose cells a test
trains again bit for bit. Each cell gives:

- ``ΔMSE`` (C6-regression, an *effect*: the document says > 0);
- the accuracy drop (C6-classification, an *equivalence* within one point);
- with dropout before BN: ``ΔMSE shift``, ``ΔCE shift`` (effects) and the accuracy lost to the shift (an
  equivalence) (C6-shift).

They are judged, like every finding, in their sub-claim's own family; the t of R runs is mapped to the
normal z with R − 1 degrees of freedom. Without the committed map (an installed package has no
``reports/`` folder) the experiment yields no checks and says so in its notes.
"""
from ..data import c6map
from ..data.c6map import MARGIN
from ..theory.verdict import Check, Facts
from .catalog import CheckSpec, Experiment, by_facts

KINDS = {"dmse": ("ΔMSE", "effect", "C6-regression"),
         "drop": ("accuracy drop", "equivalence", "C6-classification"),
         "dmse_shift": ("ΔMSE shift", "effect", "C6-shift"), "dce_shift": ("ΔCE shift", "effect", "C6-shift"),
         "dacc_shift": ("accuracy lost to the shift", "equivalence", "C6-shift")}
FORMULA = {"dmse": "test MSE with dropout − without, paired over runs; the document: > 0",
           "drop": "test accuracy without dropout − with, paired; the document: ≤ 0.01",
           "dmse_shift": "the same weights, BN as trained − recalibrated with dropout off: test MSE; > 0",
           "dce_shift": "the same weights, BN as trained − recalibrated: test cross-entropy; > 0",
           "dacc_shift": "the same weights, accuracy recalibrated − as trained; ≤ 0.01"}


def _task(row):
    return row["task"] if row["quantity"] in ("dmse", "dmse_shift") else f"{row['task']}-class"


def crossover_text(cross):
    """A resolved change of sign along N of one series of the map, in words."""
    bn = "on" if cross["bn"] == "true" else "off"
    return (f"{cross['task']}, {cross['placement']}, BN {bn}, p = {cross['p']:g}, {cross['length']}: {cross['sign']} "
            f"between N = {cross['low']:,.0f} and {cross['high']:,.0f} (N* ≈ {cross['n_star']:,.0f})")


SOUGHT = ("dmse", "drop")  # the quantities whose changes of sign along N the map looks for


def cell_check(row, source, crossovers=()):
    """The check of one row of the committed map's table (``crossovers``: the map's, to name the change of
    sign along N of the row's series, where one is resolved)."""
    label, kind, subclaim = KINDS[row["quantity"]]
    bn = "on" if row["bn"] == "true" else "off"
    where = f"N={row['rows']}, p={row['p']:g}, BN {bn}"
    found = [c for c in crossovers if c.get("resolved") and c["quantity"] == row["quantity"]
             and all(c[k] == row[k] for k in c6map.SERIES)]
    params = {"task": _task(row), "N": row["rows"], "p_cell": row["p"], "placement": row["placement"],
              "bn": row["bn"] == "true", "length": row.get("length", "budget"), "train_epochs": row["epochs"],
              "runs": row["runs"], "quantity": row["quantity"], "map": source,
              # the total effects' series are searched for a change of sign (None: none resolved)
              **({"crossover": crossover_text(found[0]) if found else None} if row["quantity"] in SOUGHT else {})}
    extra = {"margin": MARGIN} if kind == "equivalence" else {}
    mcse = float("nan") if row["mcse"] is None else float(row["mcse"])  # None: no spread, no error bar
    return Check(f"{label} ({row['placement']}) [{_task(row)}, {where}]", kind, 0.0, float(row["estimate"]),
                 mcse, {**params, **extra}, formula=FORMULA[row["quantity"]],
                 dof=max(int(row["runs"]) - 1, 0), samples=int(row["runs"]),
                 facts=Facts(subclaim, label, setting=row["placement"], task=_task(row)), **extra)


def run(p, q, ctx):
    """Read the committed C6 regime map: its cells are findings about the document, measured and judged
    when the map was made (``cli.py map``); nothing is sampled here.

    Called as ``run(p, params, ctx)`` (:class:`~simulator.experiments.catalog.Experiment`); returns a list of
    :class:`~simulator.theory.verdict.Check`:

    One check per cell of the committed map (:mod:`simulator.data.c6map`); empty without one.
    """
    committed = c6map.load()
    if committed is None:
        return []
    meta = committed["meta"]
    source = f"committed map, seed {meta['seed']}" + (f", {meta['date']}" if meta.get("date") else "")
    return [cell_check(row, source, committed.get("crossovers", ())) for row in committed["table"]]


_PT = ("setting", "task")
_ONLY = "with a committed map (reports/c6-map)"
CHECKS = (
    CheckSpec("ΔMSE (pl) [task, N, p, BN]", "effect", "a map cell: MSE with dropout − without, paired", ("ΔMSE",),
              _PT, subclaim="C6-regression", only=_ONLY),
    CheckSpec("accuracy drop (pl) [task, N, p, BN]", "equivalence", "a map cell: accuracy without − with",
              ("accuracy drop",), _PT, subclaim="C6-classification", only=_ONLY),
    CheckSpec("ΔMSE shift|ΔCE shift (hidden) [task, N, p, BN]", "effect",
              "a map cell: the same weights, BN as trained − recalibrated", ("ΔMSE shift", "ΔCE shift"), _PT,
              subclaim="C6-shift", only=_ONLY + ", BN on, hidden"),
    CheckSpec("accuracy lost to the shift (hidden) [task, N, p, BN]", "equivalence",
              "a map cell: accuracy recalibrated − as trained", ("accuracy lost to the shift",), _PT,
              subclaim="C6-shift", only=_ONLY + ", BN on, hidden"),
)

EXPERIMENT = Experiment(
    name="regime-map",
    gated=False,
    self_tests=False,
    claim_id="C6",
    claim="Over a map of regimes (data size N × keep p × placement × BN, a regression task and its "
          "classification twin): dropout makes regression worse, barely affects classification, and the "
          "variance shift itself costs loss but not accuracy.",
    source="document's conclusion; Srivastava et al. 2014 §7.4; Liu et al., ICML 2023; the committed map",
    params=(),
    checks=CHECKS,
    run=run,
    samples=1000,
    notes="Reads reports/c6-map/map.json (cli.py map; regenerated bit for bit by a test); no sampling of its "
          "own. p is the cell's own keep probability (param p_cell), not the command's.",
    headline=(),
    subclaim=by_facts("C6", CHECKS),
    subclaims=("C6-regression", "C6-classification", "C6-shift"),
    p_grid=(0.5,),
)
