"""Formatting of a :class:`~simulator.runs.simulate.Result`: table, JSON, CSV."""
import csv
import io
import json

from ..core.numbers import number
from ..theory.claims import HEADLINE_P, estimate_text
from ..theory.verdict import acceptable

UNDERPOWERED = ("inconclusive", "no detectable effect", "undecided")


def _g(x, digits=6):
    """A number of the terminal tables: :func:`simulator.core.numbers.number`, infinity as Python writes it."""
    return number(x, digits, symbols=False)


def verdict_text(row):
    """The verdict, marked when it is not what the project expects of that kind."""
    v = row["verdict"]
    if row["kind"] == "approximation" and row["rel_error"] is not None:
        mark = "" if v in acceptable(row) else " !"
        return f"{v}{mark} (rel. error {row['rel_error']:.2%}, tolerance {row['tolerance']:.2%})"
    if row["kind"] == "erratum":
        return {"refuted": "refuted (erratum)", "inconclusive": "inconclusive (erratum: need more samples)"}.get(
            v, f"{v} (erratum NOT refuted)")
    if row["kind"] == "equivalence":
        return f"{v} (margin {row['params'].get('margin', 0):g})"
    return v if v in acceptable(row) else f"{v} !"


def summary(result):
    """One line: how many checks came out as expected, how many could not decide, how many did not
    (and, for a run of several experiments, the range of their z*)."""
    rows = result.checks
    bad = [r for r in rows if r["verdict"] not in acceptable(r)]
    undecided = [r for r in rows if r not in bad and r["verdict"] in UNDERPOWERED]
    errata = sum(r["kind"] == "erratum" and r["verdict"] == "refuted" for r in rows)
    false = sum(r["kind"] == "derivation" and r["verdict"] == "false" for r in rows)
    text = (f"{len(rows)} checks: {len(rows) - len(bad) - len(undecided)} as expected, {len(undecided)} "
            f"inconclusive (the budget could not decide), {len(bad)} unexpected; {errata} document errata refuted"
            + (f", {false} derivation lines false" if false else ""))
    if bad:
        text += ": unexpected " + ", ".join(f"{r['experiment']}/{r['check']}" for r in bad[:8])
        text += " …" if len(bad) > 8 else ""
    zstars = result.meta.get("z_thresholds")
    if zstars:
        text += (f"\n{result.meta['checks_tested']} z-tests; z* by experiment from {min(zstars.values()):.2f} to "
                 f"{max(zstars.values()):.2f} (α/{len(zstars)} each)")
    return text


def header(meta, experiments=None):
    """The first line: what p means, seed, threads and the z threshold.

    A run of several experiments (``meta["z_thresholds"]``, or ``experiments`` > 1 before they are done)
    judges each one as its own family at α / E, so the line names the split instead of one z*.
    """
    if "p" in meta:
        what = f"p = {meta['p']:g} is the KEEP probability (PyTorch: nn.Dropout(p={1 - meta['p']:g}))"
    else:
        what = "p is the KEEP probability (PyTorch's nn.Dropout takes 1 − p)"
    start = f"{what};  seed = {meta['seed']};  threads = {meta['threads']};  "
    count = len(meta["z_thresholds"]) if "z_thresholds" in meta else experiments or 1
    families = meta.get("findings") or {}
    if count > 1:
        return start + (f"self-tests: family-wise α = {meta['alpha']:g}, split over {count} experiments (a Bonferroni "
                        f"family at α/{count} each, so its claims are decided when it is done); findings about the "
                        f"document: one family per sub-claim at α = {meta['alpha']:g}")
    selftests = meta["checks_tested"] - sum(f["tests"] for f in families.values())
    parts = [f"z* = {meta['z_threshold']:.2f} (family-wise α = {meta['alpha']:g} over {selftests} z-tests)"] \
        if selftests or not families else []
    if families:
        parts.append("findings, a family per sub-claim at α = {:g}: {}".format(meta["alpha"], ", ".join(
            f"{k} {f['tests']} tests, z* = {f['z_star']:.2f}" for k, f in families.items())))
    return start + "; ".join(parts)


def _reference(r):
    """The closed form, or a measurement's reference value labelled as such, or a dash."""
    if r["kind"] == "measurement":
        return "—" if r["closed_form"] is None else f"ref. {_g(r['closed_form'])}"
    if r["kind"] == "derivation":
        return "symbolic"
    if r["kind"] == "equivalence":
        return f"≤ {_g(r['params'].get('margin', 0))}"
    if r["kind"] in ("effect", "inequality"):
        return "> 0" if r["kind"] == "effect" else "≥ 0"
    return _g(r["closed_form"])


