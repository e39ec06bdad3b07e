"""Command line: a thin layer over the ``simulator`` library.

p is the KEEP probability everywhere (PyTorch's nn.Dropout(p) takes the drop probability).
Bad input prints one line and exits 2; Ctrl-C exits 130; nothing is left half-written.
"""
import contextlib
import json
import os
import signal
import sys
import threading
import time
import warnings

import click

try:
    import simulator  # noqa: F401  (checks the NUMBA_* environment as it imports: simulator.core.environment)
except ValueError as e:  # a setting Numba cannot run with: one line, exit 2, never a traceback
    sys.stderr.write(f"error: {e}\n")
    sys.exit(2)

from simulator import ParameterError, SimulationError, simulate  # noqa: E402
from simulator.core.errors import CheckpointNotice, OutputError, shown  # noqa: E402
from simulator.core.files import check_target, output_lock, write_text  # noqa: E402
from simulator.core.params import DEFAULT_ALPHA, DEFAULT_SEED  # noqa: E402
from simulator.experiments import CATALOG  # noqa: E402
from simulator.present.output import FORMATS, claim_lines, header, summary, sweep_csv, table, to_json  # noqa: E402
from simulator.runs import checkpoint as checkpoints  # noqa: E402
from simulator.runs.sweep import sweep  # noqa: E402
from simulator.runs.verify import verify  # noqa: E402
from simulator.theory.verdict import expected  # noqa: E402

P_HELP = "KEEP probability in (0, 1], as in the document (PyTorch's nn.Dropout(p) takes the DROP probability 1-p)."


def parse_settings(pairs):
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"--set {pair}: expected NAME=VALUE")
        settings[name.strip()] = value
    return settings


def check_out(out, option="--out"):
    """Fail before any work when ``out`` cannot be written (:func:`simulator.core.files.check_target`)."""
    check_target(out, option)


COUNTED = 50  # up to this many steps, progress counts them (3/8) instead of a percentage


class Progress:
    """Progress on stderr, with the time left once a stream runs long; by default only on a terminal."""

    def __init__(self, enabled=None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.shown = False
        self.label, self.start = None, 0.0

    def __call__(self, label, done, total):
        if not self.enabled:
            return
        now = time.monotonic()
        if label != self.label:
            self.label, self.start = label, now
        text = f"{label}: {done}/{total}" if total <= COUNTED else f"{label}: {100 * done / total:5.1f}%"
        if done and now - self.start > 2:
            text += f"  (~{(now - self.start) * (total - done) / done:.0f} s left)"
        self.shown = True  # before the write: a Ctrl-C during it still clears the line
        sys.stderr.write("\r" + text.ljust(72))
        sys.stderr.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        self.enabled = False  # a late report from a worker thread (after Ctrl-C) draws nothing more

    def close(self):
        if self.shown:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


class Stream:
    """Claim lines printed as they are decided (``simulate``'s ``stream``): the run's header first, the
    progress line cleared before each batch."""

    def __init__(self, progress):
        self.progress, self.started = progress, False

    def __call__(self, claims, head):
        self.progress.close()
        if not self.started:
            click.echo(header(head, head["experiments"]) + "\n")
            self.started = True
        click.echo("\n".join(claim_lines(claims, style)))
        self.progress.shown = False


PROGRESS = click.option("--progress/--no-progress", default=None,
                        help="Progress on stderr [default: only on a terminal].")
DETAIL = click.option("--detail", is_flag=True, help="Also print every check (the full table) after the claims.")
COLOURS = {"green": "green", "amber": "yellow", "red": "red", "grey": "bright_black"}


def style(text, colour):
    """An outcome in its colour (click drops the colour when the output is not a terminal)."""
    return click.style(text, fg=COLOURS.get(colour), bold=colour in ("red", "green"))


def render(result, fmt, out, detail):
    """The text of ``result`` in format ``fmt``: a table leads with the claims, then every check with ``detail``;
    a file always gets every check, uncoloured."""
    if fmt != "table":
        return FORMATS[fmt](result)
    return table(result, True) if out else table(result, detail, style)


def emit(text, out):
    if out:
        write_text(out, text)
    else:
        click.echo(text, nl=False)


@click.group()
@click.version_option(package_name=None, version=__import__("simulator").__version__)
def cli():
    """Monte Carlo checks of the theory of Dropout and Batch Normalization.

    p is the KEEP probability (PyTorch's nn.Dropout(p) takes the drop probability 1-p).
    """


@cli.command("simulate")
@click.option("--p", "p", default="0.5", show_default=True, help=P_HELP)
@click.option("--experiment", "experiments", multiple=True, metavar="NAME",
              help="Run only this experiment (repeatable). See `cli.py list`.")
@click.option("--samples", default=None, metavar="N", help="Samples per stream, e.g. 1e7 or 10_000_000 "
              "[default: each experiment's own].")
@click.option("--seed", default=str(DEFAULT_SEED), show_default=True, help="Seed: fixes every number.")
@click.option("--threads", type=int, default=None, help="Numba threads [default: all cores].")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Experiment parameter (repeatable).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="table", show_default=True)
@click.option("--out", default=None, metavar="FILE", help="Write here instead of standard output.")
@DETAIL
@PROGRESS
def simulate_cmd(p, experiments, samples, seed, threads, sets, fmt, out, detail, progress):
    """Run every experiment (or those named) at keep probability p: one line per claim, then the total."""
    check_out(out)
    with Progress(progress) as progress:
        stream = Stream(progress) if fmt == "table" and not out else None
        result = simulate(p=p, experiments=list(experiments), samples=samples, seed=seed, threads=threads,
                          settings=parse_settings(sets), progress=progress, stream=stream)
    if stream is not None:
        click.echo(table(result, detail, style, streamed=True), nl=False)
        return
    emit(render(result, fmt, out, detail), out)
    if out:
        click.echo(summary(result), err=True)


