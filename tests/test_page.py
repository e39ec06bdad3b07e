"""The report's page from its Jinja2 template: every value escaped, the template shipped, the numbers written once.

Fast: the page is rendered from hand-made results, without running a simulation.
"""
import configparser
import fnmatch
import math
import os
import types

import jinja2
import pytest

from simulator.core.engine import MIN_SAMPLES
from simulator.core.numbers import number
from simulator.present import page as pg
from simulator.present.glossary import GLOSSARY, TERMS, Entry, slug
from simulator.runs.verify import QUICK_DIVISOR, budget

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVIL = "<script>alert(1)</script>"


def _row(**over):
    row = {"experiment": "inverted-dropout", "check": "mean", "claim": "C2", "subclaim": "C2", "kind": "exact",
           "params": {"p": 0.5}, "formula": "p·x", "closed_form": 1.0, "estimate": 1.0, "mcse": 0.1, "z": 0.0,
           "resolution": 0.5, "verdict": "confirmed"}
    return {**row, **over}


def _verification(rows, claims):
    meta = {"alpha": 0.001, "z_threshold": 4.5, "checks_tested": len(rows), "findings": {}}
    return types.SimpleNamespace(meta=meta, checks=rows, claims=claims)


def _evil_page(environment=None):
    """A page whose check name, setting, experiment, claim title and figure caption all carry a script."""
    rows = [_row(check=EVIL, experiment=EVIL, params={"p": 0.5, "task": EVIL}, formula=EVIL)]
    claims = [{"id": "C2", "claim": "C2", "title": EVIL, "statement": EVIL, "as_written": EVIL,
               "outcome": "confirmed", "headline": EVIL, "evidence": EVIL, "erratum": EVIL}]
    data = pg.page_data(_verification(rows, claims), [("C2", "fig", EVIL, EVIL)], {"seed": EVIL})
    env = environment or pg.environment()
    return env.get_template("report.html.j2").render(data)


def test_a_script_in_a_check_name_or_a_setting_is_escaped_on_the_page():
    html = _evil_page()
    assert "<script>alert" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10  # every place it is shown
    assert html.count("<script>") == 1  # the page's own, inline


def test_the_escape_check_fails_on_a_template_that_does_not_escape():
    # The same template with autoescaping off: the script comes through, and the check above would fail.
    raw = jinja2.Environment(loader=pg.environment().loader, autoescape=False, trim_blocks=True,
                             lstrip_blocks=True)
    assert "<script>alert(1)</script>" in _evil_page(raw)
    assert pg.environment().autoescape is True


def test_the_check_table_alone_escapes_and_writes_its_numbers():
    text = pg.checks_table([_row(check=EVIL, estimate=1.23456789, mcse=0.0123, z=float("inf"), resolution=None,
                                 params={"note": "a&b<c>", "d": [1, 2, 3, 4]})])
    assert "<script>" not in text and "&lt;script&gt;" in text and "a&amp;b&lt;c&gt;" in text
    assert "1.235 ± 0.012" in text and ">∞<" in text and ">—<" in text and "d=[4 values]" in text


def test_the_templates_ship_in_the_wheel():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"), encoding="utf-8")
    patterns = cfg["options.package_data"]["simulator.present"].split()
    folder = os.path.join(ROOT, "simulator", "present", "templates")
    names = sorted(os.listdir(folder))
    assert "report.html.j2" in names
    for name in names:
        assert any(fnmatch.fnmatch(f"templates/{name}", p) for p in patterns), name
    assert set(pg.environment().list_templates()) == set(names)


def test_the_page_has_no_external_resource():
    html = _evil_page()
    assert "://" not in html and "src=\"//" not in html and "<link" not in html


@pytest.mark.parametrize("x, digits, symbols, text", [
    (3.14159265, 4, True, "3.142"), (2.0, 6, True, "2"), (None, 4, True, "—"), (1234567.0, 4, True, "1.235e+06"),
    (math.inf, 3, True, "∞"), (-math.inf, 3, True, "−∞"), (math.inf, 6, False, "inf"), (-math.inf, 2, False, "-inf"),
    (7, 4, True, "7"), (0.000123456, 2, True, "0.00012"),
])
def test_number_writes_each_value_exactly(x, digits, symbols, text):
    assert number(x, digits, symbols=symbols) == text


def test_the_quick_budget_rule():
    assert QUICK_DIVISOR == 20 and MIN_SAMPLES == 1000
    assert budget(1_000_000) == 1_000_000 and budget(1_000_000, quick=True) == 50_000
    assert budget(10_000, quick=True) == 1000  # never below MIN_SAMPLES
    assert budget(1_000_000, quick=True, samples=2000) == 2000 and budget(None, quick=True) is None
    assert budget(None, quick=False, samples=7) == 7


def test_the_report_uses_the_quick_budget_rule_of_verify():
    from simulator.present import report

    assert report.budget is budget  # one rule, not a copy of its numbers


def test_glossary_entries_are_records_with_unique_anchors():
    assert all(isinstance(e, Entry) for e in GLOSSARY)
    anchors = [e.anchor for e in GLOSSARY]
    assert len(anchors) == len(set(anchors))
    assert set(TERMS.values()) <= set(anchors)
    assert slug("confirmed, with an erratum") == "confirmed-with-an-erratum"
    assert [s for s, _ in pg.glossary_data()] == list(dict.fromkeys(e.section for e in GLOSSARY))


def test_sections_get_their_figures_and_a_missing_title_from_the_derivation():
    rows = [_row(), _row(claim="C9", subclaim="C9", kind="derivation", verdict="false", check="x: step 1",
                         params={"chain": "nochain", "step": 1, "residual": "r"}, z=None, mcse=None)]
    claims = [{"id": "C2", "title": "t", "outcome": "confirmed", "erratum": "wrong"},
              {"id": "C9", "outcome": "contradicted"}]
    data = pg.page_data(_verification(rows, claims), [("C2-sub", "f", "T", "cap"), ("training", "g", "T", "c")],
                        {"seed": 1})
    c2, c9 = data["sections"]
    assert [f.name for f in c2["figures"]] == ["f"] and c2["erratum"] == "Erratum: wrong"
    assert c9["title"] == "nochain" and c9["derivations"][0]["head"].endswith(", 1 false")
    assert c9["derivations"][0]["steps"][0]["mark"] == "✗" and data["training"]["shown"]
    assert data["summary"][1]["says"] == "" and data["extra"] == []
