"""The report: figures, a page and the data behind them, written to one folder.

This is an edge of the library, like ``cli.py``. It runs the sweeps of the figures (one
:func:`~simulator.runs.sweep.sweep` per figure of :data:`simulator.present.figures.FIGURES`,
figures of the same sweep sharing it) and ``verify`` for the outcomes, meanwhile drawing the
figures in a separate process (:mod:`simulator.present.drawing`, the only module that imports
matplotlib and seaborn), and writes the page (:mod:`simulator.present.page`), ``results.json``,
``checks.csv`` and ``manifest.json``.

The folder is written under a temporary name and renamed into place, so it is
never half-written; it replaces an existing folder only when that is a report
of this program (its ``manifest.json`` says so, :func:`is_report`). Finished
sweeps are checkpointed beside it (``DIR.checkpoint/``), so an interrupted
report resumes; an interrupted report leaves no temporary folder.
"""
import json
import os
import platform
import subprocess
import sys
import time

from ..core.errors import OutputError, ParameterError
from ..core.files import check_folder, new_folder, output_lock, remove_folder, replace_folder
from ..core.interrupts import sigint_ignored
from ..core.params import DEFAULT_SEED, check_samples, check_seed, versions
from ..experiments import CATALOG
from ..runs import regime as maps
from ..runs.sweep import sweep
from ..runs.verify import budget, verify
from . import drawing
from . import regime as map_pages
from .figures import FIGURES
from .output import to_csv
from .page import page

DEFAULT_OUT = os.path.join("reports", "latest")


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _figure_settings(figure, exp, quick=False):
    """The figure's fixed settings (its quick ones in a quick report) that the experiment declares."""
    names = {prm.name for prm in exp.params}
    wanted = {**figure.settings, **(figure.quick if quick else {})}
    return {k: v for k, v in wanted.items() if k in names or k == "p"}


def figures():
    """The figures to draw: those of :data:`FIGURES` whose experiment is in the catalog (an optional one may
    not be yet); a missing experiment of a required figure is an error."""
    out = []
    for f in FIGURES:
        if f.experiment in CATALOG:
            out.append(f)
        elif not f.optional:
            raise KeyError(f"figure {f.name}: no experiment {f.experiment!r}")
    return out


def write(folder, verification, figure_rows, manifest, drawn=None, regime=None):
    """Write the page, the figures (unless ``drawn``, the result of
    :func:`simulator.present.drawing.draw_figures` for this folder, says they are there) and the data into
    ``folder`` (which exists). ``regime``: the C6 map section (:func:`c6_maps`), None to leave it out."""
    done = drawing.draw_figures(folder, figure_rows) if drawn is None else drawn
    with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as fh:
        data = json.loads(json.dumps({"meta": verification.meta, "claims": verification.claims,
                                      "checks": verification.checks}, ensure_ascii=False))  # as to_json writes it
        # Only what the seed determines: timings and threads live in the manifest.
        data["meta"] = {k: v for k, v in data["meta"].items() if k not in ("elapsed_s", "threads")}
        data["figures"] = figure_rows
        json.dump(data, fh, indent=1, ensure_ascii=False)
    with open(os.path.join(folder, "checks.csv"), "w", encoding="utf-8", newline="") as fh:
        fh.write(to_csv(verification))
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
    with open(os.path.join(folder, "index.html"), "w", encoding="utf-8") as fh:
        fh.write(page(verification, done, manifest, regime))


def report(out=DEFAULT_OUT, seed=DEFAULT_SEED, samples=None, quick=False, threads=None, progress=None,
           command=None):
    """Run ``verify`` and the figure sweeps and write the report folder ``out``.

    Parameters
    ----------
    out : str
        Folder to write (replaced as a whole when the new one is complete). An existing path is replaced
        only when it is an empty folder or a report of this program; anything else is refused.
    seed, samples, threads, progress
        As for :func:`simulator.runs.simulate`.
    quick : bool
        Small budgets everywhere (for a first look and for tests).
    command : list of str, optional
        The command line, recorded in the manifest.

    Returns
    -------
    str
        The path of ``index.html``.
    """
    seed = check_seed(seed)
    samples = None if samples is None else check_samples(samples)
    out = os.path.abspath(out)
    check_folder(out, is_report, what="a report of this program (its manifest.json, and only the files a "
                                     "report writes)")
    with output_lock(out):
        return _report(out, seed, samples, quick, threads, progress, command)