@cli.command("verify")
@click.option("--quick", is_flag=True, help="1/20 of the default samples: seconds instead of a minute.")
@click.option("--samples", default=None, metavar="N", help="Samples per stream for every experiment.")
@click.option("--experiment", "experiments", multiple=True, metavar="NAME", help="Only these (repeatable).")
@click.option("--seed", default=str(DEFAULT_SEED), show_default=True)
@click.option("--threads", type=int, default=None, help="Numba threads [default: all cores].")
@click.option("--alpha", default=str(DEFAULT_ALPHA), show_default=True,
              help="Family-wise error level over all z-tests (Bonferroni).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--out", default=None, metavar="FILE", help="Write here instead of standard output.")
@DETAIL
@PROGRESS
def verify_cmd(quick, samples, experiments, seed, threads, alpha, fmt, out, detail, progress):
    """An outcome for every claim of the document over p in {0.1, 0.3, 0.5, 0.8, 1}, with its derivations.

    Exit status 0 when no check fails as a self-test of the simulator (errata refuted, identities
    confirmed; the document's claims may still be contradicted: that is a finding), 1 otherwise,
    2 for bad usage.
    """
    check_out(out)
    with Progress(progress) as progress:
        v = verify(quick=quick, samples=samples, seed=seed, threads=threads, alpha=alpha,
                   experiments=list(experiments), progress=progress)
    emit(render(v, fmt, out, detail), out)
    if not v.ok:
        click.echo("verify FAILED: " + ", ".join(f"{r['experiment']}/{r['check']} (p={r['params'].get('p')})"
                                                 for r in v.failed), err=True)
        sys.exit(1)


@cli.command("sweep")
@click.option("--experiment", required=True, metavar="NAME", help="The experiment to sweep.")
@click.option("--grid", "grid", multiple=True, required=True, metavar="NAME=SPEC",
              help="A list 16,64,256 or a range START:STOP:COUNT, e.g. p=0.1:1.0:10 (repeatable).")
