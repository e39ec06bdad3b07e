"""The report's page: the data it shows, and its HTML from a Jinja2 template.

:func:`page_data` turns a :class:`~simulator.runs.verify.Verification`, the figures drawn
and the manifest into plain values (text and numbers already written as the page shows
them); :func:`render` hands them to ``templates/report.html.j2`` (in this package, with the
pieces it includes), with autoescaping on: every value is escaped, none is trusted as HTML.
The page leads with one line per claim, then one section per claim (what the document says,
its formula as written, the outcome, the numbers that carry it, the figure of the quantity
it is about, the derivation step by step), the trained networks, the glossary
(:mod:`simulator.present.glossary`) and the full check table, folded and filterable. It
opens offline: its style and script are inline, every link a file of the folder or an
anchor of the page.
"""
import functools
from typing import NamedTuple

import jinja2

from ..core.numbers import number
from ..theory.claims import OUTCOME_COLOURS
from .glossary import GLOSSARY

BADGE = {"green": ("#1e7b34", "#fff"), "amber": ("#f2b705", "#222"), "red": ("#b3261e", "#fff"),
         "grey": ("#6b7280", "#fff")}
LONG = 3  # parameter lists longer than this are summarized in the table (all of them are in checks.csv)
# A derivation step's mark and its CSS class, by verdict.
MARKS = {"proven": ("✓", "ok"), "false": ("✗", "bad"), "undecided": ("?", ""), "needs-assumption": ("?", "")}
NO_NUMBERS = "none: nothing in this run tests the claim"


class Shown(NamedTuple):
    """A figure as the page shows it: its file stem, title and caption."""

    name: str
    title: str
    caption: str


