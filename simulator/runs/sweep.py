"""Parameter grids: one experiment over the Cartesian product of parameter values.

Each grid point is an ordinary :func:`~simulator.runs.simulate.simulate` call, so its
random streams derive from the seed and the point itself: adding points never
changes the rows of the others. Its verdicts use the Bonferroni threshold over
that point's own checks, for the same reason. Finished points can be kept in a
checkpoint file (JSON lines) and a rerun of the same sweep resumes from it.
"""
import itertools
import math
from typing import NamedTuple

import numpy as np

from ..core.errors import ParameterError
from ..core.params import DEFAULT_ALPHA, DEFAULT_SEED, check_alpha, check_p, check_samples, check_seed, versions
from .checkpoint import Checkpoint, key
from .simulate import Result, resolve, select, simulate

MAX_POINTS = 100_000  # grid points a sweep may have: each is a simulate call, so more would never finish


def parse_range(spec):
    """Values of a grid SPEC: a list ``16,64,256`` or a range ``start:stop:count`` (both ends included)."""
    text = str(spec).strip()
    if ":" in text:
        parts = text.split(":")
        try:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        except (ValueError, IndexError):
            count = 0
        if len(parts) != 3 or count < 1 or not (np.isfinite(start) and np.isfinite(stop)):
            raise ParameterError(f"grid spec {spec!r}: a range is START:STOP:COUNT with COUNT ≥ 1, e.g. 0.1:1.0:10")
        if count > MAX_POINTS:  # before any allocation
            raise ParameterError(f"grid spec {spec!r}: {count:,} values; at most {MAX_POINTS:,} points a sweep")
        return [f"{x:.12g}" for x in np.linspace(start, stop, count)]
    values = [v.strip() for v in text.split(",")]
    if not text or any(not v for v in values):
        raise ParameterError(f"grid spec {spec!r}: a list is comma-separated values, e.g. 16,64,256")
    return values


def parse_grid(items):
    """``NAME=SPEC`` texts (or a dict name → SPEC or list) into an ordered dict name → list of texts."""
    pairs = items.items() if isinstance(items, dict) else [i.partition("=")[::2] for i in items]
    grid = {}
    for name, spec in pairs:
        name = name.strip()
        if not name or spec in ("", None):
            raise ParameterError(f"--grid {name}={spec}: expected NAME=SPEC, e.g. p=0.1:1.0:10 or d=16,64,256")
        if name in grid:
            raise ParameterError(f"--grid {name}: given twice")
        grid[name] = parse_range(spec) if isinstance(spec, str) else [str(v) for v in spec]
    return grid


def points(grid):
    """The Cartesian product of a grid, as a list of dicts in the order given (at most :data:`MAX_POINTS`)."""
    names = list(grid)
    count = math.prod(len(v) for v in grid.values())
    if count > MAX_POINTS:  # before the product is built
        raise ParameterError(f"--grid: {count:,} points; at most {MAX_POINTS:,} points a sweep")
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def run_point(experiment, point, base_p, settings, samples, seed, alpha, threads=None, progress=None):
    """The rows of one grid point (JSON-normalized, so that they look the same from a checkpoint)."""
    r = simulate(p=point.get("p", base_p), experiments=[experiment], samples=samples, seed=seed, threads=threads,
                 settings={**settings, **{k: v for k, v in point.items() if k != "p"}}, alpha=alpha,
                 progress=progress)
    return [{**row, "point": point} for row in r.checks]


def in_process(tasks, threads, progress):
    """Run ``tasks`` (index → arguments of :func:`run_point`) here, one after the other."""
    for i, args in tasks.items():
        yield i, run_point(*args, threads=threads, progress=progress)