@click.option("--samples", default=None, metavar="N", help="Samples per stream.")
@click.option("--seed", default=str(DEFAULT_SEED), show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Fixed parameter (p included).")
@click.option("--out", default=None, metavar="FILE.csv|FILE.json",
              help="Write here (checkpointed: rerunning an interrupted sweep resumes) [default: CSV on stdout].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run grid points on a local Dask cluster of N workers (extra 'distributed').")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Run grid points on this Dask cluster.")
@PROGRESS
def sweep_cmd(experiment, grid, samples, seed, threads, sets, out, workers, scheduler, progress):
    """One experiment over a parameter grid: a tidy table, one row per check per point."""
    if out is not None and not out.endswith((".csv", ".json")):
        raise ParameterError(f"--out {out}: must end in .csv or .json")
    check_out(out)
    partial = out + ".partial" if out else None
    with output_lock(out) if out else contextlib.nullcontext(), Progress(progress) as progress:
        result = sweep(experiment, list(grid), seed=seed, samples=samples, settings=parse_settings(sets),
                       threads=threads, progress=progress, checkpoint=partial, workers=workers,
                       scheduler=scheduler)
        emit(to_json(result) if out and out.endswith(".json") else sweep_csv(result), out)
        checkpoints.remove(partial)
    if out:
        click.echo(f"{len(result.checks)} rows written to {shown(out)}", err=True)


@cli.command("map")
@click.option("--out", default="reports/map", show_default=True, metavar="DIR",
              help="Folder to write (map.csv, crossovers.csv, map.json, figures); checkpointed beside it "
                   "(DIR.partial): rerunning an interrupted map resumes.")
@click.option("--quick", is_flag=True, help="The small map: teacher, N = 120, 2,200, 9,400, p = 0.5, BN on "
              "(about two minutes).")
@click.option("--task", "tasks", multiple=True, type=click.Choice(["teacher", "diamonds"]),
              help="Regression tasks; each brings its classification twin (repeatable) [default: both].")
@click.option("--rows", default=None, metavar="N,N,...", help="Data sizes [default: 120,520,2200,9400,40000].")
@click.option("--keep", default=None, metavar="P,P,...", help="Keep probabilities [default: 0.5,0.8,0.9].")
@click.option("--placement", "placements", multiple=True, type=click.Choice(["hidden", "head"]),
              help="Where dropout goes (repeatable) [default: both].")
@click.option("--bn", "bn", multiple=True, type=click.Choice(["true", "false"]), help="BN on, off [default: both].")
@click.option("--length", "lengths", multiple=True, type=click.Choice(["budget", "early"]),
              help="Training length: the step budget, or early stopping on a validation split [default: both].")
@click.option("--steps", type=int, default=None, help="Step budget: at least this many optimizer steps a cell.")
@click.option("--min-epochs", type=int, default=None, help="And at least this many epochs.")
@click.option("--pilot", type=int, default=None,
              help="Pilot runs per cell (its first chunk, which sizes it), and the fewest a cell takes [default: 8].")
@click.option("--cap", type=int, default=None, help="Most runs a cell may take (it grows in chunks of doubling size "
              "while short of its resolution) [default: 64].")
@click.option("--alpha", default=None, help="Family-wise error level of each sub-claim's cells [default: 0.001].")
@click.option("--seed", default=str(DEFAULT_SEED), show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Train cells on a local Dask cluster of N workers (extra 'distributed').")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Train cells on this Dask cluster.")
@PROGRESS
def map_cmd(out, quick, tasks, rows, keep, placements, bn, lengths, steps, min_epochs, pilot, cap, alpha, seed,
            threads, workers, scheduler, progress):
    """C6's regime map: where dropout hurts regression and where it spares classification (trained networks)."""
    from simulator.present.regime import is_map, write_map
    from simulator.runs.regime import plan_from

    plan = plan_from(quick=quick, tasks=tasks, rows=rows, keep=keep, placements=placements, bn=bn, lengths=lengths,
                     steps=steps, min_epochs=min_epochs, pilot=pilot, cap=cap, alpha=alpha)
    from simulator.core.files import check_folder
    from simulator.runs.regime import regime_map

    check_folder(out, is_map)
    partial = out.rstrip("/") + ".partial"
    with output_lock(out), Progress(progress) as progress:
        result = regime_map(plan, seed=seed, threads=threads, checkpoint=partial, workers=workers,
                            scheduler=scheduler, progress=progress)
        write_map(result, out, command=["cli.py"] + sys.argv[1:])
        checkpoints.remove(partial)
    for family, text in result.sentences.items():
        click.echo(f"{family}: {text}")
    click.echo(f"map written: {shown(out)} ({result.meta['cells']} cells, {result.meta['runs']['final']:,} runs)")


@cli.command("report")
@click.option("--out", default="reports/latest", show_default=True, metavar="DIR", help="Folder to write.")
@click.option("--quick", is_flag=True, help="Small budgets: a first look in seconds.")
@click.option("--samples", default=None, metavar="N", help="Samples per stream everywhere.")
@click.option("--seed", default=str(DEFAULT_SEED), show_default=True)
@click.option("--threads", type=int, default=None)
@PROGRESS
def report_cmd(out, quick, samples, seed, threads, progress):
    """Figures and a page showing each claim, its verdict and why (index.html, PNG/SVG, JSON)."""
    from simulator.present.report import report  # imports matplotlib/seaborn: only for this command

    with Progress(progress) as progress:
        index = report(out=out, seed=seed, samples=samples, quick=quick, threads=threads, progress=progress,
                       command=["cli.py"] + sys.argv[1:])
    click.echo(f"report written: {shown(index)}")


@cli.command("bench")
@click.option("--samples", default="2e7", show_default=True, metavar="N", help="Engine samples per workload.")
@click.option("--threads", type=int, default=None, help="Engine threads [default: all cores].")
@click.option("--workload", "workloads", multiple=True, type=click.Choice(["W1", "W1F", "W2", "W3", "W4", "W5"]),
              help="Only these workloads (repeatable) [default: all].")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Keep the fastest of this many runs of each side.")
@click.option("--scaling", is_flag=True, help="Also measure W1 on 1 and 2 threads (speed-up, bit-identity).")
@click.option("--memory", is_flag=True, help="Also measure peak memory of W1 at 1e6 and 1e9 samples (~30 s).")
@click.option("--audit", "audit", is_flag=True, help="Also time the audit of a small zoo DenseNet against as many "
              "plain forward passes, in the same run (needs torch and torchvision; ~10 s).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--out", default=None, metavar="FILE", help="Write here instead of standard output.")
@PROGRESS
def bench_cmd(samples, threads, workloads, repeats, scaling, memory, audit, fmt, out, progress):
    """Speed of the engine against numpy, PyTorch and JAX, and of each workload against its ceiling on this machine."""
    from simulator import bench
    from simulator.core.params import check_samples

    check_out(out)
    with Progress(progress) as progress:
        result = bench.run_bench(samples=check_samples(samples), threads=threads,
                                 workloads=workloads or bench.WORKLOADS, progress=progress, repeats=repeats)
        if scaling:
            result["scaling"] = bench.thread_scaling("W1", repeats=repeats)
        if memory:
            result["memory"] = bench.memory_growth("W1", threads=threads)
        if audit:
            from simulator.audit.speed import audit_speed

            result["audit"] = audit_speed()
    emit(json.dumps(result, indent=2) + "\n" if fmt == "json" else bench.format_table(result), out)


@cli.command("audit")
@click.option("--model", "model", default=None, metavar="FILE.py:FACTORY|package.module:FACTORY",
              help="A function returning a torch.nn.Module, in FILE.py or in an installed package. A file is RUN as "
                   "Python: it is your own code, audit only files you trust. Needs PyTorch: pip install '.[torch]'.")
@click.option("--model-arg", "model_args", multiple=True, metavar="NAME=VALUE",
              help="Keyword argument for the factory (repeatable; VALUE a Python literal), e.g. drop_rate=0.2.")
@click.option("--weights", default=None, metavar="FILE.pt",
              help="State dict to load (torch.load(weights_only=True): no other objects are unpickled). Without "
                   "it, BN statistics are first gathered in train mode over the data (cumulative average).")
@click.option("--arch", default=None, metavar="SPEC",
              help="Instead of --model, a layer spec run by the project's own layers (no PyTorch), e.g. "
                   "linear:64,bn,relu,dropout:0.5,linear:64,bn,relu,linear:1. dropout:P takes the KEEP "
                   "probability; uout:BETA is Li et al.'s uniform noise.")
@click.option("--in", "n_in", type=int, default=None, metavar="N", help="Input features for --arch.")
@click.option("--data", default=None, metavar="FILE",
              help=".npy, .npz (first array, or FILE.npz:NAME) or numeric .csv; rows are samples.")
@click.option("--input-shape", default=None, metavar="C,H,W",
              help="Standard-normal inputs of this shape per sample, e.g. 3,32,32 (--model).")
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--batches", type=int, default=50, show_default=True)
@click.option("--mc", type=int, default=2, show_default=True,
              help="Dropout-on passes per batch for the output effect (its MCSE includes the mask noise).")
@click.option("--seed", default=str(DEFAULT_SEED), show_default=True)
@click.option("--threads", type=int, default=None, help="torch threads (--model) [default: torch's].")
@click.option("--fix", type=click.Choice(["recalibrate", "exact"]), default=None,
              help="Re-estimate BN statistics with only BN in train mode (every dropout, functional dropout and "
                   "DropPath off), then measure again: 'recalibrate' in one pass, 'exact' BN by BN in the order "
                   "they run (no O(1/batch) residual; one partial pass per BN). torch.optim.swa_utils.update_bn "
                   "keeps dropout ON and re-learns the shift.")
@click.option("--save", default=None, metavar="OUT.pt", help="Write the fixed state dict here (atomically).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--out", default=None, metavar="FILE", help="Write here instead of standard output.")
@click.option("--plot", default=None, metavar="FILE.png|FILE.svg", help="Ratio per BN layer: measured, predicted, "
              "before and after the fix.")
@DETAIL
@PROGRESS
def audit_cmd(model, model_args, weights, arch, n_in, data, input_shape, batch, batches, mc, seed, threads, fix,
              save, fmt, out, plot, detail, progress):
    """Check your own network for the variance shift (dropout before BatchNorm) and fix it.

    p is the KEEP probability (PyTorch's nn.Dropout(p) takes the DROP probability: keep = 1 - p).
    """
    from simulator.audit.data import parse_shape
    from simulator.audit.load import parse_kwargs
    from simulator.audit.report import render as audit_render

    if (model is None) == (arch is None):
        raise ParameterError("give --model FILE.py:FACTORY or --arch SPEC (one of them)")
    if plot is not None and not plot.lower().endswith((".png", ".svg")):
        raise ParameterError(f"--plot {plot}: must end in .png or .svg")
    for option, target in (("--out", out), ("--save", save), ("--plot", plot)):
        check_out(target, option)
    with Progress(progress) as bar:
        if model is not None:
            from simulator.audit import audit_model

            if n_in is not None:
                raise ParameterError("--in goes with --arch; give --input-shape or --data with --model")
            shape = None if input_shape is None else parse_shape(input_shape)
            result = audit_model(model, data=data, input_shape=shape, weights=weights, batch=batch, batches=batches,
                                 seed=seed, mc=mc, fix=fix, save=save, threads=threads,
                                 model_args=parse_kwargs(model_args), progress=bar)
        else:
            from simulator.audit import audit_arch

            if weights is not None or input_shape is not None or save is not None or model_args:
                raise ParameterError("--weights, --model-arg, --input-shape and --save go with --model; --arch "
                                     "takes --in and --data")
            result = audit_arch(arch, n_in, data=data, batch=batch, batches=batches, seed=seed, mc=mc, fix=fix)
    if plot is not None:
        from simulator.audit.plot import plot_ratios

        plot_ratios(result, plot)
    emit(audit_render(result, fmt, detail or bool(out)), out)


@cli.command("derive")
@click.argument("chain", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "latex"]), default="table", show_default=True)
@click.option("--out", default=None, metavar="FILE", help="Write here instead of standard output.")
def derive_cmd(chain, fmt, out):
    """The document's derivations checked step by step with SymPy (all chains, or CHAIN)."""
    from simulator.theory import derive

    check_out(out)
    results = [derive.check_chain(chain)] if chain else derive.check_all()
    emit(derive.format_results(results, fmt), out)


