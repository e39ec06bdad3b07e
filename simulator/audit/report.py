"""The audit as text: a table (default), JSON or CSV, from an :class:`~.result.AuditResult`."""
import csv
import io
import json

KEEP_NOTE = ("p is the KEEP probability (PyTorch's nn.Dropout(p) takes the DROP probability: keep = 1 − p); "
             "ratio = Var_eval/running_var per channel (1 = no shift).")


def _g(x, digits=4):
    return "—" if x is None else f"{x:.{digits}g}"


def _pm(x, se, digits=4):
    if x is None:
        return "—"
    return f"{x:.{digits}g}" if se is None or se != se else f"{x:.{digits}g} ± {se:.2g}"


def _output_lines(stage, out):
    if not out:
        return []
    return [f"  output ({stage}): eval vs Monte Carlo average of {out['mc_samples']} dropout-on passes "
            f"(BN on running statistics): mean shift {_pm(out['mean_shift'], out['mean_shift_mcse'])}, "
            f"variance shift {_pm(out['var_shift'], out['var_shift_mcse'])} (eval variance "
            f"{_g(out['var_eval'])}), rms difference {_g(out['rms_diff'])} — in the output's units"]


def table(result):
    """Lead with the verdicts, then the per-layer evidence, the output effect and the notes."""
    m = result.meta
    lines = [f"audit of {m['model']} on {m['data']}: {m['batches']} batches of {m['batch']}, seed {m['seed']}",
             KEEP_NOTE, ""]
    head = ("layer", "kind", "ratio median [min, max]", "mean ± MCSE", "Li max(r,1/r)", "predicted", "z",
            "verdict")
    width = (14, 13, 28, 20, 14, 20, 8, 0)
    stages = [s for s in ("before", "after") if result.stage(s)]
    for stage in stages:
        title = {"before": "as found", "after": "after the fix (BN recalibrated with dropout off)"}[stage]
        lines.append(f"{title}:")
        lines.append("  " + "".join(h.ljust(w) for h, w in zip(head, width)).rstrip())
        for r in result.stage(stage):
            cells = (r["layer"], r["kind"],
                     f"{r['ratio_median']:.4f} [{r['ratio_min']:.3f}, {r['ratio_max']:.3f}]",
                     _pm(r["ratio_mean"], r["ratio_mcse"]), f"{r['li_ratio']:.4f}",
                     _pm(r["predicted_mean"], r["predicted_mcse"]),
                     "—" if r["z"] is None else f"{r['z']:+.2f}", r["verdict"])
            lines.append("  " + "".join(str(c).ljust(w) for c, w in zip(cells, width)).rstrip())
        lines += _output_lines(stage, result.output.get(stage))
        lines.append("")
    before = result.stage("before")
    if before:
        lines.append("structure (modules in the order they run):")
        for r in before:
            lines.append(f"  {r['layer']}: dropout upstream: {r['dropout_upstream']}; {r['structure']}")
        remedies = sorted({r["remedy"] for r in before if r["remedy"]})
        if remedies:
            lines.append("")
            lines += ["remedy: " + x for x in remedies]
        lines.append("")
    lines.append("Read: ratio < 1 means BN's running_var (learned with dropout on) is larger than the variance its "
                 "input has at inference; predicted = closed form Var_eval/(Var_eval + s²·Σ W² E[h²]) "
                 f"(s² = (1−p)/p; Uout β²/3); z = (measured − predicted)/MCSE; a shift counts beyond "
                 f"{m['z_star']:g} MCSE and {100 * m['tolerance']:g}%.")
    lines += result.notes
    return "\n".join(lines) + "\n"


def to_json(result):
    data = {"meta": result.meta, "rows": result.rows, "output": result.output, "notes": result.notes,
            "p": "KEEP probability (PyTorch's nn.Dropout(p) takes the drop probability 1 − p)"}
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


FIELDS = ("stage", "layer", "kind", "channels", "ratio_median", "ratio_min", "ratio_max", "ratio_mean",
          "ratio_mcse", "li_ratio", "predicted_mean", "predicted_median", "predicted_mcse", "z", "shift",
          "verdict", "dropout_upstream", "structure", "running_var_source", "remedy", "batches")


def to_csv(result):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow(r)
    return buf.getvalue()


FORMATS = {"table": table, "json": to_json, "csv": to_csv}
