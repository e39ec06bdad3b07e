"""Formatting of a :class:`~simulator.simulate.Result`: table, JSON, CSV."""
import csv
import io
import json

from .verdict import acceptable, expected


def _g(x, digits=6):
    return "—" if x is None else f"{x:.{digits}g}"


def verdict_text(row):
    """The verdict, marked when it is not what the project expects of that kind."""
    v = row["verdict"]
    if row["kind"] == "approximation" and row["rel_error"] is not None:
        mark = "" if v == "confirmed" else " !"
        return f"{v}{mark} (rel. error {row['rel_error']:.2%}, tolerance {row['tolerance']:.2%})"
    if row["kind"] == "erratum":
        return {"refuted": "refuted (erratum)", "inconclusive": "inconclusive (erratum: need more samples)"}.get(
            v, f"{v} (erratum NOT refuted)")
    return v if v == expected(row["kind"]) else f"{v} !"


def summary(result):
    """One line: how many checks came out as expected."""
    rows = result.checks
    bad = [r for r in rows if r["verdict"] not in acceptable(r["kind"])]
    errata = sum(r["kind"] == "erratum" and r["verdict"] == "refuted" for r in rows)
    text = (f"{len(rows)} checks: {len(rows) - len(bad)} as expected "
            f"({errata} document errata refuted), {len(bad)} unexpected")
    if bad:
        text += ": " + ", ".join(f"{r['experiment']}/{r['check']}" for r in bad)
    return text


def header(meta):
    """The first line: what p means, seed, threads and the z threshold."""
    if "p" in meta:
        what = f"p = {meta['p']:g} is the KEEP probability (PyTorch: nn.Dropout(p={1 - meta['p']:g}))"
    else:
        what = "p is the KEEP probability (PyTorch's nn.Dropout takes 1 − p)"
    return (f"{what};  seed = {meta['seed']};  threads = {meta['threads']};  z* = {meta['z_threshold']:.2f} "
            f"(family-wise α = {meta['alpha']:g} over {meta['checks_tested']} z-tests)")


def table(result):
    """A readable, fixed-width table grouped by experiment and p."""
    lines = [header(result.meta)]
    head = ("check", "kind", "closed form", "estimate ± MCSE", "z", "resolution", "verdict")
    width = (30, 14, 14, 28, 9, 11, 0)
    current = None
    for r in result.checks:
        group = (r["experiment"], r["params"].get("p"))
        if group != current:
            current = group
            at = "" if group[1] is None else f" at p = {group[1]:g}"
            lines += ["", f"{r['experiment']} [{r['claim']}]{at} — {r['source']}; {r['samples']:,} samples",
                      "  " + "".join(h.ljust(w) for h, w in zip(head, width)).rstrip()]
        est = _g(r["estimate"], 8) if not r["mcse"] else f"{_g(r['estimate'])} ± {_g(r['mcse'], 2)}"
        cells = (r["check"], r["kind"], _g(r["closed_form"]), est,
                 "—" if r["z"] is None else f"{r['z']:+.2f}", _g(r["resolution"], 2), verdict_text(r))
        lines.append("  " + "".join(str(c).ljust(w) for c, w in zip(cells, width)).rstrip())
    lines += ["", summary(result),
              "Read: z = (estimate − closed form)/MCSE; resolution = smallest deviation this check could "
              "detect (90% power); an erratum is the document's formula as written and should be refuted."]
    return "\n".join(lines) + "\n"


def claims_text(verification):
    """One paragraph per claim: what the document says, the verdict, the evidence."""
    lines = []
    for c in verification.claims:
        lines.append(f"{c['claim']}  the document says {c['document']} — {c['verdict']}")
        lines.append(f"    evidence: {c['evidence']}")
    return "\n".join(lines) + "\n"


def to_json(result):
    data = {"meta": result.meta, "checks": result.checks}
    if hasattr(result, "claims"):
        data["claims"] = result.claims
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


CSV_FIELDS = ("experiment", "check", "claim", "kind", "params", "closed_form", "estimate", "mcse", "z",
              "rel_error", "resolution", "verdict", "samples")


def to_csv(result):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result.checks:
        w.writerow({**r, "params": json.dumps(r["params"], ensure_ascii=False)})
    return buf.getvalue()


FORMATS = {"table": table, "json": to_json, "csv": to_csv}


def sweep_csv(result):
    """A tidy table: one row per check per grid point, the grid's parameters first."""
    names = list(result.meta["grid"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=names + list(CSV_FIELDS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result.checks:
        w.writerow({**r["point"], **r, "params": json.dumps(r["params"], ensure_ascii=False)})
    return buf.getvalue()


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