@functools.cache
def environment():
    """The templates of this package (``simulator/present/templates``), autoescaping every value."""
    return jinja2.Environment(loader=jinja2.PackageLoader("simulator.present", "templates"), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def render(data):
    """The HTML page (a string) of :func:`page_data`'s ``data``."""
    return environment().get_template("report.html.j2").render(data)


def page(verification, figures_done, manifest, regime=None):
    """The HTML page (a string). ``figures_done``: ``[(claim id, name, title, caption), ...]`` in order;
    ``regime``: the C6 map section (:func:`simulator.present.report.c6_maps`), or None."""
    return render({**page_data(verification, figures_done, manifest), "regime": regime})


def checks_table(rows):
    """The HTML of the check table alone (the last part of the page), for check rows ``rows``."""
    return environment().get_template("checks.html.j2").render(table=table_data(rows))


def claim_entry(c):
    """A claim entry with every field of the contract (older entries fall back to their own fields)."""
    text = c.get("verdict", "")
    if "outcome" in c:
        outcome = c["outcome"]
    elif not c.get("ok", True):
        outcome = "contradicted"
    elif "erratum" in text:
        outcome = "confirmed, with an erratum"
    elif "approximately" in text:
        outcome = "approximately"
    elif text.startswith("confirmed") and "measured" not in text:
        outcome = "confirmed"
    else:
        outcome = "measured"
    cid = c.get("id", c.get("claim", "?"))
    return {"claim": c.get("claim", cid), "id": cid, "title": c.get("title") or "",
            "statement": c.get("statement", c.get("document", "")), "as_written": c.get("as_written", ""),
            "outcome": outcome, "headline": c.get("headline", text), "evidence": c.get("evidence", ""),
            "erratum": c.get("erratum", ""), "ok": c.get("ok", True)}


def badge(outcome):
    """An outcome's badge: the outcome and its background and text colours."""
    bg, fg = BADGE.get(OUTCOME_COLOURS.get(outcome, "grey"), BADGE["grey"])
    return {"outcome": outcome, "bg": bg, "fg": fg}


def params_text(params):
    """A check's parameters in one line (long lists as their length)."""
    parts = []
    for k, v in params.items():
        if isinstance(v, (list, tuple)):
            v = f"[{len(v)} values]" if len(v) > LONG else ", ".join(map(str, v))
        elif isinstance(v, dict):
            v = "{…}"
        parts.append(f"{k}={v}")
    return "; ".join(parts)


def _claim_of(row):
    return row.get("subclaim") or row["claim"]


def _section_of(claim_id, sections):
    """The section a figure or derivation of ``claim_id`` goes in: itself, else its parent claim's first."""
    if claim_id in sections:
        return claim_id
    parent = claim_id.split("-")[0]
    return next((s for s, c in sections.items() if c["claim"] == parent), None)


def chain_titles():
    """The title of each derivation chain of :mod:`simulator.theory.derive`, by name."""
    from ..theory.derive import CHAINS  # SymPy: only when a page is made

    items = CHAINS.values() if isinstance(CHAINS, dict) else CHAINS
    return {getattr(c, "name", ""): getattr(c, "title", "") for c in items}


def derivation_data(rows, titles):
    """The derivations of one claim (its rows of kind derivation): per chain, its heading and marked steps."""
    out = []
    for chain in dict.fromkeys(r["params"].get("chain") for r in rows):
        steps = sorted((r for r in rows if r["params"].get("chain") == chain),
                       key=lambda r: r["params"].get("step", 0))
        false = [r for r in steps if r["verdict"] == "false"]
        head = f"Derivation “{titles.get(chain, chain)}”, line by line: {len(steps)} steps checked symbolically"
        head += f", {len(false)} false" if false else ", all proven" if all(
            r["verdict"] == "proven" for r in steps) else ""
        out.append({"head": head, "steps": [_step(r) for r in steps]})
    return out


def _step(r):
    mark, cls = MARKS.get(r["verdict"], ("?", ""))
    return {"mark": mark, "cls": cls, "verdict": r["verdict"], "label": r["check"].split(": ", 1)[-1],
            "formula": r.get("formula", ""), "residual": r["params"].get("residual") or ""}


def table_data(rows):
    """The check table: its size, its three filters (claim, verdict, kind) and one row of texts per check."""
    filters = [("f-claim", "claim", list(dict.fromkeys(_claim_of(r) for r in rows))),
               ("f-verdict", "verdict", list(dict.fromkeys(r["verdict"] for r in rows))),
               ("f-kind", "kind", list(dict.fromkeys(r["kind"] for r in rows)))]
    return {"count": len(rows), "filters": filters, "rows": [_table_row(r) for r in rows]}


def _table_row(r):
    est = number(r["estimate"], 6) if not r["mcse"] else f"{number(r['estimate'])} ± {number(r['mcse'], 2)}"
    return {"claim": _claim_of(r), "verdict": r["verdict"], "kind": r["kind"], "experiment": r["experiment"],
            "check": r["check"], "params": params_text(r["params"]), "closed_form": number(r["closed_form"], 6),
            "estimate": est, "z": "—" if r["z"] is None else number(r["z"], 3),
            "resolution": number(r.get("resolution"), 2)}


def head_data(vmeta, manifest):
    """The numbers of the page's opening: seed, α, the self-tests and their z*, the families of findings."""
    families = vmeta.get("findings") or {}
    text = "; ".join(f"{k}: {f['tests']} tests, z* = {number(f['z_star'], 3)}" for k, f in families.items())
    selftests = vmeta.get("checks_tested", 0) - sum(f["tests"] for f in families.values())
    return {"seed": manifest.get("seed"), "alpha": number(vmeta.get("alpha")), "selftests": selftests,
            "zstar": number(vmeta.get("z_threshold"), 3), "families": text or "none"}


def section_data(c, rows, placed, titles):
    """One claim's section: its words, badge, numbers, figures, derivation steps and count of checks."""
    cid = c["id"]
    mine = [r for r in rows if _claim_of(r) == cid]
    title, statement = c["title"], c["statement"]
    if not title:  # an entry with no words of its own (e.g. only a derivation): name it by its chains
        chains = dict.fromkeys(r["params"].get("chain") for r in mine if r["kind"] == "derivation")
        title = "; ".join(titles.get(ch) or str(ch) for ch in chains) or cid
        statement = statement or "the document's derivation for this claim, checked line by line."
    erratum = c["erratum"]
    if erratum and not erratum.lower().startswith("erratum"):
        erratum = f"Erratum: {erratum}"
    steps = [r for r in mine if r["kind"] == "derivation"]
    return {"id": cid, "title": title, "statement": statement, "as_written": c["as_written"],
            "badge": badge(c["outcome"]), "erratum": erratum, "headline": c["headline"] or NO_NUMBERS,
            "figures": placed.pop(cid, []), "derivations": derivation_data(steps, titles) if steps else [],
            "evidence": c["evidence"], "count": len(mine)}


def page_data(verification, figures_done, manifest):
    """Everything the template shows, as plain values (the template only lays them out)."""
    claims = [claim_entry(c) for c in verification.claims]
    by_id = {c["id"]: c for c in claims}
    rows = verification.checks
    placed = {}
    for claim_id, name, title, caption in figures_done:
        placed.setdefault(_section_of(claim_id, by_id) or claim_id, []).append(Shown(name, title, caption))
    titles = chain_titles()
    summary = [{"id": c["id"], "says": c["title"] or c["statement"], "badge": badge(c["outcome"]),
                "headline": c["headline"]} for c in claims]
    sections = [section_data(c, rows, placed, titles) for c in claims]  # each takes its figures from placed
    training = placed.pop("training", [])
    trained = bool(training) or any(f[0].startswith("C6") and f[1].startswith("training") for f in figures_done)
    return {"head": head_data(verification.meta, manifest), "summary": summary,
            "errata": [c for c in claims if c["erratum"]], "sections": sections,
            "training": {"shown": trained, "figures": training}, "extra": list(placed.items()),
            "glossary": glossary_data(), "table": table_data(rows)}


def glossary_data():
    """The glossary by section: ``[(section, [Entry, ...]), ...]`` in the order of :data:`GLOSSARY`."""
    return [(s, [e for e in GLOSSARY if e.section == s]) for s in dict.fromkeys(e.section for e in GLOSSARY)]