@cli.command("list")
def list_cmd():
    """Every experiment with its claim, parameters (default, range) and checks."""
    for e in CATALOG.values():
        click.echo(f"{e.name} [{e.claim_id}] — {e.source}")
        click.echo(f"  claim: {e.claim}")
        if e.notes:
            click.echo(f"  notes: {e.notes}")
        if e.runs_param:
            click.echo(f"  Monte Carlo samples: training runs (--set {e.runs_param}=N, default "
                       f"{e.param(e.runs_param).default}); --samples does not apply")
        else:
            click.echo(f"  default samples: {e.samples:,}")
        click.echo("  parameters:")
        for q in e.params:
            click.echo(f"    {q.name:<10} default {q.show(q.default):<24} {q.allowed()} — {q.help}")
        click.echo("  checks:")
        for c in e.checks:
            click.echo(f"    {c.name:<24} {c.kind:<13} {c.compares} (expected: {expected(c.kind)})")
        click.echo("")


_SHOW_WARNING = warnings.showwarning


def _notice(message, category, *args, **kwargs):
    """A notice of the library (a discarded checkpoint) as one line on stderr; other warnings as Python shows them."""
    if issubclass(category, CheckpointNotice):
        click.echo(f"note: {message}", err=True)
    else:
        _SHOW_WARNING(message, category, *args, **kwargs)