def sweep(experiment, grid, seed=DEFAULT_SEED, samples=None, settings=None, threads=None,
          alpha=DEFAULT_ALPHA, progress=None, checkpoint=None, workers=None, scheduler=None):
    """Run ``experiment`` at every point of ``grid``.

    Parameters
    ----------
    experiment : str
    grid : dict or list of str
        Name → SPEC (``"16,64,256"``, ``"0.1:1.0:10"``) or list of values; or ``NAME=SPEC`` texts.
        ``p`` may be a grid name (default 0.5 otherwise, or ``settings["p"]``).
    seed, samples, threads, alpha, progress
        As for :func:`simulator.runs.simulate`.
    settings : dict, optional
        Fixed parameters for every point.
    checkpoint : str or Checkpoint, optional
        Finished points (a checkpoint file, :mod:`simulator.runs.checkpoint`); points found there are not run
        again. A file of another sweep (other experiment, settings, seed, samples or code) is discarded;
        one that is not a checkpoint is refused. It is left in place: remove it with
        :func:`simulator.runs.checkpoint.remove` once the output is written.
    workers : int, optional
        Run the points on a local Dask cluster of this many worker processes.
    scheduler : str, optional
        Run the points on the Dask cluster at this address (``tcp://host:8786``).
        Without ``workers`` or ``scheduler`` the points run in this process.

    Returns
    -------
    Result
        ``checks`` holds one row per check per point, each with its ``point``, in grid order:
        the same bytes wherever and in whatever order the points ran.
    """
    seed, alpha = check_seed(seed), check_alpha(alpha)
    samples = None if samples is None else check_samples(samples)
    grid = parse_grid(grid)
    settings = dict(settings or {})
    base_p = settings.pop("p", "0.5")
    (exp,) = select([experiment])
    todo = points(grid)
    for point in todo:  # validate every point before any work
        check_p(point.get("p", base_p))
        resolve([exp], {**settings, **{k: v for k, v in point.items() if k != "p"}})
    run = _Sweep(exp.name, settings, base_p, seed, samples, alpha)
    done = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint, run.belongs_to())
    keys = [run.key(point) for point in todo]
    tasks = {i: run.task(point) for i, (point, k) in enumerate(zip(todo, keys)) if k not in done}
    count = len(todo) - len(tasks)
    for i, rows in _finished(tasks, threads, progress, workers, scheduler):
        done.save(keys[i], rows)
        count += 1
        if progress is not None:
            progress("sweep points", count, len(todo))
    return Result(run.meta(grid), [row for k in keys for row in done[k]])


class _Sweep(NamedTuple):
    """What identifies a sweep's points (its checkpoint keys and tasks) and its output's ``meta``."""

    experiment: str
    settings: dict  # the fixed parameters, without p
    p: str  # the p of every point that does not set its own
    seed: int
    samples: int | None
    alpha: float

    def belongs_to(self):
        """The identity of the sweep's checkpoint file."""
        return {"command": "sweep", "experiment": self.experiment, "seed": self.seed, "samples": self.samples,
                "alpha": self.alpha, "settings": self.settings, "p": self.p}

    def key(self, point):
        """The checkpoint key of one grid point."""
        return key(experiment=self.experiment, seed=self.seed, samples=self.samples, alpha=self.alpha,
                   settings=self.settings, p=self.p, point=point)

    def task(self, point):
        """The arguments of :func:`run_point` for one grid point."""
        return (self.experiment, point, self.p, self.settings, self.samples, self.seed, self.alpha)

    def meta(self, grid):
        """The output's ``meta``. No timings, threads or workers: it depends on the seed and the grid only."""
        return {"experiment": self.experiment, "grid": grid, "settings": {k: str(v) for k, v in self.settings.items()},
                "p": None if "p" in grid else float(self.p), "seed": self.seed, "samples": self.samples,
                "alpha": self.alpha, "versions": versions()}


def _finished(tasks, threads, progress, workers, scheduler):
    """The tasks' ``(index, rows)`` as each point ends: on a Dask cluster (``workers`` or ``scheduler``), else here."""
    if workers or scheduler:
        from .cluster import on_cluster  # needs the optional extra "distributed"
        return on_cluster(tasks, run_point, workers, scheduler, threads)
    return in_process(tasks, threads, progress)
