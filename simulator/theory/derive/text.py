"""The checked derivations as text: a step-by-step table, JSON, or LaTeX.

Each step shows its label, the formula as written and a mark (✓ proven, ✗ false,
? undecided or needing an unstated assumption, · a definition); a false step also
shows its residual (left side minus right side). The last line names the first
false step met, chain by chain in the order given: the document's first error.
"""
import dataclasses
import json

FORMATS = ("table", "json", "latex")
MARK = {"given": "·", "proven": "✓", "false": "✗", "undecided": "?", "needs-assumption": "?"}


def first_wrong(results):
    """``(chain result, step index)`` of the first false step, or None."""
    return next(((r, r.first_false) for r in results if r.first_false is not None), None)


def verdict_line(results):
    """One line naming the first wrong step, or saying there is none."""
    found = first_wrong(results)
    if found is None:
        return "No false step in the derivations checked."
    r, i = found
    s = r.steps[i]
    return (f"First wrong step of the document: {r.name} [{r.claim}] step {i}, {s.label}: "
            f"{s.text} (left − right = {s.residual}).")


def format_table(results):
    """Each chain step by step, then the verdict line."""
    lines = []
    for r in results:
        lines.append(f"{r.name} [{r.claim}] — {r.title} ({r.source})")
        for i, s in enumerate(r.steps):
            status = "" if s.status in ("given", "proven", "false") else f" [{s.status}]"
            lines.append(f"  {MARK[s.status]} {i:>2}  {s.label}{status}")
            lines.append(f"        {s.text}")
            if s.status == "false":
                lines.append(f"        residual (left − right): {s.residual}")
            extra = [s.note] if s.note else []
            if s.numeric is not None:
                extra.append("numeric cross-check " + ("agrees" if s.numeric else "differs"))
            if extra:
                lines.append(f"        ({'; '.join(extra)})")
        lines.append("")
    lines.append(verdict_line(results))
    return "\n".join(lines) + "\n"


def format_json(results):
    """The results as JSON: a list of chains with their steps, and the first wrong step."""
    found = first_wrong(results)
    data = {"chains": [dataclasses.asdict(r) for r in results],
            "first_false": None if found is None else {"chain": found[0].name, "step": found[1]}}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


_LATEX_STATUS = {"given": r"\text{(definition)}", "proven": r"\checkmark", "false": r"\times",
                 "undecided": "?", "needs-assumption": r"?\ \text{(assumption)}"}


def format_latex(results):
    """A LaTeX fragment (needs amsmath, amssymb): one align* per chain, a mark per step."""
    out = []
    for r in results:
        out.append(rf"\subsection*{{{r.name} ({r.claim}): {_escape(r.title)}}}")
        out.append(r"\begin{align*}")
        rows = [rf"  & {s.latex} && {_LATEX_STATUS[s.status]} && \text{{{_escape(s.label)}}}"
                for s in r.steps]
        out.append(" \\\\\n".join(rows))
        out.append(r"\end{align*}")
        for s in r.steps:
            if s.status == "false":
                out.append(rf"\noindent False: {_escape(s.label)}; "
                           rf"left $-$ right $= $ \texttt{{{_escape(s.residual)}}}.")
        out.append("")
    out.append(_escape(verdict_line(results)))
    return "\n".join(out) + "\n"


def _escape(text):
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def format_results(results, fmt="table"):
    """``results`` (list of ChainResult) in the format ``fmt`` (one of :data:`FORMATS`)."""
    return {"table": format_table, "json": format_json, "latex": format_latex}[fmt](results)