# Seconds the threads get to wind down after Ctrl-C (each finishes its chunk, a fraction of a second) before
# the process ends without them: one can wait for ever on a lock the interrupt left held (engine.pool_of).
WIND_DOWN_SECONDS = 10.0


def _interrupted(text):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while threads wind down stays quiet
    with contextlib.suppress(OSError, ValueError):  # after SIGHUP the terminal may be gone
        click.echo(text, err=True)
        sys.stderr.flush()
    watchdog = threading.Timer(WIND_DOWN_SECONDS, os._exit, (130,))
    watchdog.daemon = True
    watchdog.start()
    sys.exit(130)


def _terminated(signum, frame):
    """SIGTERM (``timeout``, a scheduler) and SIGHUP (a closed terminal, an ended ssh session) end the run as
    Ctrl-C does: what it started is cleaned up."""
    raise KeyboardInterrupt


# The exit status of a program whose reader closed the pipe (128 + SIGPIPE), as ``ls`` and ``git`` give it.
BROKEN_PIPE = 128 + signal.SIGPIPE


def _reader_gone():
    """Standard output's reader has gone (``| head``): point stdout at /dev/null so that the interpreter's
    last flush stays quiet, and end with :data:`BROKEN_PIPE`, printing nothing."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    sys.exit(BROKEN_PIPE)


def _fail(message, status):
    with contextlib.suppress(OSError, ValueError):  # stderr closed: the status alone says it
        click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(status)


def _run(argv):
    """Click's own ``main`` without its handling of errors (which, among others, ends a broken pipe with
    status 1): the errors are :func:`main`'s to report."""
    try:
        with cli.make_context("cli.py", list(sys.argv[1:] if argv is None else argv)) as ctx:
            cli.invoke(ctx)
    except click.exceptions.Exit as e:  # --help, --version
        sys.exit(e.exit_code)


