"""The C6 regime map on paper: its tidy tables, three figures per task, and one folder that holds them.

:func:`write_map` writes a :class:`~simulator.runs.regime.MapResult` to a folder (never half-written; it
replaces only an empty folder or one it wrote itself, marked by ``map.json``):

- ``map.csv``: one row per cell and quantity (:func:`simulator.runs.regime.table`);
- ``crossovers.csv``: where the total effect changes sign along N;
- ``map.json``: the plan, seed, versions, the summary sentences, both tables, and every cell with the runs
  it took (with the plan, what :func:`simulator.runs.regime.cell_settings` needs to train it again from its
  seed and compare bit for bit);
- per task and training length: ``TASK-LENGTH-phase.png`` (N × p, colour = effect in units of the
  no-dropout metric, a diverging palette centred on 0; undecided cells hatched), ``TASK-LENGTH-effect.png``
  (effect against N with ±2 MCSE bands, regression and classification side by side) and
  ``TASK-LENGTH-shift.png`` (the shift's own cost against N: MSE, CE, accuracy), each also as SVG.
"""
import json
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from ..core.errors import OutputError  # noqa: E402
from ..core.files import check_folder, new_folder, remove_folder, replace_folder  # noqa: E402
from ..core.interrupts import sigint_ignored  # noqa: E402
from ..runs.regime import TWINS, sentences  # noqa: E402

MARK = "map.json"
WRITTEN = ("map.csv", "crossovers.csv", MARK, "README.md")
DECIDED = {"hurts", "helps", "within the margin", "beyond the margin"}
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#000000")
LABEL = {"dmse": "ΔMSE (dropout − none)", "drop": "accuracy drop (none − dropout)",
         "dmse_shift": "ΔMSE_shift (as trained − recalibrated)", "dce_shift": "ΔCE_shift",
         "dacc_shift": "accuracy lost to the shift"}


def is_map(path):
    """True when ``path`` is a folder this module wrote (its ``map.json`` says so, nothing foreign in it)."""
    try:
        with open(os.path.join(path, MARK), encoding="utf-8") as f:
            ok = json.load(f).get("meta", {}).get("command") == "map"
        return ok and all(name in WRITTEN or name.endswith((".png", ".svg")) for name in os.listdir(path))
    except (OSError, ValueError, AttributeError):
        return False


def _save(fig, stem):
    """PNG and SVG, the same bytes for the same data (no date, a fixed hash salt)."""
    fig.savefig(stem + ".png", dpi=100, bbox_inches="tight")
    with matplotlib.rc_context({"svg.hashsalt": "dropout-bn"}):
        fig.savefig(stem + ".svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)


def _panels(frame, task):
    """The (BN, placement) panels of a task, in plan order."""
    part = frame[frame["task"] == task]
    return list(dict.fromkeys(zip(part["bn"], part["placement"])))


def phase_figure(frame, task, stem, length=""):
    """N × p, colour = effect / no-dropout metric; rows: regression, classification; columns: panels."""
    panels = _panels(frame, task)
    fig, axes = plt.subplots(2, len(panels), figsize=(3.8 * len(panels) + 1.6, 7.0), squeeze=False,
                             layout="constrained")
    for row, quantity in enumerate(("dmse", "drop")):
        part = frame[(frame["task"] == task) & (frame["quantity"] == quantity)]
        values = part["relative"].astype(float).abs()
        span = float(np.nanmax(values)) if len(values) and np.isfinite(np.nanmax(values)) else 1.0
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-max(span, 1e-9), vmax=max(span, 1e-9))
        for col, (bn, placement) in enumerate(panels):
            ax = axes[row, col]
            cells = part[(part["bn"] == bn) & (part["placement"] == placement)]
            ns, ps = sorted(cells["rows"].unique()), sorted(cells["p"].unique())
            grid = np.full((len(ps), len(ns)), np.nan)
            for r in cells.itertuples():
                grid[ps.index(r.p), ns.index(r.rows)] = np.nan if r.relative is None else r.relative
            image = ax.imshow(grid, cmap="RdBu_r", norm=norm, aspect="auto", origin="lower")
            for r in cells.itertuples():
                x, y = ns.index(r.rows), ps.index(r.p)
                if r.verdict not in DECIDED:
                    ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="//", lw=0,
                                               edgecolor="#555555"))
                text = "?" if r.relative is None else f"{100 * r.relative:+.0f}%".replace("-", "−")
                ax.text(x, y, text.replace("+0%", "0%").replace("−0%", "0%"), ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(ns)), [f"{n:,}" for n in ns], fontsize=8)
            ax.set_yticks(range(len(ps)), [f"{p:g}" for p in ps])
            ax.set_xlabel("rows N (log-spaced)")
            ax.set_ylabel("keep p")
            kind = "regression" if quantity == "dmse" else "classification"
            ax.set_title(f"{kind}: {placement}, BN {'on' if bn == 'true' else 'off'}", fontsize=10)
        fig.colorbar(image, ax=list(axes[row]), shrink=0.8,
                     label=("ΔMSE / MSE(none)" if quantity == "dmse" else "drop / accuracy(none)")
                     + "\n> 0: dropout hurts")
    fig.suptitle(f"{task} ({length}): effect of dropout in units of the no-dropout metric\n(hatched: not "
                 "decided at the map's error level; red: dropout hurts, blue: it helps)")
    _save(fig, stem)


