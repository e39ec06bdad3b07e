"""Claim-level outcomes: the rule of simulator.theory.claims, and the verdict kinds it reads."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.theory.claims import AGAINST, CLAIMS, OUTCOMES, outcome, summarize
from simulator.theory.verdict import Check, acceptable, judge


def row(kind, verdict, **params):
    return {"kind": kind, "verdict": verdict, "params": {"p": 0.5, **params}, "check": f"{kind} check",
            "experiment": "x", "estimate": 1.0, "mcse": 0.1, "closed_form": 1.0, "z": 0.0, "rel_error": 0.0,
            "tolerance": 0.1, "formula": "document: f", "subclaim": "C1"}


@pytest.mark.parametrize("rows,want", [
    ([row("exact", "confirmed"), row("enumeration", "confirmed")], "confirmed"),
    ([row("exact", "confirmed"), row("erratum", "refuted")], "confirmed, with an erratum"),
    ([row("derivation", "proven"), row("derivation", "false")], "confirmed, with an erratum"),
    ([row("exact", "confirmed"), row("approximation", "confirmed")], "approximately"),
    ([row("exact", "confirmed", task="a"), row("exact", "refuted", task="b")], "depends"),
    ([row("effect", "holds", task="a"), row("effect", "contradicted", task="b")], "depends"),
    ([row("effect", "holds", task="a"), row("effect", "no detectable effect", task="b")], "depends"),
    ([row("effect", "contradicted"), row("effect", "no detectable effect")], "contradicted"),
    ([row("equivalence", "contradicted")], "contradicted"),
    ([row("erratum", "refuted")], "contradicted"),
    ([row("effect", "no detectable effect"), row("equivalence", "undecided")], "inconclusive"),
    ([row("erratum", "inconclusive")], "inconclusive"),
    ([row("measurement", "measured")], "measured"),
    # An approximation beyond its tolerance is never "holds": against the claim, or inconclusive.
    ([row("approximation", "refuted")], "contradicted"),
    ([row("approximation", "inconclusive")], "inconclusive"),
    # Measurements never make a claim confirmed, and do not stop one from being contradicted.
    ([row("measurement", "measured"), row("effect", "contradicted")], "contradicted"),
])
def test_outcome_rule(rows, want):
    assert outcome(rows) == want


_ROWS = st.lists(st.sampled_from([
    ("exact", "confirmed"), ("exact", "refuted"), ("erratum", "refuted"), ("erratum", "inconclusive"),
    ("approximation", "confirmed"), ("approximation", "inconclusive"), ("approximation", "refuted"),
    ("effect", "holds"), ("effect", "contradicted"), ("effect", "no detectable effect"),
    ("equivalence", "holds"), ("equivalence", "undecided"), ("equivalence", "contradicted"),
    ("derivation", "proven"), ("derivation", "false"), ("measurement", "measured")]), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(_ROWS)
def test_a_supporting_word_never_stands_next_to_a_contradicting_check(kinds):
    rows = [row(k, v, task=str(i)) for i, (k, v) in enumerate(kinds)]
    got = outcome(rows)
    assert got in OUTCOMES
    against = [r for r in rows if r["verdict"] in AGAINST and r["kind"] != "erratum"]
    if got in ("confirmed", "confirmed, with an erratum", "approximately"):
        assert not against
    if got == "confirmed":
        assert all(r["verdict"] in ("confirmed", "holds", "proven", "measured") for r in rows
                   if r["kind"] != "erratum")
        assert not any(r["kind"] == "approximation" for r in rows)
    if got == "contradicted":
        assert not [r for r in rows if r["verdict"] in ("confirmed", "holds") and r["kind"] != "erratum"]


def test_summary_names_where_a_claim_holds_and_where_not():
    rows = [row("effect", "holds", task="teacher"), row("effect", "contradicted", task="diabetes")]
    s = summarize("C6-regression", rows, 4.0, acceptable=acceptable)
    assert s["outcome"] == "depends" and s["colour"] == "amber"
    assert s["holds_at"] == ["teacher"] and s["against_at"] == ["diabetes"]
    assert s["statement"] == CLAIMS["C6-regression"].statement and s["ok"]


def test_erratum_is_named_in_the_summary():
    rows = [row("exact", "confirmed"), {**row("erratum", "refuted"), "z": -270.0, "closed_form": 8.0}]
    s = summarize("C2", rows, 4.0)
    assert s["outcome"] == "confirmed, with an erratum"
    assert "Erratum: the document writes f" in s["erratum"] and "8" in s["headline"]


@pytest.mark.parametrize("estimate,want", [(1.0, "holds"), (-1.0, "contradicted"), (0.2, "no detectable effect")])
def test_effect_verdicts(estimate, want):
    assert judge(Check("e", "effect", 0.0, estimate, 0.1), 5.0).verdict == want


@pytest.mark.parametrize("estimate,want", [(-0.5, "holds"), (0.6, "contradicted"), (0.0, "undecided"),
                                           (0.05, "undecided")])
def test_equivalence_verdicts(estimate, want):
    # The claim: the effect stays below the margin 0.05 (one-sided: an improvement never contradicts it).
    assert judge(Check("q", "equivalence", 0.0, estimate, 0.1, margin=0.05), 5.0).verdict == want


def test_few_runs_are_judged_by_student_t_not_the_normal():
    # t = 6 with 3 degrees of freedom has a tail of 0.0046: not significant at z* = 4, unlike a normal z of 6.
    normal = judge(Check("e", "effect", 0.0, 0.6, 0.1), 4.0)
    few = judge(Check("e", "effect", 0.0, 0.6, 0.1, dof=3), 4.0)
    assert normal.verdict == "holds" and few.verdict == "no detectable effect"
    assert math.isclose(few.z, 2.605, abs_tol=0.01) and few.resolution > normal.resolution
    many = judge(Check("e", "effect", 0.0, 0.6, 0.1, dof=10_000), 4.0)
    assert math.isclose(many.z, 6.0, rel_tol=1e-3)


def test_wrong_direction_is_refuted_by_the_effect_check():
    # The same paired difference oriented the wrong way round (the claim's sign flipped) turns holds into
    # contradicted: the check can fail.
    assert judge(Check("e", "effect", 0.0, 0.8, 0.1, dof=15), 4.0).verdict == "holds"
    assert judge(Check("e", "effect", 0.0, -0.8, 0.1, dof=15), 4.0).verdict == "contradicted"


def test_approximation_beyond_tolerance_is_not_confirmed():
    within = judge(Check("a", "approximation", 1.0, 1.05, 0.01, tolerance=0.1), 5.0)
    beyond = judge(Check("a", "approximation", 1.0, 1.12, 0.01, tolerance=0.1), 5.0)  # 120% of it, z = 2
    far = judge(Check("a", "approximation", 1.0, 1.5, 0.01, tolerance=0.1), 5.0)
    assert (within.verdict, beyond.verdict, far.verdict) == ("confirmed", "inconclusive", "refuted")


def test_derivation_verdict_is_the_checkers():
    assert judge(Check("d", "derivation", 0.0, 0.0, 0.0, outcome="false"), 5.0).verdict == "false"
    assert acceptable("derivation") == {"proven", "false", "undecided"}


def test_an_effect_significant_alone_is_undecided_not_undetectable():
    from simulator.theory.verdict import Check, judge
    def verdict(z):
        return judge(Check("e", "effect", 0.0, z, 1.0), 3.9, 3.29).verdict
    assert [verdict(z) for z in (4.0, 3.5, 3.0, -3.5, -4.0)] == [
        "holds", "undecided", "no detectable effect", "undecided", "contradicted"]


def test_a_zero_standard_error_over_noisy_runs_is_undecided_never_significant():
    from simulator.theory.verdict import Check, judge
    noisy = Check("drop", "equivalence", 0.0, 0.0111, 0.0, {"p": 0.5}, margin=0.01, dof=3)
    exact = Check("drop", "equivalence", 0.0, 0.0, 0.0, {"p": 1.0}, margin=0.01, dof=3)  # p = 1: no noise at all
    assert judge(noisy, 3.7).verdict == "undecided" and judge(exact, 3.7).verdict == "holds"
    degenerate = Check("e", "effect", 0.0, 1.0, 0.1, degenerate="no kept gate")
    assert judge(degenerate, 3.7).verdict == "undecided"


def test_findings_are_quoted_by_their_quantity_fact_not_their_name():
    """The headline names a finding by its ``quantity`` fact; a renamed check is quoted the same."""
    from simulator.theory.claims import headline
    rows = [{**row("effect", "holds", task="diabetes", placement="hidden"), "check": "renamed (hidden) [diabetes]",
             "facts": {"quantity": "ΔMSE", "setting": "hidden", "task": "diabetes"}, "family": None}]
    text = headline(rows, 3.0, 0.5)
    assert text.startswith("ΔMSE (hidden, p = 0.5): diabetes ") and "renamed" not in text
    rows[0]["facts"]["quantity"] = "ΔCE"
    assert headline(rows, 3.0, 0.5).startswith("ΔCE (hidden")


def test_a_derivation_erratum_names_its_line_fact():
    r = {**row("derivation", "false", chain="c2", residual="1"), "check": "c2: line 3", "formula": "a = b"}
    assert "the line line 3 of the document" in summarize("C2", [r], 3.0)["erratum"]
    r["facts"] = {"quantity": "step", "line": "the last line"}
    assert "the line the last line of the document" in summarize("C2", [r], 3.0)["erratum"]
