"""The report: figures, a page and the data behind them, written to one folder.

This is an edge of the library, like ``cli.py``: it alone imports matplotlib and
seaborn, and it only draws from results it is given (``verify`` for the
verdicts, one :func:`~simulator.sweep.sweep` per figure of
:data:`simulator.figures.FIGURES`). The folder is written under a temporary
name and renamed into place, so it is never half-written; finished sweeps are
checkpointed beside it, so an interrupted report resumes.
"""
import html
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from .figures import FIGURES  # noqa: E402
from .output import _g, to_json  # noqa: E402
from .simulate import DEFAULT_SEED, check_samples, check_seed, versions  # noqa: E402
from .sweep import sweep  # noqa: E402
from .verify import verify  # noqa: E402

DEFAULT_OUT = os.path.join("reports", "latest")


def draw(figure, rows, stem):
    """Draw ``figure`` from its sweep ``rows`` to ``stem``.png and ``stem``.svg."""
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    fig, ax = plt.subplots(figsize=(10, 4.6))
    kept = [r for r in rows if figure.keep(r)]
    colors = dict(zip(dict.fromkeys(figure.series(r) for r in kept), sns.color_palette("colorblind")))
    by_series = {label: sorted(((figure.x(r), r) for r in kept if figure.series(r) == label), key=lambda t: t[0])
                 for label in colors}
    lines = {label: tuple((x, r["closed_form"]) for x, r in pts) for label, pts in by_series.items()}
    one_line = len(set(lines.values())) == 1 and len(lines) > 1  # e.g. a common reference "ratio 1"
    drawn_lines, drawn_points = set(), set()  # a series repeating another's line or points is drawn once
    for label, color in colors.items():
        pts = by_series[label]
        xs = [x for x, _ in pts]
        if lines[label] not in drawn_lines:
            ax.plot(xs, [r["closed_form"] for _, r in pts], "-", color="0.3" if one_line else color, lw=1.6,
                    label=figure.line if one_line else f"{label} ({figure.line})")
            drawn_lines.add(lines[label])
        dots = {(x, r["estimate"]) for x, r in pts}
        if not dots <= drawn_points:
            ax.errorbar(xs, [r["estimate"] for _, r in pts], yerr=[2 * (r["mcse"] or 0.0) for _, r in pts],
                        fmt="o", ms=4, color=color, capsize=3, label=f"{label} (Monte Carlo ±2 MCSE)")
            drawn_points |= dots
    if figure.logx:
        ax.set_xscale("log", base=2)
    if figure.logy:
        ax.set_yscale("log")
    ax.set(title="\n".join(textwrap.wrap(figure.title, 95)), xlabel=figure.xlabel, ylabel=figure.ylabel)
    ax.title.set_fontsize(10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=110)
    with matplotlib.rc_context({"svg.hashsalt": "dropout-bn"}):  # with no date: same data, same bytes
        fig.savefig(stem + ".svg", metadata={"Date": None})
    plt.close(fig)


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _page(verification, figures_done, meta):
    esc = html.escape
    errata = [r for r in verification.checks if r["kind"] == "erratum"]
    refuted = [r for r in errata if r["verdict"] == "refuted"]
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Dropout &amp; BatchNorm, checked</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em;line-height:1.4}"
             ".erratum{border:3px solid #c0392b;background:#fdecea;padding:.6em 1em}"
             ".ok{color:#1e7b34}.bad{color:#c0392b}img{max-width:100%}td,th{padding:2px 8px;text-align:left}"
             "table{border-collapse:collapse;font-size:90%}tr:nth-child(even){background:#f3f3f3}</style>",
             "</head><body><h1>Dropout &amp; BatchNorm: the document's claims, checked by sampling</h1>",
             f"<p><b>p is the keep probability</b> (PyTorch's <code>nn.Dropout(p)</code> takes the drop "
             f"probability 1 − p). Seed {meta['seed']}, family-wise α = {verification.meta['alpha']:g} "
             f"(z* = {verification.meta['z_threshold']:.2f} over {verification.meta['checks_tested']} z-tests). "
             f"Every estimate carries its Monte Carlo standard error (MCSE).</p>"]
    if errata:
        worst = min((abs(r["z"]) for r in refuted if r["z"] is not None), default=0.0)
        example = refuted[0] if refuted else errata[0]
        parts.append(
            "<div class='erratum'><h2>Erratum in the document</h2>"
            "<p>The document's last line writes <code>Var(h') = (1/p) E(h²) − μ_h</code>; the correct result is "
            "<code>Var(h') = (1/p) E(h²) − μ_h²</code>. "
            f"The formula as written was refuted in {len(refuted)} of {len(errata)} checks, each by at least "
            f"{worst:.0f} MCSE; e.g. at p = {example['params']['p']:g}, c = {example['params']['c']:g}, "
            f"v = {example['params']['v']:g}: as written {example['closed_form']:.4g}, "
            f"measured {example['estimate']:.4g} ± {example['mcse']:.2g}.</p></div>")
    for c in verification.claims:
        cls = "ok" if c["ok"] else "bad"
        parts.append(f"<h2>{esc(c['claim'])}</h2><p><i>The document says</i> {esc(c['document'])}.</p>"
                     f"<p class='{cls}'><b>Verdict: {esc(c['verdict'])}</b></p><p>Evidence: {esc(c['evidence'])}</p>")
        for name, title in figures_done.get(c["claim"], []):
            parts.append(f"<figure><img src='{name}.png' alt='{esc(title)}'><figcaption>{esc(title)} "
                         f"(<a href='{name}.svg'>SVG</a>)</figcaption></figure>")
    parts.append("<h2>All checks</h2><table><tr><th>experiment</th><th>check</th><th>p</th><th>kind</th>"
                 "<th>closed form</th><th>estimate ± MCSE</th><th>z</th><th>verdict</th></tr>")
    for r in verification.checks:
        z = "—" if r["z"] is None else f"{r['z']:+.2f}"
        parts.append(f"<tr><td>{esc(r['experiment'])}</td><td>{esc(r['check'])}</td>"
                     f"<td>{r['params'].get('p', '')}</td><td>{r['kind']}</td><td>{_g(r['closed_form'])}</td>"
                     f"<td>{_g(r['estimate'])} ± {_g(r['mcse'], 2)}</td><td>{z}</td><td>{r['verdict']}</td></tr>")
    parts.append("</table><p>Data: <a href='results.json'>results.json</a>, "
                 "<a href='manifest.json'>manifest.json</a>.</p></body></html>")
    return "\n".join(parts)


