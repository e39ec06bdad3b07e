"""The audit as text: a table (default), JSON or CSV, from an :class:`~.result.AuditResult`."""
import csv
import io
import json
import math

from ..core.numbers import number

KEEP_NOTE = ("p is the KEEP probability (PyTorch's nn.Dropout(p) takes the DROP probability: keep = 1 − p); "
             "ratio = Var_eval/running_var per channel (1 = no shift).")


def _g(x, digits=4):
    """A number of the audit's text: :func:`simulator.core.numbers.number`, infinity as Python writes it."""
    return number(x, digits, symbols=False)


def _pm(x, se, digits=4):
    """``x ± se`` (``se`` to 2 digits); ``x`` alone when there is no MCSE; a dash when there is no ``x``."""
    if x is None or se is None or se != se:
        return _g(x, digits)
    return f"{_g(x, digits)} ± {se:.2g}"


def _output_lines(stage, out):
    if not out:
        return []
    if out.get("undecided"):
        return [f"output ({stage}): undecided: {out['undecided']} (the output, or a BN it passes through, is NaN "
                "or infinite on these data)"]
    return [(f"output ({stage}): eval vs Monte Carlo average of {out['mc_samples']} dropout-on passes "
            f"(BN on running statistics): mean shift {_pm(out['mean_shift'], out['mean_shift_mcse'])}, "
            f"variance shift {_pm(out['var_shift'], out['var_shift_mcse'])} (eval variance "
            f"{_g(out['var_eval'])}), rms difference {_g(out['rms_diff'])} — in the output's units")]


def _worst(rows, k):
    shifted = [r for r in rows if r.get("shifted")]
    return sorted(shifted, key=lambda r: -abs(r["shift"]))[:k]


def _spread(rows):
    ratios = sorted(r["ratio_mean"] for r in rows if not r.get("undecided"))
    return f"median {ratios[len(ratios) // 2]:.3f} [{ratios[0]:.3f}, {ratios[-1]:.3f}]" if ratios else "—"


def _undecided_rows(rows):
    return [r for r in rows if r.get("undecided")]


def _undecided(rows):
    """``", 2 undecided (the statistics are not finite)"``, or nothing when every row has a verdict."""
    mine = _undecided_rows(rows)
    reasons = "; ".join(dict.fromkeys(r["undecided"] for r in mine))
    return f", {len(mine)} undecided ({reasons})" if mine else ""


def summary(result, worst=5):
    """One screen: counts, the worst layers with their sources, the noise sources, the fix's effect."""
    before, after = result.stage("before"), result.stage("after")
    n_shift = sum(bool(r.get("shifted")) for r in before)
    unconv = sum(r["verdict"].startswith("not converged") for r in before)
    undecided = _undecided(before)
    lines = [f"{len(before)} BatchNorm layers: {n_shift} shifted, "
             f"{len(before) - n_shift - unconv - len(_undecided_rows(before))} without shift"
             + (f", {unconv} not converged (more batches)" if unconv else "") + undecided
             + f"; ratio Var_eval/running_var {_spread(before)}"]
    sources = result.meta.get("noise_sources", [])
    if sources:
        shown_ = "; ".join(sources[:4]) + (f"; +{len(sources) - 4} more" if len(sources) > 4 else "")
        lines.append(f"noise sources found ({len(sources)}): {shown_}")
    for label in result.meta.get("eval_noise", []):
        lines.append(f"ON IN EVAL MODE: {label} (a bug in the model: recalibration cannot remove it)")
    bad = _worst(before, worst)
    if bad:
        name_w = max(len(r["layer"]) for r in bad)
        lines.append(f"worst {len(bad)}:")
        for r in bad:
            approx = ", linear part only" if "approximate" in r["structure"] else ""
            pred = "" if r["predicted_mean"] is None else \
                f"  (predicted {_pm(r['predicted_mean'], r['predicted_mcse'])}{approx})"
            lines.append(f"  {r['layer'].ljust(name_w)}  {_pm(r['ratio_mean'], r['ratio_mcse'])}{pred}  "
                         f"{r['verdict'].split(': ', 1)[-1]}")
    if after:
        n_after = sum(bool(r.get("shifted")) for r in after)
        fix = {"exact": "BN by BN, exact", "recalibrate": "one pass"}.get(result.meta.get("fix"), "")
        lines.append(f"fix (BN recalibrated with every noise off, {fix}): shifted {n_shift} → {n_after}"
                     f"{_undecided(after)}; ratio {_spread(before)} → {_spread(after)}")
    return lines