def detail(result):
    """Every check: a fixed-width table grouped by experiment and p."""
    lines = []
    head = ("check", "kind", "closed form", "estimate ± MCSE", "z", "resolution", "verdict")
    names = max((len(r["check"]) for r in result.checks), default=0)
    width = (min(max(names + 2, 30), 62), 13, 14, 26, 9, 11, 0)
    current = None
    for r in result.checks:
        group = (r["experiment"], r["params"].get("p"))
        if group != current:
            current = group
            at = "" if group[1] is None else f" at p = {group[1]:g}"
            budget = f"; {r['samples']:,} {r.get('unit', 'samples')}" if r["samples"] else ""
            if r["experiment"] in result.meta.get("z_thresholds", {}):
                budget += f"; z* = {result.meta['z_thresholds'][r['experiment']]:.2f}"
            lines += ["", f"{r['experiment']} [{r['claim']}]{at} — {r['source']}{budget}",
                      "  " + "".join(h.ljust(w) for h, w in zip(head, width)).rstrip()]
        if r["kind"] == "derivation":
            est = r["params"].get("residual") or "—"
        else:
            est = _g(r["estimate"], 8) if not r["mcse"] else f"{_g(r['estimate'])} ± {_g(r['mcse'], 2)}"
        cells = (r["check"], r["kind"], _reference(r), est,
                 "—" if r["z"] is None else f"{r['z']:+.2f}", _g(r["resolution"], 2), verdict_text(r))
        lines.append("  " + "".join(str(c).ljust(w - 1) + " " for c, w in zip(cells, width)).rstrip())
    lines += ["", "Read: z = (estimate − closed form)/MCSE; resolution = smallest deviation this check could "
              "detect (90% power); an erratum is the document's formula as written and should be refuted; "
              "'ref.' marks a reference value a measurement is shown against, not a claim."]
    return lines


def _plain(text, colour):
    return text


def claim_lines(claims, style=_plain):
    """Two lines per (sub-)claim: its id, title and outcome (coloured by ``style(text, colour)``), then the numbers."""
    lines = []
    for c in claims:
        lines.append(f"{c['id']:<18} {c['title']} — " + style(c["outcome"].upper(), c["colour"]))
        lines.append(f"{'':<18} {c['headline']}")
        for key, words in (("holds_at", "holds at"), ("against_at", "contradicted at"),
                           ("undecided_at", "undecided at")):
            settings = c.get(key) or []
            if settings:
                lines.append(f"{'':<18} {words}: {'; '.join(settings[:4])}{' …' if len(settings) > 4 else ''}")
        if c["erratum"]:
            lines.append(f"{'':<18} " + style(c["erratum"], "red"))
    return lines


def effect_lines(result, style=_plain, p=HEADLINE_P):
    """Per task and placement of the trained networks at keep probability p (the run's own, if it has one):
    the test metric, the paired effect and its verdict."""
    p = result.meta.get("p", p)
    rows = [r for r in result.checks if r["params"].get("quantity") in ("mse", "accuracy", "dmse", "drop")
            and r["params"].get("p") == p]
    if not rows:
        return []
    colours = {"holds": "green", "contradicted": "red"}
    lines = ["", f"trained networks at p = {p:g} (paired over runs; effect = with this placement − without "
             "dropout; z from Student's t over the runs):",
             f"  {'task':<24}{'placement':<25}{'test metric':<26}{'effect':<28}{'z':<8}verdict"]

    def task_of(r):
        return r["params"]["task"] + ("" if r["params"].get("bn", True) else " (no BN)")

    for task in dict.fromkeys(task_of(r) for r in rows):
        for placement in dict.fromkeys(r["params"]["placement"] for r in rows if task_of(r) == task):
            mine = {r["params"]["quantity"]: r for r in rows
                    if task_of(r) == task and r["params"]["placement"] == placement}
            metric = mine.get("mse") or mine.get("accuracy")
            effect = mine.get("dmse") or mine.get("drop")
            name = "MSE" if "mse" in mine else "accuracy"
            cells = [task, placement, f"{name} {estimate_text(metric)}" if metric else ""]
            if effect:
                label = "ΔMSE" if effect["params"]["quantity"] == "dmse" else "drop"
                cells.append(f"{label} {estimate_text(effect)}")
                cells.append("—" if effect["z"] is None else f"{effect['z']:+.1f}")
                verdict = effect["verdict"] + (f" (margin {effect['params'].get('margin'):g})"
                                               if effect["kind"] == "equivalence" else "")
                cells.append(style(verdict, colours.get(effect["verdict"], "grey")))
            lines.append("  " + "".join(c.ljust(w) for c, w in zip(cells, (24, 25, 26, 28, 8, 0))).rstrip())
    return lines


def table(result, detail_rows=False, style=_plain, streamed=False):
    """What ``simulate`` and ``verify`` print: the header, one line per claim, the total; with
    ``detail_rows`` the whole table of checks too. ``streamed``: the header and the claims were printed
    already, as they came (:func:`simulator.runs.simulate.simulate`'s ``stream``): only the rest."""
    lines = [] if streamed else [header(result.meta), ""] + claim_lines(result.claims, style)
    if "p" in result.meta or detail_rows:  # a run at one p fits on a screen; verify's grid only with detail
        lines += effect_lines(result, style)
    if detail_rows:
        lines += detail(result)
    lines += ["", summary(result)]
    if not detail_rows:
        lines.append(f"(--detail prints all {len(result.checks)} checks; --format json|csv or --out FILE saves them)")
    return "\n".join(lines) + "\n"


def to_json(result):
    """``result`` (meta, claims, checks) as indented JSON text, ending in a newline."""
    data = {"meta": result.meta, "claims": result.claims, "checks": result.checks}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


CSV_FIELDS = ("experiment", "check", "claim", "subclaim", "kind", "params", "formula", "closed_form", "estimate",
              "mcse", "z", "rel_error", "tolerance", "resolution", "verdict", "samples")


def to_csv(result):
    """``result``'s checks as CSV text, one row per check, columns :data:`CSV_FIELDS`."""
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