def main(argv=None):
    """Run the command line: bad usage exits 2, a runtime failure 1, Ctrl-C 130, each with one line."""
    warnings.showwarning = _notice
    warnings.simplefilter("always", CheckpointNotice)
    with contextlib.suppress(ValueError):  # not the main thread (a test runner's): no handler to install
        signal.signal(signal.SIGTERM, _terminated)
        signal.signal(signal.SIGHUP, _terminated)
    try:
        _run(argv)
    except click.exceptions.Abort as e:
        if isinstance(e.__context__, EOFError):  # click turns EOFError into Abort, as if Ctrl-C had been pressed
            _fail(f"unexpected end of input ({e.__context__ or 'EOF'})", 1)
        _interrupted("\ninterrupted: no output written")
    except KeyboardInterrupt:
        _interrupted("\ninterrupted: no output written")
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help(), err=True)
        sys.exit(e.exit_code)
    except EOFError as e:
        _fail(f"unexpected end of input ({e or 'EOF'})", 1)
    except BrokenPipeError:
        _reader_gone()
    except click.exceptions.ClickException as e:
        _fail(e.format_message(), e.exit_code or 2)
    except ParameterError as e:
        _fail(e, 2)
    except (SimulationError, OutputError) as e:
        _fail(e, 1)
    except MemoryError:
        _fail("out of memory: use smaller sizes (fewer samples, a smaller grid or network)", 1)
    except OSError as e:
        _fail(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""), 1)


if __name__ == "__main__":
    main()