def _cells(r):
    spread = f"{r['ratio_median']:.4f} [{r['ratio_min']:.3f}, {r['ratio_max']:.3f}]"
    return (r["layer"], r["kind"], spread, _pm(r["ratio_mean"], r["ratio_mcse"]), f"{r['li_ratio']:.4f}",
            _pm(r["predicted_mean"], r["predicted_mcse"]), "—" if r["z"] is None else f"{r['z']:+.2f}", r["verdict"])


def detail(result):
    """Every layer and stage, in columns that fit the longest name."""
    head = ("layer", "kind", "ratio median [min, max]", "mean ± MCSE", "Li max(r,1/r)", "predicted", "z",
            "verdict")
    rows = [(r["stage"], _cells(r)) for r in result.rows]
    width = [max([len(h)] + [len(c[i]) for _, c in rows]) + 2 for i, h in enumerate(head)]
    lines = []
    for stage in ("before", "after"):
        mine = [c for s, c in rows if s == stage]
        if not mine:
            continue
        lines.append({"before": "as found:", "after": "after the fix (BN recalibrated with every noise off):"}[stage])
        lines.append("  " + "".join(h.ljust(w) for h, w in zip(head, width)).rstrip())
        lines += ["  " + "".join(c.ljust(w) for c, w in zip(cells, width)).rstrip() for cells in mine]
        lines.append("")
    before = result.stage("before")
    if before:
        lines.append("noise sources and structure, per layer:")
        lines += [f"  {r['layer']}: sources: {r['sources']}; {r['structure']}" for r in before]
        lines.append("")
    return lines


def table(result, detailed=False):
    """Lead with the summary, then (``detailed``) every layer, the output effect and the notes."""
    m = result.meta
    lines = [f"audit of {m['model']} on {m['data']}: {m['batches']} batches of {m['batch']}, seed {m['seed']}",
             KEEP_NOTE, ""]
    if result.rows:
        lines += summary(result)
    lines += _output_lines("as found", result.output.get("before"))
    remedies = sorted({r["remedy"] for r in result.stage("before") if r["remedy"]})
    lines += ["remedy: " + x for x in remedies]
    lines.append("")
    if detailed:
        lines += detail(result)
        lines.append("Read: ratio < 1 means BN's running_var (learned with dropout on) is larger than the variance "
                     "its input has at inference; predicted = closed form Var_eval/(Var_eval + noise variance) on "
                     f"a linear path from the noise; z = (measured − predicted)/MCSE; a shift counts beyond "
                     f"{m['z_star']:g} MCSE and {100 * m['tolerance']:g}%.")
    lines += result.notes
    if result.rows and not detailed:
        lines.append("(--detail prints every layer; --format json|csv keeps every row)")
    return "\n".join(lines) + "\n"


def _strict(x):
    """``x`` with every NaN or infinite float as None: strict JSON (the verdict says why a number is missing)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strict(v) for v in x]
    return x


def to_json(result):
    data = {"meta": result.meta, "rows": result.rows, "output": result.output, "notes": result.notes,
            "p": "KEEP probability (PyTorch's nn.Dropout(p) takes the drop probability 1 − p)"}
    return json.dumps(_strict(data), indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n"


FIELDS = ("stage", "layer", "kind", "channels", "ratio_median", "ratio_min", "ratio_max", "ratio_mean",
          "ratio_mcse", "li_ratio", "predicted_mean", "predicted_median", "predicted_mcse", "z", "shift",
          "shifted", "verdict", "sources", "n_sources", "structure", "running_var_source", "a0", "remedy", "batches")


def to_csv(result):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow(r)
    return buf.getvalue()


FORMATS = {"table": table, "json": to_json, "csv": to_csv}


def render(result, fmt, detailed=False):
    """The text of ``result`` in ``fmt`` (table, json, csv); json and csv keep every row."""
    return table(result, detailed) if fmt == "table" else FORMATS[fmt](result)