def _report(out, seed, samples, quick, threads, progress, command):
    """:func:`report`, with its arguments checked and its output locked."""
    checkpoints = checkpoint_folder(out)
    tmp = new_folder(out)
    stop = None
    try:
        start = time.perf_counter()
        figure_rows, timings = _figure_sweeps(checkpoints, seed, samples, quick, threads, progress)
        # The figures are drawn (one core, matplotlib) while verify runs, which leaves a core idle at times.
        wait, stop = drawing.start(tmp, figure_rows)
        t0 = time.perf_counter()
        verification = verify(quick=quick, samples=samples, seed=seed, threads=threads, progress=progress,
                              checkpoint=os.path.join(checkpoints, "verify.jsonl"))
        timings["verify_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        regime = c6_maps(tmp, seed, quick, threads, os.path.join(checkpoints, "map.jsonl"), progress)
        timings["map_s"] = round(time.perf_counter() - t0, 3)
        drawn = wait()
        timings["total_s"] = round(time.perf_counter() - start, 3)
        manifest = {"written_by": WRITTEN_BY, "command": command or sys.argv, "seed": seed, "samples": samples,
                    "quick": quick, "threads": verification.meta["threads"],
                    "versions": {**versions(), "seaborn": drawing.SEABORN_VERSION}, "platform": platform.platform(),
                    "git_commit": _git_commit(), "timings": timings}
        write(tmp, verification, figure_rows, manifest, drawn, regime)
        with sigint_ignored():  # the two renames, and the cleanup below, are not cut in half by a Ctrl-C
            replace_folder(tmp, out, is_report)
    except BaseException as e:
        with sigint_ignored():
            if stop is not None:
                stop()
            remove_folder(tmp)
            _drop_empty_checkpoints(checkpoints)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write the report {out}: {e.strerror or e}") from None
        raise
    remove_folder(checkpoints)
    return os.path.join(out, "index.html")


# The report's own small map: the quick map (about two minutes), or in a quick report two sizes of it.
SMALL_MAP_QUICK = {**maps.QUICK, "rows": (120, 2200), "pilot": 2, "cap": 4}


def c6_maps(folder, seed, quick, threads, checkpoint, progress):
    """The C6 map section: the committed map's figures and sentences (copied into ``folder``, with how and
    when it was made), and a small map trained here (:data:`simulator.runs.regime.QUICK`)."""
    plan = maps.Plan(**(SMALL_MAP_QUICK if quick else maps.QUICK))
    small = maps.regime_map(plan, seed=seed, threads=threads, checkpoint=checkpoint, progress=progress)
    return {"committed": map_pages.committed_into(folder), "small": map_pages.small_into(folder, small)}


def _figure_sweeps(checkpoints, seed, samples, quick, threads, progress):
    """The rows of every figure's sweep (figures drawing from the same sweep share one run), and timings."""
    timings, figure_rows, swept = {}, {}, {}
    for f in figures():
        t0 = time.perf_counter()
        n = budget(f.samples, quick, samples)
        settings = _figure_settings(f, CATALOG[f.experiment], quick)
        same = json.dumps([f.experiment, f.grid, settings, n], sort_keys=True)
        if same not in swept:
            swept[same] = sweep(f.experiment, f.grid, seed=seed, samples=n, settings=settings, threads=threads,
                                progress=progress, checkpoint=os.path.join(checkpoints, f.name + ".jsonl")).checks
        figure_rows[f.name] = [r for r in swept[same] if f.keep(r)]
        timings[f"figure_{f.name}_s"] = round(time.perf_counter() - t0, 3)
    return figure_rows, timings


WRITTEN_BY = "dropout-bn-simulator report"
_LEGACY_MANIFEST = {"command", "seed", "versions", "git_commit", "timings"}  # reports written before WRITTEN_BY
CHECKPOINT_MARK = "checkpoints-of-report.json"


REPORT_FILES = ("index.html", "manifest.json", "results.json", "checks.csv")


def is_report(folder):
    """Whether ``folder`` is a report this program wrote: its ``manifest.json`` says so, and it holds
    nothing but what a report writes (the page, the data, the figures). Only such a folder is ever
    replaced by a new report; one holding anything else (a file the user added) is refused."""
    try:
        with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        names = os.listdir(folder)
    except (OSError, ValueError):
        return False
    ours = isinstance(manifest, dict) and (manifest.get("written_by") == WRITTEN_BY
                                           or _LEGACY_MANIFEST <= set(manifest))
    figures_ = {f"{f.name}.{ext}" for f in FIGURES for ext in ("png", "svg")}
    return ours and all(n in REPORT_FILES or n in figures_ or map_pages.is_map_file(n) for n in names)


def checkpoint_folder(out):
    """``out.checkpoint``, the report's finished sweeps: created with its mark, or refused when it exists and
    is not this program's."""
    folder = out + ".checkpoint"
    mark = os.path.join(folder, CHECKPOINT_MARK)
    if os.path.lexists(folder):
        if os.path.islink(folder) or not os.path.isfile(mark):
            raise ParameterError(f"{folder} exists and is not this program's report checkpoint; "
                                 "move it away to write the report")
        return folder
    try:
        os.makedirs(folder)
        with open(mark, "w", encoding="utf-8") as f:
            json.dump({"written_by": WRITTEN_BY, "holds": "finished sweeps of an unfinished report"}, f)
    except OSError as e:
        remove_folder(folder)
        raise OutputError(f"cannot write the report's checkpoints {folder}: {e.strerror or e}") from None
    return folder


def _drop_empty_checkpoints(folder):
    """An interrupted report keeps its checkpoints, unless it had finished nothing yet."""
    if os.path.isdir(folder) and os.listdir(folder) == [CHECKPOINT_MARK]:
        remove_folder(folder)