def _bands(ax, part, ylabel):
    for k, (p, s) in enumerate(part.groupby("p")):
        s = s.sort_values("rows")
        n, est, se = s["rows"].to_numpy(float), s["estimate"].to_numpy(float), s["mcse"].to_numpy(float)
        colour = PALETTE[k % len(PALETTE)]
        ax.plot(n, est, marker="o", color=colour, label=f"p = {p:g}")
        ax.fill_between(n, est - 2 * se, est + 2 * se, color=colour, alpha=0.2, lw=0)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("rows N")
    ax.set_ylabel(ylabel)


def effect_figure(frame, task, stem, length=""):
    """The total effect against N (±2 MCSE bands), regression and classification side by side."""
    panels = _panels(frame, task)
    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 3.0 * len(panels) + 0.6), squeeze=False)
    for row, (bn, placement) in enumerate(panels):
        for col, quantity in enumerate(("dmse", "drop")):
            ax = axes[row, col]
            part = frame[(frame["task"] == task) & (frame["quantity"] == quantity) & (frame["bn"] == bn)
                         & (frame["placement"] == placement)]
            _bands(ax, part, LABEL[quantity])
            if quantity == "drop":
                ax.axhline(0.01, color="#777777", lw=0.8, ls="--")
            ax.set_title(f"{'regression' if quantity == 'dmse' else 'classification'}: {placement}, "
                         f"BN {'on' if bn == 'true' else 'off'}", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{task} / {TWINS[task]} ({length}): dropout's total effect against the data size (±2 MCSE)")
    fig.tight_layout()
    _save(fig, stem)


def shift_figure(frame, task, stem, length=""):
    """The shift's own cost against N: ΔMSE_shift, ΔCE_shift and the accuracy lost (hidden, BN on)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), squeeze=False)
    for col, quantity in enumerate(("dmse_shift", "dce_shift", "dacc_shift")):
        part = frame[(frame["task"] == task) & (frame["quantity"] == quantity)]
        _bands(axes[0, col], part, LABEL[quantity])
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{task} ({length}): the variance shift's own cost, the same weights, BN as trained − "
                 "recalibrated")
    fig.tight_layout()
    _save(fig, stem)


def _targets(plan):
    """``ΔMSE 0.01 (and at most 5% of the no-dropout MSE), …`` from a plan's targets."""
    names = {"dmse": "ΔMSE", "drop": "accuracy drop", "dmse_shift": "ΔMSE_shift", "dce_shift": "ΔCE_shift",
             "dacc_shift": "accuracy lost to the shift"}
    relative = plan.get("relative", {})
    return ", ".join(f"{names.get(q, q)} {v:g}" + (f" (and at most {relative[q]:.0%} of the no-dropout MSE)"
                                                   if q in relative else "") for q, v in plan["targets"].items())


def readme(meta):
    """The folder's ``README.md``: what the map is, how it was made, what each file holds."""
    plan = meta["plan"]
    line = " ".join(meta.get("command_line") or ["cli.py", "map"])
    return f"""# A C6 regime map

Made with `python {line}` on {meta.get("date")}, seed {meta["seed"]}: {meta["cells"]:,} cells, \
{meta["runs"]["final"]:,} training runs, each trained once (a pilot of {meta["runs"]["pilot"]:,}, then chunks of \
doubling size for the cells short of their resolution). Tasks: \
{", ".join(plan["tasks"])}, each with its classification twin; N ∈ {{{", ".join(f"{n:,}" for n in plan["rows"])}}}; \
keep p ∈ {{{", ".join(f"{p:g}" for p in plan["keep"])}}}; placements {", ".join(plan["placements"])}; BN \
{", ".join(plan["bn"])}; training length {", ".join(plan["lengths"])} (step budget: {plan["steps"]:,} steps or \
{plan["min_epochs"]} epochs, whichever is more; early: stopped on a validation fifth of the training rows). Runs \
per cell: a pilot of {plan["pilot"]}, doubled while the cell's resolution (the smallest difference it would detect 90% \
of the time: Student's t at its family's z*, plus t's 90% quantile, times the MCSE) is short of that of its target \
MCSE with many runs, at most {plan["cap"]}. Target MCSE: {_targets(plan)}.

- `map.csv`: one row per cell and quantity (ΔMSE, the accuracy drop, and with dropout before BN the shift's
  own cost): estimate, MCSE, runs, target MCSE, the no-dropout metric and the effect relative to it, z, the
  family's z*, the resolution (Student's t at z* times the MCSE: the smallest difference the cell tells from 0)
  and whether it reached z* times the target, the verdict and its bound.
- `crossovers.csv`: per series along N, where the total effect changes sign between two sizes that are
  significant with opposite signs.
- `map.json`: the plan, one sentence per sub-claim, both tables, every cell and its runs.
- `TASK-LENGTH-phase.png` (N × p, colour = effect in units of the no-dropout metric, hatched = not decided),
  `TASK-LENGTH-effect.png` (effect against N with ±2 MCSE bands) and `TASK-LENGTH-shift.png` (the shift's own
  cost against N), each also as SVG.

The same command with the same seed gives the same bytes (apart from the date), on any number of threads or
Dask workers; an interrupted run resumes from its `.partial` checkpoint.
"""


def records(frame):
    """A DataFrame as JSON-ready records, every float exactly (``repr``: pandas' own JSON keeps 10 digits)."""
    def plain(v):
        v = v.item() if isinstance(v, np.generic) else v
        return None if isinstance(v, float) and not np.isfinite(v) else v
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def draw_all(frame, folder):
    """Every figure of the map, per task and training length: ``TASK-LENGTH-phase|effect|shift``."""
    if not len(frame):
        return
    for length in frame["length"].unique():
        part = frame[frame["length"] == length]
        for task in part["task"].unique():
            stem = os.path.join(folder, f"{task}-{length}")
            phase_figure(part, task, stem + "-phase", length)
            effect_figure(part, task, stem + "-effect", length)
            if ((part["quantity"] == "dmse_shift") & (part["task"] == task)).any():
                shift_figure(part, task, stem + "-shift", length)


def _payload(result):
    return {"meta": result.meta, "sentences": sentences(result.table, result.crossovers),
            "table": records(result.table), "crossovers": records(result.crossovers),
            "cells": [{"cell": cell, "runs": rows[0]["samples"] if rows else None} for cell, rows in result.cells]}


def write_map(result, out, command=None):
    """Write ``result`` to the folder ``out`` (see the module docstring); return the file names written."""
    check_folder(out, is_map)
    tmp = new_folder(out)
    try:
        result.table.to_csv(os.path.join(tmp, "map.csv"), index=False)
        result.crossovers.to_csv(os.path.join(tmp, "crossovers.csv"), index=False)
        draw_all(result.table, tmp)
        payload = _payload(result)
        payload["meta"] = {**payload["meta"], "command_line": command,
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        with open(os.path.join(tmp, MARK), "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1, sort_keys=False)
            f.write("\n")
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(readme(payload["meta"]))
        with sigint_ignored():
            replace_folder(tmp, out, is_map)
    except OSError as e:
        with sigint_ignored():
            remove_folder(tmp)
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        with sigint_ignored():
            remove_folder(tmp)
        raise
    return sorted(os.listdir(out))


# ------------------------------------------------------------------------------------------ in the report

KINDS = {"phase": "phase diagram: N × p, colour = effect in units of the no-dropout metric",
         "effect": "the total effect against N (±2 MCSE), regression and classification side by side",
         "shift": "the variance shift's own cost against N (the same weights, BN as trained − recalibrated)"}


def _figures_in(folder, prefix=""):
    """``(file stem, title)`` of every map figure in ``folder`` (PNG and SVG both there), in a stable order."""
    found = []
    order = {kind: k for k, kind in enumerate(KINDS)}
    names = sorted(os.listdir(folder), key=lambda n: (n.rsplit("-", 1)[0], order.get(os.path.splitext(n)[0]
                                                                                        .rsplit("-", 1)[-1], 9), n))
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext == ".png" and os.path.exists(os.path.join(folder, stem + ".svg")):
            task, length, kind = stem.rsplit("-", 2) if stem.count("-") >= 2 else (stem, "", "")
            found.append((prefix + stem, f"{task} ({length}): {KINDS.get(kind, kind)}"))
    return found


def committed_into(folder, prefix="c6map-"):
    """Copy the committed map's figures into the report ``folder`` (as ``c6map-…``); its summary for the page,
    or None when the repository's map is not there."""
    import shutil

    from ..data import c6map

    committed = c6map.load()
    if committed is None:
        return None
    shown = _figures_in(str(c6map.FOLDER), prefix)
    for stem, _ in shown:
        for ext in (".png", ".svg"):
            shutil.copyfile(os.path.join(c6map.FOLDER, stem[len(prefix):] + ext), os.path.join(folder, stem + ext))
    meta = committed["meta"]
    return {"sentences": committed["sentences"], "figures": shown, "date": meta.get("date"), "seed": meta["seed"],
            "command": " ".join(meta.get("command_line") or ["cli.py", "map"]), "cells": meta["cells"],
            "runs": meta["runs"]["final"]}


def small_into(folder, result, prefix="small-map-"):
    """Draw the report's own small map into ``folder`` (``small-map-…``, and ``small-map.csv``); its summary."""
    scratch = os.path.join(folder, ".small-map")
    os.mkdir(scratch)
    draw_all(result.table, scratch)
    shown = []
    for stem, title in _figures_in(scratch):
        for ext in (".png", ".svg"):
            os.replace(os.path.join(scratch, stem + ext), os.path.join(folder, prefix + stem + ext))
        shown.append((prefix + stem, title))
    os.rmdir(scratch)
    result.table.to_csv(os.path.join(folder, prefix.rstrip("-") + ".csv"), index=False)
    return {"sentences": result.sentences, "figures": shown, "cells": result.meta["cells"],
            "runs": result.meta["runs"]["final"], "plan": result.meta["plan"]}


def is_map_file(name):
    """A file the report's map section writes (for :func:`simulator.present.report.is_report`)."""
    return name.startswith(("c6map-", "small-map")) and name.endswith((".png", ".svg", ".csv"))