def report(out=DEFAULT_OUT, seed=DEFAULT_SEED, samples=None, quick=False, threads=None, progress=None,
           command=None):
    """Run ``verify`` and the figure sweeps and write the report folder ``out``.

    Parameters
    ----------
    out : str
        Folder to write (replaced as a whole when the new one is complete).
    seed, samples, threads, progress
        As for :func:`simulator.simulate`.
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
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    checkpoints = out + ".checkpoint"
    os.makedirs(checkpoints, exist_ok=True)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    timings = {}
    start = time.perf_counter()
    verification = verify(quick=quick, samples=samples, seed=seed, threads=threads, progress=progress,
                          checkpoint=os.path.join(checkpoints, "verify.jsonl"))
    timings["verify_s"] = round(time.perf_counter() - start, 3)
    figures_done, figure_rows = {}, {}
    for f in FIGURES:
        t0 = time.perf_counter()
        n = samples or (max(1000, (f.samples or 0) // 20) if quick and f.samples else f.samples)
        result = sweep(f.experiment, f.grid, seed=seed, samples=n, settings=f.settings, threads=threads,
                       progress=progress, checkpoint=os.path.join(checkpoints, f.name + ".jsonl"))
        draw(f, result.checks, os.path.join(tmp, f.name))
        figures_done.setdefault(f.claim, []).append((f.name, f.title))
        figure_rows[f.name] = result.checks
        timings[f"figure_{f.name}_s"] = round(time.perf_counter() - t0, 3)
    manifest = {"command": command or sys.argv, "seed": seed, "samples": samples, "quick": quick,
                "threads": verification.meta["threads"], "versions": {**versions(), "seaborn": sns.__version__},
                "platform": platform.platform(), "git_commit": _git_commit(), "timings": timings}
    with open(os.path.join(tmp, "results.json"), "w", encoding="utf-8") as fh:
        data = json.loads(to_json(verification))
        # Only what the seed determines: timings and threads live in the manifest.
        data["meta"] = {k: v for k, v in data["meta"].items() if k not in ("elapsed_s", "threads")}
        data["figures"] = figure_rows
        json.dump(data, fh, indent=1, ensure_ascii=False)
    with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
    with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as fh:
        fh.write(_page(verification, figures_done, manifest))
    old = out + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(out):
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return os.path.join(out, "index.html")
